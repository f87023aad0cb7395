"""Fine-grained authorisation: what the `auth_classes` of a resource let a principal do.

A policy (AppNote 0016, "Implementation using Tags") maps each class to the groups it grants
permissions to, and says what resources without any class allow:

    {
      "classes": {
        "news":     {"news": ["read", "write", "delete"]},
        "sport_ro": {"sport": ["read"]},
        "public":   {"*": ["read"]}
      },
      "unclassified": ["read", "write", "delete"]
    }

A principal's permissions on a resource are the union, over the resource's classes, of what
each class grants to the principal's groups (`*`: every authenticated principal). A resource
with no class grants `unclassified` to everyone. Admins (`tams-api/admin`) have every
permission on everything. Without a policy fine-grained authorisation is off: scopes alone
decide. The same policy is evaluated by the gateway (requests) and the webhooks service
(deliveries), so both read it from the same settings.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tams_runtime.settings import AuthPolicySettings
from tams_schema.auth import PERMISSIONS, Permission, Principal, auth_classes_of
from tams_store.port import AccessFilter

EVERYONE = "*"
ALL: frozenset[Permission] = frozenset(PERMISSIONS)
NONE: frozenset[Permission] = frozenset()


class PolicyError(ValueError):
    """The configured policy is not valid (refused at start-up)."""


def _permissions(value: Any, where: str) -> frozenset[Permission]:
    if not isinstance(value, list):
        raise PolicyError(f"{where} must be a list of permissions ({', '.join(PERMISSIONS)})")
    found: set[Permission] = set()
    for item in value:
        matched = [p for p in PERMISSIONS if p == item]
        if not matched:
            raise PolicyError(f"{where} lists {item!r}; permissions are {', '.join(PERMISSIONS)}")
        found.update(matched)
    return frozenset(found)


@dataclass(frozen=True)
class AccessPolicy:
    """class → group → permissions, and what unclassified resources allow."""

    classes: Mapping[str, Mapping[str, frozenset[Permission]]] = field(default_factory=dict)
    unclassified: frozenset[Permission] = ALL
    enabled: bool = False

    @classmethod
    def off(cls) -> AccessPolicy:
        return cls()

    @classmethod
    def parse(cls, document: Any) -> AccessPolicy:
        if not isinstance(document, dict):
            raise PolicyError("the policy must be a JSON object with classes and unclassified")
        unknown = sorted(set(document) - {"classes", "unclassified"})
        if unknown:
            raise PolicyError(f"unknown policy field(s) {', '.join(unknown)}")
        raw_classes = document.get("classes", {})
        if not isinstance(raw_classes, dict):
            raise PolicyError("policy classes must be an object: class -> group -> permissions")
        classes: dict[str, dict[str, frozenset[Permission]]] = {}
        for name, grants in raw_classes.items():
            if not isinstance(grants, dict):
                raise PolicyError(f"policy class {name!r} must map groups to permissions")
            classes[name] = {
                str(group): _permissions(perms, f"policy class {name!r}, group {group!r}")
                for group, perms in grants.items()
            }
        unclassified = _permissions(
            document.get("unclassified", list(PERMISSIONS)), "policy unclassified"
        )
        return cls(classes=classes, unclassified=unclassified, enabled=True)

    @classmethod
    def from_settings(cls, settings: AuthPolicySettings | None = None) -> AccessPolicy:
        settings = settings or AuthPolicySettings()
        text = settings.policy
        if settings.policy_file:
            text = Path(settings.policy_file).read_text()
        if not text:
            return cls.off()
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise PolicyError(f"the auth policy is not valid JSON: {exc}") from exc
        return cls.parse(document)

    def restricts(self, principal: Principal | None) -> bool:
        """Whether this principal's access depends on resources' classes at all. No principal
        means authentication is off (or the caller predates it): nothing is restricted."""
        return self.enabled and principal is not None and not principal.admin

    def permissions(
        self, principal: Principal | None, classes: Sequence[str]
    ) -> frozenset[Permission]:
        if not self.restricts(principal):
            return ALL
        assert principal is not None
        if not classes:
            return self.unclassified
        groups = (*principal.groups, EVERYONE)
        granted: set[Permission] = set()
        for name in classes:
            grants = self.classes.get(name, {})
            for group in groups:
                granted |= grants.get(group, NONE)
        return frozenset(granted)

    def permissions_on(
        self, principal: Principal | None, tags: Mapping[str, Any] | None
    ) -> frozenset[Permission]:
        """Permissions on a resource with these tags."""
        return self.permissions(principal, auth_classes_of(tags))

    def granted_by(self, classes: Iterable[str]) -> frozenset[Permission]:
        """Every permission these classes grant to anybody (what adding or removing them
        changes, so what a requester must hold to do it)."""
        granted: set[Permission] = set()
        for name in classes:
            for perms in self.classes.get(name, {}).values():
                granted |= perms
        return frozenset(granted)

    def listing_filter(
        self, principal: Principal | None, permission: Permission
    ) -> AccessFilter | None:
        """The store filter keeping what the principal holds `permission` on (None: all)."""
        if not self.restricts(principal):
            return None
        assert principal is not None
        groups = (*principal.groups, EVERYONE)
        classes = sorted(
            name
            for name, grants in self.classes.items()
            if any(permission in grants.get(group, NONE) for group in groups)
        )
        return AccessFilter(classes=tuple(classes), unclassified=permission in self.unclassified)
