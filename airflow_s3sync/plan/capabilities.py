"""What each S3 client can carry, in one frozen value per backend: routing reads it, never a type.

Like rclone's ``fs.Features``: a backend declares which calls it has, which keys and sizes it
carries unchanged, which request arguments and object properties it can send, and whether it
carries Object Lock headers and tags on a write. :func:`carries` is the one test routing makes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PLAIN_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")
#: Bucket-name suffixes of access point aliases, Object Lambda and Outposts access point aliases,
#: and directory buckets.
_SPECIAL_BUCKET_SUFFIXES = ("-s3alias", "--ol-s3", "--op-s3", "--x-s3")


class Operation(Enum):
    """A call that moves one object's data."""

    UPLOAD_FILE = "upload_file"  # a local file to S3
    DOWNLOAD_FILE = "download_file"  # an S3 object to a local file, atomically
    COPY = "copy"  # one server-side CopyObject, across buckets
    PART_COPY = "part_copy"  # a server-side multipart copy (UploadPartCopy)
    READ_WHOLE = "read_whole"  # GetObject into memory, with every property of the object
    READ_STREAM = "read_stream"  # GetObject read as the writer consumes it
    WRITE_WHOLE = "write_whole"  # PutObject of bytes in memory
    WRITE_STREAM = "write_stream"  # an upload of a stream read once (parts above the threshold)


class KeyRule(Enum):
    """Which keys a client sends unchanged."""

    ANY = "any"  # every key S3 accepts
    PLAIN = "plain"  # no empty, ``.`` or ``..`` segment, no control character (others are rewritten)


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What one backend carries exactly.

    :param name: the client, for logs and tests (``botocore``, ``obstore``, ``awscrt``).
    :param operations: the calls it has.
    :param keys: the keys it sends unchanged.
    :param max_size: the largest object it carries (``None``: any size its calls allow).
    :param request_args: the request arguments (botocore's names) it sends; ``None``: every
        argument s3transfer allows.
    :param properties: the object properties it writes on a streamed copy (``ContentType``,
        ``Expires``, ``Metadata``, ...).
    :param lock_headers: it sends Object Lock headers with a write.
    :param tags: it sends tags (``x-amz-tagging``) with a write.
    :param access_points: it addresses buckets that are no plain bucket names (access point ARNs
        and aliases, Object Lambda aliases, directory buckets: :func:`bucket_is_plain`).
    :param multipart: it writes (or reads) objects from the multipart threshold on in parts, as
        s3transfer does, so their ETags are the multipart ETags other tools compute.
    :param reserved_metadata: user metadata names (lower case, no hyphens) it would take for a
        header: such metadata keeps an object off this backend.
    """

    name: str
    operations: frozenset[Operation]
    keys: KeyRule = KeyRule.ANY
    max_size: int | None = None
    request_args: frozenset[str] | None = None
    properties: frozenset[str] = frozenset()
    lock_headers: bool = False
    tags: bool = False
    access_points: bool = False
    multipart: bool = False
    reserved_metadata: frozenset[str] = frozenset()


def key_is_plain(key: str) -> bool:
    """Whether ``key`` has no empty, ``.`` or ``..`` segment and no control character: what a
    client that normalises paths (obstore) sends unchanged."""
    if not key or _CONTROL.search(key):
        return False
    return all(segment not in ("", ".", "..") for segment in key.split("/"))


def rewrite_kind(key: str) -> str | None:
    """What in the object key ``key`` a server that stores objects as files may rewrite or
    refuse (``a//b`` stored as ``a/b``, ``/lead`` as ``lead``, ``./x`` refused), described for a
    log line; ``None`` when there is nothing such."""
    if key.startswith("/"):
        return "a leading '/'"
    if "//" in key:
        return "'//'"
    if any(segment in (".", "..") for segment in key.split("/")):
        return "a '.' or '..' segment"
    return None


def bucket_is_plain(bucket: str) -> bool:
    """Whether ``bucket`` is a plain bucket name, addressed path style on the endpoint by any
    client; not an access point ARN or alias, an Object Lambda alias or a directory bucket
    (those need botocore's endpoint rules)."""
    return bool(_PLAIN_BUCKET.fullmatch(bucket)) and not bucket.endswith(_SPECIAL_BUCKET_SUFFIXES)


def carries(
    capabilities: Capabilities,
    operation: Operation,
    *,
    keys: Iterable[str],
    size: int,
    access_point: bool = False,
    in_parts: bool = False,
    request_args: Iterable[str] = (),
    lock: bool = False,
    tags: bool = False,
) -> bool:
    """Whether a backend with ``capabilities`` carries ``operation`` of this object exactly: the
    call, the keys it sends (source and destination), the size and whether it goes in parts,
    the bucket kind, every request argument, a lock and tags."""
    if operation not in capabilities.operations:
        return False
    if capabilities.keys is KeyRule.PLAIN and not all(key_is_plain(key) for key in keys):
        return False
    if capabilities.max_size is not None and size > capabilities.max_size:
        return False
    if access_point and not capabilities.access_points:
        return False
    if in_parts and not capabilities.multipart:
        return False
    if not all(sends_arg(capabilities, name) for name in request_args):
        return False
    return not (lock and not capabilities.lock_headers) and not (tags and not capabilities.tags)


def sends_arg(capabilities: Capabilities, name: str) -> bool:
    """Whether a backend sends the request argument ``name`` (botocore's name)."""
    return capabilities.request_args is None or name in capabilities.request_args


def writes_properties(capabilities: Capabilities, properties: Iterable[str], metadata: Iterable[str] = ()) -> bool:
    """Whether a backend writes these object properties (and user metadata names) exactly: a
    source's properties are known only once it is read, so a streamed copy asks this then."""
    if not set(properties) <= capabilities.properties:
        return False
    return not any(name.lower().replace("-", "") in capabilities.reserved_metadata for name in metadata)


def carriers(candidates: Iterable[Capabilities], operation: Operation, **needs: object) -> tuple[int, ...]:
    """The indexes of ``candidates`` (in order of preference) that :func:`carries` the object."""
    return tuple(
        index
        for index, capabilities in enumerate(candidates)
        if carries(capabilities, operation, **needs)  # type: ignore[arg-type]
    )
