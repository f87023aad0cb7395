"""The storage backends this store manages: where controlled object instances live.

The default backend is described by the `TAMS_S3_*` variables. More backends (another
bucket, another S3 endpoint, another site) are listed as JSON in `TAMS_S3_EXTRA_BACKENDS`;
each entry names at least `id`, `label` and `bucket`, and takes any field it leaves out
(endpoint, region, credentials, product) from the default backend:

    TAMS_S3_EXTRA_BACKENDS='[{"id": "…", "label": "archive", "bucket": "tams-archive"}]'

A backend is read-only configuration (TAMS: storage backends are set at deploy time).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tams_runtime.s3 import Presigner
from tams_runtime.settings import S3Settings

# Fields of a backend shown by /service/storage-backends and in verbose get_urls.
_DESCRIPTOR_KEYS = ("store_type", "provider", "store_product", "region", "availability_zone")


@dataclass(frozen=True)
class StorageBackend:
    id: str
    label: str
    bucket: str
    endpoint_url: str
    public_endpoint_url: str | None
    region: str
    access_key: str
    secret_key: str
    provider: str
    store_product: str
    availability_zone: str | None = None
    default_storage: bool = False
    tags: dict[str, str | list[str]] = field(default_factory=dict)
    store_type: str = "http_object_store"

    def s3_settings(self, base: S3Settings) -> S3Settings:
        """This backend as S3 client settings (for aiobotocore and the presigner)."""
        return base.model_copy(
            update={
                "endpoint_url": self.endpoint_url,
                "public_endpoint_url": self.public_endpoint_url,
                "region": self.region,
                "access_key": self.access_key,
                "secret_key": self.secret_key,
                "bucket": self.bucket,
            }
        )

    def descriptor(self) -> dict[str, Any]:
        """The TAMS storage-backend object (`schemas/storage-backend.json`)."""
        doc: dict[str, Any] = {"id": self.id, "label": self.label}
        for key in _DESCRIPTOR_KEYS:
            value = getattr(self, key)
            if value is not None:
                doc[key] = value
        doc["default_storage"] = self.default_storage
        if self.tags:
            doc["tags"] = self.tags
        return doc

    def url_fields(self) -> dict[str, Any]:
        """What a verbose `get_urls` entry of a controlled instance here carries."""
        fields: dict[str, Any] = {"storage_id": self.id, "controlled": True}
        for key in _DESCRIPTOR_KEYS:
            value = getattr(self, key)
            if value is not None:
                fields[key] = value
        if self.tags:
            fields["tags"] = self.tags
        return fields


class StorageBackends:
    """Every configured backend, by id, with one presigner each."""

    def __init__(self, backends: list[StorageBackend], base: S3Settings) -> None:
        ids = [b.id for b in backends]
        if len(set(ids)) != len(ids):
            raise ValueError(f"storage backend ids must be unique: {ids}")
        labels = [b.label for b in backends]
        if len(set(labels)) != len(labels):
            raise ValueError(f"storage backend labels must be unique: {labels}")
        if sum(b.default_storage for b in backends) > 1:
            raise ValueError("at most one storage backend may be the default")
        self.base = base
        self.all = backends
        self._by_id = {b.id: b for b in backends}
        self._presigners = {
            b.id: Presigner.from_settings(b.s3_settings(base), base.presigned_url_timeout_s)
            for b in backends
        }

    @classmethod
    def from_settings(cls, settings: S3Settings | None = None) -> StorageBackends:
        base = settings or S3Settings()
        default = StorageBackend(
            id=base.storage_id,
            label=base.storage_label,
            bucket=base.bucket,
            endpoint_url=base.endpoint_url,
            public_endpoint_url=base.public_endpoint_url,
            region=base.region,
            access_key=base.access_key,
            secret_key=base.secret_key,
            provider=base.provider,
            store_product=base.store_product,
            default_storage=True,
            tags=_parse_tags(base.storage_tags),
        )
        extras = [_extra_backend(entry, default) for entry in _parse_extras(base.extra_backends)]
        return cls([default, *extras], base)

    def with_url_timeout(self, seconds: int) -> StorageBackends:
        """The same backends, presigning URLs valid for at least `seconds`."""
        return StorageBackends(
            self.all, self.base.model_copy(update={"presigned_url_timeout_s": seconds})
        )

    @property
    def default(self) -> StorageBackend | None:
        return next((b for b in self.all if b.default_storage), None)

    def get(self, storage_id: str) -> StorageBackend | None:
        return self._by_id.get(storage_id)

    def by_label(self, label: str) -> StorageBackend | None:
        return next((b for b in self.all if b.label == label), None)

    def presigner(self, storage_id: str) -> Presigner:
        return self._presigners[storage_id]

    def s3_settings(self, storage_id: str) -> S3Settings:
        return self._by_id[storage_id].s3_settings(self.base)


def _parse_tags(raw: str | None) -> dict[str, str | list[str]]:
    if not raw:
        return {}
    try:
        tags = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"TAMS_S3_STORAGE_TAGS is not valid JSON: {exc}") from exc
    valid = isinstance(tags, dict) and all(
        isinstance(v, str) or (isinstance(v, list) and all(isinstance(i, str) for i in v))
        for v in tags.values()
    )
    if not valid:
        raise ValueError("TAMS_S3_STORAGE_TAGS must be a JSON object of strings or string lists")
    parsed: dict[str, str | list[str]] = tags
    return parsed


def _parse_extras(raw: str | None) -> list[dict[str, Any]]:
    if not raw:
        return []
    try:
        entries = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"TAMS_S3_EXTRA_BACKENDS is not valid JSON: {exc}") from exc
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ValueError("TAMS_S3_EXTRA_BACKENDS must be a JSON array of objects")
    return entries


def _extra_backend(entry: dict[str, Any], default: StorageBackend) -> StorageBackend:
    missing = [k for k in ("id", "label", "bucket") if not entry.get(k)]
    if missing:
        raise ValueError(f"an extra storage backend needs {', '.join(missing)}: {entry}")
    known = set(StorageBackend.__dataclass_fields__) - {"default_storage", "store_type"}
    unknown = sorted(set(entry) - known)
    if unknown:
        raise ValueError(f"unknown storage backend field(s) {', '.join(unknown)}")
    values = {k: getattr(default, k) for k in known if k not in ("tags", "availability_zone")}
    if "endpoint_url" in entry:
        # Another endpoint: the default's public address does not apply to it.
        values["public_endpoint_url"] = None
    values.update(entry)
    return StorageBackend(**values)


class BackendClients:
    """One aiobotocore S3 client per backend, with the start/stop shape of a component."""

    def __init__(self, backends: StorageBackends) -> None:
        from tams_runtime.s3 import S3Client

        self.backends = backends
        self._clients = {b.id: S3Client(backends.s3_settings(b.id)) for b in backends.all}

    def client(self, storage_id: str) -> Any:
        """The started aiobotocore client of this backend."""
        return self._clients[storage_id].client

    def bucket(self, storage_id: str) -> str:
        return self._clients[storage_id].settings.bucket

    async def start(self) -> None:
        for client in self._clients.values():
            await client.start()

    async def stop(self) -> None:
        for client in self._clients.values():
            await client.stop()

    async def healthy(self) -> bool:
        for client in self._clients.values():
            if not await client.healthy():
                return False
        return True
