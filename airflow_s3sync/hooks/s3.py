"""S3SyncHook: an ``S3Hook`` that turns its Airflow connection into settings and backends.

Every ``S3Hook`` method keeps its signature and behaviour, so a DAG can swap one hook for the
other. What a sync needs goes through the backends the hook builds (:meth:`S3SyncHook.backend`,
:meth:`S3SyncHook.transfer_backends`), never through methods of the hook itself.
"""

from __future__ import annotations

import base64
import hashlib
import os
import sys
import threading
from functools import cached_property, partial
from typing import Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.common.compat.sdk import AirflowNotFoundException
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from airflow_s3sync.errors import S3SyncError
from airflow_s3sync.hooks import listing
from airflow_s3sync.hooks.backend import Backend, ClientSettings, Credentials, ListingOrder, ObjectBackend
from airflow_s3sync.hooks.botocore_backend import BotocoreBackend
from airflow_s3sync.plan.bandwidth import Bandwidth, parse_bandwidth

#: Attempts per request unless the connection's ``config_kwargs.retries`` says otherwise:
#: enough to ride out several faults in a row (botocore's own default is 3).
DEFAULT_MAX_ATTEMPTS = 10
#: The connection extra that turns the fast clients off (``{"native_client": false}``).
NATIVE_CLIENT_EXTRA = "native_client"
#: The connection extra that says what the server's listings can be trusted with.
LISTING_ORDER_EXTRA = "listing_order"
#: The connection extra that caps the bandwidth of the syncs using the connection.
MAX_BANDWIDTH_EXTRA = "max_bandwidth"
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


def _checked_bodies_unsigned(unsigned: Config, request: Any, **kwargs: Any) -> None:
    """Over plain HTTP, sign a body that carries a checksum header as botocore signs it over
    HTTPS: with ``UNSIGNED-PAYLOAD`` instead of its SHA-256 (``unsigned`` is the client's
    config with ``s3.payload_signing_enabled`` false).

    The server checks the body against the checksum (botocore's CRC32 by default, or
    Content-MD5), and what a sync writes is verified by its ETag; the SHA-256 is one more read
    of every byte, under the GIL (0.13 s of CPU per 100 MiB streamed here). A body without a
    checksum header (``request_checksum_calculation="when_required"``) stays signed, and so does
    every body when the connection's ``config_kwargs`` sets ``s3.payload_signing_enabled``.
    """
    if not request.url.startswith("http://") or not request.body:
        return
    names = {name.lower() for name in request.headers.keys()}
    if "content-md5" in names or names & _CHECKSUM_VALUE_HEADERS:
        request.context["client_config"] = unsigned


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


#: botocore data loaders by data path: they cache the service models they read.
_LOADERS: dict[Any, Any] = {}
_LOADERS_LOCK = threading.Lock()


