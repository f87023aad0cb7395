"""TAMS HTTP API gateway."""
