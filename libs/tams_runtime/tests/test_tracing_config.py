"""Tracing is configured by the standard OTEL_* variables only (each case in a fresh process:
a tracer provider can be installed once per process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

PROBE = """
import json, logging
from opentelemetry import trace
from tams_runtime.logs import JsonFormatter
from tams_runtime.tracing import configure_tracing, tracer
configure_tracing("probe")
provider = trace.get_tracer_provider()
processors = getattr(getattr(provider, "_active_span_processor", None), "_span_processors", ())
exporters = [type(getattr(p, "_exporter", getattr(p, "span_exporter", None))).__name__
             for p in processors]
with tracer().start_as_current_span("work"):
    record = logging.LogRecord("t", logging.INFO, "", 0, "inside a span", None, None)
    line = json.loads(JsonFormatter("probe").format(record))
resource = getattr(provider, "resource", None)
print(json.dumps({
    "sdk": type(provider).__name__ == "TracerProvider",
    "exporters": exporters,
    "trace_id_in_logs": "trace_id" in line and "span_id" in line,
    "service_name": resource.attributes.get("service.name") if resource else None,
}))
"""


def probe(**env: str) -> dict[str, object]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def test_without_an_endpoint_spans_have_ids_but_nothing_is_exported() -> None:
    result = probe()
    assert result == {
        "sdk": True,
        "exporters": [],
        "trace_id_in_logs": True,
        "service_name": "tams-probe",
    }


def test_an_otlp_endpoint_adds_the_otlp_http_exporter() -> None:
    result = probe(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9", OTEL_SERVICE_NAME="mine")
    assert result["exporters"] == ["OTLPSpanExporter"]
    assert result["service_name"] == "mine"


def test_otel_sdk_disabled_turns_tracing_off() -> None:
    result = probe(OTEL_SDK_DISABLED="true", OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")
    assert result["sdk"] is False and result["trace_id_in_logs"] is False