class S3SyncHook(S3Hook):
    """An ``S3Hook`` that also builds the backends of ``aws s3 sync``-style replication.

    A subclass of the Amazon provider's :class:`~airflow.providers.amazon.aws.hooks.s3.S3Hook`
    that keeps every one of its methods' signatures and behaviour (a DAG can swap one for the
    other), so every AWS connection feature (``endpoint_url``, ``region_name``, assume-role,
    profiles, ``config_kwargs``, ``service_config.s3.transfer_config_args``) works unchanged.
    What it adds turns the connection into settings and backends: :attr:`backend` (botocore and
    s3transfer, every call) and :meth:`transfer_backends` (the fast clients first, when
    :attr:`fast_clients_enabled`). Its boto3 client's pool is sized for ``max_concurrency``
    objects in flight, its retries are botocore's standard mode with
    :data:`DEFAULT_MAX_ATTEMPTS` attempts unless the connection sets them.

    :param aws_conn_id: the Airflow AWS connection.
    :param transfer_config_args: as for ``S3Hook``: s3transfer settings (multipart threshold, ...).
    :param extra_args: as for ``S3Hook``.
    :param max_concurrency: objects in flight at once (see
        :class:`~airflow_s3sync.execute.run.SyncOptions` for what it costs).
    :param page_size: ListObjectsV2 page size of the sync's listings (1 to 1000).
    :param kwargs: as for ``S3Hook`` (``region_name``, ``verify``, ``config``, ...).

    .. seealso:: :class:`airflow_s3sync.operators.sync.S3SyncOperator`
    """

    def __init__(
        self,
        aws_conn_id: str | None = S3Hook.default_conn_name,
        transfer_config_args: dict | None = None,
        extra_args: dict | None = None,
        *args: Any,
        max_concurrency: int = 10,
        page_size: int = 1000,
        **kwargs: Any,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        if not 1 <= page_size <= 1000:
            raise ValueError(f"page_size must be between 1 and 1000, got {page_size}")
        super().__init__(aws_conn_id, transfer_config_args, extra_args, *args, **kwargs)
        self.max_concurrency = max_concurrency
        self.page_size = page_size

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
        the S3 service model is read from disk once, not once per hook (~0.1 s each). The first
        one is also the hook's own (:attr:`_own_session`)."""
        session = super().get_session(region_name=region_name, deferrable=deferrable)
        if not deferrable:
            self.__dict__.setdefault("_own_session", session)
        core = getattr(session, "_session", session)  # boto3 wraps a botocore session
        data_path = core.get_config_variable("data_path")
        with _LOADERS_LOCK:
            loader = _LOADERS.get(data_path)
            if loader is None:
                loader = _LOADERS[data_path] = core.get_component("data_loader")
        core.register_component("data_loader", loader)
        return session

    def _get_caller(self, target_function_name: str = "execute") -> str:
        """The ``Caller/`` of the user agent, as the Amazon provider finds it (the class of the
        innermost ``execute`` on the stack; a sensor's ``poke``; else an executor's class), by
        walking the frames: the provider's ``inspect.stack()`` reads the source file of every
        frame, about 0.15 s for each client a task makes."""
        try:
            caller = _calling_class(target_function_name)
            if caller == "BaseSensorOperator":
                caller = _calling_class("poke")
            return caller or self._find_executor_class_name() or "Unknown"
        except Exception:  # noqa: BLE001 - as the provider's: never fail a client over its user agent
            return "Unknown"

    def get_client_type(
        self, region_name: str | None = None, config: Config | None = None, deferrable: bool = False
    ) -> Any:
        """The boto3 client, with the integrity header Object Lock writes need (see ``_content_md5``),
        the fast parse of ListObjectsV2 pages (:mod:`airflow_s3sync.hooks.listing`) and, over plain
        HTTP, checksummed bodies signed as over HTTPS (see ``_checked_bodies_unsigned``).

        A connection whose extra has ``"content_md5": true`` sends Content-MD5 instead of
        botocore's CRC checksums on those writes; ``config_kwargs`` in the extra sets
        botocore's ``request_checksum_calculation`` / ``response_checksum_validation``.
        """
        client = super().get_client_type(region_name=region_name, config=config, deferrable=deferrable)
        replace_checksums = bool(self.conn_config.extra_config.get("content_md5", False))
        for operation in _LOCK_WRITES:
            client.meta.events.register(
                f"before-sign.s3.{operation}",
                lambda request, replace=replace_checksums, **kw: _content_md5(request, replace_checksums=replace, **kw),
            )
        listing.install(client.meta.events)
        s3_settings = client.meta.config.s3 or {}
        if "payload_signing_enabled" not in s3_settings:
            unsigned = client.meta.config.merge(Config(s3={**s3_settings, "payload_signing_enabled": False}))
            client.meta.events.register("before-sign.s3", partial(_checked_bodies_unsigned, unsigned))
        return client

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

    # ------------------------------------------------------------------ settings and backends
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

    @property
    def max_attempts(self) -> int:
        """Attempts per request: the connection's ``config_kwargs.retries.max_attempts``, or
        :data:`DEFAULT_MAX_ATTEMPTS`."""
        return int((self.config.retries or {}).get("max_attempts", DEFAULT_MAX_ATTEMPTS))

    def _identity(self) -> tuple[str | None, str] | None:
        """What makes two hooks one service for server-side copies: the endpoint and the access
        key (``None`` when the credentials cannot be read)."""
        endpoint = self.conn_config.get_service_endpoint_url(service_name="s3")
        try:
            credentials = self._own_session.get_credentials()
            access_key = None if credentials is None else credentials.get_frozen_credentials().access_key
        except (BotoCoreError, ClientError):
            return None
        return None if access_key is None else (endpoint, access_key)

    @cached_property
    def _own_session(self) -> Any:
        """One boto3 session for what the hook reads itself (the credentials of the fast clients
        and of :meth:`_identity`): the first session the hook made (usually its client's), as
        each botocore session costs ~15 ms of CPU to build."""
        return self.get_session(region_name=self.conn_region_name)

    @cached_property
    def backend(self) -> BotocoreBackend:
        """The full backend of this connection (botocore and s3transfer): every call, shared
        by all threads, its connection pool sized for ``max_concurrency``."""
        # Credentials that cannot be read (an unsigned connection): one connection is one service.
        same_connection = (self.conn_config.get_service_endpoint_url(service_name="s3"), self.aws_conn_id)
        return BotocoreBackend(
            self.conn,
            transfer_config=self.sync_transfer_config,
            page_size=self.page_size,
            description=self.endpoint_description,
            identity=lambda: self._identity() or same_connection,
            listing_order=self.listing_order,
        )

    @cached_property
    def max_bandwidth(self) -> Bandwidth | None:
        """The connection extra ``"max_bandwidth"`` (bytes a second, ``"50MiB"``, or a timetable
        ``"08:00,10MiB 19:00,off"``): a cap on the syncs that use this connection (the lower of
        it and the operator's applies); ``None`` when not set."""
        value = self.conn_config.extra_config.get(MAX_BANDWIDTH_EXTRA)
        return parse_bandwidth(value, what=f"connection {self.aws_conn_id!r}: extra {MAX_BANDWIDTH_EXTRA!r}")

    @cached_property
    def listing_order(self) -> ListingOrder:
        """What this connection's listings can be trusted with: the extra's
        ``"listing_order"`` (``"s3"``, ``"check"`` or ``"own"``), by default ``"s3"`` for AWS
        and ``"check"`` for an ``endpoint_url`` of one's own (see :class:`ListingOrder`)."""
        value = self.conn_config.extra_config.get(LISTING_ORDER_EXTRA)
        if value is None:
            custom = self.conn_config.get_service_endpoint_url(service_name="s3") is not None
            return ListingOrder.CHECK if custom else ListingOrder.S3
        try:
            return ListingOrder(value)
        except ValueError:
            choices = ", ".join(repr(order.value) for order in ListingOrder)
            raise S3SyncError(
                f"connection {self.aws_conn_id!r}: extra {LISTING_ORDER_EXTRA!r} must be one of {choices}, "
                f"not {value!r}"
            ) from None

    @property
    def fast_clients_enabled(self) -> bool:
        """Whether the fast clients may carry this connection's transfers: unless the
        connection's extra says ``"native_client": false``, or the connection asks for what only
        botocore does — proxies, a CA bundle or no certificate checks (``verify``), unsigned or
        otherwise special signatures, virtual-hosted addressing, S3 settings besides
        ``addressing_style: path`` (accelerate, dual-stack, ...) — or the environment sets
        one of :data:`OBSTORE_ONLY_ENVIRONMENT`."""
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

    def client_settings(self) -> ClientSettings:
        """The plain settings the fast clients are built from: botocore's resolved endpoint and
        region, this connection's credentials (read again on each call), attempts per request."""
        boto_credentials = self._own_session.get_credentials()
        if boto_credentials is None:
            raise S3SyncError(f"no credentials for {self.endpoint_description}")

        def credentials() -> Credentials:
            frozen = boto_credentials.get_frozen_credentials()
            return Credentials(frozen.access_key, frozen.secret_key, frozen.token)

        return ClientSettings(
            endpoint_url=self.conn.meta.endpoint_url,
            region=self.conn_region_name,
            credentials=credentials,
            max_attempts=self.max_attempts,
            max_in_flight=self.max_concurrency,
        )

    @cached_property
    def _fast_backends(self) -> tuple[ObjectBackend, ...]:
        if not self.fast_clients_enabled:
            return ()
        from airflow_s3sync.hooks.crt import CrtBackend
        from airflow_s3sync.hooks.native import NativeBackend

        settings = self.client_settings()
        # obstore first: it is the cheaper of the two for files and plain small writes; the CRT
        # client carries what it cannot (copies, whole reads with every property, lock, tags).
        return (NativeBackend(settings), CrtBackend(settings))

    def transfer_backends(self) -> tuple[ObjectBackend, ...]:
        """This connection's backends in order of preference: the fast clients (when
        :attr:`fast_clients_enabled`), then :attr:`backend`, which carries everything.
        Built once per hook."""
        full: Backend = self.backend
        return (*self._fast_backends, full)

    def close_backends(self, *, cancel: bool = False) -> None:
        """Finish (or, with ``cancel``, abandon) the transfers of every backend this hook
        built; none starts afterwards. The ``S3Hook`` methods keep working."""
        for backend in (*self.__dict__.get("_fast_backends", ()), self.__dict__.get("backend")):
            if backend is not None:
                backend.close(cancel=cancel)


def _calling_class(function_name: str) -> str | None:
    """The class name of ``self`` in the innermost frame running a function of that name."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == function_name:
            return type(frame.f_locals["self"]).__name__
        frame = frame.f_back
    return None
