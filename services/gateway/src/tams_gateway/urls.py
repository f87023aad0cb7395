"""`get_urls` of objects, and the URL filters every listing of segments or objects takes.

Controlled instances get a presigned GET URL signed locally at read time (no S3 request);
uncontrolled instances are the URLs clients registered. Filters (checklist §0 "UF"):
`accept_get_urls` absent = no filter, empty = no URLs, else labels; `accept_storage_ids`
absent or empty = no filter; `presigned` true/false/absent; `verbose_storage` false keeps only
url, presigned and label.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tams_gateway.queries import csv
from tams_gateway.requests import query_bool
from tams_runtime.s3 import Presigner, object_key
from tams_runtime.settings import S3Settings
from tams_store.port import ObjectRecord

BRIEF_KEYS = ("url", "presigned", "label")


@dataclass(frozen=True)
class UrlFilter:
    accept_get_urls: list[str] | None = None
    accept_storage_ids: list[str] | None = None
    presigned: bool | None = None
    verbose_storage: bool = False

    @classmethod
    def from_query(cls, request: web.Request) -> UrlFilter:
        labels = csv(request, "accept_get_urls") if "accept_get_urls" in request.query else None
        storage_ids = csv(request, "accept_storage_ids") or None
        return cls(
            accept_get_urls=labels,
            accept_storage_ids=storage_ids,
            presigned=query_bool(request, "presigned"),
            verbose_storage=bool(query_bool(request, "verbose_storage", False)),
        )

    def keep(self, url: dict[str, Any]) -> bool:
        if self.accept_get_urls is not None and url.get("label") not in self.accept_get_urls:
            return False
        if self.accept_storage_ids and url.get("storage_id") not in self.accept_storage_ids:
            return False
        return self.presigned is None or bool(url.get("presigned")) == self.presigned

    def shape(self, url: dict[str, Any]) -> dict[str, Any]:
        if self.verbose_storage:
            return url
        return {k: url[k] for k in BRIEF_KEYS if k in url}


class UrlBuilder:
    def __init__(self, s3: S3Settings, presigner: Presigner) -> None:
        self.presigner = presigner
        self.backend = {
            "storage_id": s3.storage_id,
            "controlled": True,
            "store_type": "http_object_store",
            "provider": s3.provider,
            "store_product": s3.store_product,
            "region": s3.region,
        }
        self.label = s3.storage_label

    def instances(self, obj: ObjectRecord) -> list[dict[str, Any]]:
        urls: list[dict[str, Any]] = []
        if obj.storage_id is not None:
            urls.append(
                {
                    "url": self.presigner.presign_get(object_key(obj.object_id)),
                    "presigned": True,
                    "label": self.label,
                    **self.backend,
                }
            )
        urls.extend(obj.doc.get("get_urls", []))
        return urls

    def get_urls(self, obj: ObjectRecord, filters: UrlFilter) -> list[dict[str, Any]]:
        return [filters.shape(u) for u in self.instances(obj) if filters.keep(u)]
