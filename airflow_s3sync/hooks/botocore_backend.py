"""The full backend: botocore and s3transfer carry every call, every request argument, every size.

Built by :class:`~airflow_s3sync.hooks.s3.S3SyncHook` from its boto3 client and transfer settings;
it is the backend of last resort for routing and the only one of listings, lookups, Object Lock,
tags, deletes and multipart housekeeping.
"""

from __future__ import annotations

import io
import logging
import mimetypes
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import replace
from itertools import count, islice, pairwise
from typing import Any
from urllib.parse import unquote, urlsplit

from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    FlexibleChecksumError,
    NoCredentialsError,
    UnseekableStreamError,
)
from s3transfer.bandwidth import BandwidthLimiter
from s3transfer.futures import TransferFuture
from s3transfer.manager import TransferManager
from s3transfer.subscribers import BaseSubscriber
from s3transfer.upload import UploadSubmissionTask
from s3transfer.utils import ChunksizeAdjuster

from airflow_s3sync.errors import S3RequestError, S3SyncError
from airflow_s3sync.hooks import unchecked
from airflow_s3sync.hooks.backend import (
    Backend,
    ErrorListener,
    IncompleteUpload,
    ListingOrder,
    ObjectData,
    ObjectHead,
    ObjectRef,
    Progress,
    RetryUnchecked,
    Written,
    answer_signature,
    is_throttle_answer,
)
from airflow_s3sync.hooks.listing import Listed, fast_page, fast_pages
from airflow_s3sync.hooks.local import AtomicFile
from airflow_s3sync.hooks.throttle import Throttle
from airflow_s3sync.plan.capabilities import Capabilities, Operation
from airflow_s3sync.plan.checksum import (
    CHECKSUM_ALGORITHMS,
    Digests,
    base64_md5,
    md5_etag_possible,
    parse_etag,
    recorded_md5,
)
from airflow_s3sync.plan.entries import Entry
from airflow_s3sync.plan.key_range import KeyRange
from airflow_s3sync.plan.lock import LockState, Retention
from airflow_s3sync.plan.merge import ListingOrderError

#: DeleteObjects takes at most this many keys per request.
DELETE_BATCH_SIZE = 1000
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
#: What botocore and s3transfer carry: everything.
CAPABILITIES = Capabilities(
    "botocore",
    operations=frozenset(Operation),
    properties=frozenset(OBJECT_PROPERTIES),
    lock_headers=True,
    tags=True,
    access_points=True,
    multipart=True,
)
_MISSING_CODES = frozenset({"404", "NoSuchBucket", "NotFound", "NoSuchKey"})
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
_NO_LOCK_CODES = frozenset({"ObjectLockConfigurationNotFoundError", "ObjectLockConfigurationNotFound"})
_XML_UNSAFE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_TARGET = "s3sync_target"
_WRITE_ANSWER = ("ETag", "ServerSideEncryption", "SSECustomerAlgorithm")
_LISTENER_IDS = count()
#: Bytes per read of an object read without botocore's checksum check.
_UNCHECKED_CHUNK = 1024 * 1024
#: Objects remembered with a mislabelled checksum (forgotten all at once beyond this).
_MISLABELLED_KEPT = 10_000
log = logging.getLogger(__name__)


def etag_may_be_md5(response: Mapping[str, Any]) -> bool:
    """Whether the ETag in a HeadObject / GetObject / PutObject answer can be an MD5 (or MD5 of
    part MD5s): not with SSE-KMS or SSE-C encryption."""
    return md5_etag_possible(
        encryption=response.get("ServerSideEncryption"), customer_key=bool(response.get("SSECustomerAlgorithm"))
    )


def head_of(response: Mapping[str, Any]) -> ObjectHead:
    """The project's view of a HeadObject or GetObject answer."""
    return ObjectHead(
        size=int(response["ContentLength"]),
        etag=response.get("ETag"),
        md5_etag_possible=etag_may_be_md5(response),
        properties={name: response[name] for name in OBJECT_PROPERTIES if response.get(name) is not None},
        lock=LockState.from_head(dict(response)),
    )


def _conditional(ref: ObjectRef, etag: str | None) -> dict[str, Any]:
    args: dict[str, Any] = {"Bucket": ref.bucket, "Key": ref.key}
    if etag:
        args["IfMatch"] = etag
    return args


def _remember_target(params: Mapping[str, Any], context: dict[str, Any], **kwargs: Any) -> None:
    """Note which object a write is for, so its answer can be matched to it after the call."""
    context[_TARGET] = (params.get("Bucket"), params.get("Key"))


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


