"""What an operator relies on when installing the chart.

Probes reach /health and /ready on the port each process really listens on; pods run as
non-root on a read-only root filesystem with a writable /tmp; no credential appears in a
manifest; the image tag is pinned; extra variables reach all or one service; command
consumers never outnumber their partitions; network policies let the API, Prometheus, Kafka,
S3 and webhook receivers through and nothing else.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

import helm_python as helm
import pytest

from tests.deploy.chart import (
    RELEASE,
    ROOT,
    SCENARIOS,
    SERVICES,
    Manifest,
    Rendered,
    env_of,
    env_values,
    render,
)

SECRET_LOOKING = re.compile(r"KEY|SECRET|PASSWORD|TOKEN|CREDENTIAL", re.IGNORECASE)


def _listen_port_var(service: str) -> str:
    return "TAMS_GATEWAY_PORT" if service == "gateway" else "TAMS_HTTP_PORT"


def _listen_host_var(service: str) -> str:
    return "TAMS_GATEWAY_HOST" if service == "gateway" else "TAMS_HTTP_HOST"


def _named_port(container: Manifest, name: str) -> int:
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    port: int = ports[name]
    return port


# --- probes -------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_probes_hit_health_and_ready_on_the_port_the_service_listens_on(scenario: str) -> None:
    rendered = render(SCENARIOS[scenario])
    all_in_one = any(
        w["metadata"]["name"].endswith("all-in-one") for w, _ in rendered.pod_templates()
    )
    for name, container in rendered.tams_containers().items():
        env = env_values(container)
        assert container["startupProbe"]["httpGet"]["path"] == "/health"
        assert container["livenessProbe"]["httpGet"]["path"] == "/health"
        probes = ["startupProbe", "livenessProbe"]
        if all_in_one and name != "gateway":
            # One pod: its readiness is the gateway's (the API), whatever the others say.
            assert "readinessProbe" not in container, name
        else:
            assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
            # /ready checks each dependency with a 2 s deadline; the probe must wait longer.
            assert container["readinessProbe"]["timeoutSeconds"] > 3
            probes.append("readinessProbe")
        for probe in probes:
            port = _named_port(container, container[probe]["httpGet"]["port"])
            # The process reads its port from this variable: the probe must knock there.
            assert env[_listen_port_var(name)] == str(port), (scenario, name, probe)
        # Reachable from the kubelet and other pods, not only from loopback.
        assert env[_listen_host_var(name)] == "0.0.0.0"


def test_internal_services_listen_on_8080_and_the_gateway_on_8000() -> None:
    containers = render().tams_containers()
    assert _named_port(containers["gateway"], "gateway") == 8000
    for name in SERVICES[1:]:
        assert _named_port(containers[name], name) == 8080


# --- security -------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_pods_run_as_non_root_with_a_read_only_root_and_a_writable_tmp(scenario: str) -> None:
    rendered = render(SCENARIOS[scenario])
    for workload, pod in rendered.pod_templates():
        where = f"{scenario}: {workload['metadata']['name']}"
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        assert pod["securityContext"]["runAsUser"] != 0, where
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert pod["automountServiceAccountToken"] is False, where
        volumes = {v["name"]: v for v in pod["volumes"]}
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["runAsNonRoot"] is True, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
            assert "emptyDir" in volumes[mounts["/tmp"]["name"]], where
            assert not mounts["/tmp"].get("readOnly"), where
    for name, container in rendered.tams_containers().items():
        assert container["securityContext"]["readOnlyRootFilesystem"] is True, name
        # TAMS_DATA_DIR is a writable volume, not the read-only image.
        assert env_values(container)["TAMS_DATA_DIR"] == "/data"
        assert "/data" in {m["mountPath"] for m in container["volumeMounts"]}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_no_service_link_variables_shadow_the_tams_settings(scenario: str) -> None:
    # The Service "tams-gateway" would otherwise inject TAMS_GATEWAY_PORT=tcp://… into pods.
    for _, pod in render(SCENARIOS[scenario]).pod_templates():
        assert pod["enableServiceLinks"] is False


def test_the_service_account_mounts_no_api_token() -> None:
    (account,) = render().of_kind("ServiceAccount")
    assert account["automountServiceAccountToken"] is False


# --- credentials ----------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_no_credential_is_written_into_a_manifest(scenario: str) -> None:
    rendered = render(SCENARIOS[scenario])
    assert not rendered.of_kind("Secret"), "the chart never creates a Secret"
    for _, pod in rendered.pod_templates():
        for container in pod["containers"]:
            for name, entry in env_of(container).items():
                if SECRET_LOOKING.search(name):
                    assert "value" not in entry, f"{container['name']}: {name} in plain text"
                    ref = entry["valueFrom"]["secretKeyRef"]
                    assert ref["name"] == "tams-credentials"


def test_credentials_come_from_the_named_secret_and_keys() -> None:
    values = {
        "credentials": {
            "existingSecret": "vast-prod",
            "s3AccessKeyKey": "AWS_ACCESS_KEY_ID",
            "s3SecretKeyKey": "AWS_SECRET_ACCESS_KEY",
            "vastAccessKeyKey": "access",
            "vastSecretKeyKey": "secret",
            "s3ExtraBackendsKey": "backends.json",
        }
    }
    for container in render(values).tams_containers().values():
        refs = {
            name: (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
            for name, e in env_of(container).items()
            if "secretKeyRef" in e.get("valueFrom", {})
        }
        assert refs == {
            "TAMS_S3_ACCESS_KEY": ("vast-prod", "AWS_ACCESS_KEY_ID"),
            "TAMS_S3_SECRET_KEY": ("vast-prod", "AWS_SECRET_ACCESS_KEY"),
            "TAMS_S3_EXTRA_BACKENDS": ("vast-prod", "backends.json"),
            "VAST_ACCESS_KEY": ("vast-prod", "access"),
            "VAST_SECRET_KEY": ("vast-prod", "secret"),
            "TAMS_INTERNAL_TOKEN": ("vast-prod", "internal-token"),
        }


def test_sqlite_mode_asks_the_secret_for_s3_keys_only() -> None:
    for container in render(SCENARIOS["trial"]).tams_containers().values():
        assert not [n for n in env_of(container) if n.startswith("VAST_")]


# --- image ----------------------------------------------------------------------------------


def test_the_image_tag_defaults_to_the_chart_app_version_which_is_the_server_version() -> None:
    with helm.Chart.load(ROOT / "deploy" / "helm" / "tams") as chart:
        app_version = chart.metadata["appVersion"]
    gateway = tomllib.loads((ROOT / "services" / "gateway" / "pyproject.toml").read_text())
    assert app_version == gateway["project"]["version"]
    for container in render().tams_containers().values():
        assert container["image"] == f"tams:{app_version}"


def test_an_image_digest_pins_the_exact_image() -> None:
    digest = "sha256:" + "ab" * 32
    values = {"image": {"repository": "registry.example.com/tams", "digest": digest}}
    for container in render(values).tams_containers().values():
        assert container["image"] == f"registry.example.com/tams@{digest}"


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_no_image_is_unpinned(scenario: str) -> None:
    for _, pod in render(SCENARIOS[scenario]).pod_templates():
        for container in pod["containers"]:
            image = container["image"]
            assert "@sha256:" in image or re.search(r":[\w.-]+$", image), image
            assert not image.endswith(":latest"), image


# --- environment ----------------------------------------------------------------------------


def test_extra_env_reaches_every_service_or_just_one() -> None:
    values = {
        "env": {"OTEL_TRACES_SAMPLER": "always_on", "TAMS_LOG_LEVEL": "DEBUG"},
        "extraEnv": [{"name": "TAMS_FEATURE_X", "value": "on"}],
        "extraEnvFrom": [{"configMapRef": {"name": "tams-common"}}],
        "webhooks": {
            "env": {"TAMS_FEATURE_X": "off", "TAMS_WEBHOOKS_MAX_ATTEMPTS": 12},
            "extraEnv": [
                {
                    "name": "TAMS_WEBHOOKS_SIGNING_KEY",
                    "valueFrom": {"secretKeyRef": {"name": "hooks", "key": "signing"}},
                }
            ],
            "extraEnvFrom": [{"secretRef": {"name": "webhooks-extra"}}],
        },
    }
    containers = render(values).tams_containers()
    for name, container in containers.items():
        env = env_values(container)
        assert env["OTEL_TRACES_SAMPLER"] == "always_on"
        # A global override wins over the chart's typed value, and no name appears twice.
        assert env["TAMS_LOG_LEVEL"] == "DEBUG"
        sources = container["envFrom"]
        assert {"configMapRef": {"name": "tams-common"}} in sources
        if name == "webhooks":
            # The service's own value wins over the global one; numbers become strings.
            assert env["TAMS_FEATURE_X"] == "off"
            assert env["TAMS_WEBHOOKS_MAX_ATTEMPTS"] == "12"
            signing = env_of(container)["TAMS_WEBHOOKS_SIGNING_KEY"]
            assert signing["valueFrom"]["secretKeyRef"] == {"name": "hooks", "key": "signing"}
            assert {"secretRef": {"name": "webhooks-extra"}} in sources
        else:
            assert env["TAMS_FEATURE_X"] == "on"
            assert "TAMS_WEBHOOKS_SIGNING_KEY" not in env_of(container)
            assert {"secretRef": {"name": "webhooks-extra"}} not in sources


def test_production_values_become_the_documented_variables() -> None:
    containers = render(SCENARIOS["production"]).tams_containers()
    env = env_values(containers["segments"])
    assert env["TAMS_STORE"] == "vast"
    assert env["VAST_ENDPOINT"] == "http://vip-pool.vast.example.com"
    assert env["VAST_BUCKET"] == "tams-db"
    assert env["VAST_SCHEMA"] == "tams"
    assert env["VAST_DATA_ENDPOINTS"] == "http://172.16.10.11,http://172.16.10.12"
    assert env["TAMS_KAFKA_BOOTSTRAP_SERVERS"].count(",") == 2
    assert env["TAMS_KAFKA_COMMAND_PARTITIONS"] == "12"
    assert env["TAMS_S3_ENDPOINT_URL"] == "http://s3.vast.example.com"
    assert env["TAMS_S3_PUBLIC_ENDPOINT_URL"] == "https://media.example.com"
    assert env["TAMS_S3_STORAGE_ID"] == "6c1bb1e6-6a4e-4c55-8e4f-4d8e4a2f7b01"
    assert env["OTEL_SERVICE_NAME"] == "tams-segments"
    # Apache Kafka refuses sessions under group.min.session.timeout.ms (6 s by default).
    assert int(env["TAMS_KAFKA_SESSION_TIMEOUT_MS"]) >= 6000
    gateway = env_values(containers["gateway"])
    # No publicUrl given: derived from the TLS ingress host.
    assert gateway["TAMS_GATEWAY_PUBLIC_URL"] == "https://tams.example.com"
    # /analytics/* goes to the analytics Service.
    assert gateway["TAMS_GATEWAY_ANALYTICS_URL"].startswith("http://")
    assert "-analytics." in gateway["TAMS_GATEWAY_ANALYTICS_URL"]
    # The object lifetime is advertised by the gateway and enforced by the segments service.
    assert gateway["TAMS_MEDIA_MIN_OBJECT_TIMEOUT_S"] == "7200"
    assert env["TAMS_MEDIA_MIN_OBJECT_TIMEOUT_S"] == "7200"


def test_the_release_grace_reaches_the_catalog_and_the_segments_service() -> None:
    """Both release objects (flow and segment deletions); the segments service forgets them."""
    containers = render({"media": {"releaseGraceSeconds": 300}}).tams_containers()
    for service in ("catalog", "segments"):
        assert env_values(containers[service])["TAMS_MEDIA_RELEASE_GRACE_S"] == "300"
    default = render({}).tams_containers()
    assert "TAMS_MEDIA_RELEASE_GRACE_S" not in env_values(default["segments"])


def test_soft_delete_retention_reaches_the_services_only_when_set() -> None:
    containers = render({"media": {"softDeleteRetentionSeconds": 604800}}).tams_containers()
    assert env_values(containers["catalog"])["TAMS_SOFT_DELETE_RETENTION_S"] == "604800"
    default = render().tams_containers()["catalog"]
    assert "TAMS_SOFT_DELETE_RETENTION_S" not in env_values(default)


def test_the_segment_tag_limit_reaches_the_segments_service() -> None:
    containers = render({"media": {"segmentTagLimit": 5000}}).tams_containers()
    assert env_values(containers["segments"])["TAMS_MEDIA_SEGMENT_TAG_LIMIT"] == "5000"


def test_the_playlist_limit_reaches_the_gateway() -> None:
    containers = render({"gateway": {"playlistMaxSegments": 500}}).tams_containers()
    assert env_values(containers["gateway"])["TAMS_GATEWAY_PLAYLIST_MAX_SEGMENTS"] == "500"
    default = render().tams_containers()["gateway"]
    assert "TAMS_GATEWAY_PLAYLIST_MAX_SEGMENTS" not in env_values(default)


def test_large_integers_are_not_written_in_exponent_form() -> None:
    env = env_values(render({"gateway": {"maxBodyBytes": 67108864}}).tams_containers()["gateway"])
    assert env["TAMS_GATEWAY_MAX_BODY_BYTES"] == "67108864"


def test_extra_storage_backends_are_passed_as_json() -> None:
    backend = {"id": "0b0e6a1e-4c6b-4c05-9a0e-4e7f3d2b7c10", "label": "archive", "bucket": "arch"}
    env = env_values(render({"s3": {"extraBackends": [backend]}}).tams_containers()["segments"])
    assert env["TAMS_S3_EXTRA_BACKENDS"] == (
        '[{"bucket":"arch","id":"0b0e6a1e-4c6b-4c05-9a0e-4e7f3d2b7c10","label":"archive"}]'
    )


def _documented_variables() -> set[str]:
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^#?\s*(TAMS_[A-Z0-9_]+)=", text, re.MULTILINE))


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_tams_variable_the_chart_sets_is_a_documented_setting(scenario: str) -> None:
    documented = _documented_variables()
    for container in render(SCENARIOS[scenario]).tams_containers().values():
        unknown = {n for n in env_of(container) if n.startswith("TAMS_")} - documented
        assert not unknown, f"{container['name']}: not in .env.example: {sorted(unknown)}"


# --- scaling --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"catalog": {"replicas": 5}}, "catalog: up to 5 replicas but its topic has 4 partitions"),
        (
            {"segments": {"autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 8}}},
            "segments: up to 8 replicas",
        ),
        (
            {"gateway": {"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 3}}},
            "minReplicas (5) is above maxReplicas (3)",
        ),
        (
            {"store": {"type": "sqlite"}, "gateway": {"autoscaling": {"enabled": True}}},
            "the SQLite trial runs as one pod",
        ),
        (
            {"kafka": {"bootstrapServers": "k:9092", "inCluster": {"enabled": True}}},
            "not both",
        ),
    ],
)
def test_impossible_scaling_and_contradictory_values_are_refused(
    values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm.HelmRenderError, match=re.escape(message)):
        render(values)


def test_consumers_scale_up_to_the_partitions_and_the_gateway_freely() -> None:
    values = {
        "kafka": {"commandPartitions": 12},
        "catalog": {"replicas": 12},
        "gateway": {"replicas": 40},
        "analytics": {"replicas": 20},
    }
    rendered = render(values)
    assert rendered.get("Deployment", "tams-catalog")["spec"]["replicas"] == 12
    assert rendered.get("Deployment", "tams-gateway")["spec"]["replicas"] == 40


def test_a_disruption_budget_never_blocks_draining_a_node() -> None:
    for budget in render().of_kind("PodDisruptionBudget"):
        # maxUnavailable: 1 lets a drain evict even a service running one replica.
        assert budget["spec"]["maxUnavailable"] == 1
        assert "minAvailable" not in budget["spec"]
        # Nor do pods that are not ready (a Kafka outage must not freeze maintenance).
        assert budget["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


def test_the_webhooks_service_is_never_run_twice_even_during_an_upgrade() -> None:
    for scenario in ("default", "production"):
        deployments = {
            d["metadata"]["name"]: d for d in render(SCENARIOS[scenario]).of_kind("Deployment")
        }
        webhooks = deployments[f"{RELEASE}-webhooks"]
        assert webhooks["spec"]["replicas"] == 1
        assert webhooks["spec"]["strategy"] == {"type": "Recreate"}
        # The others keep their capacity through an upgrade.
        gateway = deployments[f"{RELEASE}-gateway"]["spec"]["strategy"]
        assert gateway["type"] == "RollingUpdate"


# --- SQLite trial ---------------------------------------------------------------------------


def test_sqlite_trial_runs_the_five_services_in_one_pod_on_one_volume() -> None:
    rendered = render(SCENARIOS["trial"])
    (deployment,) = rendered.of_kind("Deployment")
    assert deployment["spec"]["replicas"] == 1
    # Never two pods on one database, even during an upgrade.
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in pod["containers"]}
    assert set(containers) == set(SERVICES)
    ports = [_named_port(c, name) for name, c in containers.items()]
    assert len(set(ports)) == len(ports), "one network namespace: one port per service"
    (claim,) = rendered.of_kind("PersistentVolumeClaim")
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    data = next(v for v in pod["volumes"] if v["name"] == "data")
    assert data["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    for container in containers.values():
        env = env_values(container)
        assert env["TAMS_STORE"] == "sqlite"
        assert env["TAMS_SQLITE_SYNCHRONOUS"] == "FULL"
        assert env["TAMS_SQLITE_WRITER_CACHE_MB"] == "64"
        assert env["TAMS_SQLITE_WRITES_ON_LOOP"] == "true"
        assert env["TAMS_SQLITE_COMMANDS_PER_TRANSACTION"] == "6"
        assert {"name": "data", "mountPath": "/data"} in container["volumeMounts"]
    assert not rendered.of_kind("HorizontalPodAutoscaler")
    assert not rendered.of_kind("PodDisruptionBudget")


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_each_service_routes_to_a_port_its_pods_really_have(scenario: str) -> None:
    rendered = render(SCENARIOS[scenario])
    for service in rendered.of_kind("Service"):
        selector = service["spec"]["selector"]
        pods = [
            pod
            for workload, pod in rendered.pod_templates()
            if all(
                workload["spec"]["template"]["metadata"]["labels"].get(k) == v
                for k, v in selector.items()
            )
        ]
        assert pods, f"{service['metadata']['name']} selects no pod"
        names = {p["name"] for pod in pods for c in pod["containers"] for p in c["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in names, (scenario, service["metadata"]["name"])


# --- trial Kafka ----------------------------------------------------------------------------


def test_in_cluster_kafka_is_a_pinned_single_node_kraft_broker_the_services_use() -> None:
    rendered = render(SCENARIOS["in-cluster-kafka"])
    (broker,) = rendered.of_kind("StatefulSet")
    (container,) = broker["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "apache/kafka:3.9.0"
    kafka_env = env_values(container)
    assert kafka_env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    address = "tams-kafka.media.svc.cluster.local:9092"
    assert kafka_env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{address}"
    assert kafka_env["KAFKA_LOG_DIRS"] == "/var/lib/kafka/data"
    claim = broker["spec"]["volumeClaimTemplates"][0]
    assert claim["metadata"]["name"] == "data"
    for service in rendered.tams_containers().values():
        assert env_values(service)["TAMS_KAFKA_BOOTSTRAP_SERVERS"] == address
    policy = rendered.get("NetworkPolicy", "tams-kafka")
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 9092}]


# --- network policies -----------------------------------------------------------------------


def _policy_for(rendered: Rendered, service: str) -> Manifest:
    pod_labels = None
    for workload, pod in rendered.pod_templates():
        if any(c["name"] == service for c in pod["containers"]):
            pod_labels = workload["spec"]["template"]["metadata"]["labels"]
    assert pod_labels is not None
    for policy in rendered.of_kind("NetworkPolicy"):
        match = policy["spec"]["podSelector"]["matchLabels"]
        if all(pod_labels.get(k) == v for k, v in match.items()):
            return policy
    raise AssertionError(f"no NetworkPolicy selects {service}")


def _ingress_ports(policy: Manifest, peers: list[Any] | None) -> set[int]:
    """Ports open to exactly these peers (None: to anyone)."""
    return {
        p["port"]
        for rule in policy["spec"]["ingress"]
        if rule.get("from") == peers
        for p in rule["ports"]
    }


def _egress_ports(policy: Manifest) -> set[int]:
    return {p["port"] for rule in policy["spec"]["egress"] for p in rule.get("ports", [])}


def test_the_api_is_open_and_prometheus_may_scrape_every_service() -> None:
    rendered = render()
    containers = rendered.tams_containers()
    for name in SERVICES:
        policy = _policy_for(rendered, name)
        assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
        port = _named_port(containers[name], name)
        assert port in _ingress_ports(policy, [{"namespaceSelector": {}}]), name
    assert 8000 in _ingress_ports(_policy_for(rendered, "gateway"), None)


@pytest.mark.parametrize("scenario", ["default", "production", "in-cluster-kafka"])
def test_services_reach_the_gateway_pod_that_waits_for_their_reply(scenario: str) -> None:
    rendered = render(SCENARIOS[scenario])
    gateway = rendered.tams_containers()["gateway"]
    port = _named_port(gateway, "replies")
    env = env_of(gateway)
    assert env["TAMS_REPLY_PORT"]["value"] == str(port)
    assert env["TAMS_REPLY_HOST"]["value"] == "0.0.0.0"
    assert env["TAMS_REPLY_ADVERTISE_HOST"]["valueFrom"] == {
        "fieldRef": {"fieldPath": "status.podIP"}
    }
    gateway_labels = _policy_for(rendered, "gateway")["spec"]["podSelector"]["matchLabels"]
    senders = [
        {
            "podSelector": {
                "matchLabels": _policy_for(rendered, name)["spec"]["podSelector"]["matchLabels"]
            }
        }
        for name in ("catalog", "segments", "webhooks")
    ]
    assert _ingress_ports(_policy_for(rendered, "gateway"), senders) == {port}
    for name in ("catalog", "segments", "webhooks"):
        egress = _policy_for(rendered, name)["spec"]["egress"]
        to_gateway = [
            r for r in egress if r.get("to") == [{"podSelector": {"matchLabels": gateway_labels}}]
        ]
        assert [p["port"] for r in to_gateway for p in r["ports"]] == [port], name


def test_the_sqlite_trial_pod_answers_its_gateway_over_loopback() -> None:
    gateway = render(SCENARIOS["trial"]).tams_containers()["gateway"]
    env = env_of(gateway)
    assert env["TAMS_REPLY_HOST"]["value"] == "127.0.0.1"
    assert "TAMS_REPLY_ADVERTISE_HOST" not in env


def test_production_policies_admit_only_the_ingress_controller_and_monitoring() -> None:
    rendered = render(SCENARIOS["production"])
    ingress_nginx = [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
    ]
    monitoring = [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    gateway = _policy_for(rendered, "gateway")
    assert _ingress_ports(gateway, ingress_nginx) == {8000}
    assert _ingress_ports(gateway, None) == set(), "nobody else reaches the API"
    for name in SERVICES:
        assert _ingress_ports(_policy_for(rendered, name), monitoring), name


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_egress_reaches_dns_kafka_and_s3_and_only_webhooks_reach_anywhere(scenario: str) -> None:
    rendered = render(SCENARIOS[scenario])
    for name in SERVICES:
        policy = _policy_for(rendered, name)
        ports = _egress_ports(policy)
        assert {53, 9092} <= ports, (scenario, name)
        unrestricted = [rule for rule in policy["spec"]["egress"] if "ports" not in rule]
        shares_the_webhooks_pod = scenario == "trial"  # SQLite: one pod runs all five
        if name == "webhooks" or shares_the_webhooks_pod:
            (rule,) = unrestricted
            cidrs = {peer["ipBlock"]["cidr"] for peer in rule["to"]}
            assert cidrs == {"0.0.0.0/0", "::/0"}
            assert all(peer["ipBlock"]["except"] for peer in rule["to"]), "metadata endpoints"
        else:
            assert not unrestricted, (scenario, name)


def test_egress_opens_the_ports_of_the_configured_endpoints() -> None:
    values = {
        "kafka": {"bootstrapServers": "kafka-a:19092,kafka-b:19093"},
        "s3": {"endpointUrl": "http://minio.storage.svc:9000"},
        "store": {"vast": {"endpoint": "https://vast.example.com:8443"}},
        "otel": {"exporterOtlpEndpoint": "http://collector:4317"},
    }
    ports = _egress_ports(_policy_for(render(values), "segments"))
    assert {19092, 19093, 9000, 8443, 4317} <= ports


def test_the_gateway_may_reach_the_token_issuers_keys() -> None:
    values = {"auth": {"jwt": {"jwksUrl": "https://login.example.com:8444/keys"}}}
    rendered = render(values)
    assert 8444 in _egress_ports(_policy_for(rendered, "gateway"))
    assert 8444 not in _egress_ports(_policy_for(rendered, "segments"))


def test_network_policies_can_be_turned_off() -> None:
    assert not render({"networkPolicy": {"enabled": False}}).of_kind("NetworkPolicy")


# --- notes ----------------------------------------------------------------------------------


def test_install_notes_name_what_is_still_unconfigured() -> None:
    notes = render().notes
    for missing in ("kafka.bootstrapServers", "s3.endpointUrl", "store.vast.endpoint"):
        assert missing in notes
    assert "not configured yet" not in render(SCENARIOS["production"]).notes
    assert "not configured yet" not in render(SCENARIOS["trial"]).notes
