"""The chart's authentication values: what reaches which service, and from where.

The internal token and the Basic users are credentials, so they only ever come from the
Secret; the JWT issuer, the fine-grained policy, CORS and rate limits are plain values.
"""

from __future__ import annotations

import json
from typing import Any

import helm_python as helm
import pytest

from tests.deploy.chart import SCENARIOS, SERVICES, env_of, env_values, render

POLICY = {
    "classes": {"news": {"news": ["read", "write", "delete"]}, "public": {"*": ["read"]}},
    "unclassified": ["read"],
}


def test_every_service_reads_the_internal_token_from_the_secret() -> None:
    values = {"credentials": {"existingSecret": "s", "internalTokenKey": "token"}}
    for name, container in render(values).tams_containers().items():
        ref = env_of(container)["TAMS_INTERNAL_TOKEN"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "s", "key": "token"}, name


def test_basic_users_come_from_the_secret_and_only_the_gateway_reads_them() -> None:
    assert "TAMS_AUTH_USERS" not in env_of(render().tams_containers()["gateway"])
    containers = render({"credentials": {"authUsersKey": "users.json"}}).tams_containers()
    ref = env_of(containers["gateway"])["TAMS_AUTH_USERS"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "tams-credentials", "key": "users.json"}
    for name in SERVICES[1:]:
        assert "TAMS_AUTH_USERS" not in env_of(containers[name])


def test_jwt_cors_and_rate_limits_configure_the_gateway() -> None:
    values = {
        "auth": {
            "jwt": {
                "jwksUrl": "https://idp.example.com/jwks",
                "issuer": "https://idp.example.com",
                "audience": "tams,tams-tools",
                "groupsClaim": "realm_access.roles",
            },
            "corsOrigins": ["https://tools.example.com", "https://ui.example.com"],
            "rateLimitPerSecond": 50,
            "rateLimitBurst": 200,
        }
    }
    containers = render(values).tams_containers()
    env = env_values(containers["gateway"])
    assert env["TAMS_AUTH_JWT_JWKS_URL"] == "https://idp.example.com/jwks"
    assert env["TAMS_AUTH_JWT_ISSUER"] == "https://idp.example.com"
    assert env["TAMS_AUTH_JWT_AUDIENCE"] == "tams,tams-tools"
    assert env["TAMS_AUTH_JWT_GROUPS_CLAIM"] == "realm_access.roles"
    assert "TAMS_AUTH_JWT_NAME_CLAIM" not in env
    assert env["TAMS_GATEWAY_CORS_ORIGINS"] == "https://tools.example.com,https://ui.example.com"
    assert env["TAMS_GATEWAY_RATE_LIMIT_PER_S"] == "50"
    assert env["TAMS_GATEWAY_RATE_LIMIT_BURST"] == "200"
    assert "TAMS_AUTH_DISABLED" not in env
    assert not [n for n in env_values(containers["catalog"]) if n.startswith("TAMS_AUTH_")]


def test_the_policy_reaches_the_gateway_and_the_webhooks_service_as_json() -> None:
    containers = render({"auth": {"policy": POLICY}}).tams_containers()
    for name in ("gateway", "webhooks"):
        assert json.loads(env_values(containers[name])["TAMS_AUTH_POLICY"]) == POLICY
    for name in ("catalog", "segments", "analytics"):
        assert "TAMS_AUTH_POLICY" not in env_of(containers[name])
    assert "TAMS_AUTH_POLICY" not in env_of(render().tams_containers()["gateway"])


def test_disabling_authentication_is_explicit_and_warned_about() -> None:
    assert "DISABLED" not in render().notes
    rendered = render({"auth": {"disabled": True}})
    assert env_values(rendered.tams_containers()["gateway"])["TAMS_AUTH_DISABLED"] == "true"
    assert "authentication is DISABLED" in rendered.notes


def test_notes_say_when_nobody_can_sign_in() -> None:
    assert "credentials.authUsersKey" in render().notes
    for scenario in ("production", "trial"):
        assert "no API client can sign in" not in render(SCENARIOS[scenario]).notes
    assert "no API client can sign in" not in render({"auth": {"disabled": True}}).notes


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"auth": {"policy": {"classes": {"news": {"news": ["admin"]}}}}}, "/auth/policy"),
        ({"auth": {"policy": {"classes": {}, "deny": []}}}, "deny"),
        ({"auth": {"corsOrigins": ["https://a.example.com/app"]}}, "/auth/corsOrigins"),
        ({"auth": {"jwt": {"jwksUrl": "idp.example.com/jwks"}}}, "/auth/jwt/jwksUrl"),
        ({"auth": {"rateLimitPerSecond": -1}}, "/auth/rateLimitPerSecond"),
        ({"credentials": {"internalTokenKey": ""}}, "/credentials/internalTokenKey"),
    ],
)
def test_bad_auth_values_are_refused(values: dict[str, Any], where: str) -> None:
    with pytest.raises(helm.HelmValuesError) as caught:
        render(values)
    assert where in str(caught.value)


def test_the_default_backend_gets_its_deploy_time_tags() -> None:
    tags = {"auth_classes": ["archive"]}
    for container in render({"s3": {"storageTags": tags}}).tams_containers().values():
        assert json.loads(env_values(container)["TAMS_S3_STORAGE_TAGS"]) == tags
    assert "TAMS_S3_STORAGE_TAGS" not in env_of(render().tams_containers()["gateway"])
