"""Route one transfer: which call, carried by which backend, what is read first, what follows.

Pure: the sync run computes a :class:`RouteContext` once (with each side's backends'
:class:`~airflow_s3sync.plan.capabilities.Capabilities`, in order of preference), then every
transfer action becomes a :class:`TransferSpec` here, so that which path an object takes is
decided (and table-tested) in one place. Routing reads capabilities, never a backend's type.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from airflow_s3sync.plan.capabilities import Capabilities, Operation, carriers
from airflow_s3sync.plan.compare import Direction

#: S3's limit for one CopyObject, and rclone's default ``--s3-copy-cutoff``.
MAX_COPY_OBJECT_SIZE = 5 * 1024**3
#: Streamed objects up to this size are read whole by one GetObject (and written by one
#: PutObject); larger ones are read as their upload consumes them.
READ_WHOLE_MAX = 1024 * 1024


class TransferKind(Enum):
    """The call that moves one object."""

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
    :param multipart_threshold: from this size the writing side's uploads go in parts (so
        smaller objects get single-part ETags whichever backend writes them).
    :param copy_object_lock: the source's retention and legal hold go with each object written.
    :param copy_tags: the source's tags go with copies S3 does not tag by itself.
    :param source: the capabilities of the source side's backends, in order of preference
        (empty for a local source).
    :param dest: the same for the destination side.
    :param request_args: the names of the request arguments every write (or read) sends.
    :param source_access_point: the source bucket is no plain bucket name (an access point ARN or
        alias, a directory bucket, ...: :func:`~airflow_s3sync.plan.capabilities.bucket_is_plain`).
    :param dest_access_point: the same for the destination bucket.
    """

    direction: Direction
    streamed: bool = False
    copy_cutoff: int = MAX_COPY_OBJECT_SIZE
    multipart_threshold: int = 8 * 1024 * 1024
    copy_object_lock: bool = False
    copy_tags: bool = False
    source: tuple[Capabilities, ...] = ()
    dest: tuple[Capabilities, ...] = ()
    request_args: frozenset[str] = frozenset()
    source_access_point: bool = False
    dest_access_point: bool = False


@dataclass(frozen=True, slots=True)
class TransferSpec:
    """How one object is transferred.

    :param kind: the call.
    :param backend: which of the moving side's backends carries it (an index into
        :attr:`RouteContext.dest`, or :attr:`RouteContext.source` for a download); for a
        stream, the destination backend that writes it.
    :param alternates: for a stream, the other destination backends that carry its write, in
        order of preference: the source's properties are known only once it is read, and the
        first of them that writes those takes the write if ``backend`` does not.
    :param reader: for a stream, which source backend reads it.
    :param whole: for a stream, the object is read whole into memory by one GetObject and
        written by one PutObject (else read as its multipart upload consumes it).
    :param read_lock: read the source's retention and legal hold first (server-side copies).
    :param read_tags: read the source's tags first.
    :param verify: check what was written against what was read (streamed copies).
    :param lock_after: once written, give the object the source's lock again where it lacks it
        (multipart writes: some servers drop lock headers given to CreateMultipartUpload).
    :param tags_after: once written, give the object the source's tags (multipart copies).
    :param set_mtime: once written, set the local file's time to the object's (downloads).
    """

    kind: TransferKind
    backend: int = 0
    alternates: tuple[int, ...] = ()
    reader: int = 0
    whole: bool = False
    read_lock: bool = False
    read_tags: bool = False
    verify: bool = False
    lock_after: bool = False
    tags_after: bool = False
    set_mtime: bool = False


class NoCarrierError(ValueError):
    """No backend of a side carries a transfer (a side must end with a full backend)."""


def _carriers(candidates: tuple[Capabilities, ...], operation: Operation, **needs: object) -> tuple[int, ...]:
    found = carriers(candidates, operation, **needs)
    if not found:
        names = ", ".join(capabilities.name for capabilities in candidates) or "none"
        raise NoCarrierError(f"no backend ({names}) carries {operation.value} of {needs.get('keys')}")
    return found


def _carrier(candidates: tuple[Capabilities, ...], operation: Operation, **needs: object) -> int:
    return _carriers(candidates, operation, **needs)[0]


def route(context: RouteContext, *, size: int, source_key: str, dest_key: str) -> TransferSpec:
    """The transfer of one ``size``-byte object from the S3 key (or path key) ``source_key``
    to ``dest_key``."""
    direction = context.direction
    args = context.request_args
    in_parts = size >= context.multipart_threshold  # a multipart write (or read) with s3transfer's parts
    if direction is Direction.UPLOAD:
        index = _carrier(
            context.dest,
            Operation.UPLOAD_FILE,
            keys=(dest_key,),
            size=size,
            in_parts=in_parts,
            access_point=context.dest_access_point,
            request_args=args,
        )
        return TransferSpec(TransferKind.UPLOAD, backend=index)
    if direction is Direction.DOWNLOAD:
        index = _carrier(
            context.source,
            Operation.DOWNLOAD_FILE,
            keys=(source_key,),
            size=size,
            in_parts=in_parts,
            access_point=context.source_access_point,
            request_args=args,
        )
        return TransferSpec(TransferKind.DOWNLOAD, backend=index, set_mtime=True)
    lock, tags = context.copy_object_lock, context.copy_tags
    if context.streamed:
        small = size <= READ_WHOLE_MAX and not in_parts
        reader = _carrier(
            context.source,
            Operation.READ_WHOLE if small else Operation.READ_STREAM,
            keys=(source_key,),
            size=size,
            access_point=context.source_access_point,
        )
        writers = _carriers(
            context.dest,
            Operation.WRITE_WHOLE if small else Operation.WRITE_STREAM,
            keys=(dest_key,),
            size=size,
            in_parts=in_parts,
            access_point=context.dest_access_point,
            request_args=args,
            lock=lock,
            tags=tags,
        )
        return TransferSpec(
            TransferKind.STREAM,
            backend=writers[0],
            alternates=writers[1:],
            reader=reader,
            whole=small,
            read_tags=tags,
            verify=True,
            lock_after=lock and in_parts,
        )
    part_copy = size > context.copy_cutoff
    index = _carrier(
        context.dest,
        Operation.PART_COPY if part_copy else Operation.COPY,
        keys=(source_key, dest_key),
        size=size,
        access_point=context.source_access_point or context.dest_access_point,
        request_args=args,
        lock=lock,
    )
    return TransferSpec(
        TransferKind.PART_COPY if part_copy else TransferKind.COPY,
        backend=index,
        read_lock=lock,
        read_tags=tags and part_copy,
        lock_after=lock and part_copy,
        tags_after=tags and part_copy,
    )
