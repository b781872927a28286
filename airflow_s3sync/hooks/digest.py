"""Hashing content as it streams by: whole-content MD5, multipart ETags, full-object checksums."""

from __future__ import annotations

import base64
import hashlib
import zlib
from collections.abc import Callable
from typing import Any

from airflow_s3sync.plan.checksum import Digests, LocalDigestPlan, multipart_etag


class _Crc32:
    def __init__(self) -> None:
        self.value = 0

    def update(self, data: bytes) -> None:
        self.value = zlib.crc32(data, self.value)

    def digest(self) -> bytes:
        return self.value.to_bytes(4, "big")


def _crt(name: str, width: int) -> Callable[[], Any] | None:
    """A CRC from awscrt (installed with ``botocore[crt]``), if it is there."""
    try:
        from awscrt import checksums
    except ImportError:
        return None
    function = getattr(checksums, name, None)
    if function is None:
        return None  # an older awscrt

    class _CrtChecksum:
        def __init__(self) -> None:
            self.value = 0

        def update(self, data: bytes) -> None:
            self.value = function(data, self.value)

        def digest(self) -> bytes:
            return self.value.to_bytes(width, "big")

    return _CrtChecksum


_FACTORIES: dict[str, Callable[[], Any] | None] = {
    "CRC32": _Crc32,
    "SHA1": hashlib.sha1,
    "SHA256": hashlib.sha256,
    "CRC32C": _crt("crc32c", 4),
    "CRC64NVME": _crt("crc64nvme", 8),
}
#: The full-object checksum algorithms this machine can compute.
COMPUTABLE_CHECKSUMS = frozenset(name for name, factory in _FACTORIES.items() if factory is not None)
_READ_SIZE = 1024 * 1024


class ContentHasher:
    """Digests of bytes fed in order: the MD5 of everything, the MD5 of each ``part_size`` part
    (for a multipart ETag) and, optionally, one full-object checksum."""

    def __init__(self, *, md5: bool = True, part_size: int | None = None, algorithm: str | None = None) -> None:
        self.size = 0
        self._md5 = hashlib.md5(usedforsecurity=False) if md5 else None
        self._part_size = part_size
        self._part = hashlib.md5(usedforsecurity=False) if part_size else None
        self._part_fill = 0
        self._part_digests: list[bytes] = []
        self._algorithm = algorithm
        factory = _FACTORIES.get(algorithm) if algorithm else None
        if algorithm and factory is None:
            raise ValueError(f"checksum algorithm {algorithm} cannot be computed here")
        self._checksum = factory() if factory else None

    def update(self, data: bytes) -> None:
        """Feed the next bytes."""
        self.size += len(data)
        if self._md5 is not None:
            self._md5.update(data)
        if self._checksum is not None:
            self._checksum.update(data)
        if self._part is None or self._part_size is None:
            return
        view = memoryview(data)
        while view:
            take = min(len(view), self._part_size - self._part_fill)
            self._part.update(view[:take])
            self._part_fill += take
            view = view[take:]
            if self._part_fill == self._part_size:
                self._part_digests.append(self._part.digest())
                self._part = hashlib.md5(usedforsecurity=False)
                self._part_fill = 0

    def digests(self) -> Digests:
        """What was computed over everything fed so far."""
        composite = None
        if self._part is not None:
            parts = self._part_digests + ([self._part.digest()] if self._part_fill or not self._part_digests else [])
            composite = multipart_etag(parts)
        checksums = {}
        if self._checksum is not None and self._algorithm is not None:
            checksums[self._algorithm] = base64.b64encode(self._checksum.digest()).decode()
        return Digests(
            size=self.size,
            md5=self._md5.hexdigest() if self._md5 is not None else None,
            multipart_etag=composite,
            part_size=self._part_size,
            checksums=checksums,
        )


def file_digests(path: str, plan: LocalDigestPlan) -> Digests:
    """Hash the file at ``path`` for what ``plan`` asks (one read of the file)."""
    with open(path, "rb") as file:
        return stream_digests(file, ContentHasher(md5=plan.md5, part_size=plan.part_size, algorithm=plan.algorithm))


def stream_digests(stream: Any, hasher: ContentHasher) -> Digests:
    """Feed ``hasher`` everything ``stream`` (a file object) has left; what it computed."""
    while chunk := stream.read(_READ_SIZE):
        hasher.update(chunk)
    return hasher.digests()


class HashingReader:
    """A read-only file object over a stream (an S3 GetObject body) that feeds a
    :class:`ContentHasher` with every byte read, so what was sent can be verified afterwards."""

    def __init__(self, stream: Any, hasher: ContentHasher) -> None:
        self._stream = stream
        self.hasher = hasher

    def read(self, amount: int = -1) -> bytes:
        """Read up to ``amount`` bytes (all that is left if negative)."""
        data = self._stream.read(amount if amount is not None and amount >= 0 else None)
        self.hasher.update(data)
        return data

    def close(self) -> None:
        """Close the underlying stream (returns its connection to the pool when fully read)."""
        self._stream.close()
