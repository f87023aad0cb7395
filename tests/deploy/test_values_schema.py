"""values.schema.json: Helm refuses bad values before rendering anything, naming the value."""

from __future__ import annotations

import json
from typing import Any

import helm_python as helm
import pytest

from tests.deploy.chart import CHART_DIR, SCENARIOS, render

BACKEND_ID = "0b0e6a1e-4c6b-4c05-9a0e-4e7f3d2b7c10"

BAD_VALUES: list[tuple[str, dict[str, Any], str]] = [
    ("latest tag", {"image": {"tag": "latest"}}, "/image/tag"),
    ("short digest", {"image": {"digest": "sha256:abc"}}, "/image/digest"),
    ("misspelt key", {"gatway": {"replicas": 2}}, "gatway"),
    ("unknown store", {"store": {"type": "postgres"}}, "/store/type"),
    ("replicas as text", {"gateway": {"replicas": "3"}}, "/gateway/replicas"),
    ("no replicas", {"segments": {"replicas": 0}}, "/segments/replicas"),
    ("no Secret", {"credentials": {"existingSecret": ""}}, "/credentials/existingSecret"),
    ("bootstrap without port", {"kafka": {"bootstrapServers": "kafka-1"}}, "bootstrapServers"),
    ("zero partitions", {"kafka": {"commandPartitions": 0}}, "/kafka/commandPartitions"),
    ("sub-second session", {"kafka": {"sessionTimeoutMs": 500}}, "/kafka/sessionTimeoutMs"),
    ("latest Kafka", {"kafka": {"inCluster": {"image": {"tag": "latest"}}}}, "/kafka/inCluster"),
    ("endpoint not a URL", {"s3": {"endpointUrl": "s3.example.com"}}, "/s3/endpointUrl"),
    ("bad bucket", {"s3": {"bucket": "Media_Bucket"}}, "/s3/bucket"),
    ("storage id not a UUID", {"s3": {"storageId": "main"}}, "/s3/storageId"),
    (
        "credentials in values",
        {
            "s3": {
                "extraBackends": [
                    {"id": BACKEND_ID, "label": "a", "bucket": "arc", "secret_key": "hunter2"}
                ]
            }
        },
        "secret_key",
    ),
    (
        "backend without bucket",
        {"s3": {"extraBackends": [{"id": BACKEND_ID, "label": "a"}]}},
        "bucket",
    ),
    ("loud logs", {"logLevel": "LOUD"}, "/logLevel"),
    ("env name with a space", {"env": {"MY VAR": "1"}}, "MY VAR"),
    ("env value as a map", {"catalog": {"env": {"X": {"a": 1}}}}, "/catalog/env/X"),
    (
        "CPU target over 100",
        {"gateway": {"autoscaling": {"targetCPUUtilizationPercentage": 150}}},
        "targetCPUUtilizationPercentage",
    ),
    ("two webhooks instances", {"webhooks": {"replicas": 2}}, "/webhooks"),
    (
        "autoscaled webhooks",
        {"webhooks": {"autoscaling": {"enabled": True}}},
        "/webhooks",
    ),
    (
        "object timeout under ADR 0044's 300 s",
        {"media": {"minObjectTimeoutSeconds": 60}},
        "minObjectTimeoutSeconds",
    ),
    ("no egress ports", {"networkPolicy": {"s3": {"ports": []}}}, "/networkPolicy/s3/ports"),
    (
        "ingress path",
        {"ingress": {"hosts": [{"host": "a", "paths": [{"path": "x", "pathType": "Prefix"}]}]}},
        "path",
    ),
    ("scrape interval", {"serviceMonitor": {"interval": "often"}}, "/serviceMonitor/interval"),
]


@pytest.mark.parametrize(
    ("values", "where"), [(v, w) for _, v, w in BAD_VALUES], ids=[name for name, _, _ in BAD_VALUES]
)
def test_bad_values_are_refused_naming_the_value(values: dict[str, Any], where: str) -> None:
    with pytest.raises(helm.HelmValuesError) as caught:
        render(values)
    assert where in str(caught.value)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_scenario_satisfies_the_schema(scenario: str) -> None:
    with helm.Chart.load(CHART_DIR) as chart:
        chart.validate_schema(chart.merge_values(SCENARIOS[scenario]))


def test_the_schema_documents_every_default_value() -> None:
    """Every key of values.yaml is declared (so additionalProperties: false never bites)."""
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    with helm.Chart.load(CHART_DIR) as chart:
        defaults = chart.values
    missing = list(_undeclared(defaults, schema, schema, ""))
    assert not missing, missing


def _undeclared(value: Any, node: dict[str, Any], root: dict[str, Any], path: str) -> Any:
    while "$ref" in node:
        node = root["definitions"][node["$ref"].rsplit("/", 1)[1]]
    if isinstance(value, dict) and "properties" in node:
        for key, child in value.items():
            if key not in node["properties"]:
                yield f"{path}/{key}"
            else:
                yield from _undeclared(child, node["properties"][key], root, f"{path}/{key}")
