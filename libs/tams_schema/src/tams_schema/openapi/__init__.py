"""OpenAPI documents of this server's extension APIs, shared by the service that implements
one and the gateway, which merges them into its own document (`GET /openapi.json`)."""

from __future__ import annotations

from importlib import resources
from importlib.abc import Traversable

ANALYTICS_OPENAPI: Traversable = resources.files(__name__).joinpath("analytics.yaml")
