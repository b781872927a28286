"""The AWS Common Runtime backend: a small blocking S3 client for the per-object hot path of replication.

:class:`CrtBackend` carries server-side copies (CopyObject) and the whole reads and writes of small
objects streamed between endpoints, with every property, lock and tag header and any key; its
:data:`CAPABILITIES` say so, and routing sends everything else to the other backends.

``awscrt.s3.S3Client.make_request`` signs (SigV4) and speaks HTTP in C threads that do not hold the
GIL: a request costs ~0.2 ms of client CPU where botocore costs 1.3-1.6 ms
(``shared/research/s3-client-speed.md``). It is a raw HTTP API, so this module builds what botocore
would: the ``Host`` header (a custom endpoint's port is taken from it), the path-style path with
the key percent-encoded per S3, ``x-amz-copy-source``, ``Content-MD5``; and it reads S3's error XML.

Retries are done here, not by the CRT: with its own retry strategy the CRT hides every retried
answer (no throttle signal) and does not retry 429. Each request is made with the CRT's retries off
and tried up to ``max_attempts`` times, with botocore's full-jitter backoff, on 5xx, 429,
``RequestTimeout`` and connections that failed without an answer. The CRT reports 5xx answers only
as a class: 503 (any code) as ``SlowDown``, other 5xx as ``InternalError`` (500), without body.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from http import HTTPStatus
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlsplit

from awscrt import auth, s3
from awscrt import http as crt_http
from awscrt import io as crt_io
from awscrt.exceptions import AwsCrtError

from airflow_s3sync.errors import S3RequestError
from airflow_s3sync.hooks.backend import (
    ClientSettings,
    ErrorListener,
    NotCarried,
    ObjectData,
    ObjectHead,
    ObjectRef,
    Progress,
    Written,
    answer_signature,
)
from airflow_s3sync.plan.capabilities import Capabilities, KeyRule, Operation, bucket_is_plain
from airflow_s3sync.plan.checksum import md5_etag_possible
from airflow_s3sync.plan.lock import LockState

#: Seconds the credentials from :attr:`CrtSettings.credentials` are used before being asked again.
CREDENTIALS_TTL = 300.0
_BACKOFF_BASE, _BACKOFF_MAX = 1.0, 20.0  # botocore's standard retry mode: full jitter, base 1 s, cap 20 s
#: Errors the CRT reports without a status, for answers it classified: (status, S3 code).
_CRT_ANSWERS = {
    "AWS_ERROR_S3_SLOW_DOWN": (503, "SlowDown"),
    "AWS_ERROR_S3_INTERNAL_ERROR": (500, "InternalError"),
    "AWS_ERROR_S3_REQUEST_TIMEOUT": (400, "RequestTimeout"),
}
#: CRT errors of a connection that failed without an answer (refused, reset, closed, timed out).
_CONNECTION_ERRORS = ("AWS_IO_SOCKET_", "AWS_IO_DNS_", "AWS_ERROR_HTTP_")
_ERROR_XML = re.compile(rb"<Error>.*?</Error>", re.DOTALL)


def crt_key_ok(key: str) -> bool:
    """Whether :class:`CrtClient` carries ``key`` byte-exactly: every non-empty key whose text is
    valid UTF-8 (``//``, ``.``/``..`` segments, leading or trailing ``/``, ``?``, ``#``, ``%``,
    spaces and control characters included: the path is sent and signed as encoded, never
    normalized)."""
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates, e.g. from a listing decoded with surrogateescape
        return False
    return key != ""


def crt_bucket_ok(bucket: str) -> bool:
    """Whether :class:`CrtClient` can address ``bucket``: plain bucket names only
    (:func:`~airflow_s3sync.plan.capabilities.bucket_is_plain`)."""
    return bucket_is_plain(bucket)


def encode_key(key: str) -> str:
    """``key`` percent-encoded as S3 signs it: every UTF-8 byte but ``A-Za-z0-9-._~`` and ``/``."""
    return quote(key, safe="/")


@dataclass(frozen=True)
class CrtSettings:
    """Where and as whom :class:`CrtClient` connects.

    :param endpoint_url: botocore's resolved endpoint (``http://127.0.0.1:41234``,
        ``https://s3.eu-west-1.amazonaws.com``); buckets are addressed path style below it.
    :param region: the signing region.
    :param credentials: returns ``(access key, secret key, session token or None)``; called again
        every :data:`CREDENTIALS_TTL` seconds, from a calling thread.
    :param max_attempts: attempts per request (5xx, 429, dropped connections).
    :param max_in_flight: requests in flight at most; callers beyond it wait.
    :param verify_tls: whether an ``https`` endpoint's certificate is verified.
    """

    endpoint_url: str
    region: str
    credentials: Callable[[], tuple[str, str, str | None]]
    max_attempts: int = 10
    max_in_flight: int = 16
    verify_tls: bool = True


@dataclass(frozen=True)
class CrtAnswer:
    """A successful answer: its status, every header (lower-case names) and its body (GetObject's
    data; empty for the other operations)."""

    status: int
    headers: dict[str, str]
    body: bytes


class _Credentials:
    """The settings' credentials, fetched at most every :data:`CREDENTIALS_TTL` seconds."""

    def __init__(self, fetch: Callable[[], tuple[str, str, str | None]]) -> None:
        self._fetch = fetch
        self._lock = threading.Lock()
        self._value: auth.AwsCredentials | None = None
        self._expires = 0.0
        self.secrets: tuple[str, ...] = ()

    def current(self) -> auth.AwsCredentials:
        if self._value is None or time.monotonic() >= self._expires:
            with self._lock:
                if self._value is None or time.monotonic() >= self._expires:
                    access_key, secret_key, token = self._fetch()
                    self._value = auth.AwsCredentials(access_key, secret_key, token)
                    self.secrets = tuple(sorted(filter(None, (access_key, secret_key, token)), key=len, reverse=True))
                    self._expires = time.monotonic() + CREDENTIALS_TTL
        return self._value

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


