"""The backend seam: what a sync asks of an S3 client, typed, keyword-only, in project-owned values.

:class:`ObjectBackend` is what every client implements: the calls that move one object's data,
and the :class:`~airflow_s3sync.plan.capabilities.Capabilities` that say which of them it carries
and for which objects. :class:`Backend` is the full backend every S3 side has (botocore and
s3transfer, :mod:`airflow_s3sync.hooks.botocore_backend`): every call, plus listings, lookups, Object
Lock, tags, deletes and multipart housekeeping. The fast clients (:mod:`airflow_s3sync.hooks.native`,
obstore; :mod:`airflow_s3sync.hooks.crt`, the AWS Common Runtime) carry the hot path where their
capabilities allow; routing (:mod:`airflow_s3sync.plan.route`) decides, reading capabilities only.
Objects are addressed as one :class:`ObjectRef`; nothing here returns a botocore response.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple, Protocol

from airflow_s3sync.errors import S3RequestError, S3SyncError
from airflow_s3sync.hooks.throttle import Throttle
from airflow_s3sync.plan.capabilities import Capabilities
from airflow_s3sync.plan.checksum import Digests
from airflow_s3sync.plan.entries import Entry
from airflow_s3sync.plan.key_range import KeyRange
from airflow_s3sync.plan.lock import LockState, Retention

#: Called with a number of bytes just transferred (negative when a retry starts over).
Progress = Callable[[int], None]


class ListingOrder(StrEnum):
    """What a server's listings can be trusted with (the connection extra ``listing_order``)."""

    #: Listed in S3's byte order, ``StartAfter`` included (AWS, and any endpoint declared so):
    #: a key range's listing starts after its first key and stops past its last.
    S3 = "s3"
    #: Not known (the default for an endpoint of one's own): a key range's listing reads the
    #: prefix to its end; every listing is checked and, found out of order, sorted.
    CHECK = "check"
    #: Known to list in an order of its own: every listing is read whole and sorted.
    OWN = "own"


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """One S3 object, addressed as one value: its bucket (or access point ARN) and key."""

    bucket: str
    key: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass(frozen=True, slots=True)
class Written:
    """What a backend call wrote (or, for a download, read).

    :param size: bytes transferred.
    :param etag: the ETag the server answered, when it did.
    :param md5_etag_possible: whether that ETag can be an MD5 (not with SSE-KMS or SSE-C);
        ``None`` when the answer does not say (then a check of it asks the server again).
    """

    size: int
    etag: str | None = None
    md5_etag_possible: bool | None = None


@dataclass(frozen=True, slots=True)
class ObjectHead:
    """What a HeadObject or GetObject tells of an object.

    :param size: its size.
    :param etag: its ETag.
    :param md5_etag_possible: whether the ETag can be an MD5 (not with SSE-KMS or SSE-C).
    :param properties: its properties as botocore names them (``ContentType``, ``Expires``,
        ``Metadata``, ...), only those it has.
    :param lock: its retention, legal hold and version id.
    """

    size: int
    etag: str | None
    md5_etag_possible: bool
    properties: Mapping[str, Any] = field(default_factory=dict)
    lock: LockState = field(default_factory=LockState)


@dataclass(frozen=True, slots=True)
class ObjectData:
    """An object read whole: what the read told of it, and its bytes."""

    head: ObjectHead
    data: bytes


@dataclass(frozen=True, slots=True)
class Credentials:
    """One set of credentials, as of now (the secret never shows in a repr)."""

    access_key: str
    secret_key: str = field(repr=False)
    token: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """Plain settings a fast client is built from, resolved from an Airflow connection by the hook.

    :param endpoint_url: botocore's resolved endpoint (path-style requests go there).
    :param region: the signing region.
    :param credentials: returns the credentials as of now (called again as they may expire).
    :param max_attempts: attempts per request (retries of 5xx, SlowDown, dropped connections).
    :param max_in_flight: requests in flight at most.
    :param verify_tls: check the server's certificate.
    """

    endpoint_url: str
    region: str
    credentials: Callable[[], Credentials] = field(repr=False)
    max_attempts: int = 10
    max_in_flight: int = 16
    verify_tls: bool = True


class IncompleteUpload(NamedTuple):
    """A multipart upload that was started and neither completed nor aborted."""

    key: str
    upload_id: str
    initiated: datetime


