"""S3SyncHook: streaming listings and managed transfers on one S3 endpoint."""

from __future__ import annotations

import base64
import hashlib
import mimetypes
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import replace
from datetime import datetime
from functools import cached_property
from itertools import islice
from typing import Any, NamedTuple

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.common.compat.sdk import AirflowNotFoundException
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from s3transfer.futures import TransferFuture
from s3transfer.manager import TransferManager
from s3transfer.subscribers import BaseSubscriber
from s3transfer.utils import ChunksizeAdjuster

from airflow_s3sync.errors import S3SyncError
from airflow_s3sync.hooks import listing
from airflow_s3sync.hooks.backend import Progress, Written
from airflow_s3sync.hooks.listing import fast_pages
from airflow_s3sync.hooks.local import AtomicFile
from airflow_s3sync.hooks.native import NATIVE_CLIENT_EXTRA, OBSTORE_ONLY_ENVIRONMENT, NativeBackend
from airflow_s3sync.plan.checksum import CHECKSUM_ALGORITHMS, Digests, parse_etag
from airflow_s3sync.plan.entries import Entry
from airflow_s3sync.plan.key_range import KeyRange
from airflow_s3sync.plan.lock import LockState, Retention

#: DeleteObjects takes at most this many keys per request.
DELETE_BATCH_SIZE = 1000
#: Attempts per request unless the connection's ``config_kwargs.retries`` says otherwise:
#: enough to ride out several faults in a row (botocore's own default is 3).
DEFAULT_MAX_ATTEMPTS = 10
_MISSING_BUCKET_CODES = frozenset({"404", "NoSuchBucket", "NotFound"})
_DENIED_CODES = frozenset(
    {"403", "AccessDenied", "AllAccessDisabled", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch"}
)
_EXPLAINED_CODES = {
    "ExpiredToken": "the connection's session token has expired",
    "InvalidToken": "the connection's session token is not valid",
    "RequestTimeTooSkewed": "this machine's clock is too far from the server's",
    "PermanentRedirect": "the bucket is in another region: set the connection's or the operator's region",
    "AuthorizationHeaderMalformed": "the bucket is in another region: set the connection's or the operator's region",
    "IllegalLocationConstraintException": "the bucket is in another region: set the region to the bucket's",
}
#: Object properties S3 keeps with an object, carried by copies between endpoints.
OBJECT_PROPERTIES = (
    "CacheControl",
    "ContentDisposition",
    "ContentEncoding",
    "ContentLanguage",
    "ContentType",
    "Expires",
    "Metadata",
)
_XML_UNSAFE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_KMS_ENCRYPTION = frozenset({"aws:kms", "aws:kms:dsse"})
_NO_LOCK_CODES = frozenset({"ObjectLockConfigurationNotFoundError", "ObjectLockConfigurationNotFound"})
#: Writes that carry Object Lock settings and so need an integrity header.
_LOCK_WRITES = ("PutObjectRetention", "PutObjectLegalHold", "CopyObject", "PutObject", "CreateMultipartUpload")
_LOCK_HEADERS = ("x-amz-object-lock-mode", "x-amz-object-lock-retain-until-date", "x-amz-object-lock-legal-hold")


_CHECKSUM_VALUE_HEADERS = frozenset(
    f"x-amz-checksum-{name}" for name in ("crc32", "crc32c", "crc64nvme", "sha1", "sha256", "sha512")
)


def _body_bytes(body: Any) -> bytes | None:
    """The bytes of a request body, leaving a file-like body where it was; ``None`` when it
    cannot be read twice."""
    if body is None:
        return b""
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    if all(hasattr(body, name) for name in ("read", "seek", "tell")):
        position = body.tell()
        data = body.read()
        body.seek(position)
        return data
    return None


def _content_md5(request: Any, *, replace_checksums: bool, **kwargs: Any) -> None:
    """Give a lock-carrying request a Content-MD5 header (before it is signed).

    S3 requires an integrity header on writes that set Object Lock. botocore sends a CRC
    checksum on most of them by default, but none on CopyObject (it has no body) and none at all
    with ``request_checksum_calculation="when_required"``: then the MD5 of the body is added.
    With ``replace_checksums`` (the connection's ``content_md5`` extra), botocore's CRC
    checksums on those writes are replaced by Content-MD5, for providers that reject them.
    A checksum sent as a trailer of a streamed body is left alone.
    """
    headers = request.headers
    operation = kwargs.get("event_name", "").rsplit(".", 1)[-1]
    if operation not in ("PutObjectRetention", "PutObjectLegalHold") and not any(
        name in headers for name in _LOCK_HEADERS
    ):
        return
    names = {name.lower(): name for name in headers.keys()}
    if "content-md5" in names or "x-amz-trailer" in names:
        return
    checksums = [name for lower, name in names.items() if lower in _CHECKSUM_VALUE_HEADERS]
    if checksums and not replace_checksums:
        return
    data = _body_bytes(request.body)
    if data is None:
        return
    for name in checksums:
        del headers[name]
    if "x-amz-sdk-checksum-algorithm" in names and checksums:
        del headers[names["x-amz-sdk-checksum-algorithm"]]
    headers["Content-MD5"] = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()


def etag_may_be_md5(response: Mapping[str, Any]) -> bool:
    """Whether the ETag in a HeadObject / GetObject response can be an MD5 (or MD5 of part
    MD5s): not with SSE-KMS or SSE-C encryption."""
    return response.get("ServerSideEncryption") not in _KMS_ENCRYPTION and not response.get("SSECustomerAlgorithm")


_TARGET = "s3sync_target"
_WRITE_ANSWER = ("ETag", "ServerSideEncryption", "SSECustomerAlgorithm")


def _remember_target(params: Mapping[str, Any], context: dict[str, Any], **kwargs: Any) -> None:
    """Note which object a write is for, so its answer can be matched to it after the call."""
    context[_TARGET] = (params.get("Bucket"), params.get("Key"))


def _conditional(bucket: str, key: str, etag: str | None) -> dict[str, Any]:
    args: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if etag:
        args["IfMatch"] = etag
    return args


#: botocore data loaders by data path: they cache the service models they read.
_LOADERS: dict[Any, Any] = {}
_LOADERS_LOCK = threading.Lock()


class _Subscriber(BaseSubscriber):
    """Feeds s3transfer's progress to a :data:`Progress` callback; gives it the listed size
    and ETag (sparing a HeadObject, and making multipart reads conditional on the ETag)."""

    def __init__(self, progress: Progress, size: int | None, etag: str | None = None) -> None:
        self._progress = progress
        self._size = size
        self._etag = etag

    def on_queued(self, future: TransferFuture, **kwargs: Any) -> None:
        if self._size is not None:
            future.meta.provide_transfer_size(self._size)
        if self._etag is not None:
            future.meta.provide_object_etag(self._etag)

    def on_progress(self, future: TransferFuture, bytes_transferred: int, **kwargs: Any) -> None:
        self._progress(bytes_transferred)


class LazyBody:
    """A read-once file object over an object's data, opened (by ``open_body``) on the first
    read, so a queued transfer holds no connection."""

    def __init__(self, open_body: Callable[[], Any]) -> None:
        self._open_body = open_body
        self._body: Any = None
        self._closed = False

    def read(self, amount: int | None = None) -> bytes:
        """Read up to ``amount`` bytes (all that is left if ``None``)."""
        if self._closed:
            raise ValueError("read of a closed object stream")
        if self._body is None:
            self._body = self._open_body()
        return self._body.read(amount)

    def close(self) -> None:
        """Close the stream (a no-op if it was never opened)."""
        self._closed = True
        if self._body is not None:
            self._body.close()


class IncompleteUpload(NamedTuple):
    """A multipart upload that was started and neither completed nor aborted."""

    key: str
    upload_id: str
    initiated: datetime


class S3SyncHook(S3Hook):
    """Listing and transfer for ``aws s3 sync``-style replication on one S3 endpoint.

    A subclass of the Amazon provider's :class:`~airflow.providers.amazon.aws.hooks.s3.S3Hook`,
    so every AWS connection feature (``endpoint_url``, ``region_name``, assume-role,
    profiles, ``config_kwargs``, ``service_config.s3.transfer_config_args``) works unchanged.
    One boto3 client is shared by all threads; its connection pool is sized for
    ``max_concurrency`` parallel requests.

    :param aws_conn_id: the Airflow AWS connection.
    :param region_name: overrides the connection's region.
    :param max_concurrency: parallel requests of this hook's transfer manager.
    :param page_size: ListObjectsV2 page size (1 to 1000).

    .. seealso:: :class:`airflow_s3sync.operators.sync.S3SyncOperator`
    """

    def __init__(
        self,
        aws_conn_id: str | None = S3Hook.default_conn_name,
        *,
        region_name: str | None = None,
        max_concurrency: int = 10,
        page_size: int = 1000,
        **kwargs: Any,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        if not 1 <= page_size <= 1000:
            raise ValueError(f"page_size must be between 1 and 1000, got {page_size}")
        super().__init__(aws_conn_id=aws_conn_id, region_name=region_name, **kwargs)
        self.max_concurrency = max_concurrency
        self.page_size = page_size
        self._closed = False
        self._written: dict[tuple[str, str], dict[str, Any]] | None = None
        self._written_lock = threading.Lock()

    @cached_property
    def conn_config(self) -> Any:
        """The connection's settings; a connection id that is not defined is an error here,
        before any request, instead of the Amazon provider's silent fallback to the
        environment's credentials (which would sync with whatever account those reach).

        ``aws_default`` keeps that fallback: the provider documents it, and deployments
        rely on it (credentials from the instance role, no connection defined).
        """
        if self.aws_conn_id and self.aws_conn_id != S3Hook.default_conn_name:
            try:
                self.get_connection(self.aws_conn_id)
            except ImportError:
                pass  # no Task SDK supervisor to ask (a test outside a task): the provider decides
            except AirflowNotFoundException:
                raise S3SyncError(
                    f"the connection {self.aws_conn_id!r} is not defined: add it (Admin > Connections, an "
                    f"AIRFLOW_CONN_{self.aws_conn_id.upper()} environment variable or a secrets backend), or "
                    "pass None to use the environment's AWS credentials"
                ) from None
        return super().conn_config

    def get_session(self, region_name: str | None = None, deferrable: bool = False) -> Any:
        """The connection's boto3 session, sharing one botocore data loader per process, so
        the S3 service model is read from disk once, not once per hook (~0.1 s each)."""
        session = super().get_session(region_name=region_name, deferrable=deferrable)
        core = getattr(session, "_session", session)  # boto3 wraps a botocore session
        data_path = core.get_config_variable("data_path")
        with _LOADERS_LOCK:
            loader = _LOADERS.get(data_path)
            if loader is None:
                loader = _LOADERS[data_path] = core.get_component("data_loader")
        core.register_component("data_loader", loader)
        return session

    def get_client_type(self, *args: Any, **kwargs: Any) -> Any:
        """The boto3 client, with the integrity header Object Lock writes need (see ``_content_md5``).

        A connection whose extra has ``"content_md5": true`` sends Content-MD5 instead of
        botocore's CRC checksums on those writes; ``config_kwargs`` in the extra sets
        botocore's ``request_checksum_calculation`` / ``response_checksum_validation``.
        """
        client = super().get_client_type(*args, **kwargs)
        replace_checksums = bool(self.conn_config.extra_config.get("content_md5", False))
        for operation in _LOCK_WRITES:
            client.meta.events.register(
                f"before-sign.s3.{operation}",
                lambda request, replace=replace_checksums, **kw: _content_md5(request, replace_checksums=replace, **kw),
            )
        listing.install(client.meta.events)
        for operation in ("PutObject", "CompleteMultipartUpload"):
            client.meta.events.register(f"before-parameter-build.s3.{operation}", _remember_target)
            client.meta.events.register(f"after-call.s3.{operation}", self._record_written)
        return client

    def record_written(self) -> None:
        """From now on, remember what the server answers to each PutObject and
        CompleteMultipartUpload (ETag, encryption), for :meth:`written`."""
        with self._written_lock:
            if self._written is None:
                self._written = {}

    def _record_written(self, parsed: Mapping[str, Any], context: Mapping[str, Any], **kwargs: Any) -> None:
        target = context.get(_TARGET)
        if target is None or "ETag" not in parsed:
            return
        with self._written_lock:
            if self._written is not None:
                self._written[target] = {name: parsed[name] for name in _WRITE_ANSWER if name in parsed}

    def written(self, bucket: str, key: str) -> dict[str, Any] | None:
        """What the server answered to the last write of ``bucket``/``key`` since
        :meth:`record_written` (ETag, ServerSideEncryption, ...), once; ``None`` if nothing."""
        with self._written_lock:
            return None if self._written is None else self._written.pop((bucket, key), None)

    @property
    def config(self) -> Config:
        """The connection's botocore config with a pool large enough for ``max_concurrency``
        objects in flight plus as many multipart requests, and, unless the connection's
        ``config_kwargs`` sets ``retries``, botocore's standard retry mode with
        :data:`DEFAULT_MAX_ATTEMPTS` attempts per request."""
        base = super().config
        settings: dict[str, Any] = {"max_pool_connections": max(2 * self.max_concurrency + 2, 10)}
        if base.retries is None:
            settings["retries"] = {"mode": "standard", "max_attempts": DEFAULT_MAX_ATTEMPTS}
        return base.merge(Config(**settings))

    @property
    def endpoint_description(self) -> str:
        """Where this hook's requests go, for error messages (no credentials)."""
        endpoint = self.conn_config.get_service_endpoint_url(service_name="s3")
        return f"{endpoint or 'AWS'} (connection {self.aws_conn_id!r}, region {self.region_name or 'default'})"

    def check_access(self, bucket: str, prefix: str = "") -> None:
        """Make sure ``bucket`` exists and the credentials may list ``prefix``; raise a clear error if not.

        One ListObjectsV2 of at most one key: unlike HeadBucket it works with IAM policies that
        allow listing only below a prefix, as ``aws s3 sync`` needs nothing more.
        """
        try:
            self.conn.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
        except (ClientError, BotoCoreError) as error:
            raise self._bucket_error(bucket, error) from error

    def _bucket_error(self, bucket: str, error: ClientError | BotoCoreError) -> S3SyncError:
        """A clear error for a request on ``bucket`` that failed."""
        where = self.endpoint_description
        if isinstance(error, NoCredentialsError):
            return S3SyncError(
                f"no credentials for bucket {bucket!r} at {where}: "
                "give the connection a login and password, a profile or a role"
            )
        if isinstance(error, BotoCoreError):
            return S3SyncError(f"cannot reach bucket {bucket!r} at {where}: {error}")
        code = str(error.response.get("Error", {}).get("Code", ""))
        if code in _MISSING_BUCKET_CODES:
            return S3SyncError(f"bucket {bucket!r} does not exist at {where}")
        if code in _DENIED_CODES:
            return S3SyncError(
                f"access to bucket {bucket!r} was denied at {where}: check the connection's credentials and permissions"
            )
        if code in _EXPLAINED_CODES:
            return S3SyncError(f"cannot use bucket {bucket!r} at {where}: {_EXPLAINED_CODES[code]} ({code})")
        return S3SyncError(f"cannot use bucket {bucket!r} at {where}: {error}")

    def check_object_lock(self, bucket: str) -> None:
        """Make sure ``bucket`` has Object Lock enabled (GetObjectLockConfiguration); raise a clear
        error if not, before any retention or legal hold is written to it."""
        try:
            response = self.conn.get_object_lock_configuration(Bucket=bucket)
        except ClientError as error:
            if str(error.response.get("Error", {}).get("Code", "")) in _NO_LOCK_CODES:
                raise self._no_lock_error(bucket) from error
            raise self._bucket_error(bucket, error) from error
        except BotoCoreError as error:
            raise self._bucket_error(bucket, error) from error
        if response.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") != "Enabled":
            raise self._no_lock_error(bucket)

    def _no_lock_error(self, bucket: str) -> S3SyncError:
        return S3SyncError(
            f"bucket {bucket!r} at {self.endpoint_description} does not have Object Lock enabled: "
            "retention and legal holds cannot be written to it (Object Lock is chosen when a bucket is created)"
        )

    def lock_state(self, bucket: str, key: str, **head_args: Any) -> LockState | None:
        """The current version's retention, legal hold and version id (one HeadObject, with
        ``head_args`` such as SSE-C keys), or ``None`` when the object does not exist."""
        try:
            response = self.conn.head_object(Bucket=bucket, Key=key, **head_args)
        except ClientError as error:
            if str(error.response.get("Error", {}).get("Code", "")) in _MISSING_BUCKET_CODES | {"NoSuchKey"}:
                return None
            raise
        return LockState.from_head(response)

    def object_tags(self, bucket: str, key: str) -> list[dict[str, str]]:
        """The object's tags (GetObjectTagging): ``[{"Key": ..., "Value": ...}]``."""
        return list(self.conn.get_object_tagging(Bucket=bucket, Key=key).get("TagSet", []))

    def put_tags(self, bucket: str, key: str, tags: list[dict[str, str]]) -> None:
        """Replace the object's tags (PutObjectTagging)."""
        self.conn.put_object_tagging(Bucket=bucket, Key=key, Tagging={"TagSet": tags})

    def put_retention(
        self, bucket: str, key: str, retention: Retention, *, version_id: str | None, bypass_governance: bool = False
    ) -> None:
        """Set ``retention`` on the version ``version_id`` of ``key`` (PutObjectRetention)."""
        args: dict[str, Any] = {
            "Bucket": bucket,
            "Key": key,
            "Retention": {"Mode": retention.mode.value, "RetainUntilDate": retention.until},
        }
        if version_id is not None:
            args["VersionId"] = version_id
        if bypass_governance:
            args["BypassGovernanceRetention"] = True
        self.conn.put_object_retention(**args)

    def put_legal_hold(self, bucket: str, key: str, on: bool, *, version_id: str | None) -> None:
        """Turn the legal hold of the version ``version_id`` of ``key`` ON or OFF (PutObjectLegalHold)."""
        args: dict[str, Any] = {"Bucket": bucket, "Key": key, "LegalHold": {"Status": "ON" if on else "OFF"}}
        if version_id is not None:
            args["VersionId"] = version_id
        self.conn.put_object_legal_hold(**args)

    def iter_entries(self, bucket: str, prefix: str, *, key_range: KeyRange | None = None) -> Iterator[Entry]:
        """Yield the objects under ``prefix`` as entries keyed relative to it, page by page.

        Zero-byte keys ending in ``/`` (directory markers) are left out, as ``aws s3 sync``
        does. The listing is a generator: memory does not grow with the number of keys.
        With ``key_range`` it starts after ``start_after`` (``StartAfter``) and stops after
        ``end``: one shard's listing costs that shard's pages only.
        """
        if key_range is not None and key_range.is_full:
            key_range = None  # no per-key checks for the whole keyspace
        paginator = self.conn.get_paginator("list_objects_v2")
        args: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "PaginationConfig": {"PageSize": self.page_size}}
        if key_range is not None and key_range.start_after is not None:
            args["StartAfter"] = prefix + key_range.start_after
        pages = paginator.paginate(**args)
        start = len(prefix)
        for listed in fast_pages(pages):
            for key, size, mtime, etag, storage_class in listed:
                if not key.startswith(prefix):
                    raise S3SyncError(f"listing of s3://{bucket}/{prefix} returned the foreign key {key!r}")
                relative = key[start:]
                if key_range is not None:
                    if key_range.past_end(relative):
                        return
                    if relative not in key_range:  # a server that ignores StartAfter
                        continue
                if size == 0 and key.endswith("/"):
                    continue
                yield Entry(relative, size, mtime, etag, storage_class)

    def list_page(self, bucket: str, prefix: str, *, start_after: str | None = None) -> tuple[list[str], bool]:
        """One ListObjectsV2 page under ``prefix``: the keys (relative to it) after
        ``start_after`` (relative too), and whether more follow. Directory markers are kept:
        this samples the keyspace, it does not decide what to copy."""
        args: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": self.page_size}
        if start_after is not None:
            args["StartAfter"] = prefix + start_after
        response = self.conn.list_objects_v2(**args)
        keys = [item["Key"][len(prefix) :] for item in response.get("Contents", [])]
        if start_after is not None:
            keys = [key for key in keys if key > start_after]
        return keys, bool(response.get("IsTruncated"))

    def same_service_as(self, other: S3SyncHook) -> bool:
        """Whether ``other`` reaches the same endpoint with the same credentials, so that one
        of them can copy server-side between their buckets. Regions may differ: S3 copies
        across regions itself."""
        if self.aws_conn_id == other.aws_conn_id:
            return True
        endpoint = self.conn_config.get_service_endpoint_url(service_name="s3")
        if endpoint != other.conn_config.get_service_endpoint_url(service_name="s3"):
            return False
        try:
            mine, theirs = self.get_credentials(), other.get_credentials()
        except (BotoCoreError, ClientError):
            return False  # cannot tell: streaming works in every case
        return mine is not None and theirs is not None and mine.access_key == theirs.access_key

    def digests(self, bucket: str, key: str, **head_args: Any) -> Digests:
        """What one HeadObject (with ``ChecksumMode``, and ``head_args`` such as SSE-C keys) tells
        of an object's content: an MD5 ETag, a multipart ETag, full-object checksums (see
        :meth:`with_part_size` for the part size)."""
        response = self.conn.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED", **head_args)
        md5, composite = parse_etag(response.get("ETag"), md5_etag_possible=etag_may_be_md5(response))
        checksums = {}
        if composite is None or response.get("ChecksumType") == "FULL_OBJECT":
            for algorithm in CHECKSUM_ALGORITHMS:
                value = response.get(f"Checksum{algorithm}")
                if value and "-" not in value:
                    checksums[algorithm] = value
        return Digests(int(response["ContentLength"]), md5, composite, None, checksums)

    def with_part_size(self, bucket: str, key: str, digests: Digests) -> Digests:
        """``digests`` with the part size of its multipart ETag, from a HeadObject of part 1
        (unchanged when the server does not tell, or there are no parts)."""
        if digests.multipart_etag is None or digests.part_size is not None:
            return digests
        part = self.conn.head_object(Bucket=bucket, Key=key, PartNumber=1)
        if part.get("PartsCount") != digests.parts:
            return digests
        return replace(digests, part_size=int(part["ContentLength"]))

    def head_object(self, bucket: str, key: str, *, etag: str | None = None) -> dict[str, Any]:
        """HeadObject: size, ETag, properties, lock state. With ``etag`` it is conditional on it
        (``If-Match``): an object replaced since it was listed fails."""
        return self.conn.head_object(**_conditional(bucket, key, etag))

    def open_object(self, bucket: str, key: str, *, etag: str | None = None) -> dict[str, Any]:
        """Start reading an object (GetObject): the response, whose ``Body`` streams the data.

        With ``etag`` the read is conditional on it (``If-Match``): an object replaced since
        it was listed fails instead of being copied half old, half new.
        """
        return self.conn.get_object(**_conditional(bucket, key, etag))

    def lazy_body(self, bucket: str, key: str, *, etag: str | None = None) -> LazyBody:
        """The object's data as a file object whose GetObject is sent on the first read."""
        return LazyBody(lambda: self.open_object(bucket, key, etag=etag)["Body"])

    def part_size_for(self, size: int) -> int | None:
        """The part size a streamed upload of ``size`` bytes uses, or ``None`` below the
        multipart threshold (s3transfer's own rule, so computed ETags match)."""
        config = self.sync_transfer_config
        if size < config.multipart_threshold:
            return None
        return ChunksizeAdjuster().adjust_chunksize(config.multipart_chunksize, size)

    @cached_property
    def sync_transfer_config(self) -> TransferConfig:
        """The transfer settings: the connection's ``service_config.s3.transfer_config_args``,
        overridden by the hook's ``transfer_config_args``, with ``max_concurrency`` by default.

        Streamed uploads queue at most ``max_in_memory_upload_chunks`` parts in memory (by
        default ``max_concurrency``), plus one being read per submission thread (s3transfer's
        ``max_submission_concurrency``, 5)."""
        settings = dict(self.service_config.get("transfer_config_args", {}))
        settings.update(self._transfer_config_args)
        settings.setdefault("max_concurrency", self.max_concurrency)
        in_memory = settings.pop("max_in_memory_upload_chunks", settings["max_concurrency"])
        config = TransferConfig(**settings)
        config.max_in_memory_upload_chunks = in_memory  # s3transfer's setting, not in boto3's constructor
        return config

    @cached_property
    def transfer_manager(self) -> TransferManager:
        """The s3transfer manager all multipart transfers of this hook share.

        A closed hook has none: starting a transfer on it raises.
        """
        if self._closed:
            raise S3SyncError(f"the hook of connection {self.aws_conn_id!r} is closed: no new transfers")
        return TransferManager(self.conn, self.sync_transfer_config)

    @property
    def multipart_threshold(self) -> int:
        """The size from which transfers of this hook go in parts."""
        return int(self.sync_transfer_config.multipart_threshold)

    @property
    def native_enabled(self) -> bool:
        """Whether the native client may carry this connection's small transfers: unless the
        connection's extra says ``"native_client": false``, or the connection asks for what only
        botocore does — proxies, a CA bundle or no certificate checks (``verify``), unsigned or
        otherwise special signatures, virtual-hosted addressing, S3 settings besides
        ``addressing_style: path`` (accelerate, dual-stack, ...) — or the environment sets
        one of :data:`~airflow_s3sync.hooks.native.OBSTORE_ONLY_ENVIRONMENT`."""
        if not self.conn_config.extra_config.get(NATIVE_CLIENT_EXTRA, True):
            return False
        config = self.config
        s3 = dict(config.s3 or {})
        return not (
            s3.pop("addressing_style", None) not in (None, "auto", "path")
            or s3
            or config.proxies
            or config.signature_version is not None
            or self.verify not in (None, True)
            or any(os.environ.get(name) for name in OBSTORE_ONLY_ENVIRONMENT)
        )

    @cached_property
    def native_backend(self) -> NativeBackend:
        """The native (obstore) backend of this connection (see :attr:`native_enabled`)."""
        return NativeBackend(self, max_attempts=self.max_attempts)

    @property
    def max_attempts(self) -> int:
        """Attempts per request: the connection's ``config_kwargs.retries.max_attempts``, or
        :data:`DEFAULT_MAX_ATTEMPTS`."""
        return int((self.config.retries or {}).get("max_attempts", DEFAULT_MAX_ATTEMPTS))

    def _run(self, future: TransferFuture) -> None:
        try:
            future.result()
        except KeyError as error:
            if error.args == ("ETag",):  # s3transfer reads each part's ETag from the answer
                raise S3SyncError(
                    f"the server at {self.endpoint_description} answered a multipart request without the "
                    "part's ETag: it does not support this kind of multipart transfer (for server-side copies, "
                    "raise copy_cutoff, up to 5 GiB, so objects are copied with one CopyObject)"
                ) from error
            raise

    def upload_file(
        self, path: str, bucket: str, key: str, *, size: int, extra_args: Mapping[str, Any], progress: Progress
    ) -> Written:
        """Upload the file ``path`` to ``bucket``/``key`` (in parts above the multipart
        threshold). ``ContentType`` is guessed from the file name unless ``extra_args`` sets it."""
        args = dict(extra_args)
        if "ContentType" not in args:
            guessed, _ = mimetypes.guess_type(path)
            if guessed:
                args["ContentType"] = guessed
        self._run(
            self.transfer_manager.upload(path, bucket, key, extra_args=args, subscribers=[_Subscriber(progress, size)])
        )
        return Written(size)

    def upload_stream(
        self, stream: Any, bucket: str, key: str, *, size: int, extra_args: Mapping[str, Any], progress: Progress
    ) -> Written:
        """Upload what ``stream`` (a file object read once, front to back) yields to
        ``bucket``/``key``: PutObject below the multipart threshold, parts above it, with at
        most ``max_in_memory_upload_chunks`` parts queued in memory and nothing on disk."""
        future = self.transfer_manager.upload(
            stream, bucket, key, extra_args=dict(extra_args), subscribers=[_Subscriber(progress, size)]
        )
        self._run(future)
        return Written(size)

    def copy_object(
        self,
        source: tuple[str, str],
        bucket: str,
        key: str,
        *,
        size: int,
        in_parts: bool,
        source_backend: S3SyncHook,
        extra_args: Mapping[str, Any],
        progress: Progress,
    ) -> Written:
        """Copy ``source`` (bucket, key) to ``bucket``/``key`` server-side.

        One CopyObject (up to 5 GiB, as rclone and s5cmd do), or, with ``in_parts``,
        UploadPartCopy parts from the multipart threshold on; for those s3transfer reads the
        source's properties (Content-Type, Metadata, ...) with a HeadObject and carries them
        over. No ACL is sent unless ``extra_args`` names one (unlike ``S3Hook.copy_object``).
        """
        copy_source = {"Bucket": source[0], "Key": source[1]}
        if not in_parts:
            response = self.conn.copy_object(CopySource=copy_source, Bucket=bucket, Key=key, **extra_args)
            progress(size)
            return Written(size, etag=response.get("CopyObjectResult", {}).get("ETag"), answer=response)
        future = self.transfer_manager.copy(
            copy_source,
            bucket,
            key,
            extra_args=dict(extra_args),
            subscribers=[_Subscriber(progress, None)],
            source_client=source_backend.conn,
        )
        self._run(future)
        return Written(size)

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
        """Download ``bucket``/``key`` to ``path``; parts are read conditionally on ``etag``.

        The data is written to a temporary file beside ``path`` (``.NAME.XXXXXXXX.s3sync``, which
        walks never list, see :class:`~airflow_s3sync.hooks.local.AtomicFile`) and renamed over it
        only when complete, so a failed or killed download never leaves a partial file under the
        final name, nor one a later sync could take for data.
        """
        with AtomicFile(path) as temp:
            future = self.transfer_manager.download(
                bucket, key, temp.file, extra_args=dict(extra_args), subscribers=[_Subscriber(progress, size, etag)]
            )
            self._run(future)
            temp.commit()
        return Written(size, etag=etag)

    def delete_keys(self, bucket: str, keys: Iterable[str]) -> Iterator[tuple[str, str | None]]:
        """Delete ``keys`` with DeleteObjects, 1,000 a request; yield ``(key, error or None)``.

        If a whole request is refused (one key the XML body cannot carry makes S3 answer
        MalformedXML), its keys are deleted one by one, so one bad key fails alone.
        """
        keys = iter(keys)
        while batch := list(islice(keys, DELETE_BATCH_SIZE)):
            # XML 1.0 cannot carry control characters: such keys go one by one from the start,
            # instead of failing (and being retried) with the whole batch.
            unsafe = [key for key in batch if _XML_UNSAFE.search(key)]
            if unsafe:
                yield from self._delete_one_by_one(bucket, unsafe)
                batch = [key for key in batch if not _XML_UNSAFE.search(key)]
                if not batch:
                    continue
            try:
                response = self.conn.delete_objects(
                    Bucket=bucket, Delete={"Objects": [{"Key": key} for key in batch], "Quiet": False}
                )
            except (ClientError, BotoCoreError) as error:
                self.log.warning("DeleteObjects failed (%s); deleting these %d keys one by one", error, len(batch))
                yield from self._delete_one_by_one(bucket, batch)
                continue
            for deleted in response.get("Deleted", ()):
                yield deleted["Key"], None
            for failed in response.get("Errors", ()):
                yield failed["Key"], f"{failed.get('Code')}: {failed.get('Message')}"

    def _delete_one_by_one(self, bucket: str, keys: list[str]) -> Iterator[tuple[str, str | None]]:
        for key in keys:
            try:
                self.conn.delete_object(Bucket=bucket, Key=key)
            except (ClientError, BotoCoreError) as error:
                yield key, str(error)
            else:
                yield key, None

    def incomplete_uploads(self, bucket: str, prefix: str) -> Iterator[IncompleteUpload]:
        """The multipart uploads under ``prefix`` that were started and never completed nor
        aborted (ListMultipartUploads, page by page); keys relative to ``prefix``."""
        paginator = self.conn.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for upload in page.get("Uploads", ()):
                key = upload["Key"]
                if key.startswith(prefix):
                    yield IncompleteUpload(key[len(prefix) :], upload["UploadId"], upload["Initiated"])

    def abort_upload(self, bucket: str, key: str, upload_id: str) -> None:
        """Abort one multipart upload, freeing its parts (AbortMultipartUpload)."""
        self.conn.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)

    def close(self, *, cancel: bool = False) -> None:
        """Shut the transfer manager down: wait for what is still running, or cancel it.

        No transfer can start on the hook afterwards; listings and deletes still work.
        """
        self._closed = True
        manager = self.__dict__.pop("transfer_manager", None)
        if manager is None:
            return
        if not cancel:
            manager.shutdown()
            return
        # TransferManager.shutdown(cancel=True) passes its arguments to _shutdown in the wrong
        # order in s3transfer 0.19 ('str' object is not callable); leaving its context with an
        # exception is the public way to cancel.
        stop = S3SyncError("transfers cancelled: the task is stopping")
        manager.__exit__(type(stop), stop, None)