class CrtClient:
    """Blocking CopyObject, GetObject, PutObject and HeadObject through one ``awscrt`` S3 client;
    thread-safe, at most ``max_in_flight`` requests in flight.

    :param settings: endpoint, region, credentials, limits.
    :param on_throttle: called (in the calling thread) on every 503 or 429 answer, retried or not.
    :param on_error: called (in the calling thread) before retrying another server error
        answer, with its :func:`answer_signature` and the key; what it raises ends the request.
    """

    def __init__(
        self,
        settings: CrtSettings,
        *,
        on_throttle: Callable[[], None] | None = None,
        on_error: ErrorListener | None = None,
    ) -> None:
        parts = urlsplit(settings.endpoint_url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
            raise ValueError(f"the endpoint must be http(s)://HOST[:PORT][/PATH], not {settings.endpoint_url!r}")
        self._settings = settings
        self._host = parts.netloc  # with the port: the CRT connects to the Host header's port
        self._base_path = parts.path.rstrip("/")
        self._on_throttle = on_throttle
        self._on_error = on_error
        self._slots = threading.BoundedSemaphore(settings.max_in_flight)
        self._credentials = _Credentials(settings.credentials)
        provider = auth.AwsCredentialsProvider.new_delegate(self._credentials.current)
        tls: dict[str, object] = {"tls_mode": s3.S3RequestTlsMode.DISABLED}
        if parts.scheme == "https":
            options = crt_io.TlsContextOptions()
            options.verify_peer = settings.verify_tls
            tls = {
                "tls_mode": s3.S3RequestTlsMode.ENABLED,
                "tls_connection_options": crt_io.ClientTlsContext(options).new_connection_options(),
            }
        self._client: s3.S3Client | None = s3.S3Client(
            region=settings.region,
            # S3's signing rules: the path signed as sent, neither normalized nor encoded twice.
            signing_config=s3.create_default_s3_signing_config(region=settings.region, credential_provider=provider),
            retry_config=s3.S3RetryConfig(retry_mode=s3.S3RetryMode.NONE),
            max_active_connections_override=settings.max_in_flight,
            **tls,  # type: ignore[arg-type]
        )

    def copy_object(self, *, source: ObjectRef, dest: ObjectRef, headers: Mapping[str, str]) -> CrtAnswer:
        """CopyObject ``source`` to ``dest`` with ``headers`` (``x-amz-metadata-directive``, ...);
        the ETag of the CopyObjectResult is in ``headers["etag"]``."""
        copy_source = f"/{source.bucket}/{encode_key(source.key)}"
        sent = [*headers.items(), ("x-amz-copy-source", copy_source), ("Content-Length", "0")]
        return self._request("CopyObject", "PUT", dest, sent)

    def get_object(self, *, ref: ObjectRef, if_match: str | None = None) -> CrtAnswer:
        """GetObject of the whole object into memory (for objects up to a few MiB)."""
        return self._request("GetObject", "GET", ref, [("If-Match", if_match)] if if_match else [])

    def put_object(self, *, ref: ObjectRef, body: bytes, headers: Mapping[str, str]) -> CrtAnswer:
        """PutObject of ``body`` with ``headers`` (``Content-Type``, ``x-amz-meta-*``, ...) and a
        ``Content-MD5`` (unless ``headers`` has one): S3 checks the body against it, and requires an
        integrity header where a bucket's default Object Lock retention applies."""
        sent = [*headers.items(), ("Content-Length", str(len(body)))]
        if not any(name.lower() == "content-md5" for name in headers):
            sent.append(("Content-MD5", base64.b64encode(hashlib.md5(body).digest()).decode()))
        return self._request("PutObject", "PUT", ref, sent, body)

    def head_object(self, *, ref: ObjectRef, if_match: str | None = None) -> CrtAnswer:
        """HeadObject, conditional on ``if_match`` when given."""
        return self._request("HeadObject", "HEAD", ref, [("If-Match", if_match)] if if_match else [])

    def close(self) -> None:
        """Release the CRT client: it shuts down (connections closed, threads done) once no request
        is in flight; waits up to 5 s for that."""
        client, self._client = self._client, None
        if client is not None:
            done = client.shutdown_event
            del client
            done.wait(5)

    def __enter__(self) -> CrtClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _request(
        self, operation: str, method: str, ref: ObjectRef, headers: Iterable[tuple[str, str]], body: bytes | None = None
    ) -> CrtAnswer:
        if not crt_bucket_ok(ref.bucket) or not crt_key_ok(ref.key):
            raise ValueError(f"{ref} cannot be addressed by the CRT client")
        path = f"{self._base_path}/{ref.bucket}/{encode_key(ref.key)}"
        kept = [(name, value) for name, value in headers if name.lower() != "host"]
        attempt = 0
        while True:
            attempt += 1
            self._credentials.current()  # refreshed here, not in a CRT thread
            with self._slots:
                outcome = self._once(operation, method, path, kept, body)
            if isinstance(outcome, CrtAnswer):
                return outcome
            if outcome.status in (429, 503) and self._on_throttle is not None:
                self._on_throttle()
            retryable = outcome.status == 429 or outcome.status >= 500 or outcome.code == "RequestTimeout"
            if outcome.status == 0:
                retryable = outcome.code.startswith(_CONNECTION_ERRORS) and "INVALID" not in outcome.code
            if retryable and self._on_error is not None:
                signature = answer_signature(outcome.status, outcome.code, outcome.message)
                if signature is not None:
                    self._on_error(signature, ref.key)
            if not retryable or attempt >= self._settings.max_attempts:
                raise outcome
            time.sleep(random.random() * min(_BACKOFF_MAX, _BACKOFF_BASE * 2 ** (attempt - 1)))

    def _once(
        self, operation: str, method: str, path: str, headers: list[tuple[str, str]], body: bytes | None
    ) -> CrtAnswer | S3RequestError:
        """One attempt: the answer, or the error to raise or retry."""
        client = self._client
        if client is None:
            raise RuntimeError("the CRT client is closed")
        request = crt_http.HttpRequest(
            method,
            path,
            crt_http.HttpHeaders([("Host", self._host), *headers]),
            io.BytesIO(body) if body is not None else None,
        )
        status = 0
        pairs: list[tuple[str, str]] = []
        chunks: list[bytes] = []

        def on_headers(status_code: int, headers: list[tuple[str, str]], **_: object) -> None:
            nonlocal status
            status = status_code
            pairs[:] = headers

        def on_body(chunk: memoryview, offset: int, **_: object) -> None:
            chunks.append(bytes(chunk))

        pending = client.make_request(
            type=s3.S3RequestType.DEFAULT,  # one request as built: GET_OBJECT would start ranged
            request=request,
            operation_name=operation,  # so a 200 with an error body fails (all but GetObject)
            on_headers=on_headers,
            on_body=on_body,
        )
        # Waited on, never raised: a raised exception would tie this frame (and the client) to it.
        error = pending.finished_future.exception()
        del pending
        if isinstance(error, s3.S3ResponseError):
            return self._error(operation, error.status_code or 0, error.body or b"", error.name, error.message)
        if isinstance(error, AwsCrtError):
            status, code = _CRT_ANSWERS.get(error.name, (0, error.name))
            return S3RequestError(operation, status, code, self._credentials.scrub(error.message))
        if error is not None:  # raised by a callback of ours
            raise error
        names, data = _header_dict(pairs), b"".join(chunks)
        if operation == "GetObject":
            if names.get("content-length", str(len(data))) != str(len(data)):
                return S3RequestError(operation, 0, "IncompleteBody", f"{len(data)} of {names['content-length']} bytes")
            return CrtAnswer(status, names, data)
        if operation == "CopyObject":
            if _ERROR_XML.search(data):  # the CRT fails such answers already; kept for certainty
                return self._error(operation, status, data, "", "")
            etag = re.search(rb"<ETag>(.*?)</ETag>", data, re.DOTALL)
            if etag is None:
                return S3RequestError(operation, status, "InvalidResponse", "no ETag in the CopyObjectResult")
            names["etag"] = html.unescape(etag.group(1).decode())
        return CrtAnswer(status, names, b"")

    def _error(self, operation: str, status: int, body: bytes, crt_name: str, crt_message: str) -> S3RequestError:
        """The error of an answer: code and message from its XML body, or from its status (HEAD)."""
        code = re.search(rb"<Code>(.*?)</Code>", body, re.DOTALL)
        message = re.search(rb"<Message>(.*?)</Message>", body, re.DOTALL)
        if code is not None:
            text = html.unescape(message.group(1).decode("utf-8", "replace")) if message else ""
            return S3RequestError(
                operation, status, html.unescape(code.group(1).decode()), self._credentials.scrub(text)
            )
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            return S3RequestError(operation, status, crt_name, crt_message)
        return S3RequestError(operation, status, phrase.replace(" ", ""), phrase)


def _header_dict(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in pairs:
        name = name.lower()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


#: Request arguments (botocore's names) and the headers :class:`CrtBackend` sends them as.
_HEADERS = {
    "ACL": "x-amz-acl",
    "BucketKeyEnabled": "x-amz-server-side-encryption-bucket-key-enabled",
    "CacheControl": "Cache-Control",
    "ContentDisposition": "Content-Disposition",
    "ContentEncoding": "Content-Encoding",
    "ContentLanguage": "Content-Language",
    "ContentMD5": "Content-MD5",
    "ContentType": "Content-Type",
    "Expires": "Expires",
    "MetadataDirective": "x-amz-metadata-directive",
    "ObjectLockLegalHoldStatus": "x-amz-object-lock-legal-hold",
    "ObjectLockMode": "x-amz-object-lock-mode",
    "ObjectLockRetainUntilDate": "x-amz-object-lock-retain-until-date",
    "ServerSideEncryption": "x-amz-server-side-encryption",
    "SSEKMSKeyId": "x-amz-server-side-encryption-aws-kms-key-id",
    "StorageClass": "x-amz-storage-class",
    "Tagging": "x-amz-tagging",
    "TaggingDirective": "x-amz-tagging-directive",
    "WebsiteRedirectLocation": "x-amz-website-redirect-location",
}
#: Object properties read back from an answer's headers (botocore's names).
_PROPERTIES = {
    "cache-control": "CacheControl",
    "content-disposition": "ContentDisposition",
    "content-encoding": "ContentEncoding",
    "content-language": "ContentLanguage",
    "content-type": "ContentType",
}
_LOCK_HEADER_NAMES = ("x-amz-object-lock-mode", "x-amz-object-lock-retain-until-date", "x-amz-object-lock-legal-hold")
_EMPTY_MD5 = base64.b64encode(hashlib.md5(b"", usedforsecurity=False).digest()).decode()
#: What the CRT client carries: one-request copies, whole reads and writes, with every property,
#: lock and tag header, any key; not access points, multipart or local files.
CAPABILITIES = Capabilities(
    "awscrt",
    operations=frozenset({Operation.COPY, Operation.READ_WHOLE, Operation.WRITE_WHOLE}),
    keys=KeyRule.ANY,
    request_args=frozenset({*_HEADERS, "Metadata"}),
    properties=frozenset({*_PROPERTIES.values(), "Expires", "Metadata"}),
    lock_headers=True,
    tags=True,
)


def request_headers(args: Mapping[str, Any]) -> dict[str, str]:
    """The headers of botocore's request arguments ``args`` (as botocore serialises them)."""
    headers: dict[str, str] = {}
    for name, value in args.items():
        if name == "Metadata":
            headers.update({f"x-amz-meta-{key}": str(item) for key, item in value.items()})
            continue
        header = _HEADERS.get(name)
        if header is None:
            raise ValueError(f"the CRT client does not send {name}")  # routing never asks
        if isinstance(value, datetime):
            value = value if value.tzinfo else value.replace(tzinfo=UTC)
            if name == "Expires":
                value = format_datetime(value.astimezone(UTC), usegmt=True)
            else:
                utc = value.astimezone(UTC)  # ISO 8601, microseconds only when there are some
                value = utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if utc.microsecond else "%Y-%m-%dT%H:%M:%SZ")
        elif isinstance(value, bool):
            value = "true" if value else "false"
        headers[header] = str(value)
    return headers


def _md5_etag_possible(headers: Mapping[str, str]) -> bool:
    return md5_etag_possible(
        encryption=headers.get("x-amz-server-side-encryption"),
        customer_key="x-amz-server-side-encryption-customer-algorithm" in headers,
    )


def head_from_headers(headers: Mapping[str, str], size: int) -> ObjectHead:
    """The project's view of a GetObject / HeadObject answer's headers, with botocore's names
    for the properties (an ``Expires`` that is no HTTP date is left out, as botocore does)."""
    properties: dict[str, Any] = {name: headers[header] for header, name in _PROPERTIES.items() if header in headers}
    if "expires" in headers:
        try:
            properties["Expires"] = parsedate_to_datetime(headers["expires"])
        except (TypeError, ValueError):
            pass
    metadata = {name[len("x-amz-meta-") :]: value for name, value in headers.items() if name.startswith("x-amz-meta-")}
    if metadata:
        properties["Metadata"] = metadata
    lock: dict[str, object] = {
        "ObjectLockMode": headers.get("x-amz-object-lock-mode"),
        "ObjectLockLegalHoldStatus": headers.get("x-amz-object-lock-legal-hold"),
        "VersionId": headers.get("x-amz-version-id"),
    }
    if "x-amz-object-lock-retain-until-date" in headers:
        lock["ObjectLockRetainUntilDate"] = datetime.fromisoformat(
            headers["x-amz-object-lock-retain-until-date"].replace("Z", "+00:00")
        )
    return ObjectHead(
        size=size,
        etag=headers.get("etag"),
        md5_etag_possible=_md5_etag_possible(headers),
        properties=properties,
        lock=LockState.from_head(lock),
    )


class CrtBackend(NotCarried):
    """The :class:`~airflow_s3sync.hooks.backend.ObjectBackend` of the CRT client: CopyObject,
    and whole GetObject / PutObject of small streamed objects, built from plain
    :class:`~airflow_s3sync.hooks.backend.ClientSettings`."""

    capabilities = CAPABILITIES

    def __init__(self, settings: ClientSettings) -> None:
        def credentials() -> tuple[str, str, str | None]:
            current = settings.credentials()
            return current.access_key, current.secret_key, current.token

        self._listeners: list[Callable[[], None]] = []
        self._error_listeners: list[ErrorListener] = []
        self._client = CrtClient(
            CrtSettings(
                endpoint_url=settings.endpoint_url,
                region=settings.region,
                credentials=credentials,
                max_attempts=settings.max_attempts,
                max_in_flight=settings.max_in_flight,
                verify_tls=settings.verify_tls,
            ),
            on_throttle=self._throttled,
            on_error=self._errored,
        )

    def _throttled(self) -> None:
        for listener in list(self._listeners):
            listener()

    def listen_for_slowdowns(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` on every SlowDown (or 429) answer, retried or not."""
        self._listeners.append(listener)

    def _errored(self, signature: str, key: str) -> None:
        for listener in list(self._error_listeners):
            listener(signature, key)

    def listen_for_errors(self, listener: ErrorListener) -> None:
        """Call ``listener`` before retrying a server error answer (not a throttle)."""
        self._error_listeners.append(listener)

    def copy_object(
        self, *, source: ObjectRef, dest: ObjectRef, size: int, extra_args: Mapping[str, Any], progress: Progress
    ) -> Written:
        """One CopyObject; S3 copies the properties and tags itself unless told to replace them."""
        headers = request_headers(extra_args)
        if any(name in headers for name in _LOCK_HEADER_NAMES):
            headers["Content-MD5"] = _EMPTY_MD5  # S3 wants an integrity header on writes that set a lock
        answer = self._client.copy_object(source=source, dest=dest, headers=headers)
        progress(size)
        return Written(size, etag=answer.headers.get("etag"), md5_etag_possible=_md5_etag_possible(answer.headers))

    def read_object(self, *, source: ObjectRef, etag: str | None) -> ObjectData:
        """One GetObject, conditional on ``etag``, read whole."""
        answer = self._client.get_object(ref=source, if_match=etag)
        return ObjectData(head_from_headers(answer.headers, len(answer.body)), answer.body)

    def write_object(
        self, *, dest: ObjectRef, data: bytes, extra_args: Mapping[str, Any], progress: Progress
    ) -> Written:
        """One PutObject with Content-MD5."""
        self._take(len(data))
        answer = self._client.put_object(ref=dest, body=data, headers=request_headers(extra_args))
        progress(len(data))
        return Written(len(data), etag=answer.headers.get("etag"), md5_etag_possible=_md5_etag_possible(answer.headers))

    def close(self, *, cancel: bool = False) -> None:
        """Release the client (every call blocks until done, so nothing is in flight)."""
        self._client.close()
