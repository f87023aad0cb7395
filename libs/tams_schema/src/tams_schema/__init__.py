"""TAMS 8.2 types: timestamps, timeranges, resource models, command and event envelopes."""
