"""An in-memory S3 backend for the execute layer: what :class:`SyncRun` and :class:`Transfers`
call on a hook, with every call recorded and faults, listing failures and blocking on demand.

No server, no botocore client: objects live in a :class:`FakeStore` (a dict), and two fakes
sharing one store are "the same service" (so S3 -> S3 copies are server-side copies).
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from airflow_s3sync.hooks.backend import Written
from airflow_s3sync.hooks.s3 import LazyBody
from airflow_s3sync.plan import Entry
from airflow_s3sync.plan.checksum import Digests
from airflow_s3sync.plan.key_range import KeyRange

MiB = 1024 * 1024
#: Calls that change what a store holds.
WRITE_CALLS = frozenset({"upload_file", "upload_stream", "copy_object", "download_file", "delete_keys", "delete_key"})


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


@dataclass
class StoredObject:
    """One object of a :class:`FakeStore`."""

    data: bytes
    mtime: datetime
    etag: str
    properties: dict[str, Any] = field(default_factory=dict)


class FakeStore:
    """The objects of one fake S3 service, by ``(bucket, key)``."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], StoredObject] = {}
        self.lock = threading.Lock()

    def put(
        self, bucket: str, key: str, data: bytes, *, mtime: datetime | None = None, **properties: Any
    ) -> StoredObject:
        """Store ``data`` at ``bucket``/``key`` (now, unless ``mtime`` says when)."""
        stored = StoredObject(data, mtime or datetime.now(UTC), md5_etag(data), dict(properties))
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
    """One call a fake received; ``details`` holds the arguments tests look at."""

    name: str
    bucket: str
    key: str
    details: Mapping[str, Any] = field(default_factory=dict, compare=False)


