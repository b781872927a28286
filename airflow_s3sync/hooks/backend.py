"""The transfer-backend seam: what the job runner asks of an S3 client, in project-owned types.

Two backends implement it: :class:`~airflow_s3sync.hooks.s3.S3SyncHook` (botocore and
s3transfer: every call, every request argument) and
:class:`~airflow_s3sync.hooks.native.NativeBackend` (obstore: single-request uploads and
downloads at a fraction of botocore's CPU per object). Routing (:mod:`airflow_s3sync.plan.route`)
decides which one carries each object.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from airflow_s3sync.plan.entries import Entry
from airflow_s3sync.plan.key_range import KeyRange

#: Called with a number of bytes just transferred (negative when a retry starts over).
Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class Written:
    """What a backend call wrote (or, for a download, read).

    :param size: bytes transferred.
    :param etag: the ETag the server answered, when it did.
    :param answer: other fields of the server's answer (``ServerSideEncryption``, ``VersionId``, ...).
    """

    size: int
    etag: str | None = None
    answer: Mapping[str, Any] = field(default_factory=dict)


class TransferBackend(Protocol):
    """One S3 client behind the calls a sync needs. Every call blocks until done and raises on
    failure; the job runner supplies the concurrency."""

    def iter_entries(self, bucket: str, prefix: str, *, key_range: KeyRange | None = None) -> Iterator[Entry]:
        """The objects under ``prefix`` (in ``key_range``), keyed relative to it, in S3's key order."""
        ...

    def head_object(self, bucket: str, key: str, *, etag: str | None = None) -> dict[str, Any]:
        """HeadObject, conditional on ``etag`` when given."""
        ...

    def upload_file(
        self, path: str, bucket: str, key: str, *, size: int, extra_args: Mapping[str, Any], progress: Progress
    ) -> Written:
        """Write the local file ``path`` to ``bucket``/``key``."""
        ...

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
        """Read ``bucket``/``key`` (conditional on ``etag``) into ``path``, atomically."""
        ...

    def copy_object(
        self,
        source: tuple[str, str],
        bucket: str,
        key: str,
        *,
        size: int,
        in_parts: bool,
        source_backend: TransferBackend,
        extra_args: Mapping[str, Any],
        progress: Progress,
    ) -> Written:
        """Copy server-side: one CopyObject, or UploadPartCopy parts when ``in_parts``."""
        ...

    def upload_stream(
        self, stream: Any, bucket: str, key: str, *, size: int, extra_args: Mapping[str, Any], progress: Progress
    ) -> Written:
        """Write what the file object ``stream`` yields (read once, front to back)."""
        ...

    def delete_keys(self, bucket: str, keys: Iterable[str]) -> Iterator[tuple[str, str | None]]:
        """Delete ``keys``; yield ``(key, error or None)`` for each."""
        ...


_TRANSIENT_CODES = frozenset(
    {"InternalError", "RequestTimeout", "ServiceUnavailable", "SlowDown", "Throttling", "ThrottlingException"}
)


def is_transient(error: BaseException) -> bool:
    """Whether another attempt may succeed: connection errors, 5xx answers, SlowDown, bodies
    cut short, timeouts. Never for 403, 404, a failed precondition or a verification mismatch."""
    from botocore.exceptions import ClientError, HTTPClientError, IncompleteReadError, ResponseStreamingError
    from botocore.exceptions import ConnectionError as BotocoreConnectionError
    from s3transfer.exceptions import RetriesExceededError
    from urllib3.exceptions import HTTPError as Urllib3Error

    if isinstance(error, ClientError):
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        return status >= 500 or str(error.response.get("Error", {}).get("Code", "")) in _TRANSIENT_CODES
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
    from botocore.exceptions import ClientError

    if isinstance(error, ClientError):
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        return status == 429 or str(error.response.get("Error", {}).get("Code", "")) in THROTTLE_CODES
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