def check_rest_of_page(keys: list[str], key_range: KeyRange) -> None:
    """Where a key range's listing stops (``keys[0]`` is past its end), what the page already
    read says of the server's order: a key in the range after it, or keys out of order, raise
    :class:`ListingOrderError` (its side left to the merge to name) instead of a quiet stop."""
    for previous, key in pairwise(keys):
        if key <= previous or key in key_range:
            raise ListingOrderError("", key, previous)


class _MislabelGuard:
    """A GetObject body whose checksum mismatch (found by botocore at the end of the data)
    is remembered (``remember``) and raised as a :class:`RetryUnchecked`."""

    def __init__(self, body: Any, remember: Callable[..., None], source: ObjectRef, etag: str | None) -> None:
        self._body, self._remember, self._source, self._etag = body, remember, source, etag

    def read(self, amount: int | None = None) -> bytes:
        try:
            return self._body.read(amount)
        except FlexibleChecksumError as error:
            self._remember(self._source, self._etag, error)
            raise RetryUnchecked(f"{self._source}: {error}; it is read again without that check") from error

    def close(self) -> None:
        self._body.close()


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


#: The largest object streamed between endpoints by one PutObject (rclone's ``--s3-upload-cutoff``).
ONE_PUT_MAX = 200 * 1024 * 1024
#: The bytes a streamed PutObject's body reads at a time, whatever the sender asks for: the HTTP
#: connection asks for 16 KiB, and each read costs as much Python as a MiB does.
ONE_PUT_READ = 1024 * 1024
#: Upload arguments a PutObject does not take (s3transfer leaves them out of its PutObjects too).
_MULTIPART_ONLY_ARGS = frozenset(UploadSubmissionTask.PUT_OBJECT_BLOCKLIST)


class _OnePutBody:
    """The body of a streamed PutObject: what ``stream`` yields, read as botocore sends it,
    counted for progress and bandwidth. It cannot be rewound, so a request botocore would retry
    fails instead (and the job reads the source again); ``seek`` exists, and refuses, because
    botocore's CRT signer takes a body without one for bytes."""

    def __init__(self, stream: Any, take: Callable[[int], None], progress: Progress, stop: threading.Event) -> None:
        self._stream = stream
        self._take = take
        self._progress = progress
        self._stop = stop
        #: What failed botocore's last attempt with this body: HTTP status (0: no answer), S3
        #: error code, what happened (for the error the request ends in).
        self.failure: tuple[int, str, str] = (0, "", "the request failed")

    def read(self, amount: int | None = -1) -> bytes:
        """The next bytes of the source: up to ``amount``, or :data:`ONE_PUT_READ` if more (the
        sender sends what it gets)."""
        if self._stop.is_set():
            raise S3SyncError("transfers cancelled: the task is stopping")
        data = self._stream.read(None if amount is None or amount < 0 else max(amount, ONE_PUT_READ))
        if data:
            self._take(len(data))
            self._progress(len(data))
        return data

    def seek(self, *args: Any) -> int:
        raise io.UnsupportedOperation("a streamed body cannot be rewound")


def _remember_one_put_failure(
    request_dict: Mapping[str, Any], response: Any, caught_exception: BaseException | None, **kwargs: Any
) -> None:
    """Keep on a streamed PutObject's body what failed its attempt: botocore's retry then fails
    on the body's ``seek`` with an error that does not say."""
    body = request_dict.get("body")
    if not isinstance(body, _OnePutBody):
        return
    if caught_exception is not None:
        body.failure = (0, "", f"{type(caught_exception).__name__}: {caught_exception}")
    elif response is not None:
        error = response[1].get("Error", {})
        body.failure = (response[0].status_code, error.get("Code", ""), error.get("Message", ""))


