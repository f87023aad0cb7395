"""The fine-grained policy: permissions from classes and groups, filters, passwords."""

from __future__ import annotations

import pytest

from tams_runtime.authz import ALL, AccessPolicy, PolicyError
from tams_runtime.passwords import InvalidHash, check_hash, hash_password, verify_password
from tams_schema.auth import Principal, auth_classes_of, auth_classes_problem, parse_scopes
from tams_store import AccessFilter

POLICY = AccessPolicy.parse(
    {
        "classes": {
            "news": {"news": ["read", "write", "delete"]},
            "news_ro": {"sport": ["read"]},
            "public": {"*": ["read"]},
        },
        "unclassified": ["read"],
    }
)
NEWS = Principal(name="n", scopes=("read", "write"), groups=("news",))
SPORT = Principal(name="s", scopes=("read",), groups=("sport",))
NOBODY = Principal(name="x", scopes=("read",))
ADMIN = Principal(name="a", scopes=("admin",))


@pytest.mark.parametrize(
    ("who", "classes", "expected"),
    [
        (NEWS, ["news"], {"read", "write", "delete"}),
        (SPORT, ["news"], set()),
        (SPORT, ["news", "news_ro"], {"read"}),
        (NOBODY, ["public"], {"read"}),
        (NOBODY, [], {"read"}),  # unclassified
        (NOBODY, ["unknown-class"], set()),
        (ADMIN, ["news"], set(ALL)),
        (None, ["news"], set(ALL)),  # authentication off
    ],
)
def test_permissions_are_the_union_over_classes_and_groups(
    who: Principal | None, classes: list[str], expected: set[str]
) -> None:
    assert POLICY.permissions(who, classes) == expected


def test_without_a_policy_nothing_is_restricted() -> None:
    assert AccessPolicy.off().permissions(NOBODY, ["news"]) == ALL
    assert AccessPolicy.off().listing_filter(NOBODY, "read") is None


def test_listing_filters_name_the_classes_granting_the_permission() -> None:
    assert POLICY.listing_filter(SPORT, "read") == AccessFilter(
        classes=("news_ro", "public"), unclassified=True
    )
    assert POLICY.listing_filter(SPORT, "write") == AccessFilter(classes=(), unclassified=False)
    assert POLICY.listing_filter(ADMIN, "read") is None
    assert POLICY.granted_by(["news_ro", "public"]) == {"read"}


@pytest.mark.parametrize(
    "document",
    [
        [],
        {"classes": {"news": {"news": ["admin"]}}},
        {"classes": {"news": ["read"]}},
        {"classes": {}, "deny": []},
        {"unclassified": "read"},
    ],
)
def test_a_bad_policy_is_refused(document: object) -> None:
    with pytest.raises(PolicyError):
        AccessPolicy.parse(document)


def test_classes_of_tags_and_what_a_class_name_may_be() -> None:
    assert auth_classes_of({"auth_classes": ["a", "b"]}) == ("a", "b")
    assert auth_classes_of({"auth_classes": "a"}) == ("a",)
    assert auth_classes_of({}) == () == auth_classes_of(None)
    assert auth_classes_problem(["a", "b"]) is None
    for bad in ("a,b", [""], [" "], 3, [1]):
        assert auth_classes_problem(bad) is not None


def test_scopes_with_and_without_the_prefix() -> None:
    values = ["tams-api/read", "write", "openid", "tams-api/admin", "other/delete"]
    assert parse_scopes(values) == ("read", "write", "admin")
    # From tokens, only prefixed ones (unless the prefix is empty).
    assert parse_scopes(values, bare=False) == ("read", "admin")
    assert parse_scopes(["write", "tams-api/read"], "", bare=False) == ("write",)


def test_password_hashes_verify_and_carry_their_parameters() -> None:
    stored = hash_password("correct horse")
    assert stored.startswith("scrypt:16384:8:1:") and "$" not in stored
    assert verify_password("correct horse", stored)
    assert not verify_password("Correct horse", stored)
    assert hash_password("correct horse") != stored  # salted
    for bad in ("plain", "scrypt:1:8:1:c2FsdHNhbHQ:a2V5", "scrypt:16384:8:1:!!:!!"):
        with pytest.raises(InvalidHash):
            check_hash(bad)
