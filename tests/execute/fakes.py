"""In-memory S3 backends for the execute layer: :class:`FakeBackend` implements the backend
protocol (:class:`~airflow_s3sync.hooks.backend.Backend`) over a :class:`FakeStore`, with every
call recorded and faults, SlowDowns, listing failures and blocking on demand; :class:`FakeHook`
is what :class:`~airflow_s3sync.execute.run.SyncRun` uses of a hook.

No server, no botocore client: objects live in a :class:`FakeStore` (a dict), and two fakes
sharing one store are "the same service" (so S3 -> S3 copies are server-side copies; fakes of
two stores stream). A fast backend (obstore, the CRT client) is a :meth:`FakeBackend.fast` twin
sharing the store, with other capabilities; every fake refuses (``AssertionError``) a call its
capabilities do not carry, and a fast one every call outside :class:`ObjectBackend`, so a
routing mistake fails the transfer instead of passing unnoticed.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from botocore.exceptions import ClientError

from airflow_s3sync.hooks.backend import (
    Backend,
    IncompleteUpload,
    ListingOrder,
    ObjectData,
    ObjectHead,
    ObjectRef,
    Progress,
    Written,
)
from airflow_s3sync.hooks.botocore_backend import CAPABILITIES as BOTOCORE
from airflow_s3sync.hooks.botocore_backend import OBJECT_PROPERTIES, LazyBody, check_rest_of_page
from airflow_s3sync.hooks.throttle import Throttle
from airflow_s3sync.plan import Entry
from airflow_s3sync.plan.capabilities import Capabilities, Operation, carries, writes_properties
from airflow_s3sync.plan.checksum import CHECKSUM_ALGORITHMS, Digests, multipart_etag
from airflow_s3sync.plan.key_range import KeyRange
from airflow_s3sync.plan.lock import LockState, Retention

MiB = 1024 * 1024
#: Calls that change what a store holds (or a local file).
WRITE_CALLS = frozenset(
    {
        "upload_file",
        "download_file",
        "copy_object",
        "copy_in_parts",
        "write_object",
        "write_stream",
        "put_retention",
        "put_legal_hold",
        "put_tags",
        "delete_keys",
        "delete_key",
        "abort_upload",
    }
)
#: What every client has (:class:`~airflow_s3sync.hooks.backend.ObjectBackend`); a fast fake
#: refuses anything else.
OBJECT_CALLS = frozenset(
    {"upload_file", "download_file", "copy_object", "read_object", "write_object", "close", "get_object"}
)
_LOCK_ARGS = frozenset({"ObjectLockMode", "ObjectLockRetainUntilDate", "ObjectLockLegalHoldStatus"})
_KMS = "aws:kms"


def client_error(code: str, status: int, operation: str = "PutObject") -> ClientError:
    """A botocore ``ClientError`` as botocore builds it from an S3 error answer."""
    response: dict[str, Any] = {
        "Error": {"Code": code, "Message": f"{code} (fake)"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, operation)  # type: ignore[arg-type]


def md5_etag(data: bytes) -> str:
    """The quoted single-part ETag S3 gives ``data``."""
    return f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"'


def multipart_etag_of(data: bytes, part_size: int) -> str:
    """The quoted ETag S3 gives ``data`` uploaded in ``part_size`` parts."""
    parts = [
        hashlib.md5(data[at : at + part_size], usedforsecurity=False).digest() for at in range(0, len(data), part_size)
    ]
    return f'"{multipart_etag(parts)}"'


@dataclass
class StoredObject:
    """One object of a :class:`FakeStore`.

    :param properties: what the write sent besides the data and tags (``ContentType``,
        ``Metadata``, ``StorageClass``, ``ObjectLockMode``, ``ChecksumSHA256``, ...).
    :param tags: its tag set, as GetObjectTagging answers it.
    """

    data: bytes
    mtime: datetime
    etag: str
    properties: dict[str, Any] = field(default_factory=dict)
    tags: list[dict[str, str]] = field(default_factory=list)

    @property
    def md5_etag_possible(self) -> bool:
        """Whether the ETag is the MD5 (not with SSE-KMS)."""
        return self.properties.get("ServerSideEncryption") != _KMS

    def head(self) -> ObjectHead:
        """What a HeadObject or GetObject tells of it."""
        return ObjectHead(
            size=len(self.data),
            etag=self.etag,
            md5_etag_possible=self.md5_etag_possible,
            properties={name: self.properties[name] for name in OBJECT_PROPERTIES if name in self.properties},
            lock=LockState.from_head(self.properties),
        )


class FakeStore:
    """The objects of one fake S3 service, by ``(bucket, key)``."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], StoredObject] = {}
        self.lock = threading.Lock()

    def put(
        self,
        bucket: str,
        key: str,
        data: bytes,
        *,
        mtime: datetime | None = None,
        tags: list[dict[str, str]] | None = None,
        part_size: int | None = None,
        **properties: Any,
    ) -> StoredObject:
        """Store ``data`` at ``bucket``/``key`` (now, unless ``mtime`` says when), with ``tags``
        and ``properties``; a ``Tagging`` property (URL-encoded, as a write sends it) is stored
        as tags. The ETag is the MD5, or with ``part_size`` the multipart ETag of such parts;
        with ``ServerSideEncryption="aws:kms"`` neither."""
        if "Tagging" in properties:
            tags = [{"Key": name, "Value": value} for name, value in parse_qsl(properties.pop("Tagging"))]
        etag = md5_etag(data) if part_size is None else multipart_etag_of(data, part_size)
        if properties.get("ServerSideEncryption") == _KMS:
            etag = md5_etag(b"kms:" + data)
        stored = StoredObject(data, mtime or datetime.now(UTC), etag, dict(properties), list(tags or []))
        with self.lock:
            self.objects[(bucket, key)] = stored
        return stored

    def get(self, bucket: str, key: str, operation: str = "GetObject") -> StoredObject:
        """The object at ``bucket``/``key``; a 404 ``ClientError`` if there is none."""
        with self.lock:
            stored = self.objects.get((bucket, key))
        if stored is None:
            raise client_error("NoSuchKey", 404, operation)
        return stored

    def data(self, bucket: str, key: str) -> bytes:
        """The bytes at ``bucket``/``key``."""
        return self.get(bucket, key).data

    def keys(self, bucket: str) -> list[str]:
        """The keys of ``bucket``, sorted."""
        with self.lock:
            return sorted(key for (name, key) in self.objects if name == bucket)

    def remove(self, bucket: str, key: str) -> None:
        """Delete ``bucket``/``key`` (no error when missing, as S3)."""
        with self.lock:
            self.objects.pop((bucket, key), None)