class BotocoreBackend:
    """Every S3 call of a sync through one boto3 client (shared by all threads) and one
    s3transfer manager for multipart transfers.

    :param client: the boto3 S3 client (its pool sized for the run's concurrency).
    :param transfer_config: multipart threshold, part size and s3transfer's threads.
    :param page_size: ListObjectsV2 page size.
    :param description: where the requests go, for error messages (no credentials).
    :param identity: what makes two backends one service (endpoint and access key), or a
        callable returning it (``None`` when it cannot be told).
    :param listing_order: what the server's listings can be trusted with.
    """

    capabilities = CAPABILITIES

    def __init__(
        self,
        client: Any,
        *,
        transfer_config: TransferConfig,
        page_size: int,
        description: str,
        identity: Callable[[], Any],
        listing_order: ListingOrder = ListingOrder.S3,
    ) -> None:
        self.client = client
        self.listing_order = listing_order
        self.transfer_config = transfer_config
        self.page_size = page_size
        self._description = description
        self._identity = identity
        self._closed = False
        self._manager: TransferManager | None = None
        self._manager_lock = threading.Lock()
        self._throttle: Throttle | None = None
        #: The answers write_stream waits for (s3transfer does not return them), by target.
        self._written: dict[tuple[str, str], dict[str, Any] | None] = {}
        self._written_lock = threading.Lock()
        #: Objects (bucket, key, ETag) whose checksum header botocore rejected, and how: read unchecked.
        self._mislabelled: dict[tuple[str, str, str | None], FlexibleChecksumError] = {}
        self._mislabelled_lock = threading.Lock()
        for operation in ("PutObject", "CompleteMultipartUpload"):
            client.meta.events.register(f"before-parameter-build.s3.{operation}", _remember_target)
            client.meta.events.register(f"after-call.s3.{operation}", self._record_written)
        unchecked.install(client.meta.events)
        # A streamed PutObject's body is read once: botocore must neither hash it (its CRC32,
        # a SHA-256 payload signature) nor rewind it; its Content-MD5 is the integrity header.
        s3_settings = client.meta.config.s3 or {}
        self.one_put_max = 0 if s3_settings.get("payload_signing_enabled") else ONE_PUT_MAX
        self._one_put_config = client.meta.config.merge(
            Config(request_checksum_calculation="when_required", s3={**s3_settings, "payload_signing_enabled": False})
        )
        self._stopping = threading.Event()
        client.meta.events.register("before-parameter-build.s3.PutObject", self._one_put_request)
        client.meta.events.register("needs-retry.s3.PutObject", _remember_one_put_failure)

    # ------------------------------------------------------------ identity and errors
    @property
    def multipart_threshold(self) -> int:
        """The size from which this backend's writes go in parts."""
        return int(self.transfer_config.multipart_threshold)

    def describe(self) -> str:
        """Where this backend's requests go (no credentials)."""
        return self._description

    def same_service_as(self, other: Backend) -> bool:
        """Whether ``other`` reaches the same endpoint with the same credentials, so one of them
        can copy server-side between their buckets (regions may differ)."""
        if other is self:
            return True
        if not isinstance(other, BotocoreBackend):
            return False
        mine, theirs = self._identity(), other._identity()
        return mine is not None and mine == theirs

    def _bucket_error(self, bucket: str, error: ClientError | BotoCoreError) -> S3SyncError:
        """A clear error for a request on ``bucket`` that failed."""
        where = self._description
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

    def check_access(self, *, bucket: str, prefix: str) -> None:
        """Make sure ``bucket`` exists and the credentials may list ``prefix``; raise a clear error if not.

        One ListObjectsV2 of at most one key: unlike HeadBucket it works with IAM policies that
        allow listing only below a prefix, as ``aws s3 sync`` needs nothing more.
        """
        try:
            self.client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
        except (ClientError, BotoCoreError) as error:
            raise self._bucket_error(bucket, error) from error

    def check_object_lock(self, *, bucket: str) -> None:
        """Make sure ``bucket`` has Object Lock enabled (GetObjectLockConfiguration); raise a clear
        error if not, before any retention or legal hold is written to it."""
        try:
            response = self.client.get_object_lock_configuration(Bucket=bucket)
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
            f"bucket {bucket!r} at {self._description} does not have Object Lock enabled: "
            "retention and legal holds cannot be written to it (Object Lock is chosen when a bucket is created)"
        )

    def listen_for_slowdowns(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` on every SlowDown answer to this client's requests, also those
        botocore retries by itself (in this thread or s3transfer's)."""

        def on_answer(response: Any = None, **kwargs: Any) -> None:
            if is_throttle_answer(response):
                listener()
            # None: botocore's own retry handler decides whether to retry

        self.client.meta.events.register(
            "needs-retry.s3", on_answer, unique_id=f"s3sync-slowdown-{next(_LISTENER_IDS)}"
        )

    def listen_for_errors(self, listener: ErrorListener) -> None:
        """Call ``listener`` on every server error answer (not a throttle) to this client's
        requests before botocore retries it (in this thread or s3transfer's); what it raises
        ends the request."""

        def on_answer(response: Any = None, request_dict: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
            if response is None:
                return  # no answer (a connection error): not the server's
            http_response, parsed = response
            status = int(getattr(http_response, "status_code", 0) or 0)
            if status < 300:
                return
            details = (parsed or {}).get("Error", {})
            signature = answer_signature(status, str(details.get("Code", "")), str(details.get("Message", "")))
            if signature is not None:
                listener(signature, unquote(urlsplit(str((request_dict or {}).get("url", ""))).path).lstrip("/"))

        self.client.meta.events.register_first(
            "needs-retry.s3", on_answer, unique_id=f"s3sync-errors-{next(_LISTENER_IDS)}"
        )

    # ------------------------------------------------------------ listings
    def list_entries(self, *, bucket: str, prefix: str, key_range: KeyRange | None = None) -> Iterator[Entry]:
        """Yield the objects under ``prefix`` as entries keyed relative to it, page by page.

        Zero-byte keys ending in ``/`` (directory markers) are left out, as ``aws s3 sync``
        does. The listing is a generator: memory does not grow with the number of keys.
        With ``key_range`` on a server that lists in S3's order (:attr:`listing_order`) it
        starts after ``start_after`` (``StartAfter``) and stops after ``end``: one shard's
        listing costs that shard's pages only. On any other server ``StartAfter`` may follow
        the server's own order, so the prefix is read to its end and the range's keys kept.
        """
        if key_range is not None and key_range.is_full:
            key_range = None  # no per-key checks for the whole keyspace
        if key_range is not None and self.listing_order is not ListingOrder.S3:
            yield from key_range.select(self.list_entries(bucket=bucket, prefix=prefix))
            return
        start_after = key_range.start_after if key_range is not None else None
        for page in self._pages(bucket, prefix, start_after):
            for index, (relative, size, mtime, etag, storage_class) in enumerate(page):
                if key_range is not None:
                    if key_range.past_end(relative):
                        check_rest_of_page([item[0] for item in page[index:]], key_range)
                        return
                    if relative not in key_range:  # a server that ignores StartAfter
                        continue
                if size == 0 and relative.endswith("/"):
                    continue
                yield Entry(relative, size, mtime, etag, storage_class)

    def list_after(self, *, bucket: str, prefix: str, start_after: str | None = None) -> Iterator[Entry]:
        """Every object under ``prefix`` after ``start_after`` (``StartAfter``; keys relative
        to ``prefix``), in the server's order, directory markers included: one key range's
        share of a parallel listing, which checks the order itself
        (:mod:`airflow_s3sync.plan.ranged_read`)."""
        for page in self._pages(bucket, prefix, start_after):
            for row in page:
                yield Entry(*row)

    def _pages(self, bucket: str, prefix: str, start_after: str | None) -> Iterator[list[Listed]]:
        """The ListObjectsV2 pages under ``prefix`` after ``start_after``, keys relative to it."""
        paginator = self.client.get_paginator("list_objects_v2")
        args: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "PaginationConfig": {"PageSize": self.page_size}}
        if start_after is not None:
            args["StartAfter"] = prefix + start_after
        start = len(prefix)
        for listed in fast_pages(paginator.paginate(**args)):
            for key, *_ in listed:
                if not key.startswith(prefix):
                    raise S3SyncError(f"listing of s3://{bucket}/{prefix} returned the foreign key {key!r}")
            yield [(key[start:], *rest) for key, *rest in listed] if start else listed

    def list_page(self, *, bucket: str, prefix: str, start_after: str | None = None) -> tuple[list[str], bool]:
        """One ListObjectsV2 page under ``prefix``: the keys (relative to it) after
        ``start_after`` (relative too), and whether more follow. Directory markers are kept:
        this samples the keyspace, it does not decide what to copy."""
        args: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": self.page_size}
        if start_after is not None:
            args["StartAfter"] = prefix + start_after
        listed, response = fast_page(lambda: self.client.list_objects_v2(**args))
        keys = [item[0][len(prefix) :] for item in listed]
        if start_after is not None:
            keys = [key for key in keys if key > start_after]
        return keys, bool(response.get("IsTruncated"))

    # ------------------------------------------------------------ lookups
    def head_object(self, *, ref: ObjectRef, etag: str | None = None) -> ObjectHead:
        """HeadObject; with ``etag`` conditional on it (``If-Match``): an object replaced since
        it was listed fails."""
        return head_of(self.client.head_object(**_conditional(ref, etag)))

    def lookup(self, *, ref: ObjectRef, key: str) -> Entry | None:
        """What a listing would say of ``ref`` (as the entry of the compare key ``key``), from
        one HeadObject: ``None`` when there is no such object, or it is a directory marker
        (zero bytes, a key ending in ``/``), which listings leave out too."""
        response = self._head_if_there(ref)
        if response is None:
            return None
        size = int(response["ContentLength"])
        if size == 0 and ref.key.endswith("/"):
            return None
        # HeadObject names the storage class only when it is not STANDARD; listings always do.
        storage_class = response.get("StorageClass", "STANDARD")
        return Entry(key, size, response["LastModified"], response.get("ETag"), storage_class)

    def digests(self, *, ref: ObjectRef, read_args: Mapping[str, Any] | None = None) -> Digests:
        """What one HeadObject (with ``ChecksumMode``, and ``read_args`` such as SSE-C keys) tells
        of an object's content: an MD5 ETag, a multipart ETag, full-object checksums (see
        :meth:`with_part_size` for the part size)."""
        response = self.client.head_object(
            Bucket=ref.bucket, Key=ref.key, ChecksumMode="ENABLED", **dict(read_args or {})
        )
        md5, composite = parse_etag(response.get("ETag"), md5_etag_possible=etag_may_be_md5(response))
        checksums = {}
        if composite is None or response.get("ChecksumType") == "FULL_OBJECT":
            for algorithm in CHECKSUM_ALGORITHMS:
                value = response.get(f"Checksum{algorithm}")
                if value and "-" not in value:
                    checksums[algorithm] = value
        recorded = recorded_md5(response.get("Metadata")) if md5 is None else None
        return Digests(int(response["ContentLength"]), md5, composite, None, checksums, recorded_md5=recorded)

    def with_part_size(self, *, ref: ObjectRef, digests: Digests) -> Digests:
        """``digests`` with the part size of its multipart ETag, from a HeadObject of part 1
        (unchanged when the server does not tell, or there are no parts)."""
        if digests.multipart_etag is None or digests.part_size is not None:
            return digests
        part = self.client.head_object(Bucket=ref.bucket, Key=ref.key, PartNumber=1)
        if part.get("PartsCount") != digests.parts:
            return digests
        return replace(digests, part_size=int(part["ContentLength"]))

    # ------------------------------------------------------------ Object Lock and tags
    def lock_state(self, *, ref: ObjectRef, read_args: Mapping[str, Any] | None = None) -> LockState | None:
        """The current version's retention, legal hold and version id (one HeadObject, with
        ``read_args`` such as SSE-C keys), or ``None`` when the object does not exist."""
        response = self._head_if_there(ref, read_args)
        return None if response is None else LockState.from_head(response)

    def _head_if_there(self, ref: ObjectRef, read_args: Mapping[str, Any] | None = None) -> Mapping[str, Any] | None:
        """HeadObject's answer (with ``read_args``), or ``None`` when the object is not there."""
        try:
            return self.client.head_object(Bucket=ref.bucket, Key=ref.key, **dict(read_args or {}))
        except ClientError as error:
            if str(error.response.get("Error", {}).get("Code", "")) in _MISSING_CODES:
                return None
            raise

    def put_retention(
        self, *, ref: ObjectRef, retention: Retention, version_id: str | None, bypass_governance: bool = False
    ) -> None:
        """Set ``retention`` on the version ``version_id`` of ``ref`` (PutObjectRetention)."""
        args: dict[str, Any] = {
            "Bucket": ref.bucket,
            "Key": ref.key,
            "Retention": {"Mode": retention.mode.value, "RetainUntilDate": retention.until},
        }
        if version_id is not None:
            args["VersionId"] = version_id
        if bypass_governance:
            args["BypassGovernanceRetention"] = True
        self.client.put_object_retention(**args)

    def put_legal_hold(self, *, ref: ObjectRef, on: bool, version_id: str | None) -> None:
        """Turn the legal hold of the version ``version_id`` of ``ref`` ON or OFF (PutObjectLegalHold)."""
        args: dict[str, Any] = {"Bucket": ref.bucket, "Key": ref.key, "LegalHold": {"Status": "ON" if on else "OFF"}}
        if version_id is not None:
            args["VersionId"] = version_id
        self.client.put_object_legal_hold(**args)

    def object_tags(self, *, ref: ObjectRef) -> list[dict[str, str]]:
        """The object's tags (GetObjectTagging): ``[{"Key": ..., "Value": ...}]``."""
        return list(self.client.get_object_tagging(Bucket=ref.bucket, Key=ref.key).get("TagSet", []))

    def put_tags(self, *, ref: ObjectRef, tags: list[dict[str, str]]) -> None:
        """Replace the object's tags (PutObjectTagging)."""
        self.client.put_object_tagging(Bucket=ref.bucket, Key=ref.key, Tagging={"TagSet": tags})

    # ------------------------------------------------------------ transfers
    @property
    def transfer_manager(self) -> TransferManager:
        """The s3transfer manager all multipart transfers of this backend share, made by the
        first worker that needs one (under a lock: one manager, one set of threads).

        A closed backend has none: starting a transfer on it raises.
        """
        with self._manager_lock:
            if self._closed:
                raise S3SyncError(f"the backend of {self._description} is closed: no new transfers")
            if self._manager is None:
                self._manager = TransferManager(self.client, self.transfer_config)
                if self._throttle is not None:
                    self._meter(self._manager)
            return self._manager

    def limit_bandwidth(self, throttle: Throttle) -> None:
        """Draw every byte this backend moves through the worker from ``throttle``: the parts
        s3transfer reads and writes, and its own PutObjects and unchecked reads."""
        with self._manager_lock:
            self._throttle = throttle
            if self._manager is not None:
                self._meter(self._manager)

    def _meter(self, manager: TransferManager) -> None:
        # s3transfer meters the bodies of its uploads and downloads through a BandwidthLimiter,
        # which it builds only from its own max_bandwidth, with a bucket of its own per manager:
        # given the run's throttle instead, every manager of the run draws from one bucket.
        manager._bandwidth_limiter = BandwidthLimiter(self._throttle)

    def part_size_for(self, size: int) -> int | None:
        """The part size a write of ``size`` bytes uses, or ``None`` below the multipart
        threshold (s3transfer's own rule, so computed ETags match)."""
        if size < self.transfer_config.multipart_threshold:
            return None
        return ChunksizeAdjuster().adjust_chunksize(self.transfer_config.multipart_chunksize, size)

    def _run(self, future: TransferFuture) -> None:
        try:
            future.result()
        except KeyError as error:
            if error.args == ("ETag",):  # s3transfer reads each part's ETag from the answer
                raise S3SyncError(
                    f"the server at {self._description} answered a multipart request without the "
                    "part's ETag: it does not support this kind of multipart transfer (for server-side copies, "
                    "raise copy_cutoff, up to 5 GiB, so objects are copied with one CopyObject)"
                ) from error
            raise

    def _take(self, amount: int) -> None:
        if self._throttle is not None:
            self._throttle.take(amount)

    def upload_file(
        self, *, path: str, dest: ObjectRef, size: int, extra_args: Mapping[str, Any], progress: Progress
    ) -> Written:
        """Upload the file ``path`` to ``dest`` (in parts above the multipart threshold).
        ``ContentType`` is guessed from the file name unless ``extra_args`` sets it."""
        args = dict(extra_args)
        if "ContentType" not in args:
            guessed, _ = mimetypes.guess_type(path)
            if guessed:
                args["ContentType"] = guessed
        future = self.transfer_manager.upload(
            path, dest.bucket, dest.key, extra_args=args, subscribers=[_Subscriber(progress, size)]
        )
        self._run(future)
        return Written(size)

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
        """Download ``source`` to ``path``; parts are read conditionally on ``etag``.

        The data is written to a temporary file beside ``path`` (``.NAME.XXXXXXXX.s3sync``, which
        walks never list, see :class:`~airflow_s3sync.hooks.local.AtomicFile`) and renamed over it
        only when complete, so a failed or killed download never leaves a partial file under the
        final name, nor one a later sync could take for data.
        """
        reported = 0

        def counted(amount: int) -> None:
            nonlocal reported
            reported += amount
            progress(amount)

        try:
            with AtomicFile(path) as temp:
                future = self.transfer_manager.download(
                    source.bucket,
                    source.key,
                    temp.file,
                    extra_args=dict(extra_args),
                    subscribers=[_Subscriber(counted, size, etag)],
                )
                self._run(future)
                temp.commit()
        except FlexibleChecksumError as error:
            _, reader = self._read_unchecked(source, etag, extra_args, error)
            progress(-reported)
            with AtomicFile(path) as temp, reader:
                while chunk := reader.read(_UNCHECKED_CHUNK):
                    self._take(len(chunk))
                    temp.file.write(chunk)
                    progress(len(chunk))
                temp.commit()
        return Written(size, etag=etag)

    def _read_unchecked(
        self, source: ObjectRef, etag: str | None, read_args: Mapping[str, Any], error: FlexibleChecksumError
    ) -> tuple[Mapping[str, Any], unchecked.VerifyingReader]:
        """GetObject of ``source`` (conditional on ``etag``) without botocore's response checksum
        check, which rejected it (``error``), its bytes verified by the object's MD5 or multipart
        ETag instead; ``error`` again when the ETag cannot tell (see :mod:`.unchecked`)."""
        args = {name: value for name, value in read_args.items() if name.startswith("SSECustomer")}
        expected = self.digests(ref=source, read_args=args)
        if expected.multipart_etag is not None:
            expected = self.with_part_size(ref=source, digests=expected)
        if not unchecked.verifiable(expected):
            raise error
        log.warning(
            "%s: the server's checksum header does not match the bytes (%s); reading it again without "
            "that check, verified by its ETag",
            source,
            error,
        )
        with unchecked.without_response_checksum():
            response = self.client.get_object(**_conditional(source, etag), **dict(read_args))
        return response, unchecked.VerifyingReader(response["Body"], expected, str(source))

    def copy_object(
        self, *, source: ObjectRef, dest: ObjectRef, size: int, extra_args: Mapping[str, Any], progress: Progress
    ) -> Written:
        """One CopyObject (up to 5 GiB, as rclone and s5cmd do). No ACL is sent unless
        ``extra_args`` names one (unlike ``S3Hook.copy_object``)."""
        response = self.client.copy_object(
            CopySource={"Bucket": source.bucket, "Key": source.key}, Bucket=dest.bucket, Key=dest.key, **extra_args
        )
        progress(size)
        etag = response.get("CopyObjectResult", {}).get("ETag")
        return Written(size, etag=etag, md5_etag_possible=etag_may_be_md5(response))

    def copy_in_parts(
        self,
        *,
        source: ObjectRef,
        dest: ObjectRef,
        size: int,
        source_backend: Backend,
        extra_args: Mapping[str, Any],
        progress: Progress,
    ) -> Written:
        """UploadPartCopy parts from the multipart threshold on; s3transfer reads the source's
        properties (Content-Type, Metadata, ...) with a HeadObject and carries them over."""
        source_client = source_backend.client if isinstance(source_backend, BotocoreBackend) else self.client
        future = self.transfer_manager.copy(
            {"Bucket": source.bucket, "Key": source.key},
            dest.bucket,
            dest.key,
            extra_args=dict(extra_args),
            subscribers=[_Subscriber(progress, None)],
            source_client=source_client,
        )
        self._run(future)
        return Written(size)

    def read_object(self, *, source: ObjectRef, etag: str | None) -> ObjectData:
        """One GetObject (conditional on ``etag``) read whole: properties and data."""
        try:
            response = self.client.get_object(**_conditional(source, etag))
            body = response["Body"]  # not `with`: that gives the raw stream, past botocore's checks
            try:
                data = body.read()
            finally:
                body.close()
        except FlexibleChecksumError as error:
            response, reader = self._read_unchecked(source, etag, {}, error)
            with reader:
                data = reader.read()
        return ObjectData(head_of(response), data)

    def open_object(self, *, source: ObjectRef, etag: str | None) -> tuple[ObjectHead, LazyBody]:
        """HeadObject (conditional on ``etag``), and the data as a file object whose GetObject,
        conditional on the ETag the head saw, is sent on the first read."""
        head = self.head_object(ref=source, etag=etag)
        conditional = _conditional(source, head.etag)
        rejected = self._mislabelled.get((source.bucket, source.key, head.etag))
        if rejected is not None:
            return head, LazyBody(lambda: self._read_unchecked(source, head.etag, {}, rejected)[1])

        def checked_body() -> Any:
            return _MislabelGuard(self.client.get_object(**conditional)["Body"], self._mislabel, source, head.etag)

        return head, LazyBody(checked_body)

    def _mislabel(self, source: ObjectRef, etag: str | None, error: FlexibleChecksumError) -> None:
        """Remember that botocore rejected the checksum of ``source`` as it is (``etag``): the
        next read of it goes without that check (the first one failed after streaming on)."""
        with self._mislabelled_lock:
            if len(self._mislabelled) >= _MISLABELLED_KEPT:
                self._mislabelled.clear()
            self._mislabelled[(source.bucket, source.key, etag)] = error

    def write_object(
        self, *, dest: ObjectRef, data: bytes, extra_args: Mapping[str, Any], progress: Progress
    ) -> Written:
        """PutObject of ``data``."""
        self._take(len(data))
        response = self.client.put_object(Bucket=dest.bucket, Key=dest.key, Body=data, **extra_args)
        progress(len(data))
        return Written(len(data), etag=response.get("ETag"), md5_etag_possible=etag_may_be_md5(response))

    def write_stream(
        self, *, dest: ObjectRef, stream: Any, size: int, extra_args: Mapping[str, Any], progress: Progress
    ) -> Written:
        """Upload what ``stream`` (a file object read once, front to back) yields: PutObject
        below the multipart threshold, parts above it, with at most
        ``max_in_memory_upload_chunks`` parts queued in memory and nothing on disk. The answer's
        ETag and encryption come back in the :class:`Written`."""
        target = (dest.bucket, dest.key)
        with self._written_lock:
            self._written[target] = None  # awaited: only awaited answers are recorded
        try:
            future = self.transfer_manager.upload(
                stream, dest.bucket, dest.key, extra_args=dict(extra_args), subscribers=[_Subscriber(progress, size)]
            )
            self._run(future)
        finally:
            with self._written_lock:
                answer = self._written.pop(target, None)
        if answer is None:
            return Written(size)
        return Written(size, etag=answer.get("ETag"), md5_etag_possible=etag_may_be_md5(answer))

    def put_stream(
        self, *, dest: ObjectRef, stream: Any, size: int, md5: str, extra_args: Mapping[str, Any], progress: Progress
    ) -> Written:
        """One PutObject of the ``size`` bytes ``stream`` yields, sent as they are read (nothing
        held in memory, nothing hashed here), with ``Content-MD5`` from ``md5``: a server that
        checks it refuses other bytes (``BadDigest``; moto does not check). A request botocore
        would retry cannot resend its body: it fails with a transient error naming what failed,
        and the job reads the source again."""
        body = _OnePutBody(stream, self._take, progress, self._stopping)
        args = {name: value for name, value in extra_args.items() if name not in _MULTIPART_ONLY_ARGS}
        try:
            response = self.client.put_object(
                Bucket=dest.bucket, Key=dest.key, Body=body, ContentLength=size, ContentMD5=base64_md5(md5), **args
            )
        except UnseekableStreamError as error:
            status, code, message = body.failure
            raise S3RequestError(
                "PutObject", status, code, f"{message} (a streamed body is not sent again)".lstrip()
            ) from error
        return Written(size, etag=response.get("ETag"), md5_etag_possible=etag_may_be_md5(response))

    def _one_put_request(self, params: Mapping[str, Any], context: dict[str, Any], **kwargs: Any) -> None:
        if isinstance(params.get("Body"), _OnePutBody):
            context["client_config"] = self._one_put_config

    def _record_written(self, parsed: Mapping[str, Any], context: Mapping[str, Any], **kwargs: Any) -> None:
        target = context.get(_TARGET)
        if target is None or "ETag" not in parsed:
            return
        answer = {name: parsed[name] for name in _WRITE_ANSWER if name in parsed}
        with self._written_lock:
            if target in self._written:  # a write_stream waits for it (other writes answer directly)
                self._written[target] = answer

    # ------------------------------------------------------------ deletes and housekeeping
    def delete_keys(self, *, bucket: str, keys: Iterable[str]) -> Iterator[tuple[str, str | None]]:
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
                response = self.client.delete_objects(
                    Bucket=bucket, Delete={"Objects": [{"Key": key} for key in batch], "Quiet": False}
                )
            except (ClientError, BotoCoreError) as error:
                log.warning("DeleteObjects failed (%s); deleting these %d keys one by one", error, len(batch))
                yield from self._delete_one_by_one(bucket, batch)
                continue
            for deleted in response.get("Deleted", ()):
                yield deleted["Key"], None
            for failed in response.get("Errors", ()):
                yield failed["Key"], f"{failed.get('Code')}: {failed.get('Message')}"

    def _delete_one_by_one(self, bucket: str, keys: list[str]) -> Iterator[tuple[str, str | None]]:
        for key in keys:
            try:
                self.client.delete_object(Bucket=bucket, Key=key)
            except (ClientError, BotoCoreError) as error:
                yield key, str(error)
            else:
                yield key, None

    def incomplete_uploads(self, *, bucket: str, prefix: str) -> Iterator[IncompleteUpload]:
        """The multipart uploads under ``prefix`` that were started and never completed nor
        aborted (ListMultipartUploads, page by page); keys relative to ``prefix``."""
        paginator = self.client.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for upload in page.get("Uploads", ()):
                key = upload["Key"]
                if key.startswith(prefix):
                    yield IncompleteUpload(key[len(prefix) :], upload["UploadId"], upload["Initiated"])

    def abort_upload(self, *, ref: ObjectRef, upload_id: str) -> None:
        """Abort one multipart upload, freeing its parts (AbortMultipartUpload)."""
        self.client.abort_multipart_upload(Bucket=ref.bucket, Key=ref.key, UploadId=upload_id)

    def close(self, *, cancel: bool = False) -> None:
        """Shut the transfer manager down: wait for what is still running, or cancel it.

        No transfer can start afterwards; listings and deletes still work.
        """
        if cancel:
            self._stopping.set()
        with self._manager_lock:
            self._closed = True
            manager, self._manager = self._manager, None
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
