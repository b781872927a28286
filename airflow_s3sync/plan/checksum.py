"""Compare two objects by content, from what their digests allow (``checksum=True``).

Pure: the I/O layer reads an S3 object's digests with HeadObject (ETag, full-object checksums,
part size) and hashes a local file for what the other side offers (:func:`local_digest_plan`);
:func:`compare_digests` then says whether the contents are the same, different, or cannot be
compared (the caller falls back to size, with a warning).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum

#: Full-object checksum algorithms, strongest first, as S3 names them (``ChecksumSHA256``, ...).
CHECKSUM_ALGORITHMS = ("SHA256", "SHA1", "CRC64NVME", "CRC32C", "CRC32")
_CRYPTOGRAPHIC = ("SHA256", "SHA1")
_MD5_ETAG = re.compile(r"^[0-9a-f]{32}$")
_KMS_ENCRYPTION = frozenset({"aws:kms", "aws:kms:dsse"})
_MULTIPART_ETAG = re.compile(r"^[0-9a-f]{32}-(?P<parts>[1-9][0-9]*)$")
#: The user-metadata key of a content MD5 recorded by the writer (base64), as rclone writes it
#: for objects written in parts: their ETag is no MD5, and some servers' is not even an
#: MD5 of part MD5s.
RECORDED_MD5 = "md5chksum"


def recorded_md5(metadata: Mapping[str, str] | None) -> str | None:
    """The hex MD5 recorded in user ``metadata`` (:data:`RECORDED_MD5`), if it holds one."""
    value = (metadata or {}).get(RECORDED_MD5)
    if not value:
        return None
    try:
        digest = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return digest.hex() if len(digest) == 16 else None


def base64_md5(md5: str) -> str:
    """A hex MD5 as S3 writes it in ``Content-MD5`` (and rclone in :data:`RECORDED_MD5`): base64."""
    return base64.b64encode(bytes.fromhex(md5)).decode()


def with_recorded_md5(metadata: Mapping[str, str] | None, md5: str) -> dict[str, str]:
    """``metadata`` with the content's hex ``md5`` recorded (:data:`RECORDED_MD5`)."""
    return {**(metadata or {}), RECORDED_MD5: base64_md5(md5)}


class Verdict(Enum):
    """The outcome of a content comparison."""

    SAME = "same"
    DIFFERENT = "different"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Digests:
    """What is known of one object's content.

    :param size: its size in bytes.
    :param md5: the hex MD5 of the whole content (a single-part, non-KMS ETag, or computed).
    :param multipart_etag: an S3 multipart ETag ``<hex>-<parts>`` (read, or computed).
    :param part_size: the size of the parts ``multipart_etag`` was made of, when known.
    :param checksums: full-object checksums by algorithm (``{"CRC32": "base64"}``).
    :param recorded_md5: the hex MD5 of the content as its writer recorded it in the user
        metadata (:data:`RECORDED_MD5`), for objects whose ETag is no MD5.
    """

    size: int
    md5: str | None = None
    multipart_etag: str | None = None
    part_size: int | None = None
    checksums: Mapping[str, str] = field(default_factory=dict)
    recorded_md5: str | None = None

    @property
    def parts(self) -> int | None:
        """How many parts the multipart ETag says the object has."""
        match = _MULTIPART_ETAG.match(self.multipart_etag or "")
        return int(match["parts"]) if match else None


def md5_etag_possible(*, encryption: str | None, customer_key: bool) -> bool:
    """Whether an object's ETag can be an MD5 (or MD5 of part MD5s), by its server-side
    ``encryption`` and whether a customer key (SSE-C) encrypts it: not with SSE-KMS or SSE-C."""
    return encryption not in _KMS_ENCRYPTION and not customer_key


def parse_etag(etag: str | None, *, md5_etag_possible: bool = True) -> tuple[str | None, str | None]:
    """``(md5, multipart_etag)`` from an S3 ETag: a 32-hex ETag is the MD5 of the content and
    ``<hex>-<n>`` the MD5 of its part MD5s, unless the object is encrypted with SSE-KMS or SSE-C
    (``md5_etag_possible=False``); anything else tells nothing."""
    value = (etag or "").strip('"').lower()
    if not md5_etag_possible:
        return None, None  # SSE-KMS / SSE-C ETags, single-part or multipart, are no MD5s
    if _MULTIPART_ETAG.match(value):
        return None, value
    if _MD5_ETAG.match(value):
        return value, None
    return None, None


def multipart_etag(part_md5s: Iterable[bytes]) -> str:
    """The ETag S3 gives an object uploaded in parts with these MD5 digests."""
    digests = list(part_md5s)
    return f"{hashlib.md5(b''.join(digests), usedforsecurity=False).hexdigest()}-{len(digests)}"


