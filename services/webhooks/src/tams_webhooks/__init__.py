"""Webhooks service: registrations and durable delivery of TAMS events."""