@dataclass
class _Fault:
    error: BaseException
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
    """What a sync asks of an S3 hook, in memory.

    :param store: the service's objects (a new one unless given; share one for same-service copies).
    :param name: tells this fake apart in assertions (``botocore``, ``native``).
    :param multipart_threshold: the size from which this backend's transfers are multipart.
    :param native: the fake standing for the native client; with it, ``native_enabled`` is true.
    :param native_enabled: overrides ``native is not None``.
    :param answer_written: after :meth:`record_written`, :meth:`written` answers the ETag of each
        write (otherwise ``None``, so a streamed copy is verified with :meth:`digests`).
    :param gate_timeout: the longest a blocked call waits for its Event (a test bug must not hang).
    """

    def __init__(
        self,
        store: FakeStore | None = None,
        *,
        name: str = "botocore",
        multipart_threshold: int = 8 * MiB,
        native: FakeBackend | None = None,
        native_enabled: bool | None = None,
        answer_written: bool = False,
        gate_timeout: float = 10.0,
    ) -> None:
        self.store = store if store is not None else FakeStore()
        self.name = name
        self.multipart_threshold = multipart_threshold
        self._native = native
        self.native_enabled = native is not None if native_enabled is None else native_enabled
        self.answer_written = answer_written
        self.gate_timeout = gate_timeout
        self.transfer_manager = object()
        self.calls: list[Call] = []
        self._lock = threading.Condition()
        self._faults: list[_Fault] = []
        self._gates: list[_Gate] = []
        self._listing_faults: dict[str, _ListingFault] = {}
        self._written: dict[tuple[str, str], dict[str, Any]] | None = None
        #: Calls that reached a gate (and waited there, or are waiting).
        self.blocked: list[Call] = []

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
    def _enter(
        self, name: str, bucket: str, key: str, progress: Callable[[int], None] | None = None, **details: Any
    ) -> None:
        call = Call(name, bucket, key, details)
        with self._lock:
            self.calls.append(call)
            gates = [gate for gate in self._gates if _applies(gate.keys, gate.on, name, key)]
            if gates:
                self.blocked.append(call)
                self._lock.notify_all()
        for gate in gates:
            if not gate.release.wait(self.gate_timeout):
                raise TimeoutError(f"{self.name}: {name} {key} was never released")
        with self._lock:
            fault = next((fault for fault in self._faults if fault.matches(name, key)), None)
            if fault is not None and fault.times is not None:
                fault.times -= 1
        if fault is not None:
            if fault.partial and progress is not None:
                progress(int(details.get("size", 0)) // 2)
            raise fault.error

    # ----------------------------------------------------------------- the hook's calls
    def check_access(self, bucket: str, prefix: str = "") -> None:
        self._enter("check_access", bucket, prefix)

    def check_object_lock(self, bucket: str) -> None:
        self._enter("check_object_lock", bucket, "")

    def same_service_as(self, other: Any) -> bool:
        return isinstance(other, FakeBackend) and other.store is self.store

    @property
    def native_backend(self) -> FakeBackend:
        if self._native is None:
            raise AssertionError(f"{self.name}: native_backend asked for, but this fake has none")
        return self._native

    def record_written(self) -> None:
        with self._lock:
            if self._written is None:
                self._written = {}

    def written(self, bucket: str, key: str) -> dict[str, Any] | None:
        with self._lock:
            return None if self._written is None else self._written.pop((bucket, key), None)

    def _wrote(self, bucket: str, key: str, stored: StoredObject) -> None:
        with self._lock:
            if self._written is not None and self.answer_written:
                self._written[(bucket, key)] = {"ETag": stored.etag}

    def iter_entries(self, bucket: str, prefix: str, *, key_range: KeyRange | None = None) -> Iterator[Entry]:
        self._enter("iter_entries", bucket, prefix)
        with self.store.lock:
            objects = sorted((key, stored) for (name, key), stored in self.store.objects.items() if name == bucket)
        fault = self._listing_faults.get(bucket)
        entries = self._entries(objects, prefix, fault)
        return entries if key_range is None else key_range.filter(entries)

    @staticmethod
    def _entries(objects: list[tuple[str, StoredObject]], prefix: str, fault: _ListingFault | None) -> Iterator[Entry]:
        yielded = 0
        # S3 orders keys by their UTF-8 bytes.
        for key, stored in sorted(objects, key=lambda item: item[0].encode("utf-8")):
            if not key.startswith(prefix) or (key.endswith("/") and not stored.data):
                continue
            if fault is not None and yielded >= fault.after:
                raise fault.error
            yield Entry(key=key[len(prefix) :], size=len(stored.data), mtime=stored.mtime, etag=stored.etag)
            yielded += 1
        if fault is not None and yielded >= fault.after:
            raise fault.error

    def upload_file(
        self, path: str, bucket: str, key: str, *, size: int, extra_args: Mapping[str, Any], progress: Any
    ) -> Written:
        self._enter("upload_file", bucket, key, progress, size=size, extra_args=dict(extra_args), path=path)
        with open(path, "rb") as file:
            data = file.read()
        stored = self.store.put(bucket, key, data, **extra_args)
        progress(len(data))
        self._wrote(bucket, key, stored)
        return Written(len(data), etag=stored.etag)

    def upload_bytes(
        self, data: bytes, bucket: str, key: str, *, attributes: Mapping[str, str], progress: Any
    ) -> Written:
        self._enter("upload_bytes", bucket, key, progress, attributes=dict(attributes))
        stored = self.store.put(bucket, key, data, Attributes=dict(attributes))
        progress(len(data))
        return Written(len(data), etag=stored.etag)

    def download_file(
        self,
        bucket: str,
        key: str,
        path: str,
        *,
        size: int,
        etag: str | None,
        extra_args: Mapping[str, Any],
        progress: Any,
    ) -> Written:
        self._enter("download_file", bucket, key, progress, size=size, etag=etag, extra_args=dict(extra_args))
        stored = self.store.get(bucket, key)
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
        self,
        source: tuple[str, str],
        bucket: str,
        key: str,
        *,
        size: int,
        in_parts: bool,
        source_backend: Any,
        extra_args: Mapping[str, Any],
        progress: Any,
    ) -> Written:
        self._enter(
            "copy_object",
            bucket,
            key,
            progress,
            size=size,
            in_parts=in_parts,
            source=source,
            source_backend=source_backend,
            extra_args=dict(extra_args),
        )
        if not self.same_service_as(source_backend):
            raise AssertionError("a server-side copy between two fake services")
        original = source_backend.store.get(*source, operation="CopyObject")
        stored = self.store.put(bucket, key, original.data, **{**original.properties, **extra_args})
        progress(len(stored.data))
        return Written(len(stored.data), etag=stored.etag)

    def upload_stream(
        self, stream: Any, bucket: str, key: str, *, size: int, extra_args: Mapping[str, Any], progress: Any
    ) -> Written:
        self._enter("upload_stream", bucket, key, progress, size=size, extra_args=dict(extra_args))
        chunks = []
        while chunk := stream.read(256 * 1024):
            chunks.append(chunk)
            progress(len(chunk))
        stored = self.store.put(bucket, key, b"".join(chunks), **extra_args)
        self._wrote(bucket, key, stored)
        return Written(len(stored.data))

    def head_object(self, bucket: str, key: str, *, etag: str | None = None) -> dict[str, Any]:
        self._enter("head_object", bucket, key, etag=etag)
        return self._head(bucket, key, etag, "HeadObject")

    def _head(self, bucket: str, key: str, etag: str | None, operation: str) -> dict[str, Any]:
        stored = self.store.get(bucket, key, operation)
        if etag is not None and etag != stored.etag:
            raise client_error("PreconditionFailed", 412, operation)
        return {
            "ContentLength": len(stored.data),
            "ETag": stored.etag,
            "LastModified": stored.mtime,
            **stored.properties,
        }

    def open_object(self, bucket: str, key: str, *, etag: str | None = None) -> dict[str, Any]:
        self._enter("open_object", bucket, key, etag=etag)
        response = self._head(bucket, key, etag, "GetObject")
        response["Body"] = io.BytesIO(self.store.data(bucket, key))
        return response

    def lazy_body(self, bucket: str, key: str, *, etag: str | None = None) -> LazyBody:
        return LazyBody(lambda: self.open_object(bucket, key, etag=etag)["Body"])

    def part_size_for(self, size: int) -> int | None:
        return None

    def digests(self, bucket: str, key: str, **head_args: Any) -> Digests:
        self._enter("digests", bucket, key)
        data = self.store.data(bucket, key)
        return Digests(len(data), md5=hashlib.md5(data, usedforsecurity=False).hexdigest())

    def with_part_size(self, bucket: str, key: str, digests: Digests) -> Digests:
        return digests

    def delete_keys(self, bucket: str, keys: Iterable[str]) -> Iterator[tuple[str, str | None]]:
        # Not a generator function: a call is recorded even if its iterator is never read.
        with self._lock:
            self.calls.append(Call("delete_keys", bucket, ""))
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


def _applies(keys: frozenset[str] | None, on: frozenset[str] | None, name: str, key: str) -> bool:
    return (keys is None or key in keys) and (on is None or name in on)
