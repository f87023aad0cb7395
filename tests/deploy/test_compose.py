"""compose.yaml: Docker cannot run here, so check that it only refers to things that exist.

Services it depends on, images (pinned), the modules the containers run, the variables the
services read (.env.example), volumes, health checks on the ports the services listen on, and
that no credential is written into it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.chart import ROOT, SERVICES

COMPOSE = ROOT / "compose.yaml"
SECRET_LOOKING = re.compile(r"SECRET|PASSWORD|TOKEN", re.IGNORECASE)
INTERPOLATION = re.compile(r"\$\{([A-Z0-9_]+)(:?[-?+])?([^}]*)\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return document


def _documented_variables() -> set[str]:
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^#?\s*(TAMS_[A-Z0-9_]+)=", text, re.MULTILINE))


def test_it_runs_the_five_services_kafka_and_minio(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {*SERVICES, "kafka", "minio", "minio-bucket"}


def test_dependencies_exist_and_their_conditions_can_be_met(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        for target, rule in service.get("depends_on", {}).items():
            assert target in services, f"{name} depends on unknown {target}"
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in services[target], f"{target} has no healthcheck"
            elif rule["condition"] == "service_completed_successfully":
                assert services[target].get("restart") in (None, "no", "on-failure"), target
            else:
                pytest.fail(f"{name}: unexpected condition {rule['condition']}")


def test_images_are_pinned_and_the_tams_image_is_built_here(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        image = service["image"]
        if "build" in service:
            assert service["build"] == "."
            assert (ROOT / "Dockerfile").is_file()
            continue
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest", f"{name}: {image} is not pinned"
        assert re.search(r"\d", tag), f"{name}: {image} has no version in its tag"


def test_each_service_container_runs_its_own_module(compose: dict[str, Any]) -> None:
    for name in SERVICES:
        command = compose["services"][name]["command"]
        assert command == ["python", "-m", f"tams_{name}"]
        package = ROOT / "services" / name / "src" / f"tams_{name}"
        assert (package / "__main__.py").is_file(), package


def test_the_services_get_only_variables_they_read(compose: dict[str, Any]) -> None:
    documented = _documented_variables()
    for name in SERVICES:
        environment = compose["services"][name]["environment"]
        unknown = {k for k in environment if k.startswith("TAMS_")} - documented
        assert not unknown, f"{name}: not in .env.example: {sorted(unknown)}"
        # Apache Kafka refuses sessions under group.min.session.timeout.ms (6 s by default).
        assert int(environment["TAMS_KAFKA_SESSION_TIMEOUT_MS"]) >= 6000
        assert environment["TAMS_DATA_DIR"] == "/data"
        assert "tams-data:/data" in compose["services"][name]["volumes"]


def test_no_credential_is_written_into_the_file(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        environment = service.get("environment", {})
        for key, value in environment.items():
            if not SECRET_LOOKING.search(key):
                continue
            found = INTERPOLATION.fullmatch(str(value))
            # `${VAR:?message}`: taken from the environment or .env, and required; or
            # `${VAR:-}`: optional, and empty unless the environment sets it.
            assert found and (found.group(2) == ":?" or found.group(3) == ""), (
                f"{name}: {key}={value!r}"
            )
    text = COMPOSE.read_text()
    for variable, operator, default in INTERPOLATION.findall(text):
        if SECRET_LOOKING.search(variable):
            assert operator == ":?" or default == "", (
                f"${{{variable}}} must not have a default ({default!r})"
            )


def test_named_volumes_are_declared(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name}: undeclared volume {source}"


def test_health_checks_ask_each_service_for_ready_on_its_port(compose: dict[str, Any]) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    http_port = re.search(r"TAMS_HTTP_PORT=(\d+)", dockerfile)
    assert http_port
    for name in SERVICES:
        service = compose["services"][name]
        port = service["environment"].get(
            "TAMS_GATEWAY_PORT" if name == "gateway" else "TAMS_HTTP_PORT",
            "8000" if name == "gateway" else http_port.group(1),
        )
        probe = " ".join(service["healthcheck"]["test"])
        assert f"http://127.0.0.1:{port}/ready" in probe, name


def test_services_restart_and_run_hardened(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if name != "minio-bucket":
            assert service["restart"] == "unless-stopped", name
    for name in SERVICES:
        service = compose["services"][name]
        assert service["read_only"] is True
        assert "/tmp" in service["tmpfs"]
        assert service["cap_drop"] == ["ALL"]
        assert "no-new-privileges:true" in service["security_opt"]


def test_published_ports_listen_on_loopback_only(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port}"


def test_env_file_with_the_password_is_not_committed() -> None:
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert ".env" in ignored
    docker_ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ".env" in docker_ignored


def test_compose_and_the_chart_use_the_same_kafka_image() -> None:
    compose_image = yaml.safe_load(COMPOSE.read_text())["services"]["kafka"]["image"]
    values = yaml.safe_load((Path(ROOT) / "deploy/helm/tams/values.yaml").read_text())
    chart_image = values["kafka"]["inCluster"]["image"]
    assert compose_image == f"{chart_image['repository']}:{chart_image['tag']}"
