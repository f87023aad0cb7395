"""Envelopes read what a newer release writes: fields they do not know are ignored, so old
and new services can run side by side during a rolling upgrade (docs/operations.md)."""

from __future__ import annotations

import json
from typing import Any

from tams_schema.envelopes import CommandEnvelope, Outcome, Reply, TamsEvent


def with_new_field(model_json: str, **nested: str) -> str:
    """The JSON as a newer release would write it: a field this one does not know, at the
    top and in the nested objects named in `nested` (by key)."""
    document: dict[str, Any] = json.loads(model_json)
    document["added_by_a_newer_release"] = 1
    for key in nested:
        for item in document[key]:
            item["added_by_a_newer_release"] = 1
    return json.dumps(document)


def test_a_command_from_a_newer_gateway_is_read() -> None:
    command = CommandEnvelope(name="segments.add", key="f", payload={"segments": []})
    read = CommandEnvelope.model_validate_json(with_new_field(command.model_dump_json()))
    assert read == command


def test_a_reply_from_a_newer_service_is_read() -> None:
    reply = Reply(command_id="c", correlation_id="r", status=201, body={"id": "x"})
    assert Reply.model_validate_json(with_new_field(reply.model_dump_json())) == reply


def test_an_outcome_recorded_by_a_newer_service_is_read() -> None:
    """After a rollback, the older service answers a redelivered command from the outcome a
    newer one recorded."""
    event = TamsEvent(key="f", event_type="flows/updated", event={"flow": {"id": "f"}})
    outcome = Outcome(status=204, events=[event])
    read = Outcome.model_validate_json(with_new_field(outcome.model_dump_json(), events="*"))
    assert read == outcome