@dataclass(frozen=True)
class Call:
    """One call a fake received; ``details`` holds the arguments tests look at, ``thread`` the
    thread that made it."""

    name: str
    bucket: str
    key: str
    details: Mapping[str, Any] = field(default_factory=dict, compare=False)
    thread: threading.Thread = field(default_factory=threading.current_thread, compare=False, repr=False)


@dataclass
class _Fault:
    error: BaseException | None  # None: a SlowDown heard (and retried by the client), no error
    keys: frozenset[str] | None
    on: frozenset[str] | None
    times: int | None  # None: every time
    partial: bool

    def matches(self, name: str, key: str) -> bool:
        if self.times is not None and self.times <= 0:
            return False
        return (self.keys is None or key in self.keys) and (self.on is None or name in self.on)


@dataclass
class _Gate:
    release: threading.Event
    keys: frozenset[str] | None
    on: frozenset[str] | None


@dataclass
class _ListingFault:
    after: int
    error: BaseException


class FakeBackend:
    """An S3 backend in memory: the full :class:`~airflow_s3sync.hooks.backend.Backend` protocol
    (or, with ``full=False``, only what a fast client has).

    :param store: the service's objects (a new one unless given; share one for same-service copies).
    :param name: tells this fake apart in assertions (defaults to the capabilities' name).
    :param capabilities: what it carries (botocore's: everything).
    :param multipart_threshold: the size from which its writes go in parts.
    :param full: the side's full backend (else a fast client: only :class:`ObjectBackend` calls).
    :param answer_written: :meth:`write_stream` answers the ETag it wrote (as botocore does when
        it saw the PutObject's answer); otherwise a streamed copy is verified with :meth:`digests`.
    :param md5_etag_known: whether a write's answer says if its ETag can be an MD5 (botocore's
        does; obstore's does not: ``md5_etag_possible=None``).
    :param multipart_drops_lock: a write in parts loses its Object Lock headers, as moto's
        CreateMultipartUpload does (so the lock follow-up after a multipart write is needed).
    :param part_size: the part size of its writes in parts, which then get a multipart ETag
        (otherwise every ETag is the MD5 and :meth:`part_size_for` says ``None``).
    :param head_md5: :meth:`digests` tells the MD5 of the whole content even for an object
        written in parts, as ``rclone serve s3``'s HeadObject does.
    :param one_put_max: the largest object :meth:`put_stream` writes (0: none, as botocore's
        backend when the connection asks for payload signatures).
    :param gate_timeout: the longest a blocked call waits for its Event (a test bug must not hang).
    :param listing_order: what the side may trust of the listings (as a connection says).
    :param path_order: list by path segments (``a/b`` before ``a-b``), as some servers do.
    """

    def __init__(
        self,
        store: FakeStore | None = None,
        *,
        name: str | None = None,
        capabilities: Capabilities = BOTOCORE,
        multipart_threshold: int = 8 * MiB,
        full: bool = True,
        answer_written: bool = False,
        md5_etag_known: bool = True,
        multipart_drops_lock: bool = True,
        part_size: int | None = None,
        head_md5: bool = False,
        one_put_max: int = 0,
        gate_timeout: float = 10.0,
        listing_order: ListingOrder = ListingOrder.S3,
        path_order: bool = False,
    ) -> None:
        self.store = store if store is not None else FakeStore()
        self.listing_order = listing_order
        self.path_order = path_order
        self.name = name or capabilities.name
        self.capabilities = capabilities
        self.multipart_threshold = multipart_threshold
        self.full = full
        self.answer_written = answer_written
        self.md5_etag_known = md5_etag_known
        self.multipart_drops_lock = multipart_drops_lock
        self.part_size = part_size
        self.head_md5 = head_md5
        self.one_put_max = one_put_max
        self.gate_timeout = gate_timeout
        self.calls: list[Call] = []
        #: The multipart uploads in progress (:meth:`incomplete_uploads`), as tests set them.
        self.uploads: dict[str, list[IncompleteUpload]] = {}
        #: ``True`` for each :meth:`close` with ``cancel``, ``False`` without.
        self.closed: list[bool] = []
        self.slowdown_listeners: list[Callable[[], None]] = []
        #: Told of the server errors a client retries by itself (this fake retries none).
        self.error_listeners: list[Callable[[str, str], None]] = []
        self._lock = threading.Condition()
        self._faults: list[_Fault] = []
        self._gates: list[_Gate] = []
        self._listing_faults: dict[str, _ListingFault] = {}
        #: Calls that reached a gate (and waited there, or are waiting).
        self.blocked: list[Call] = []

    def fast(self, capabilities: Capabilities, *, name: str | None = None, **options: Any) -> FakeBackend:
        """A fast client's fake on the same service (same store, same multipart threshold)
        carrying what ``capabilities`` say; it answers writes as obstore does unless told."""
        options.setdefault("md5_etag_known", False)
        return FakeBackend(
            self.store,
            name=name,
            capabilities=capabilities,
            multipart_threshold=self.multipart_threshold,
            full=False,
            gate_timeout=self.gate_timeout,
            **options,
        )

    def __repr__(self) -> str:
        return f"FakeBackend({self.name!r})"

    # ----------------------------------------------------------------- test controls
    def fail(
        self,
        error: BaseException,
        *,
        keys: Iterable[str] | None = None,
        on: Iterable[str] | None = None,
        times: int | None = 1,
        partial: bool = False,
    ) -> None:
        """Raise ``error`` from calls for ``keys`` (object keys; all when ``None``) named in ``on``
        (all calls when ``None``), ``times`` times (``None``: always). With ``partial``, a
        transfer reports half its bytes as progress before failing. A fault on ``delete_key`` (one
        key of a ``delete_keys`` call) is yielded as that key's error instead of raised."""
        self._add_fault(error, keys, on, times, partial)

    def slow_down(
        self, *, keys: Iterable[str] | None = None, on: Iterable[str] | None = None, times: int | None = 1
    ) -> None:
        """Make calls for ``keys`` named in ``on`` hear a SlowDown that the client retries by
        itself: the call succeeds, and every listener of :meth:`listen_for_slowdowns` is called."""
        self._add_fault(None, keys, on, times, False)

    def _add_fault(
        self,
        error: BaseException | None,
        keys: Iterable[str] | None,
        on: Iterable[str] | None,
        times: int | None,
        partial: bool,
    ) -> None:
        fault = _Fault(
            error,
            frozenset(keys) if keys is not None else None,
            frozenset(on) if on is not None else None,
            times,
            partial,
        )
        with self._lock:
            self._faults.append(fault)

    def block(
        self, release: threading.Event, *, keys: Iterable[str] | None = None, on: Iterable[str] | None = None
    ) -> None:
        """Make calls for ``keys`` (all when ``None``) named in ``on`` wait until ``release`` is set."""
        gate = _Gate(release, frozenset(keys) if keys is not None else None, frozenset(on) if on is not None else None)
        with self._lock:
            self._gates.append(gate)

    def wait_blocked(self, count: int, timeout: float = 5.0) -> bool:
        """Wait until ``count`` calls are waiting at (or went through) a gate."""
        with self._lock:
            return self._lock.wait_for(lambda: len(self.blocked) >= count, timeout=timeout)

    def wait_calls(self, name: str, count: int, timeout: float = 5.0) -> bool:
        """Wait until ``count`` calls named ``name`` were received."""
        with self._lock:
            return self._lock.wait_for(lambda: len(self.calls_named(name)) >= count, timeout=timeout)

    def fail_listing(self, bucket: str, *, after: int, error: BaseException) -> None:
        """Make listings of ``bucket`` raise ``error`` after yielding ``after`` entries."""
        self._listing_faults[bucket] = _ListingFault(after, error)

    # ----------------------------------------------------------------- what tests read
    def calls_named(self, *names: str) -> list[Call]:
        """The calls of these names, in order."""
        with self._lock:
            return [call for call in self.calls if call.name in names]

    def keys_of(self, *names: str) -> list[str]:
        """The keys of the calls of these names, in order."""
        return [call.key for call in self.calls_named(*names)]

    def writes(self) -> list[Call]:
        """Every call that changes a store (or a local file)."""
        with self._lock:
            return [call for call in self.calls if call.name in WRITE_CALLS]

    # ----------------------------------------------------------------- recording and faults
    def _enter(self, name: str, bucket: str, key: str, progress: Progress | None = None, **details: Any) -> None:
        call = Call(name, bucket, key, details)
        with self._lock:
            self.calls.append(call)
            gates = [gate for gate in self._gates if _applies(gate.keys, gate.on, name, key)]
            if gates:
                self.blocked.append(call)
            self._lock.notify_all()
        if not self.full and name not in OBJECT_CALLS:
            raise AssertionError(f"{self.name}: {name} asked of a fast client (only the full backend has it)")
        for gate in gates:
            if not gate.release.wait(self.gate_timeout):
                raise TimeoutError(f"{self.name}: {name} {key} was never released")
        with self._lock:
            faults = [fault for fault in self._faults if fault.matches(name, key)]
            for fault in faults:
                if fault.times is not None:
                    fault.times -= 1
        for fault in faults:
            if fault.error is None:
                for listener in list(self.slowdown_listeners):
                    listener()
                continue
            if fault.partial and progress is not None:
                progress(int(details.get("size", 0)) // 2)
            raise fault.error

    def _carry(
        self, operation: Operation, refs: Iterable[ObjectRef], *, size: int, args: Mapping[str, Any] | None = None
    ) -> None:
        """Refuse a call this backend's capabilities do not carry: routing must never ask it."""
        refs = list(refs)
        args = args or {}
        names = set(args)
        lock = bool(names & _LOCK_ARGS)
        tags = "Tagging" in names
        rest = names - _LOCK_ARGS - {"Tagging"}
        properties: set[str] = set()
        if operation in (Operation.WRITE_WHOLE, Operation.WRITE_STREAM):  # a stream's write: the source's properties
            properties = rest & set(OBJECT_PROPERTIES)
            rest -= properties
        in_parts = size >= self.multipart_threshold and operation in (
            Operation.UPLOAD_FILE,
            Operation.DOWNLOAD_FILE,
            Operation.WRITE_STREAM,
        )
        carried = carries(
            self.capabilities,
            operation,
            keys=[ref.key for ref in refs],
            size=size,
            access_point=any(ref.bucket.startswith("arn:") for ref in refs),
            in_parts=in_parts,
            request_args=rest,
            lock=lock,
            tags=tags,
        ) and writes_properties(self.capabilities, properties - {"Metadata"}, args.get("Metadata", {}))
        if not carried:
            shown = ", ".join(str(ref) for ref in refs)
            raise AssertionError(
                f"{self.name} does not carry {operation.value} of {shown} ({size} bytes, {sorted(names)})"
            )

    def _answer(self, stored: StoredObject) -> Written:
        """A write's answer: its ETag, and whether that can be an MD5 when the client tells."""
        possible = stored.md5_etag_possible if self.md5_etag_known else None
        return Written(len(stored.data), etag=stored.etag, md5_etag_possible=possible)

    def _written(self, ref: ObjectRef, data: bytes, args: Mapping[str, Any], *, in_parts: bool) -> StoredObject:
        properties = dict(args)
        if in_parts and self.multipart_drops_lock:
            for name in _LOCK_ARGS:
                properties.pop(name, None)
        part_size = self.part_size if in_parts else None
        return self.store.put(ref.bucket, ref.key, data, part_size=part_size, **properties)

    # ----------------------------------------------------------------- ObjectBackend
    def upload_file(
        self, *, path: str, dest: ObjectRef, size: int, extra_args: Mapping[str, Any], progress: Progress
    ) -> Written:
        self._enter("upload_file", dest.bucket, dest.key, progress, size=size, extra_args=dict(extra_args), path=path)
        self._carry(Operation.UPLOAD_FILE, [dest], size=size, args=extra_args)
        with open(path, "rb") as file:
            data = file.read()
        stored = self._written(dest, data, extra_args, in_parts=size >= self.multipart_threshold)
        progress(len(data))
        return self._answer(stored) if not self.full else Written(len(data))

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
        self._enter(
            "download_file", source.bucket, source.key, progress, size=size, etag=etag, extra_args=dict(extra_args)
        )
        self._carry(Operation.DOWNLOAD_FILE, [source], size=size, args=extra_args)
        stored = self.store.get(source.bucket, source.key)
        if etag is not None and etag != stored.etag:
            raise client_error("PreconditionFailed", 412, "GetObject")
        directory, name = os.path.split(path)
        fd, temp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".fake")
        with os.fdopen(fd, "wb") as out:
            out.write(stored.data)
        os.replace(temp, path)
        progress(len(stored.data))
        return Written(len(stored.data), etag=stored.etag)

    def copy_object(
        self, *, source: ObjectRef, dest: ObjectRef, size: int, extra_args: Mapping[str, Any], progress: Progress
    ) -> Written:
        self._enter(
            "copy_object", dest.bucket, dest.key, progress, size=size, source=source, extra_args=dict(extra_args)
        )
        self._carry(Operation.COPY, [source, dest], size=size, args=extra_args)
        original = self.store.get(source.bucket, source.key, "CopyObject")
        args = dict(extra_args)
        replace = args.pop("MetadataDirective", None) == "REPLACE"
        properties = {name: value for name, value in original.properties.items() if name not in _LOCK_ARGS}
        if replace:  # the properties given replace all of the source's
            properties = {name: value for name, value in properties.items() if name not in OBJECT_PROPERTIES}
        tags = original.tags if args.pop("TaggingDirective", None) != "REPLACE" else None
        stored = self.store.put(dest.bucket, dest.key, original.data, tags=tags, **{**properties, **args})
        progress(len(stored.data))
        return Written(len(stored.data), etag=stored.etag, md5_etag_possible=stored.md5_etag_possible)

    def read_object(self, *, source: ObjectRef, etag: str | None) -> ObjectData:
        self._enter("read_object", source.bucket, source.key, etag=etag)
        stored = self._conditional(source, etag, "GetObject")
        self._carry(Operation.READ_WHOLE, [source], size=len(stored.data))
        return ObjectData(stored.head(), stored.data)

    def write_object(
        self, *, dest: ObjectRef, data: bytes, extra_args: Mapping[str, Any], progress: Progress
    ) -> Written:
        self._enter("write_object", dest.bucket, dest.key, progress, size=len(data), extra_args=dict(extra_args))
        self._carry(Operation.WRITE_WHOLE, [dest], size=len(data), args=extra_args)
        args = dict(extra_args)
        content_md5 = args.pop("ContentMD5", None)
        if content_md5 is not None and base64.b64decode(content_md5) != hashlib.md5(data).digest():
            raise client_error("BadDigest", 400, "PutObject")
        stored = self._written(dest, data, args, in_parts=False)
        progress(len(data))
        return self._answer(stored)

    def listen_for_slowdowns(self, listener: Callable[[], None]) -> None:
        with self._lock:
            self.slowdown_listeners.append(listener)

    def listen_for_errors(self, listener: Callable[[str, str], None]) -> None:
        with self._lock:
            self.error_listeners.append(listener)

    def close(self, *, cancel: bool = False) -> None:
        self._enter("close", "", "", cancel=cancel)
        self.closed.append(cancel)

    # ----------------------------------------------------------------- Backend
    def describe(self) -> str:
        return f"the fake {self.name} service"

    def same_service_as(self, other: Backend) -> bool:
        return isinstance(other, FakeBackend) and other.store is self.store

    def check_access(self, *, bucket: str, prefix: str) -> None:
        self._enter("check_access", bucket, prefix)

    def check_object_lock(self, *, bucket: str) -> None:
        self._enter("check_object_lock", bucket, "")

    def list_entries(self, *, bucket: str, prefix: str, key_range: KeyRange | None = None) -> Iterator[Entry]:
        self._enter("list_entries", bucket, prefix)
        with self.store.lock:
            objects = sorted((key, stored) for (name, key), stored in self.store.objects.items() if name == bucket)
        fault = self._listing_faults.get(bucket)
        entries = self._entries(objects, prefix, fault, path_order=self.path_order)
        if key_range is None:
            return entries
        # As BotocoreBackend: a range stops past its end only where S3's order is trusted, after
        # a look at the rest of the page there (the fake's listing is one page).
        if self.listing_order is not ListingOrder.S3:
            return key_range.select(entries)
        return self._ranged(list(entries), key_range)

    @staticmethod
    def _ranged(entries: list[Entry], key_range: KeyRange) -> Iterator[Entry]:
        for index, entry in enumerate(entries):
            if key_range.past_end(entry.key):
                check_rest_of_page([later.key for later in entries[index:]], key_range)
                return
            if entry.key in key_range:
                yield entry

    @staticmethod
    def _entries(
        objects: list[tuple[str, StoredObject]], prefix: str, fault: _ListingFault | None, *, path_order: bool
    ) -> Iterator[Entry]:
        yielded = 0
        # S3 orders keys by their UTF-8 bytes; some servers by path segments.
        order = (lambda item: item[0].split("/")) if path_order else (lambda item: item[0].encode("utf-8"))
        for key, stored in sorted(objects, key=order):
            if not key.startswith(prefix) or (key.endswith("/") and not stored.data):
                continue
            if fault is not None and yielded >= fault.after:
                raise fault.error
            storage_class = stored.properties.get("StorageClass", "STANDARD")
            yield Entry(key[len(prefix) :], len(stored.data), stored.mtime, stored.etag, storage_class)
            yielded += 1
        if fault is not None and yielded >= fault.after:
            raise fault.error

    def limit_bandwidth(self, throttle: Throttle) -> None:
        self.throttle = throttle

    def list_after(self, *, bucket: str, prefix: str, start_after: str | None = None) -> Iterator[Entry]:
        self._enter("list_after", bucket, prefix, start_after=start_after)
        with self.store.lock:
            objects = sorted((key, stored) for (name, key), stored in self.store.objects.items() if name == bucket)
        entries = self._entries(objects, prefix, self._listing_faults.get(bucket), path_order=self.path_order)
        if start_after is None:
            return entries
        after = start_after.split("/") if self.path_order else start_after
        return (entry for entry in entries if (entry.key.split("/") if self.path_order else entry.key) > after)

    def list_page(self, *, bucket: str, prefix: str, start_after: str | None = None) -> tuple[list[str], bool]:
        self._enter("list_page", bucket, prefix, start_after=start_after)
        keys = [key[len(prefix) :] for key in self.store.keys(bucket) if key.startswith(prefix)]
        return [key for key in keys if start_after is None or key > start_after], False

    def _conditional(self, ref: ObjectRef, etag: str | None, operation: str) -> StoredObject:
        stored = self.store.get(ref.bucket, ref.key, operation)
        if etag is not None and etag != stored.etag:
            raise client_error("PreconditionFailed", 412, operation)
        return stored

    def head_object(self, *, ref: ObjectRef, etag: str | None = None) -> ObjectHead:
        self._enter("head_object", ref.bucket, ref.key, etag=etag)
        return self._conditional(ref, etag, "HeadObject").head()

    def open_object(self, *, source: ObjectRef, etag: str | None) -> tuple[ObjectHead, Any]:
        """What a HeadObject tells, and a body whose GetObject (recorded as ``get_object``,
        conditional on the ETag the head saw) is sent on the first read."""
        self._enter("open_object", source.bucket, source.key, etag=etag)
        head = self._conditional(source, etag, "HeadObject").head()

        def get() -> io.BytesIO:
            self._enter("get_object", source.bucket, source.key, etag=head.etag)
            return io.BytesIO(self._conditional(source, head.etag, "GetObject").data)

        return head, LazyBody(get)

    def write_stream(
        self, *, dest: ObjectRef, stream: Any, size: int, extra_args: Mapping[str, Any], progress: Progress
    ) -> Written:
        self._enter("write_stream", dest.bucket, dest.key, progress, size=size, extra_args=dict(extra_args))
        self._carry(Operation.WRITE_STREAM, [dest], size=size, args=extra_args)
        chunks = []
        while chunk := stream.read(256 * 1024):
            chunks.append(chunk)
            progress(len(chunk))
        stored = self._written(dest, b"".join(chunks), extra_args, in_parts=size >= self.multipart_threshold)
        return self._answer(stored) if self.answer_written else Written(len(stored.data))

    def put_stream(
        self, *, dest: ObjectRef, stream: Any, size: int, md5: str, extra_args: Mapping[str, Any], progress: Progress
    ) -> Written:
        self._enter("put_stream", dest.bucket, dest.key, progress, size=size, md5=md5, extra_args=dict(extra_args))
        self._carry(Operation.WRITE_STREAM, [dest], size=size, args=extra_args)
        chunks = []
        while chunk := stream.read(256 * 1024):
            chunks.append(chunk)
            progress(len(chunk))
        data = b"".join(chunks)
        if hashlib.md5(data, usedforsecurity=False).hexdigest() != md5:
            raise client_error("BadDigest", 400, "PutObject")
        stored = self._written(dest, data, extra_args, in_parts=False)
        return self._answer(stored)

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
        """UploadPartCopy: the source's properties go with it (s3transfer reads them), its tags
        do not (S3 does not tag a multipart upload from its source), nor, with
        ``multipart_drops_lock``, lock headers."""
        self._enter(
            "copy_in_parts",
            dest.bucket,
            dest.key,
            progress,
            size=size,
            source=source,
            source_backend=source_backend,
            extra_args=dict(extra_args),
        )
        self._carry(Operation.PART_COPY, [source, dest], size=size, args=extra_args)
        if not self.same_service_as(source_backend):
            raise AssertionError("a server-side copy between two fake services")
        original = self.store.get(source.bucket, source.key, "UploadPartCopy")
        properties = {name: value for name, value in original.properties.items() if name not in _LOCK_ARGS}
        stored = self._written(dest, original.data, {**properties, **extra_args}, in_parts=True)
        progress(len(stored.data))
        return Written(len(stored.data))

    def part_size_for(self, size: int) -> int | None:
        return self.part_size if size >= self.multipart_threshold else None

    def digests(self, *, ref: ObjectRef, read_args: Mapping[str, Any] | None = None) -> Digests:
        self._enter("digests", ref.bucket, ref.key, read_args=dict(read_args or {}))
        stored = self.store.get(ref.bucket, ref.key, "HeadObject")
        md5 = hashlib.md5(stored.data, usedforsecurity=False).hexdigest() if stored.md5_etag_possible else None
        composite = None
        if md5 is not None and "-" in stored.etag and not self.head_md5:
            md5, composite = None, stored.etag.strip('"')
        checksums = {
            algorithm: stored.properties[f"Checksum{algorithm}"]
            for algorithm in CHECKSUM_ALGORITHMS
            if f"Checksum{algorithm}" in stored.properties
        }
        return Digests(len(stored.data), md5=md5, multipart_etag=composite, checksums=checksums)

    def lookup(self, *, ref: ObjectRef, key: str) -> Entry | None:
        self._enter("lookup", ref.bucket, ref.key)
        try:
            stored = self.store.get(ref.bucket, ref.key, "HeadObject")
        except ClientError as error:
            if error.response["Error"]["Code"] in ("404", "NoSuchKey"):
                return None
            raise
        if ref.key.endswith("/") and not stored.data:
            return None
        storage_class = stored.properties.get("StorageClass", "STANDARD")
        return Entry(key, len(stored.data), stored.mtime, stored.etag, storage_class)

    def with_part_size(self, *, ref: ObjectRef, digests: Digests) -> Digests:
        self._enter("with_part_size", ref.bucket, ref.key)
        return digests

    def lock_state(self, *, ref: ObjectRef, read_args: Mapping[str, Any] | None = None) -> LockState | None:
        self._enter("lock_state", ref.bucket, ref.key, read_args=dict(read_args or {}))
        try:
            stored = self.store.get(ref.bucket, ref.key, "HeadObject")
        except ClientError:
            return None
        return LockState.from_head(stored.properties)

    def put_retention(
        self, *, ref: ObjectRef, retention: Retention, version_id: str | None, bypass_governance: bool = False
    ) -> None:
        self._enter(
            "put_retention",
            ref.bucket,
            ref.key,
            retention=retention,
            version_id=version_id,
            bypass_governance=bypass_governance,
        )
        stored = self.store.get(ref.bucket, ref.key, "PutObjectRetention")
        stored.properties.update(ObjectLockMode=retention.mode.value, ObjectLockRetainUntilDate=retention.until)

    def put_legal_hold(self, *, ref: ObjectRef, on: bool, version_id: str | None) -> None:
        self._enter("put_legal_hold", ref.bucket, ref.key, on=on, version_id=version_id)
        stored = self.store.get(ref.bucket, ref.key, "PutObjectLegalHold")
        stored.properties["ObjectLockLegalHoldStatus"] = "ON" if on else "OFF"

    def object_tags(self, *, ref: ObjectRef) -> list[dict[str, str]]:
        self._enter("object_tags", ref.bucket, ref.key)
        return list(self.store.get(ref.bucket, ref.key, "GetObjectTagging").tags)

    def put_tags(self, *, ref: ObjectRef, tags: list[dict[str, str]]) -> None:
        self._enter("put_tags", ref.bucket, ref.key, tags=list(tags))
        self.store.get(ref.bucket, ref.key, "PutObjectTagging").tags = list(tags)

    def delete_keys(self, *, bucket: str, keys: Iterable[str]) -> Iterator[tuple[str, str | None]]:
        # Not a generator function: a call is recorded even if its iterator is never read.
        self._enter("delete_keys", bucket, "")
        return self._delete(bucket, keys)

    def _delete(self, bucket: str, keys: Iterable[str]) -> Iterator[tuple[str, str | None]]:
        for key in keys:
            try:
                self._enter("delete_key", bucket, key)
            except Exception as error:  # noqa: BLE001 - reported per key, as DeleteObjects does
                yield key, str(error)
                continue
            self.store.remove(bucket, key)
            yield key, None

    def incomplete_uploads(self, *, bucket: str, prefix: str) -> Iterator[IncompleteUpload]:
        self._enter("incomplete_uploads", bucket, prefix)
        for upload in list(self.uploads.get(bucket, ())):
            if upload.key.startswith(prefix):
                yield upload._replace(key=upload.key[len(prefix) :])

    def abort_upload(self, *, ref: ObjectRef, upload_id: str) -> None:
        self._enter("abort_upload", ref.bucket, ref.key, upload_id=upload_id)
        self.uploads[ref.bucket] = [upload for upload in self.uploads[ref.bucket] if upload.upload_id != upload_id]


