"""Listing entries and the pairs the merge produces."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Entry:
    """One object or file of a listing.

    :param key: the compare key: the path relative to the listing root, ``/``-separated.
    :param size: size in bytes.
    :param mtime: timezone-aware modification time (S3 ``LastModified`` or local ``st_mtime``).
    :param etag: the S3 ETag, when the entry comes from S3.
    :param storage_class: the S3 storage class, when the entry comes from S3.
    """

    key: str
    size: int
    mtime: datetime
    etag: str | None = None
    storage_class: str | None = None


@dataclass(frozen=True, slots=True)
class Pair:
    """The two sides of one compare key; at least one of them is set.

    ``unsure``: the destination's listing may still hold a source-only key, should that
    listing turn out to be out of S3's order (see :func:`~airflow_s3sync.plan.merge.merge`).
    """

    src: Entry | None
    dst: Entry | None
    unsure: bool = False

    @property
    def key(self) -> str:
        """The compare key both sides share."""
        entry = self.src if self.src is not None else self.dst
        assert entry is not None
        return entry.key
