"""The native backend: obstore (Rust ``object_store``) for single-request uploads and downloads.

obstore's sync calls release the GIL while they wait, so the job runner's threads scale where
botocore's 1.5-2.6 ms of Python CPU per request does not (``shared/research/s3-client-speed.md``).
It carries only what it can carry exactly; routing sends everything else to botocore: keys it
would rewrite (:func:`airflow_s3sync.plan.route.native_key`), objects at or above the multipart
threshold, access points, and runs with request arguments.
"""

from __future__ import annotations

import mimetypes
import threading
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_s3sync.errors import S3SyncError
from airflow_s3sync.hooks.backend import Progress, Written
from airflow_s3sync.hooks.local import AtomicFile

if TYPE_CHECKING:
    from airflow_s3sync.hooks.s3 import S3SyncHook

#: The connection extra that turns the native client off (``{"native_client": false}``).
NATIVE_CLIENT_EXTRA = "native_client"
#: Environment variables obstore reads and botocore does not, which would make the two clients
#: write differently (encryption, signing, payer, checksums): with any set, botocore carries all.
OBSTORE_ONLY_ENVIRONMENT = (
    "AWS_SERVER_SIDE_ENCRYPTION",
    "AWS_SSE_KMS_KEY_ID",
    "AWS_SSE_BUCKET_KEY_ENABLED",
    "AWS_SSE_CUSTOMER_KEY_BASE64",
    "AWS_SKIP_SIGNATURE",
    "AWS_REQUEST_PAYER",
    "AWS_UNSIGNED_PAYLOAD",
    "AWS_CHECKSUM_ALGORITHM",
    "AWS_S3_EXPRESS",
    "AWS_CONDITIONAL_PUT",
    "AWS_COPY_IF_NOT_EXISTS",
    "AWS_DISABLE_TAGGING",
)


class NativeBackend:
    """Uploads and downloads through obstore, configured from an :class:`S3SyncHook`'s Airflow
    connection: its endpoint, region, addressing style and credentials (taken from the hook's
    boto3 session, so assume-role, profiles and session tokens keep working).

    :param hook: the botocore side of the same connection.
    :param max_attempts: attempts per request (obstore retries 5xx, dropped connections and
        timeouts with exponential backoff).
    """

    def __init__(self, hook: S3SyncHook, *, max_attempts: int) -> None:
        from obstore.auth.boto3 import Boto3CredentialProvider

        self._hook = hook
        # botocore's own endpoint, always given: obstore would otherwise take AWS_ENDPOINT from
        # the environment, which botocore ignores.
        self._endpoint = hook.conn.meta.endpoint_url
        self._region = hook.conn_region_name
        # Fetched again every 5 minutes: refreshable credentials (assume-role) may live 15.
        self._credentials = Boto3CredentialProvider(
            hook.get_session(region_name=self._region), ttl=timedelta(minutes=5)
        )
        self._max_retries = max(max_attempts - 1, 0)
        self._stores: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _store(self, bucket: str) -> Any:
        with self._lock:
            store = self._stores.get(bucket)
            if store is None:
                store = self._stores[bucket] = self._new_store(bucket)
            return store

    def _new_store(self, bucket: str) -> Any:
        from obstore.store import S3Store

        # Path style on botocore's endpoint (S3 answers it for every bucket name, dotted ones
        # included); a connection that asks for virtual hosts keeps to botocore (native_enabled).
        config: dict[str, Any] = {
            "region": self._region,
            "endpoint": self._endpoint,
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
            credential_provider=self._credentials,
        )

    def upload_file(
        self, path: str, bucket: str, key: str, *, size: int, extra_args: Mapping[str, Any], progress: Progress
    ) -> Written:
        """PutObject of the whole file in one request, ``Content-Type`` guessed from its name
        as ``aws s3 sync`` does (or from ``extra_args``)."""
        content_type = extra_args.get("ContentType") or mimetypes.guess_type(path)[0]
        attributes = {"Content-Type": content_type} if content_type else {}
        return self._put(Path(path), size, bucket, key, attributes=attributes, progress=progress)

    def upload_bytes(
        self, data: bytes, bucket: str, key: str, *, attributes: Mapping[str, str], progress: Progress
    ) -> Written:
        """PutObject of ``data`` in one request, with ``attributes`` (``Content-Type``,
        ``Cache-Control``, ..., other names are user metadata)."""
        return self._put(data, len(data), bucket, key, attributes=attributes, progress=progress)

    def _put(
        self, body: Path | bytes, size: int, bucket: str, key: str, *, attributes: Mapping[str, str], progress: Progress
    ) -> Written:
        import obstore

        result = obstore.put(self._store(bucket), key, body, attributes=dict(attributes) or None, use_multipart=False)
        progress(size)
        return Written(size, etag=result.get("e_tag"))

    def download_file(
        self,
        bucket: str,
        key: str,
        path: str,
        *,
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
        try:
            result = obstore.get(self._store(bucket), key, options=options)  # type: ignore[arg-type]
            data = result.bytes()
        except PreconditionError as error:
            raise S3SyncError(
                f"s3://{bucket}/{key} did not match expected ETag {etag}: it changed since it was listed"
            ) from error
        expected = result.meta["size"]
        if len(data) != expected:
            raise S3SyncError(f"s3://{bucket}/{key}: read {len(data)} bytes, the server announced {expected}")
        with AtomicFile(path) as temp:
            temp.file.write(data)
            temp.commit()
        progress(len(data))
        return Written(len(data), etag=result.meta.get("e_tag"))
