"""Who is asking, and what the `auth_classes` tag of a resource says (AppNote 0016).

A `Principal` is the authenticated caller as every service sees it: a name (recorded as
`created_by`/`updated_by`), the coarse OAuth-style scopes (`tams-api/read|write|delete|admin`,
kept without their prefix) and the groups that fine-grained policies grant permissions to.
It travels in commands where a service needs more than the name (a webhook's owner).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, field_validator

Scope = Literal["read", "write", "delete", "admin"]
Permission = Literal["read", "write", "delete"]

SCOPES: tuple[Scope, ...] = get_args(Scope)
PERMISSIONS: tuple[Permission, ...] = get_args(Permission)
# OAuth scopes as AppNote 0016 names them: `tams-api/read` and so on.
SCOPE_PREFIX = "tams-api/"
# The tag holding a resource's classes (AppNote 0016 "Implementation using Tags").
AUTH_CLASSES_TAG = "auth_classes"


class Principal(BaseModel):
    """An authenticated caller. Scopes and groups are kept sorted and unique."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    scopes: tuple[Scope, ...] = ()
    groups: tuple[str, ...] = ()

    @field_validator("scopes", "groups", mode="after")
    @classmethod
    def _sorted_unique(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(sorted(set(values)))

    @property
    def admin(self) -> bool:
        """`tams-api/admin`: every method on every endpoint, whatever the resource's classes."""
        return "admin" in self.scopes

    def has_scope(self, *wanted: Scope) -> bool:
        """True if the principal holds any of these scopes, or is an admin."""
        return self.admin or any(scope in self.scopes for scope in wanted)


def parse_scopes(
    values: Iterable[str], prefix: str = SCOPE_PREFIX, *, bare: bool = True
) -> tuple[Scope, ...]:
    """TAMS scopes among `values`, with `prefix` (or without it too, if `bare`); other scopes
    are ignored."""
    found: list[Scope] = []
    for value in values:
        if prefix and value.startswith(prefix):
            name = value[len(prefix) :]
        elif bare or not prefix:
            name = value
        else:
            continue
        for scope in SCOPES:
            if name == scope:
                found.append(scope)
    return tuple(found)


def auth_classes_of(tags: Mapping[str, Any] | None) -> tuple[str, ...]:
    """A resource's classes: the `auth_classes` tag as a list, a single string as one class,
    absent (or an empty list) as none: an unclassified resource."""
    value = (tags or {}).get(AUTH_CLASSES_TAG)
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


def auth_classes_problem(value: Any) -> str | None:
    """Why a value cannot be an `auth_classes` tag, or None if it can.

    Classes are names: a JSON array of non-empty strings (or one string). A comma inside a
    name is refused, because AppNote 0003 also writes classes as one comma-separated string
    and a name with a comma would then mean two different things.
    """
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        return "auth_classes must be a JSON array of class names"
    for item in items:
        if not item.strip() or "," in item:
            return f"auth_classes lists {item!r}: a class name is non-empty and has no comma"
    return None
