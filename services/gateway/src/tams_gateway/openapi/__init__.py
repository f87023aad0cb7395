"""The gateway's own OpenAPI document, generated from its router (docs/ext-openapi.md)."""
