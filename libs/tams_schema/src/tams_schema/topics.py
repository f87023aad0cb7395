"""Kafka topic names shared by the gateway and the services.

The command topics are internal; the events topic is the public, documented
interface (docs/events.md). Names can be prefixed per deployment (TAMS_KAFKA_TOPIC_PREFIX).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topics:
    prefix: str = "tams"
    events_name: str | None = None

    @property
    def catalog_commands(self) -> str:
        return f"{self.prefix}.catalog.commands"

    @property
    def segments_commands(self) -> str:
        return f"{self.prefix}.segments.commands"

    @property
    def webhooks_commands(self) -> str:
        return f"{self.prefix}.webhooks.commands"

    @property
    def events(self) -> str:
        return self.events_name or f"{self.prefix}.events"

    def commands_of(self, service: str) -> str:
        """The command topic of an owning service (`catalog`, `segments`, `webhooks`)."""
        topics = {
            "catalog": self.catalog_commands,
            "segments": self.segments_commands,
            "webhooks": self.webhooks_commands,
        }
        return topics[service]

    def command_topics(self) -> list[str]:
        return [self.catalog_commands, self.segments_commands, self.webhooks_commands]
