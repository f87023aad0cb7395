"""Render the Helm chart offline (helm-python-sdk: Helm's own library) and read the result.

Helm's template engine, values merging and values.schema.json validation are the real ones;
only the cluster is missing, so nothing here calls `lookup` or needs an API server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = ROOT / "deploy" / "helm" / "tams"
EXAMPLES_DIR = ROOT / "deploy" / "helm" / "examples"
# Every manifest is validated (strict) against these Kubernetes versions' schemas: the oldest
# the chart declares (Chart.yaml kubeVersion) and the version the lint runs at.
KUBE_VERSION = "1.30.0"
KUBE_VERSIONS = ("1.27.0", KUBE_VERSION)
SERVICES = ("gateway", "catalog", "segments", "webhooks", "analytics")
RELEASE = "tams"
NAMESPACE = "media"

Manifest = dict[str, Any]


def example(name: str) -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load((EXAMPLES_DIR / f"{name}.yaml").read_text())
    return values


# The value sets every structural test runs against.
SCENARIOS: dict[str, dict[str, Any]] = {
    "default": {},
    "production": example("production"),
    "trial": example("trial"),
    "in-cluster-kafka": {"kafka": {"inCluster": {"enabled": True}}},
}


@dataclass(frozen=True)
class Rendered:
    """The manifests of one `helm template`, plus NOTES.txt."""

    manifests: list[Manifest]
    notes: str

    def of_kind(self, kind: str) -> list[Manifest]:
        return [m for m in self.manifests if m["kind"] == kind]

    def get(self, kind: str, name: str) -> Manifest:
        found = [m for m in self.of_kind(kind) if m["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
        return found[0]

    def pod_templates(self) -> Iterator[tuple[Manifest, Manifest]]:
        """(workload, pod spec) of every Deployment and StatefulSet."""
        for m in self.manifests:
            if m["kind"] in ("Deployment", "StatefulSet"):
                yield m, m["spec"]["template"]["spec"]

    def tams_containers(self) -> dict[str, Manifest]:
        """The five services' containers by name (the Kafka trial broker excluded)."""
        found: dict[str, Manifest] = {}
        for workload, pod in self.pod_templates():
            if workload["kind"] == "Deployment":
                for container in pod["containers"]:
                    found[container["name"]] = container
        return found


def render(values: dict[str, Any] | None = None) -> Rendered:
    """`helm template` with these values (on top of the chart's defaults)."""
    return _render(json.dumps(values or {}, sort_keys=True))


@cache
def _render(values_json: str) -> Rendered:
    with helm.Chart.load(CHART_DIR) as chart:
        out = chart.render(json.loads(values_json), name=RELEASE, namespace=NAMESPACE)
    manifests: list[Manifest] = []
    notes = ""
    for path, text in sorted(out.items()):
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        manifests.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return Rendered(manifests, notes)


def env_of(container: Manifest) -> dict[str, Manifest]:
    """A container's env entries by name (names are unique: the chart deduplicates them)."""
    entries = container.get("env", [])
    names = [e["name"] for e in entries]
    assert len(names) == len(set(names)), f"duplicate env names in {container['name']}: {names}"
    return {e["name"]: e for e in entries}


def env_values(container: Manifest) -> dict[str, str]:
    """The plain (non-secret) env values of a container."""
    return {name: e["value"] for name, e in env_of(container).items() if "value" in e}
