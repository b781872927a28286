"""The ``aws s3 sync`` rules for an item present on both sides."""

from __future__ import annotations

from enum import Enum

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
