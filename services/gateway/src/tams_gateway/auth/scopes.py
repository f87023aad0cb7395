"""Coarse authorisation: which scopes may call which route (AppNote 0016's table).

`tams-api/admin` may call everything. Otherwise: reads need `read`; creating and changing
need `write`, and so does deleting a property, a tag (segment tags too) or an object
instance; deleting a flow, its segments or a webhook needs `delete`. `/`, `/service`,
`/service/storage-backends` and the OpenAPI document `/openapi.json` are open to any
authenticated principal; `POST /service` and the deletion-request listing are for admins;
one deletion request may also be read with `delete`. The soft-delete extension's
`/deleted-flows` (docs/ext-soft-delete.md) is read with `read`; restoring and purging a
deleted flow need `delete`, as deleting it did. (AppNote 0016 shows `read` for webhook
PUT and DELETE, an evident typo: they need `write` and `delete`.)
"""

from __future__ import annotations

from tams_schema.auth import Scope

# Any authenticated principal, whatever its scopes.
ANYONE: tuple[Scope, ...] = ()
OPEN_READS = frozenset({"/", "/service", "/service/storage-backends", "/openapi.json"})
DELETE_ROUTES = frozenset(
    {
        "/flows/{flow_id}",
        "/flows/{flow_id}/segments",
        "/service/webhooks/{webhook_id}",
        "/deleted-flows/{flow_id}",
    }
)


def required_scopes(method: str, route: str) -> tuple[Scope, ...]:
    """The scopes any one of which lets a principal call `method` on the route template
    `route` (`/flows/{flow_id}`); `ANYONE` for routes open to every authenticated caller."""
    verb = "GET" if method == "HEAD" else method
    if route == "/flow-delete-requests":
        return ("admin",)
    if route.startswith("/flow-delete-requests/"):
        return ("admin", "delete")
    if verb == "GET":
        return ANYONE if route in OPEN_READS else ("read",)
    if route == "/service" and verb == "POST":
        return ("admin",)
    if verb == "POST" and route == "/deleted-flows/{flow_id}/restore":
        return ("delete",)
    if verb == "DELETE" and route in DELETE_ROUTES:
        return ("delete",)
    if verb in ("POST", "PUT", "DELETE"):
        return ("write",)
    return ("admin",)
