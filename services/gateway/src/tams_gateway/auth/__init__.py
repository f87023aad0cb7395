"""Authentication, scopes and rate limits of the gateway (docs/security.md)."""
