"""Reading an object whose checksum header lies, verified by the object's own digests instead.

Some servers label a composite checksum (a checksum of part checksums) as a full-object one:
moto gives the CopyObject of a multipart object the source's composite CRC32 without its
``-N``, and several S3-compatible providers did the same when boto3 1.36 changed its checksum
defaults. botocore then rejects every full GET of such an object (``FlexibleChecksumError``:
"Expected checksum ... did not match calculated checksum"), although the bytes are right.

Such an object is read again without botocore's check (:func:`without_response_checksum`
around the GetObject), through a :class:`VerifyingReader` that hashes what it reads and, at the
end, compares it with what the object's ETag says (its MD5, or its multipart ETag with the part
size): a real mismatch still fails.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from airflow_s3sync.errors import S3SyncError
from airflow_s3sync.hooks.digest import ContentHasher
from airflow_s3sync.plan.checksum import Digests

_state = threading.local()


@contextmanager
def without_response_checksum() -> Iterator[None]:
    """The GetObjects sent in this block, in this thread, skip botocore's response checksum
    check (a client must have :func:`install`)."""
    _state.on = True
    try:
        yield
    finally:
        _state.on = False


def _drop_response_checksum(params: dict[str, Any], **kwargs: Any) -> None:
    if getattr(_state, "on", False):
        params.get("context", {}).get("checksum", {}).pop("response_algorithms", None)


def install(events: Any) -> None:
    """Let :func:`without_response_checksum` act on a client's GetObjects (the checksum
    context is resolved before ``before-call``, and read from it when the answer comes)."""
    events.register("before-call.s3.GetObject", _drop_response_checksum, unique_id="s3sync-unchecked-get")


def verifiable(digests: Digests) -> bool:
    """Whether an object's digests say enough to check bytes against: an MD5, or a multipart
    ETag with its part size."""
    return digests.md5 is not None or (digests.multipart_etag is not None and digests.part_size is not None)


class VerifyingReader:
    """A read-once file object over a GetObject body that hashes every byte and, at the end of
    the data, raises :class:`S3SyncError` unless it matches ``expected`` (see :func:`verifiable`).

    :param where: the object, for the error message.
    """

    def __init__(self, body: Any, expected: Digests, where: str) -> None:
        self._body = body
        self._expected = expected
        self._where = where
        self._hasher = ContentHasher(md5=expected.md5 is not None, part_size=expected.part_size)
        self._checked = False

    def read(self, amount: int | None = -1) -> bytes:
        """Read up to ``amount`` bytes (all that is left if ``None`` or negative)."""
        data = self._body.read(None if amount is None or amount < 0 else amount)
        if data and self._checked:
            raise S3SyncError(f"verification failed: {self._where}: more bytes than the object's {self._expected.size}")
        self._hasher.update(data)
        if not data or amount is None or amount < 0 or self._hasher.size >= self._expected.size:
            self._check()
        return data

    def _check(self) -> None:
        if self._checked:
            return
        self._checked = True
        read, expected = self._hasher.digests(), self._expected
        problem = None
        if read.size != expected.size:
            problem = f"{read.size} bytes read, the object has {expected.size}"
        elif expected.md5 is not None and read.md5 != expected.md5:
            problem = f"the bytes read have MD5 {read.md5}, the object's ETag says {expected.md5}"
        elif expected.md5 is None and read.multipart_etag != expected.multipart_etag:
            problem = f"the bytes read make ETag {read.multipart_etag}, the object's is {expected.multipart_etag}"
        if problem is not None:
            raise S3SyncError(f"verification failed: {self._where}: {problem} (read without the checksum check)")

    def close(self) -> None:
        """Close the body."""
        self._body.close()

    def __enter__(self) -> VerifyingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
