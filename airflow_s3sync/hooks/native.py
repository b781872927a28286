"""The native backend: obstore (Rust ``object_store``) for single-request uploads and downloads.

obstore's sync calls release the GIL while they wait, so the job runner's threads scale where
botocore's 1.5-2.6 ms of Python CPU per request does not (``shared/research/s3-client-speed.md``).
Its :data:`CAPABILITIES` say what it carries exactly; routing sends everything else elsewhere:
keys it would rewrite, objects of the multipart threshold or more, access points, request
arguments other than ``ContentType``, lock headers and tags.
"""

from __future__ import annotations

import mimetypes
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from airflow_s3sync.errors import S3SyncError
from airflow_s3sync.hooks.backend import ClientSettings, NotCarried, ObjectRef, Progress, Written
from airflow_s3sync.hooks.local import AtomicFile
from airflow_s3sync.plan.capabilities import Capabilities, KeyRule, Operation

#: Object properties it writes, and the attribute names it writes them under (not ``Expires``).
_ATTRIBUTES = {
    "CacheControl": "Cache-Control",
    "ContentDisposition": "Content-Disposition",
    "ContentEncoding": "Content-Encoding",
    "ContentLanguage": "Content-Language",
    "ContentType": "Content-Type",
}
#: The native client holds an object whole in memory: never a larger one (whatever the
#: multipart threshold), so memory stays within max_concurrency x this.
NATIVE_MAX_SIZE = 16 * 1024 * 1024
#: What obstore carries exactly.
CAPABILITIES = Capabilities(
    "obstore",
    operations=frozenset({Operation.UPLOAD_FILE, Operation.DOWNLOAD_FILE, Operation.WRITE_WHOLE}),
    keys=KeyRule.PLAIN,  # it rewrites dir/ to dir and /x to x, and rejects . and .. segments
    max_size=NATIVE_MAX_SIZE - 1,
    request_args=frozenset({"ContentType"}),
    properties=frozenset({*_ATTRIBUTES, "Metadata"}),
    # it takes user metadata named like an attribute for that attribute (ignoring case and hyphens)
    reserved_metadata=frozenset(name.lower().replace("-", "") for name in _ATTRIBUTES.values()),
)


class NativeBackend(NotCarried):
    """Uploads, downloads and small writes through obstore, built from plain
    :class:`~airflow_s3sync.hooks.backend.ClientSettings`: botocore's resolved endpoint, the
    region, path-style addressing and credentials fetched again every 5 minutes (so assume-role,
    profiles and session tokens keep working).
    """

    capabilities = CAPABILITIES

    def __init__(self, settings: ClientSettings) -> None:
        self._settings = settings
        self._max_retries = max(settings.max_attempts - 1, 0)
        self._stores: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _credentials(self) -> dict[str, Any]:
        # Fetched again every 5 minutes: refreshable credentials (assume-role) may live 15.
        credentials = self._settings.credentials()
        return {
            "access_key_id": credentials.access_key,
            "secret_access_key": credentials.secret_key,
            "token": credentials.token,
            "expires_at": datetime.now(UTC) + timedelta(minutes=5),
        }

    def _store(self, bucket: str) -> Any:
        with self._lock:
            store = self._stores.get(bucket)
            if store is None:
                store = self._stores[bucket] = self._new_store(bucket)
            return store

    def _new_store(self, bucket: str) -> Any:
        from obstore.store import S3Store

        # Path style on botocore's endpoint (S3 answers it for every bucket name, dotted ones
        # included), always given: obstore would otherwise take AWS_ENDPOINT from the
        # environment, which botocore ignores.
        config: dict[str, Any] = {
            "region": self._settings.region,
            "endpoint": self._settings.endpoint_url,
            "virtual_hosted_style_request": False,
            # An integrity header on every PutObject, as botocore sends: S3 requires one where
            # a bucket's default Object Lock retention applies.
            "checksum_algorithm": "sha256",
        }
        return S3Store(
            bucket,
            config=config,
            client_options={"allow_http": True, "pool_max_idle_per_host": "64"},
            retry_config={
                "max_retries": self._max_retries,
                "retry_timeout": timedelta(minutes=3),
                "backoff": {"init_backoff": timedelta(milliseconds=100), "max_backoff": timedelta(seconds=15)},
            },
            credential_provider=self._credentials,  # type: ignore[arg-type]
        )

    def upload_file(
        self, *, path: str, dest: ObjectRef, size: int, extra_args: Mapping[str, Any], progress: Progress
    ) -> Written:
        """PutObject of the whole file in one request, ``Content-Type`` guessed from its name
        as ``aws s3 sync`` does (or from ``extra_args``)."""
        content_type = extra_args.get("ContentType") or mimetypes.guess_type(path)[0]
        attributes = {"Content-Type": content_type} if content_type else {}
        return self._put(Path(path), size, dest, attributes=attributes, progress=progress)

    def write_object(
        self, *, dest: ObjectRef, data: bytes, extra_args: Mapping[str, Any], progress: Progress
    ) -> Written:
        """PutObject of ``data`` in one request, its properties as attributes and its metadata
        as user metadata. Whether the ETag is an MD5 the answer does not say."""
        attributes = {_ATTRIBUTES[name]: value for name, value in extra_args.items() if name in _ATTRIBUTES}
        attributes.update(extra_args.get("Metadata", {}))
        return self._put(data, len(data), dest, attributes=attributes, progress=progress)

    def _put(
        self, body: Path | bytes, size: int, dest: ObjectRef, *, attributes: Mapping[str, str], progress: Progress
    ) -> Written:
        import obstore

        self._take(size)
        result = obstore.put(
            self._store(dest.bucket), dest.key, body, attributes=dict(attributes) or None, use_multipart=False
        )
        progress(size)
        return Written(size, etag=result.get("e_tag"))

    def download_file(
        self,
        *,
        source: ObjectRef,
        path: str,
        size: int,
        etag: str | None,
        extra_args: Mapping[str, Any],
        progress: Progress,
    ) -> Written:
        """GetObject, conditional on the listed ``etag``, into a temporary file beside ``path``
        that is renamed over it once complete."""
        import obstore
        from obstore.exceptions import PreconditionError

        options: dict[str, Any] = {"if_match": etag} if etag else {}
        self._take(size)
        try:
            result = obstore.get(self._store(source.bucket), source.key, options=options)  # type: ignore[arg-type]
            data = result.bytes()
        except PreconditionError as error:
            raise S3SyncError(f"{source} did not match expected ETag {etag}: it changed since it was listed") from error
        expected = result.meta["size"]
        if len(data) != expected:
            raise S3SyncError(f"{source}: read {len(data)} bytes, the server announced {expected}")
        with AtomicFile(path) as temp:
            temp.file.write(data)
            temp.commit()
        progress(len(data))
        return Written(len(data), etag=result.meta.get("e_tag"))