def _applies(keys: frozenset[str] | None, on: frozenset[str] | None, name: str, key: str) -> bool:
    return (keys is None or key in keys) and (on is None or name in on)


class FakeHook:
    """What :class:`~airflow_s3sync.execute.run.SyncRun` and the operators use of an
    :class:`~airflow_s3sync.hooks.s3.S3SyncHook`: the full backend, the transfer backends in
    order of preference (``fast`` first, the full one last) and closing them.

    :param backend: the full backend.
    :param fast: the fast clients' fakes (:meth:`FakeBackend.fast`).
    """

    def __init__(self, backend: FakeBackend, *fast: FakeBackend) -> None:
        self.backend = backend
        self.fast = fast
        #: How many times :meth:`transfer_backends` built the transfer backends.
        self.built = 0
        #: The connection's bandwidth cap (none).
        self.max_bandwidth = None

    @property
    def listing_order(self) -> ListingOrder:
        """What the connection says of its server's listings (the full backend's)."""
        return self.backend.listing_order

    def transfer_backends(self) -> tuple[FakeBackend, ...]:
        self.built += 1
        return (*self.fast, self.backend)

    def close_backends(self, *, cancel: bool = False) -> None:
        for backend in (*self.fast, self.backend):
            backend.close(cancel=cancel)
