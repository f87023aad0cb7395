"""The Dockerfile (Docker cannot build here): pinned bases, non-root, health check, labels.

Its health check script is run for real against a listening and a silent port.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.deploy.chart import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()
HEALTHCHECK_SCRIPT = ROOT / "deploy" / "docker" / "healthcheck.py"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, rest = line.partition(" ")
            found.append((instruction.upper(), rest.strip()))
    return found


def _arg_defaults() -> dict[str, str]:
    return dict(
        rest.split("=", 1)
        for instruction, rest in _instructions()
        if instruction == "ARG" and "=" in rest
    )


def test_base_images_are_pinned_to_a_patch_release_of_the_projects_python() -> None:
    args = _arg_defaults()
    python_version = (ROOT / ".python-version").read_text().strip()
    bases = [rest.split()[0] for instruction, rest in _instructions() if instruction == "FROM"]
    assert len(bases) == 2, "a build stage and a runtime stage"
    for base in bases:
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base)
        name, _, tag = image.partition(":")
        assert name == "python"
        assert re.fullmatch(rf"{re.escape(python_version)}\.\d+-slim-\w+", tag), image


def test_uv_is_pinned_and_the_lock_file_is_enforced() -> None:
    assert re.search(r'pip install [^\n]*"uv==\d+\.\d+\.\d+"', DOCKERFILE)
    assert "uv sync --locked --no-dev" in re.sub(r"\\\n\s*", " ", DOCKERFILE)


def test_the_runtime_image_runs_as_a_numeric_non_root_user_owning_data() -> None:
    users = [rest for instruction, rest in _instructions() if instruction == "USER"]
    assert users and users[-1] == "10001:10001"
    assert "chown 10001:10001 /data" in DOCKERFILE
    env = " ".join(rest for instruction, rest in _instructions() if instruction == "ENV")
    assert "TAMS_DATA_DIR=/data" in env
    assert "PYTHONDONTWRITEBYTECODE=1" in env, "no writes to a read-only root filesystem"


def test_ports_match_what_the_chart_and_compose_expect() -> None:
    env = " ".join(rest for instruction, rest in _instructions() if instruction == "ENV")
    assert "TAMS_GATEWAY_PORT=8000" in env and "TAMS_HTTP_PORT=8080" in env
    assert "TAMS_GATEWAY_HOST=0.0.0.0" in env and "TAMS_HTTP_HOST=0.0.0.0" in env
    # The gateway takes the services' replies from other containers (the chart's port too).
    assert "TAMS_REPLY_HOST=0.0.0.0" in env and "TAMS_REPLY_PORT=9190" in env
    exposed = [rest for instruction, rest in _instructions() if instruction == "EXPOSE"]
    assert exposed == ["8000 8080 9190"]


def test_oci_labels_describe_the_image() -> None:
    labels = " ".join(rest for instruction, rest in _instructions() if instruction == "LABEL")
    for key in ("title", "description", "version", "revision", "source", "base.name"):
        assert f"org.opencontainers.image.{key}=" in labels, key


def test_copied_files_exist_and_secrets_stay_out_of_the_build_context() -> None:
    for instruction, rest in _instructions():
        if instruction == "COPY" and "--from=" not in rest:
            *sources, _ = rest.split()
            for source in sources:
                assert (ROOT / source).exists(), source
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert {".env", ".env.*", ".git", ".venv"} <= set(ignored)


def test_the_health_check_runs_the_script_copied_into_the_image() -> None:
    healthchecks = [rest for instruction, rest in _instructions() if instruction == "HEALTHCHECK"]
    assert len(healthchecks) == 1
    assert '"python", "/app/healthcheck.py"' in healthchecks[0]
    assert "COPY deploy/docker/healthcheck.py /app/healthcheck.py" in DOCKERFILE


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _closed_port() -> int:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    port = server.server_address[1]
    server.server_close()
    return port


def _run_healthcheck(http_port: int, gateway_port: int) -> int:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "TAMS_HTTP_PORT": str(http_port),
        "TAMS_GATEWAY_PORT": str(gateway_port),
    }
    done = subprocess.run(
        [sys.executable, str(HEALTHCHECK_SCRIPT)], env=env, timeout=30, check=False
    )
    return done.returncode


def test_health_check_passes_for_an_internal_service(health_server: int) -> None:
    assert _run_healthcheck(health_server, _closed_port()) == 0


def test_health_check_passes_for_the_gateway(health_server: int) -> None:
    assert _run_healthcheck(_closed_port(), health_server) == 0


def test_health_check_fails_when_nothing_answers() -> None:
    assert _run_healthcheck(_closed_port(), _closed_port()) == 1