class ObjectBackend(Protocol):
    """One S3 client's data calls. Each blocks until done and raises on failure; the job runner
    supplies the concurrency. A backend is only asked what its :attr:`capabilities` carry."""

    capabilities: Capabilities

    def upload_file(
        self, *, path: str, dest: ObjectRef, size: int, extra_args: Mapping[str, Any], progress: Progress
    ) -> Written:
        """Write the local file ``path`` to ``dest`` (Content-Type guessed from its name unless given)."""
        ...

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
        """Read ``source`` (conditional on ``etag``) into ``path``, atomically."""
        ...

    def copy_object(
        self, *, source: ObjectRef, dest: ObjectRef, size: int, extra_args: Mapping[str, Any], progress: Progress
    ) -> Written:
        """One server-side CopyObject of ``source`` to ``dest`` (properties and tags go with it)."""
        ...

    def read_object(self, *, source: ObjectRef, etag: str | None) -> ObjectData:
        """GetObject of the whole object into memory, conditional on ``etag``."""
        ...

    def write_object(
        self, *, dest: ObjectRef, data: bytes, extra_args: Mapping[str, Any], progress: Progress
    ) -> Written:
        """PutObject of ``data`` with ``extra_args`` (properties, lock, tags, ...)."""
        ...

    def listen_for_slowdowns(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` on every SlowDown answer, also those the client retries by itself."""
        ...

    def listen_for_errors(self, listener: ErrorListener) -> None:
        """Call ``listener`` before retrying a request the server answered with an error (not a
        throttle); an error it raises ends the request."""
        ...

    def limit_bandwidth(self, throttle: Throttle) -> None:
        """Draw every byte this backend moves through the worker from ``throttle``
        (``max_bandwidth``); a server-side copy moves none."""
        ...

    def close(self, *, cancel: bool = False) -> None:
        """Finish (or, with ``cancel``, abandon) what is in flight; no new call starts."""
        ...


class NotCarried:
    """A base for fast backends: every data call they do not carry raises. Routing never makes
    such a call (their capabilities say so); the error names the backend if a bug ever does."""

    capabilities: Capabilities
    _throttle: Throttle | None = None

    def limit_bandwidth(self, throttle: Throttle) -> None:
        """Take the bytes of each whole-object upload, download or write from ``throttle``
        before the request (these clients move small objects in one request each)."""
        self._throttle = throttle

    def _take(self, amount: int) -> None:
        if self._throttle is not None:
            self._throttle.take(amount)

    def _not_carried(self, call: str) -> NotImplementedError:
        return NotImplementedError(f"the {self.capabilities.name} backend does not carry {call}")

    def upload_file(self, **kwargs: Any) -> Written:
        """Not carried."""
        raise self._not_carried("upload_file")

    def download_file(self, **kwargs: Any) -> Written:
        """Not carried."""
        raise self._not_carried("download_file")

    def copy_object(self, **kwargs: Any) -> Written:
        """Not carried."""
        raise self._not_carried("copy_object")

    def read_object(self, **kwargs: Any) -> ObjectData:
        """Not carried."""
        raise self._not_carried("read_object")

    def write_object(self, **kwargs: Any) -> Written:
        """Not carried."""
        raise self._not_carried("write_object")

    def listen_for_slowdowns(self, listener: Callable[[], None]) -> None:
        """A client that tells nobody of the SlowDowns it retries: one it gives up on fails the
        job, and the job runner hears it then (:func:`is_throttle`)."""

    def listen_for_errors(self, listener: ErrorListener) -> None:
        """A client that retries on its own, unheard: its errors reach the job runner once it
        gives up."""

    def close(self, *, cancel: bool = False) -> None:
        """Nothing to finish: every call blocks until done."""


class Backend(ObjectBackend, Protocol):
    """The full backend of an S3 side: every call a sync and a retention run make."""

    @property
    def multipart_threshold(self) -> int:
        """The size from which writes go in parts."""
        ...

    def describe(self) -> str:
        """Where requests go, for error messages (never credentials)."""
        ...

    def same_service_as(self, other: Backend) -> bool:
        """Whether one of the two can copy server-side between their buckets."""
        ...

    def check_access(self, *, bucket: str, prefix: str) -> None:
        """Raise a clear error unless ``bucket`` exists and ``prefix`` may be listed."""
        ...

    def check_object_lock(self, *, bucket: str) -> None:
        """Raise a clear error unless ``bucket`` has Object Lock enabled."""
        ...

    @property
    def listing_order(self) -> ListingOrder:
        """What this server's listings can be trusted with."""
        ...

    def list_entries(self, *, bucket: str, prefix: str, key_range: KeyRange | None = None) -> Iterator[Entry]:
        """The objects under ``prefix`` (in ``key_range``), keyed relative to it, in the
        server's order (S3's, unless :attr:`listing_order` says otherwise)."""
        ...

    def list_after(self, *, bucket: str, prefix: str, start_after: str | None = None) -> Iterator[Entry]:
        """Every object under ``prefix`` after ``start_after`` (keys relative to it), in the
        server's order, directory markers included: one key range of a parallel listing."""
        ...

    def list_page(self, *, bucket: str, prefix: str, start_after: str | None = None) -> tuple[list[str], bool]:
        """One listing page's keys (relative to ``prefix``) after ``start_after``, and whether more follow."""
        ...

    def head_object(self, *, ref: ObjectRef, etag: str | None = None) -> ObjectHead:
        """HeadObject, conditional on ``etag``."""
        ...

    def lookup(self, *, ref: ObjectRef, key: str) -> Entry | None:
        """What a listing would say of ``ref`` (as the entry of the compare key ``key``), from a
        HeadObject: ``None`` when there is no such object, or it is a directory marker."""
        ...

    def open_object(self, *, source: ObjectRef, etag: str | None) -> tuple[ObjectHead, Any]:
        """What a HeadObject tells, and a read-once file object whose GetObject (conditional on
        the ETag) opens on the first read."""
        ...

    def write_stream(
        self, *, dest: ObjectRef, stream: Any, size: int, extra_args: Mapping[str, Any], progress: Progress
    ) -> Written:
        """Write what ``stream`` yields (read once, front to back; parts above the threshold)."""
        ...

    #: The largest object :meth:`put_stream` writes (0: it writes none).
    one_put_max: int

    def put_stream(
        self, *, dest: ObjectRef, stream: Any, size: int, md5: str, extra_args: Mapping[str, Any], progress: Progress
    ) -> Written:
        """Write the ``size`` bytes ``stream`` yields by one PutObject, sent as they are read,
        with ``Content-MD5`` from ``md5`` (hex), so a server that checks it refuses other bytes."""
        ...

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
        """A server-side multipart copy (UploadPartCopy)."""
        ...

    def part_size_for(self, size: int) -> int | None:
        """The part size a write of ``size`` bytes uses (``None`` below the threshold)."""
        ...

    def digests(self, *, ref: ObjectRef, read_args: Mapping[str, Any] | None = None) -> Digests:
        """What a HeadObject tells of the content: MD5 or multipart ETag, full-object checksums."""
        ...

    def with_part_size(self, *, ref: ObjectRef, digests: Digests) -> Digests:
        """``digests`` with the part size of its multipart ETag, when the server tells."""
        ...

    def lock_state(self, *, ref: ObjectRef, read_args: Mapping[str, Any] | None = None) -> LockState | None:
        """The current version's retention and legal hold, or ``None`` when it does not exist."""
        ...

    def put_retention(
        self, *, ref: ObjectRef, retention: Retention, version_id: str | None, bypass_governance: bool = False
    ) -> None:
        """PutObjectRetention."""
        ...

    def put_legal_hold(self, *, ref: ObjectRef, on: bool, version_id: str | None) -> None:
        """PutObjectLegalHold."""
        ...

    def object_tags(self, *, ref: ObjectRef) -> list[dict[str, str]]:
        """GetObjectTagging."""
        ...

    def put_tags(self, *, ref: ObjectRef, tags: list[dict[str, str]]) -> None:
        """PutObjectTagging."""
        ...

    def delete_keys(self, *, bucket: str, keys: Iterable[str]) -> Iterator[tuple[str, str | None]]:
        """Delete ``keys``; yield ``(key, error or None)`` for each."""
        ...

    def incomplete_uploads(self, *, bucket: str, prefix: str) -> Iterator[IncompleteUpload]:
        """The multipart uploads under ``prefix`` never completed nor aborted (keys relative to it)."""
        ...

    def abort_upload(self, *, ref: ObjectRef, upload_id: str) -> None:
        """AbortMultipartUpload."""
        ...


_TRANSIENT_CODES = frozenset(
    {"InternalError", "RequestTimeout", "ServiceUnavailable", "SlowDown", "Throttling", "ThrottlingException"}
)


def answer_of(error: BaseException) -> tuple[int, str, str] | None:
    """The HTTP status (0 when no answer came), S3 error code and message of the server answer
    behind ``error``: a botocore ``ClientError`` or an :class:`S3RequestError`; ``None`` for any
    other error."""
    from botocore.exceptions import ClientError

    if isinstance(error, S3RequestError):
        return error.status, error.code, error.message
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        return status, str(details.get("Code", "")), str(details.get("Message", ""))
    return None


def is_transient(error: BaseException) -> bool:
    """Whether another attempt may succeed: connection errors, 5xx answers, SlowDown, bodies
    cut short, timeouts. Never for 403, 404, a failed precondition or a verification mismatch."""
    from botocore.exceptions import ConnectionError as BotocoreConnectionError
    from botocore.exceptions import HTTPClientError, IncompleteReadError, ResponseStreamingError
    from s3transfer.exceptions import RetriesExceededError
    from urllib3.exceptions import HTTPError as Urllib3Error

    if isinstance(error, RetryUnchecked):
        return True
    if isinstance(error, S3RequestError):
        return error.status == 0 or error.status >= 500 or error.code in _TRANSIENT_CODES
    answer = answer_of(error)
    if answer is not None:  # botocore's ClientError
        status, code, _ = answer
        return status >= 500 or code in _TRANSIENT_CODES
    if isinstance(
        error,
        BotocoreConnectionError
        | HTTPClientError
        | ResponseStreamingError
        | IncompleteReadError
        | RetriesExceededError
        | Urllib3Error
        | ConnectionError
        | TimeoutError,
    ):
        return True
    try:
        from obstore.exceptions import GenericError
    except ImportError:  # pragma: no cover - obstore is a dependency
        return False
    return isinstance(error, GenericError)


#: Error codes that ask the client to send fewer requests.
THROTTLE_CODES = frozenset(
    {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequests", "RequestThrottled"}
)


def is_throttle(error: BaseException) -> bool:
    """Whether ``error`` says the server is overloaded by requests (S3's ``503 SlowDown``, a 429):
    then fewer objects should be in flight, not only retried later."""
    answer = answer_of(error)
    if answer is not None:
        status, code, _ = answer
        return status == 429 or code in THROTTLE_CODES
    try:
        from obstore.exceptions import GenericError
    except ImportError:  # pragma: no cover - obstore is a dependency
        return False
    # obstore gives up on a SlowDown after its own retries with the answer's text in the message.
    return isinstance(error, GenericError) and any(code in str(error) for code in ("SlowDown", "429 Too Many"))


def is_throttle_answer(response: tuple[Any, Mapping[str, Any]] | None) -> bool:
    """Whether a botocore ``(http_response, parsed)`` answer is a SlowDown (or another throttle)."""
    if response is None:
        return False
    http_response, parsed = response
    code = str((parsed or {}).get("Error", {}).get("Code", ""))
    return code in THROTTLE_CODES or getattr(http_response, "status_code", None) == 429


#: Answers that say something of one object, not of the server: they never make a streak.
_PER_OBJECT_STATUSES = frozenset({404, 409, 412})


def answer_signature(status: int, code: str, message: str) -> str | None:
    """What identifies one server error answer across objects (``500 InternalError: ...``);
    ``None`` for throttles (handled by slowing down) and for answers about one object only."""
    if status == 0 or status in _PER_OBJECT_STATUSES or status == 429 or code in THROTTLE_CODES:
        return None
    return f"{status} {code or 'error'}: {message}".rstrip(": ")


def error_signature(error: BaseException) -> str | None:
    """:func:`answer_signature` of the server answer behind ``error``, if there is one."""
    if isinstance(error, RepeatedError):
        return error.signature
    answer = answer_of(error)
    return None if answer is None else answer_signature(*answer)


class RetryUnchecked(S3SyncError):
    """botocore rejected an object's checksum header after its data had streamed on: the next
    attempt reads it without that check, verified by its ETag (a transient failure)."""


class RepeatedError(Exception):
    """A request given up without retrying: its error has answered many objects in a row.

    :param signature: the error's :func:`answer_signature`.
    """

    def __init__(self, signature: str, message: str) -> None:
        self.signature = signature
        super().__init__(message)


#: Called before a client retries a request the server answered with an error: the answer's
#: :func:`answer_signature` and the object's key; raises :class:`RepeatedError` to give up.
ErrorListener = Callable[[str, str], None]
