"""Shared runtime plumbing: Kafka request/reply, idempotent command consumers, settings, logging, health"""