@dataclass(frozen=True, slots=True)
class LocalDigestPlan:
    """What to compute over a local file to compare it with an S3 object.

    :param md5: the MD5 of the whole file.
    :param part_size: also the multipart ETag with parts of this size.
    :param algorithm: also this full-object checksum.
    """

    md5: bool = False
    part_size: int | None = None
    algorithm: str | None = None

    @property
    def empty(self) -> bool:
        """Nothing computable would help: the comparison will be by size."""
        return not self.md5 and self.part_size is None and self.algorithm is None

    @property
    def strong(self) -> bool:
        """An MD5 or a cryptographic checksum: nothing better to look for."""
        return self.md5 or self.algorithm in _CRYPTOGRAPHIC


def local_digest_plan(remote: Digests, *, computable: Iterable[str]) -> LocalDigestPlan:
    """The strongest digest of ``remote`` a local file can be hashed for: its MD5, else a
    cryptographic checksum, else its multipart ETag (when the part size is known), else a CRC —
    among the checksums the machine can compute (``computable``)."""
    if remote.md5 is not None or remote.recorded_md5 is not None:
        return LocalDigestPlan(md5=True)
    available = set(computable) & set(remote.checksums)
    for algorithm in _CRYPTOGRAPHIC:
        if algorithm in available:
            return LocalDigestPlan(algorithm=algorithm)
    if remote.multipart_etag is not None and remote.part_size is not None:
        return LocalDigestPlan(part_size=remote.part_size)
    for algorithm in CHECKSUM_ALGORITHMS:
        if algorithm in available:
            return LocalDigestPlan(algorithm=algorithm)
    return LocalDigestPlan()


def compare_digests(a: Digests, b: Digests) -> tuple[Verdict, str]:
    """Whether ``a`` and ``b`` have the same content, and how that was decided.

    Every digest both sides have is compared: any disagreement means different content;
    otherwise the strongest agreement decides (a 32-bit CRC only when nothing stronger is shared).
    When they share none, an MD5 recorded in the metadata (:data:`RECORDED_MD5`) decides.
    """
    if a.size != b.size:
        return Verdict.DIFFERENT, f"sizes differ ({a.size}, {b.size})"
    shared: list[tuple[str, bool]] = []
    for algorithm in CHECKSUM_ALGORITHMS:
        if algorithm in a.checksums and algorithm in b.checksums:
            shared.append((algorithm, a.checksums[algorithm] == b.checksums[algorithm]))
    if a.md5 is not None and b.md5 is not None:
        shared.append(("MD5", a.md5 == b.md5))
    if a.multipart_etag is not None and b.multipart_etag is not None:
        if a.multipart_etag == b.multipart_etag:
            shared.append(("multipart ETag", True))
        elif a.part_size is not None and a.part_size == b.part_size:
            shared.append((f"multipart ETag (part size {a.part_size})", False))
    for name, same in shared:
        if not same:
            return Verdict.DIFFERENT, f"{name} differs"
    if shared:
        strongest = min((name for name, _ in shared), key=_strength)
        return Verdict.SAME, f"{strongest} equal"
    # Nothing the server computed decides: the MD5 a writer recorded in the metadata may.
    a_md5, b_md5 = a.md5 or a.recorded_md5, b.md5 or b.recorded_md5
    if a_md5 is not None and b_md5 is not None:
        same = a_md5 == b_md5
        return (
            Verdict.SAME if same else Verdict.DIFFERENT
        ), f"MD5 recorded in the metadata {'equal' if same else 'differs'}"
    return Verdict.UNKNOWN, "no checksum both sides have (different part sizes, SSE-KMS or no full-object checksum)"


def _strength(name: str) -> int:
    """Lower is stronger: cryptographic hashes, then MD5-based ETags, then CRCs."""
    order = ("SHA256", "SHA1", "MD5", "multipart ETag", "CRC64NVME", "CRC32C", "CRC32")
    return next((rank for rank, prefix in enumerate(order) if name.startswith(prefix)), len(order))


def wants_part_size(remote: Digests, *, computable: Iterable[str]) -> bool:
    """Whether a local file is best compared with ``remote`` once the part size of its
    multipart ETag is known: nothing stronger is offered, and the ETag is multipart."""
    return remote.multipart_etag is not None and not local_digest_plan(remote, computable=computable).strong


def wants_part_sizes(verdict: Verdict, a: Digests, b: Digests) -> bool:
    """Whether two objects that could not be compared can be once their part sizes are known:
    both have multipart ETags of as many parts."""
    return verdict is Verdict.UNKNOWN and bool(a.multipart_etag and b.multipart_etag) and a.parts == b.parts
