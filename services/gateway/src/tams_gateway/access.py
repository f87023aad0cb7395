"""Fine-grained authorisation of one request (ADR 0035, ADR 0055, AppNote 0016).

Routes ask `Access` whether the caller holds a permission on a resource with given tags. No
permission at all on it: the same 404 the route answers for a resource that does not exist
(so its existence is not disclosed); some permission but not the one needed: 403. Listings
get the caller's permission as a store filter (`listing`), ANDed with the caller's own tag
filters in the query, so pages are full and `Link`s stay right.

Changing a resource's `auth_classes` needs `write` plus every permission the added or removed
classes grant to anybody (and what unclassified resources grant, when the change makes the
resource (un)classified): nobody can hand out, or take away, more than they hold.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from aiohttp import web

from tams_gateway.auth.gate import GATE, principal_of
from tams_gateway.errors import ApiError, bad_request, forbidden
from tams_runtime.authz import AccessPolicy
from tams_runtime.storage import StorageBackend
from tams_schema.auth import (
    AUTH_CLASSES_TAG,
    Permission,
    Principal,
    auth_classes_of,
    auth_classes_problem,
)
from tams_store import FlowQuery, Page, SourceQuery, TagFilter

# The listings whose items collections collect.
Q = TypeVar("Q", FlowQuery, SourceQuery)

Tags = Mapping[str, Any] | None


@dataclass(frozen=True)
class Access:
    policy: AccessPolicy
    principal: Principal | None

    @classmethod
    def of(cls, request: web.Request) -> Access:
        return cls(request.app[GATE].policy, principal_of(request))

    @property
    def restricted(self) -> bool:
        """False for admins, with fine-grained authorisation off, or without authentication."""
        return self.policy.restricts(self.principal)

    def permissions(self, tags: Tags) -> frozenset[Permission]:
        return self.policy.permissions_on(self.principal, tags)

    def require(self, tags: Tags, need: Permission, what: str, missing: ApiError) -> None:
        """Pass, or raise `missing` (the route's own 404) or a 403."""
        held = self.permissions(tags)
        if need in held:
            return
        if held:
            raise forbidden(f"you may not {need_verb(need)} {what}")
        raise missing

    def may(self, tags: Tags, need: Permission) -> bool:
        return need in self.permissions(tags)

    def listing(self, tags: TagFilter, permission: Permission = "read") -> TagFilter:
        """The caller's tag filter ANDed with what they may see."""
        return replace(tags, access=self.policy.listing_filter(self.principal, permission))

    # --- collections -----------------------------------------------------------------------

    def readable_ids(self, ids: Iterable[str], get: Callable[[str], Any]) -> set[str]:
        """Those of `ids` naming a resource (`get`: the store's read of one) the caller may
        read; all of them when the caller is not restricted."""
        ids = set(ids)
        if not self.restricted:
            return ids
        return {i for i in ids if (doc := get(i)) is not None and self.may(doc.get("tags"), "read")}

    def collected_page(
        self, query: Q, listing: Callable[[Q], Page], get: Callable[[str], Any]
    ) -> Page:
        """A flow or source listing page whose `collected_by_ids` filter, and whose items'
        `collected_by`, name only collections the caller may read (a collection the caller
        may not read is asked about as if it did not exist). The empty filter (top-level
        items) the store applies relative to the caller's access filter (`FlowQuery`)."""
        if query.collected_by_ids and self.restricted:
            readable = self.readable_ids(query.collected_by_ids, get)
            if not readable:
                return Page(items=[], limit=query.limit)
            query = replace(query, collected_by_ids=sorted(readable))
        page = listing(query)
        self.hide_collectors(page.items, get)
        return page

    def hide_collectors(self, docs: Iterable[dict[str, Any]], get: Callable[[str], Any]) -> None:
        """`collected_by` of flows or sources names only collections the caller may read (a
        hidden collection's id would disclose that it exists, and what it collects)."""
        if not self.restricted:
            return
        docs = [d for d in docs if d.get("collected_by")]
        readable = self.readable_ids((i for d in docs for i in d["collected_by"]), get)
        for doc in docs:
            kept = [i for i in doc["collected_by"] if i in readable]
            if kept:
                doc["collected_by"] = kept
            else:
                del doc["collected_by"]

    # --- storage backends (deploy-time tags, ADR 0055) -----------------------------------

    def backend_permissions(self, backend: StorageBackend) -> frozenset[Permission]:
        return self.permissions(backend.tags)

    def readable_backends(self, backends: Iterable[StorageBackend]) -> frozenset[str] | None:
        """Ids of the backends whose URLs the caller may see; None: all of them."""
        if not self.restricted:
            return None
        return frozenset(b.id for b in backends if "read" in self.backend_permissions(b))

    def require_backend(self, backend: StorageBackend, need: Permission) -> None:
        held = self.backend_permissions(backend)
        if need not in held:
            raise forbidden(
                f"you may not {need_verb(need)} storage backend {backend.id} ({backend.label})"
            )

    # --- changing auth_classes -----------------------------------------------------------

    def check_classes_change(
        self, what: str, current: Tags, new_tags: Tags, *, exists: bool
    ) -> None:
        """Refuse a change of `auth_classes` the caller may not make. `current`: the stored
        tags (ignored when the resource does not exist yet)."""
        if not self.restricted:
            return
        new_classes = auth_classes_of(new_tags)
        if not exists:
            # Creating: judged on the new resource, which the caller must be able to write
            # (with a deny-by-default policy, an unclassified new resource is refused).
            held = self.policy.permissions(self.principal, new_classes)
            missing = sorted({"write", *self.policy.granted_by(new_classes)} - held)
            if missing:
                raise forbidden(
                    f"creating {what} with auth_classes {list(new_classes)} needs "
                    f"{', '.join(missing)} permission on it: give it classes that grant you "
                    "write, and no permission you do not hold yourself"
                )
            return
        old_classes = auth_classes_of(current)
        changed = set(old_classes) ^ set(new_classes)
        if not changed:
            return
        needed: set[Permission] = {"write", *self.policy.granted_by(changed)}
        if bool(old_classes) != bool(new_classes):
            # Becoming (un)classified takes away, or hands out, the unclassified default.
            needed |= self.policy.unclassified
        held = self.policy.permissions(self.principal, old_classes)
        missing = sorted(needed - held)
        if missing:
            raise forbidden(
                f"changing the auth_classes of {what} needs {', '.join(missing)} permission on "
                "it: you cannot grant or remove permissions you do not hold"
            )


def need_verb(need: Permission) -> str:
    return {"read": "read", "write": "change", "delete": "delete"}[need]


def check_auth_classes_value(tags: Tags) -> None:
    """400 for an `auth_classes` tag that is not a list of class names."""
    if tags is None or AUTH_CLASSES_TAG not in tags:
        return
    problem = auth_classes_problem(tags[AUTH_CLASSES_TAG])
    if problem is not None:
        raise bad_request(problem)
