"""The chart lints strictly, renders, and every manifest is valid Kubernetes.

Each scenario is a value set a user would install: the defaults, a production file (VAST,
external Kafka, autoscaling, ServiceMonitor, ingress), the one-pod SQLite trial with its own
Kafka, and the trial Kafka next to VAST.
"""

from __future__ import annotations

from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest

from tests.deploy.chart import CHART_DIR, KUBE_VERSION, KUBE_VERSIONS, SCENARIOS, SERVICES, render

# Kinds from CRDs, which kubernetes-validate has no schema for; checked field by field below.
CRD_KINDS = {"ServiceMonitor"}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_chart_lints_strictly(scenario: str) -> None:
    report = helm.lint(CHART_DIR, SCENARIOS[scenario], strict=True, kube_version=f"v{KUBE_VERSION}")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not report["errors"] and not problems, report


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_manifest_validates_against_the_kubernetes_schema(
    scenario: str, kube_version: str
) -> None:
    rendered = render(SCENARIOS[scenario])
    assert rendered.manifests
    for manifest in rendered.manifests:
        if manifest["kind"] in CRD_KINDS:
            continue
        where = f"{manifest['kind']}/{manifest['metadata']['name']}"
        try:
            kubernetes_validate.validate(manifest, kube_version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{scenario}: {where} is invalid at {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError:
            pytest.fail(f"{scenario}: {where}: no Kubernetes {kube_version} schema for this kind")


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_service_has_a_deployment_a_service_and_a_network_policy(scenario: str) -> None:
    rendered = render(SCENARIOS[scenario])
    assert set(rendered.tams_containers()) == set(SERVICES)
    services = {m["metadata"]["name"] for m in rendered.of_kind("Service")}
    assert {f"tams-{name}" for name in SERVICES} <= services
    policies = rendered.of_kind("NetworkPolicy")
    covered = {
        c["name"]
        for p in policies
        for _, pod in rendered.pod_templates()
        for c in pod["containers"]
        if _selects(p["spec"]["podSelector"]["matchLabels"], _pod_labels(rendered, c["name"]))
    }
    assert set(SERVICES) <= covered


def test_production_renders_autoscalers_budgets_ingress_and_service_monitor() -> None:
    rendered = render(SCENARIOS["production"])
    hpas = {
        m["spec"]["scaleTargetRef"]["name"] for m in rendered.of_kind("HorizontalPodAutoscaler")
    }
    assert hpas == {"tams-gateway", "tams-catalog", "tams-segments"}
    for hpa in rendered.of_kind("HorizontalPodAutoscaler"):
        deployment = rendered.get("Deployment", hpa["spec"]["scaleTargetRef"]["name"])
        # The autoscaler owns the replica count; a fixed one would fight it on every upgrade.
        assert "replicas" not in deployment["spec"]
    assert len(rendered.of_kind("PodDisruptionBudget")) == len(SERVICES)
    ingress = rendered.get("Ingress", "tams-gateway")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "tams-gateway", "port": {"name": "http"}}
    assert not rendered.of_kind("StatefulSet"), "no trial Kafka in production"


def test_service_monitor_scrapes_metrics_of_the_five_services() -> None:
    rendered = render(SCENARIOS["production"])
    (monitor,) = rendered.of_kind("ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    selected = [
        s
        for s in rendered.of_kind("Service")
        if _selects(monitor["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])
        and _matches_expressions(
            monitor["spec"]["selector"]["matchExpressions"], s["metadata"]["labels"]
        )
    ]
    assert sorted(s["metadata"]["name"] for s in selected) == sorted(f"tams-{n}" for n in SERVICES)
    for service in selected:
        assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    # The job is named by the Service's label, tams-<service>, as the alert rules expect.
    jobs = sorted(s["metadata"]["labels"][monitor["spec"]["jobLabel"]] for s in selected)
    assert jobs == sorted(f"tams-{n}" for n in SERVICES)


def _pod_labels(rendered: Any, container: str) -> dict[str, str]:
    for workload, pod in rendered.pod_templates():
        if any(c["name"] == container for c in pod["containers"]):
            labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
            return labels
    raise AssertionError(container)


def _selects(match_labels: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in match_labels.items())


def _matches_expressions(expressions: list[dict[str, Any]], labels: dict[str, str]) -> bool:
    for expression in expressions:
        assert expression["operator"] == "In"
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def test_the_oldest_kubernetes_validated_is_the_oldest_the_chart_accepts() -> None:
    with helm.Chart.load(CHART_DIR) as chart:
        declared = chart.metadata["kubeVersion"]
    oldest = KUBE_VERSIONS[0]
    assert declared == f">={oldest}-0"
