"""Catalog service: sources and flows."""
