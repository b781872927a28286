"""Counts, bytes and per-object outcomes of one sync run, shaped for XCom."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

from airflow_s3sync.plan.compare import Direction

_COUNTER_OF = {Direction.UPLOAD: "uploaded", Direction.COPY: "copied", Direction.DOWNLOAD: "downloaded"}


def check_changed_keys_limit(limit: object) -> None:
    """Raise ``ValueError`` unless ``limit`` is a non-negative integer."""
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise ValueError(f"changed_keys_limit must be a non-negative integer, got {limit!r}")


def failure_message(count: int, shown: list[str], noun: str) -> str:
    """``3 item(s) failed: a; b; and 1 more``: ``count`` failures, of which ``shown`` are described."""
    more = count - len(shown)
    suffix = f"; and {more} more" if more > 0 else ""
    return f"{count} {noun}(s) failed: {'; '.join(shown)}{suffix}"


def format_bytes(count: float) -> str:
    """``1536`` -> ``1.5 KiB``."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


class Tally:
    """Thread-safe counts of a run, with the failures described (capped) for its error message.

    :param counters: the names of the counts.
    :param noun: what a failure is of, for the message (``item``, ``object``).
    :param failure_limit: how many failure descriptions are kept.
    """

    def __init__(self, counters: tuple[str, ...], *, noun: str, failure_limit: int = 50) -> None:
        self._lock = threading.Lock()
        self.counts = dict.fromkeys((*counters, "failed"), 0)
        self.failures: list[str] = []
        self.retries = 0
        #: SlowDown answers heard, each of which lowered the run's concurrency for a while.
        self.slowdowns = 0
        self._noun = noun
        self._failure_limit = failure_limit
        self._started = time.monotonic()

    def failed(self, description: str) -> None:
        """Count one failure; ``description`` names the item and the error."""
        with self._lock:
            self.counts["failed"] += 1
            if len(self.failures) < self._failure_limit:
                self.failures.append(description)

    @property
    def failure_count(self) -> int:
        """How many items failed so far."""
        return self.counts["failed"]

    def failure_message(self) -> str:
        """One message naming the failed items (capped)."""
        return failure_message(self.failure_count, self.failures, self._noun)

    def elapsed(self) -> float:
        """Seconds since the tally was made."""
        return time.monotonic() - self._started


class SyncReport(Tally):
    """The tally of a sync run. Lists are capped so a run over millions of keys stays small.

    :param dryrun: whether the run only reports.
    :param changed_keys_limit: how many written keys are kept for the ``changed_keys`` XCom.
    :param failure_limit: how many failure descriptions are kept for the error message.
    """

    def __init__(self, *, dryrun: bool, changed_keys_limit: int = 10_000, failure_limit: int = 50) -> None:
        check_changed_keys_limit(changed_keys_limit)
        super().__init__(
            ("uploaded", "copied", "downloaded", "deleted", "skipped"), noun="item", failure_limit=failure_limit
        )
        self.dryrun = dryrun
        self.warnings = 0
        self.bytes_transferred = 0
        self.changed_keys: list[str] = []
        self.changed_keys_total = 0
        self._changed_keys_limit = changed_keys_limit
        #: Stale multipart uploads aborted (or, in a dry run, found) before transferring.
        self.aborted_uploads = 0
        #: The shard of keys the run covered, ``[start_after, end]``; ``None``: every key.
        self.key_range: list[str | None] | None = None
        #: Objects (and their bytes) planned for transfer so far; ``totals_known`` once all are.
        self.planned_objects = 0
        self.planned_bytes = 0
        self.totals_known = False

    def transferred(self, direction: Direction, key: str) -> None:
        """Count one finished (or, in a dry run, planned) transfer that wrote ``key``."""
        with self._lock:
            self.counts[_COUNTER_OF[direction]] += 1
            self.changed_keys_total += 1
            if len(self.changed_keys) < self._changed_keys_limit:
                self.changed_keys.append(key)

    def planned(self, size: int) -> None:
        """Count one object the run is to transfer, of ``size`` bytes (for progress totals)."""
        with self._lock:
            self.planned_objects += 1
            self.planned_bytes += size

    def plan_complete(self) -> None:
        """Every object the run transfers is planned: the totals are known."""
        with self._lock:
            self.totals_known = True

    def progress_line(self, done: int, in_flight: int) -> str:
        """The progress line: with totals and an ETA once they are known
        (``progress: 120 of 1,000 object(s), 1.2 MiB of 10.0 MiB, 2.0 MiB/s, ETA 0:00:05``),
        before that what is known so far."""
        elapsed = max(self.elapsed(), 1e-9)
        with self._lock:
            sent, objects, size, known = (
                self.bytes_transferred,
                self.planned_objects,
                self.planned_bytes,
                self.totals_known,
            )
        rate = sent / elapsed
        if not known:
            return (
                f"progress: {done:,} of {objects:,}+ object(s) so far, {in_flight:,} in flight, "
                f"{format_bytes(sent)} of {format_bytes(size)}+, {format_bytes(rate)}/s"
            )
        left = max(size - sent, 0)
        eta = "unknown" if rate <= 0 and left else str(timedelta(seconds=round(left / rate if left else 0)))
        return (
            f"progress: {done:,} of {objects:,} object(s), {format_bytes(sent)} of {format_bytes(size)}, "
            f"{format_bytes(rate)}/s, ETA {eta}"
        )

    def add_bytes(self, count: int) -> None:
        """Add transferred bytes (progress callbacks may report negative amounts on retries)."""
        with self._lock:
            self.bytes_transferred += count

    def skipped(self, *, warning: bool = False) -> None:
        """Count one item left alone; ``warning`` when a safety check refused it."""
        with self._lock:
            self.counts["skipped"] += 1
            self.warnings += warning

    def warned(self, count: int = 1) -> None:
        """Count warnings that did not skip anything (e.g. an mtime that could not be set)."""
        with self._lock:
            self.warnings += count

    def deleted(self) -> None:
        """Count one deleted (or, in a dry run, planned) delete."""
        with self._lock:
            self.counts["deleted"] += 1

    @property
    def changed_keys_truncated(self) -> bool:
        """Whether ``changed_keys`` holds fewer keys than were written."""
        return self.changed_keys_total > len(self.changed_keys)

    def summary(self) -> dict[str, Any]:
        """The JSON-serialisable summary returned by the operator (its ``return_value`` XCom)."""
        with self._lock:
            return {
                **self.counts,
                "bytes_transferred": self.bytes_transferred,
                "warnings": self.warnings,
                "retries": self.retries,
                "slowdowns": self.slowdowns,
                "dryrun": self.dryrun,
                "changed_keys_count": self.changed_keys_total,
                "changed_keys_truncated": self.changed_keys_truncated,
                "aborted_uploads": self.aborted_uploads,
                "key_range": self.key_range,
            }
