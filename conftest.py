"""Shared test fixtures: the real broker, S3 server and services (see tams_stack.testing)."""

pytest_plugins = ["tams_stack.testing"]
