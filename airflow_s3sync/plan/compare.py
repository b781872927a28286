"""The ``aws s3 sync`` rules for an item present on both sides."""

from __future__ import annotations

from enum import Enum

from airflow_s3sync.plan.checksum import Verdict, parse_etag
from airflow_s3sync.plan.entries import Entry


class Direction(Enum):
    """Which way the data moves; named after the aws cli line each transfer prints."""

    UPLOAD = "upload"
    COPY = "copy"
    DOWNLOAD = "download"


class CompareMode(Enum):
    """How an item present on both sides is compared."""

    DEFAULT = "default"
    SIZE_ONLY = "size_only"
    EXACT_TIMESTAMPS = "exact_timestamps"
    CHECKSUM = "checksum"  # same size: compare content (beyond the AWS CLI)

    @classmethod
    def from_flags(cls, *, size_only: bool, exact_timestamps: bool, checksum: bool = False) -> CompareMode:
        """The mode the AWS CLI applies: ``--exact-timestamps`` wins over ``--size-only``;
        ``checksum`` wins over both."""
        if checksum:
            return cls.CHECKSUM
        if exact_timestamps:
            return cls.EXACT_TIMESTAMPS
        if size_only:
            return cls.SIZE_ONLY
        return cls.DEFAULT


class Outcome(Enum):
    """The first rungs of the compare ladder, for an item on both sides."""

    TRANSFER = "transfer"
    SKIP = "skip"
    CHECK_CONTENT = "check_content"  # same size in CHECKSUM mode: the content decides (I/O, in a checker)


def compare(src: Entry, dst: Entry, *, direction: Direction, mode: CompareMode) -> tuple[Outcome, str]:
    """The compare ladder of an item on both sides, as far as listings tell: the ``aws s3 sync``
    size and time rules (:func:`needs_transfer`), or in ``CHECKSUM`` mode: sizes that differ
    transfer, equal single- or multipart ETags skip (the ETag shortcut), anything else is a
    content check (:func:`decide_content` takes its verdict)."""
    if mode is CompareMode.CHECKSUM and src.size == dst.size:
        if src.etag == dst.etag and parse_etag(src.etag) != (None, None):
            return Outcome.SKIP, "same size and ETag"
        return Outcome.CHECK_CONTENT, "same size: compare content"
    if mode is CompareMode.CHECKSUM:
        mode = CompareMode.SIZE_ONLY
    transfer, reason = needs_transfer(src, dst, direction=direction, mode=mode)
    return (Outcome.TRANSFER if transfer else Outcome.SKIP), reason


def needs_transfer(src: Entry, dst: Entry, *, direction: Direction, mode: CompareMode) -> tuple[bool, str]:
    """Whether ``src`` must be transferred over ``dst``, and why (for the debug log).

    Sizes that differ always transfer. Otherwise: ``SIZE_ONLY`` skips; uploads and copies
    transfer when the source is strictly newer; downloads transfer when the *local* file is
    strictly newer (the AWS CLI's reversed rule), or, with ``EXACT_TIMESTAMPS``, whenever the
    times differ at all.
    """
    if src.size != dst.size:
        return True, f"size differs (source {src.size}, destination {dst.size})"
    if mode is CompareMode.SIZE_ONLY:
        return False, "same size"
    if mode is CompareMode.CHECKSUM:
        raise ValueError("CHECKSUM compares content, which needs I/O: the plan yields VERIFY for it")
    delta = (dst.mtime - src.mtime).total_seconds()
    if direction is Direction.DOWNLOAD:
        if mode is CompareMode.EXACT_TIMESTAMPS:
            if delta != 0:
                return True, f"same size, times differ by {delta:+.3f}s"
            return False, "same size and time"
        if delta > 0:
            return True, f"same size, local file is newer by {delta:.3f}s"
        return False, "same size, local file is not newer"
    if delta < 0:
        return True, f"same size, source is newer by {-delta:.3f}s"
    return False, "same size, source is not newer"


class ContentDecision(Enum):
    """What a content comparison (``checksum=True``) leads to."""

    TRANSFER = "transfer"  # the contents differ
    SKIP = "skip"  # the contents are the same
    SKIP_BY_SIZE = "skip_by_size"  # nothing could compare them: the equal sizes decide, with a warning


def decide_content(verdict: Verdict) -> ContentDecision:
    """The last rung of the ladder: different contents transfer, same ones skip, and a
    comparison that cannot tell leaves the sizes (equal, or it would not have been asked) to
    decide, with a warning — as ``aws s3 sync`` would have skipped by size and time."""
    if verdict is Verdict.DIFFERENT:
        return ContentDecision.TRANSFER
    if verdict is Verdict.SAME:
        return ContentDecision.SKIP
    return ContentDecision.SKIP_BY_SIZE
