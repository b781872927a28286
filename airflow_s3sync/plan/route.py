"""Route one transfer: which backend call, what is read first, what follows.

Pure: the sync run computes a :class:`RouteContext` once, then every transfer action becomes a
:class:`TransferSpec` here, so that which path an object takes is decided (and table-tested) in
one place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from airflow_s3sync.plan.compare import Direction

#: S3's limit for one CopyObject, and rclone's default ``--s3-copy-cutoff``.
MAX_COPY_OBJECT_SIZE = 5 * 1024**3
#: Streamed objects up to this size are read whole by one GetObject (and may be written by the
#: native client); larger ones are read as their upload consumes them.
READ_WHOLE_MAX = 1024 * 1024
#: The native client holds an object whole in memory: never a larger one (whatever the
#: multipart threshold), so memory stays within max_concurrency x this.
NATIVE_MAX_SIZE = 16 * 1024 * 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class TransferKind(Enum):
    """The backend call that moves one object."""

    UPLOAD = "upload"  # a local file to S3
    DOWNLOAD = "download"  # an S3 object to a local file (temp file + rename)
    COPY = "copy"  # one server-side CopyObject
    PART_COPY = "part_copy"  # a server-side multipart copy (UploadPartCopy), above copy_cutoff
    STREAM = "stream"  # S3 -> S3 between endpoints: GetObject -> PutObject / parts, through the worker


@dataclass(frozen=True, slots=True)
class RouteContext:
    """What is the same for every transfer of a run.

    :param direction: upload, copy or download.
    :param streamed: S3 -> S3 between two endpoints or two sets of credentials (no server-side copy).
    :param copy_cutoff: server-side copies up to this size are one CopyObject.
    :param multipart_threshold: from this size the writing side's uploads go in parts.
    :param copy_object_lock: the source's retention and legal hold go with each object written.
    :param copy_tags: the source's tags go with copies S3 does not tag by itself.
    :param native: the fast native client may carry this run's uploads, downloads or the
        writes of small streamed copies (it is enabled for the connection, and the run's
        request arguments, lock and tag options are ones it can carry).
    """

    direction: Direction
    streamed: bool = False
    copy_cutoff: int = MAX_COPY_OBJECT_SIZE
    multipart_threshold: int = 8 * 1024 * 1024
    copy_object_lock: bool = False
    copy_tags: bool = False
    native: bool = False


@dataclass(frozen=True, slots=True)
class TransferSpec:
    """How one object is transferred.

    :param kind: the backend call.
    :param native: through the native client instead of botocore/s3transfer (for a stream:
        its write, unless the source turns out to have a property the native client cannot
        carry).
    :param read_lock: read the source's retention and legal hold first (server-side copies).
    :param read_tags: read the source's tags first.
    :param verify: check what was written against what was read (streamed copies).
    :param lock_after: once written, give the object the source's lock again where it lacks it
        (multipart writes: some servers drop lock headers given to CreateMultipartUpload).
    :param tags_after: once written, give the object the source's tags (multipart copies).
    :param set_mtime: once written, set the local file's time to the object's (downloads).
    """

    kind: TransferKind
    native: bool = False
    read_lock: bool = False
    read_tags: bool = False
    verify: bool = False
    lock_after: bool = False
    tags_after: bool = False
    set_mtime: bool = False


def native_key(key: str) -> bool:
    """Whether ``key`` reaches S3 unchanged through the native client (obstore).

    obstore rewrites ``dir/`` to ``dir`` and ``/x`` to ``x`` and rejects empty, ``.`` and ``..``
    segments and control characters: such keys take the botocore path.
    """
    if not key or _CONTROL.search(key):
        return False
    return all(segment not in ("", ".", "..") for segment in key.split("/"))


def route(context: RouteContext, *, size: int, object_key: str, bucket_is_plain: bool = True) -> TransferSpec:
    """The transfer of one ``size``-byte object whose S3 key is ``object_key``.

    ``bucket_is_plain`` is false for an access point ARN, which only botocore can address.
    """
    direction = context.direction
    if direction is not Direction.COPY:
        native = (
            context.native
            and bucket_is_plain
            and size < min(context.multipart_threshold, NATIVE_MAX_SIZE)  # larger: s3transfer's parts
            and native_key(object_key)
        )
        if direction is Direction.UPLOAD:
            return TransferSpec(TransferKind.UPLOAD, native=native)
        return TransferSpec(TransferKind.DOWNLOAD, native=native, set_mtime=True)
    multipart_write = size >= context.multipart_threshold
    if context.streamed:
        return TransferSpec(
            TransferKind.STREAM,
            native=context.native and bucket_is_plain and size <= READ_WHOLE_MAX and native_key(object_key),
            read_tags=context.copy_tags,
            verify=True,
            lock_after=context.copy_object_lock and multipart_write,
        )
    in_parts = size > context.copy_cutoff
    return TransferSpec(
        TransferKind.PART_COPY if in_parts else TransferKind.COPY,
        read_lock=context.copy_object_lock,
        read_tags=context.copy_tags and in_parts,
        lock_after=context.copy_object_lock and in_parts,
        tags_after=context.copy_tags and in_parts,
    )
