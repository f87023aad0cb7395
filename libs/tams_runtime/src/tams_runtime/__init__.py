"""Shared runtime plumbing: Kafka request/reply, command consumers, settings, logs."""
