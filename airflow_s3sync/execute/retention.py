"""One retention run: copy Object Lock retention and legal holds from source to destination."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from airflow_s3sync.errors import S3SyncError
from airflow_s3sync.execute.locks import write_lock_change
from airflow_s3sync.execute.repeated import RepeatedErrors
from airflow_s3sync.execute.report import Tally
from airflow_s3sync.execute.runner import Job, JobRunner
from airflow_s3sync.hooks.backend import Backend, ListingOrder, ObjectRef, is_transient
from airflow_s3sync.locations import S3Location
from airflow_s3sync.plan.key_range import KeyRange
from airflow_s3sync.plan.lock import Change, ChangeKind, decide_lock
from airflow_s3sync.plan.merge import ListingOrderError


@dataclass(frozen=True)
class RetentionOptions:
    """What a retention run may change.

    :param copy_legal_hold: set legal holds ON where the source's are ON.
    :param release_legal_holds: also turn destination holds OFF where the source's are OFF.
    :param bypass_governance_retention: allow shortening GOVERNANCE retention at the destination.
    :param dryrun: log what would change, change nothing.
    :param max_concurrency: objects examined in parallel.
    """

    copy_legal_hold: bool = True
    release_legal_holds: bool = False
    bypass_governance_retention: bool = False
    dryrun: bool = False
    max_concurrency: int = 10


class RetentionReport(Tally):
    """The tally of a retention run, one count per log line: ``applied`` counts writes
    (retention or legal hold; ``retention_set`` + ``legal_hold_set``), ``skipped`` counts
    refusals and objects missing on a side, ``unchanged`` counts objects that needed nothing,
    ``failed`` counts objects a request failed for; ``objects`` counts the objects examined."""

    def __init__(self, *, dryrun: bool, failure_limit: int = 50) -> None:
        super().__init__(("applied", "unchanged", "skipped", "objects"), noun="object", failure_limit=failure_limit)
        self.dryrun = dryrun
        self.changes = dict.fromkeys(("retention", "legal_hold"), 0)

    def examined(self, *, unchanged: bool = False) -> None:
        """Count one object examined (``unchanged``: nothing to do for it)."""
        with self._lock:
            self.counts["objects"] += 1
            self.counts["unchanged"] += unchanged

    def applied(self, change: Change) -> None:
        """Count one write (or, in a dry run, one planned write)."""
        with self._lock:
            self.counts["applied"] += 1
            self.changes["retention" if change.kind is ChangeKind.RETENTION else "legal_hold"] += 1

    def skipped(self) -> None:
        """Count one refusal, or one object missing on a side."""
        with self._lock:
            self.counts["skipped"] += 1

    def summary(self) -> dict[str, Any]:
        """The JSON-serialisable summary (the operator's ``return_value``)."""
        with self._lock:
            return {
                **self.counts,
                "retention_set": self.changes["retention"],
                "legal_hold_set": self.changes["legal_hold"],
                "retries": self.retries,
                "slowdowns": self.slowdowns,
                "dryrun": self.dryrun,
            }


class _Reordered(Exception):
    """A key range's listing came out of S3's order: it is listed again, whole."""


class RetentionRun:
    """Copies each source object's retention and legal hold to the same relative key at the
    destination, by the rules of :mod:`airflow_s3sync.plan.lock`.

    :param source: the source prefix.
    :param dest: the destination prefix.
    :param keys: relative keys to examine, or ``None`` for every object under the source prefix
        (a streaming listing).
    :param key_range: only keys in this range are examined (listed, or among ``keys``).
    :param now: the clock (tests pass their own).
    """

    def __init__(
        self,
        *,
        source: S3Location,
        dest: S3Location,
        source_backend: Backend,
        dest_backend: Backend,
        keys: Iterable[str] | None,
        options: RetentionOptions,
        key_range: KeyRange | None = None,
        log: logging.Logger,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.source = source
        self.dest = dest
        self.source_backend = source_backend
        self.dest_backend = dest_backend
        self.keys = keys
        self.key_range = key_range or KeyRange()
        self.options = options
        self.log = log
        self.now = now
        self.report = RetentionReport(dryrun=options.dryrun)
        self.repeated = RepeatedErrors(on_streak=self.runner_stop)
        self.runner = JobRunner(
            workers=options.max_concurrency, log=log, transient=is_transient, repeated=self.repeated
        )
        for backend in {id(source_backend): source_backend, id(dest_backend): dest_backend}.values():
            backend.listen_for_errors(self.repeated.request_failed)
        self._stopping = threading.Event()
        self._out_of_order = False

    def stop(self) -> None:
        """Ask the run to stop: no new object is examined, and the run fails."""
        self._stopping.set()
        self.runner.stop()

    def runner_stop(self) -> None:
        """The same server error answers object after object: examine nothing more."""
        self.runner.stop()

    def preflight(self) -> None:
        """Both buckets usable, and the destination has Object Lock: before any change."""
        self.source_backend.check_access(bucket=self.source.bucket, prefix=self.source.prefix)
        self.dest_backend.check_access(bucket=self.dest.bucket, prefix=self.dest.prefix)
        self.dest_backend.check_object_lock(bucket=self.dest.bucket)

    def _keys(self, *, whole: bool = False) -> Iterator[str]:
        """The keys to examine: ``keys`` in the range, or the source's listing. Each key is
        examined on its own, so the listing's order matters only where a key range's listing
        trusts it (``StartAfter``, and the stop past the range's end): found out of order there,
        :class:`_Reordered` ends it and the run lists again, ``whole`` (the prefix to its end)."""
        if self.keys is not None:
            yield from (key for key in self.keys if key in self.key_range)
            return
        source, key_range = self.source, self.key_range
        if whole:
            listing = key_range.select(self.source_backend.list_entries(bucket=source.bucket, prefix=source.prefix))
        else:
            listing = self.source_backend.list_entries(bucket=source.bucket, prefix=source.prefix, key_range=key_range)
        # Only a range listed with StartAfter and a stop past its end can have missed keys.
        trusted = not key_range.is_full and not whole and self.source_backend.listing_order is ListingOrder.S3
        previous: str | None = None
        try:
            for entry in listing:
                if previous is not None and entry.key <= previous:
                    self._say_out_of_order(entry.key, previous, again=trusted)
                    if trusted:
                        raise _Reordered
                previous = entry.key
                yield entry.key  # examined on its own: in any order, all of a complete listing
        except ListingOrderError as error:  # found by the listing where it stopped past the range
            self._say_out_of_order(error.key, error.previous, again=True)
            raise _Reordered from error

    def _say_out_of_order(self, key: str, previous: str, *, again: bool) -> None:
        if self._out_of_order:
            return
        self._out_of_order = True
        self.log.warning(
            "%s lists keys out of S3's order (%r came after %r)%s",
            self.source.display(),
            key,
            previous,
            ": its key range is listed again, whole" if again else "",
        )

    def run(self) -> RetentionReport:
        """Preflight, then examine every key in the job runner; raise naming failures."""
        self.preflight()
        listing_error: BaseException | None = None
        with self.runner:
            counts = dict(self.report.counts)
            keys = self._keys()
            while not self._stopping.is_set() and self.repeated.message is None:
                try:
                    key = next(keys)
                except StopIteration:
                    break
                except _Reordered:
                    # Examined again in the whole listing: counted once, there; writes stay counted.
                    self.runner.wait()
                    self.report.counts.update({name: counts[name] for name in ("unchanged", "skipped", "objects")})
                    keys = self._keys(whole=True)
                    continue
                except Exception as error:  # noqa: BLE001 - a failed listing ends the run, reported below
                    listing_error = error
                    self.log.error("listing failed: %s", error)
                    break
                self.runner.submit(self._job(key))
        self.report.retries, self.report.slowdowns = self.runner.retries, self.runner.slowdowns
        problems = []
        if self.repeated.message is not None:
            problems.append(self.repeated.message)
        if self._stopping.is_set():
            problems.append("the run was stopped (the task was killed)")
        if listing_error is not None:
            problems.append(f"the listing of {self.source.display()} failed ({listing_error})")
        if self.report.failure_count:
            problems.append(self.report.failure_message())
        if problems:
            raise S3SyncError("retention run failed: " + "; ".join(problems))
        return self.report

    def _job(self, key: str) -> Job:
        shown = self.dest.display(key)

        def failed(error: BaseException) -> None:
            self.log.error("retention of %s failed: %s", shown, error)
            self.report.failed(f"{shown}: {error}")

        return Job(f"retention of {shown}", lambda: self._examine_one(key), failed)

    def _examine_one(self, key: str) -> None:
        shown = self.dest.display(key)
        dest_ref = ObjectRef(self.dest.bucket, self.dest.object_key(key))
        source = self.source_backend.lock_state(ref=ObjectRef(self.source.bucket, self.source.object_key(key)))
        dest = self.dest_backend.lock_state(ref=dest_ref)
        if source is None or dest is None:
            self.report.examined()
            self.report.skipped()
            self.log.warning("skip: %s does not exist", self.source.display(key) if source is None else shown)
            return
        options = self.options
        decision = decide_lock(
            source,
            dest,
            now=self.now(),
            copy_legal_hold=options.copy_legal_hold,
            release_legal_holds=options.release_legal_holds,
            bypass_governance=options.bypass_governance_retention,
        )
        prefix = "(dryrun) " if options.dryrun else ""
        for change in decision.changes:
            if not options.dryrun:  # a failure ends this object's writes (a retry decides again)
                write_lock_change(self.dest_backend, dest_ref, change, version_id=dest.version_id)
            self.report.applied(change)
            self.log.info("%s%s: %s %s", prefix, change.kind.value, shown, change.describe())
        # Counted once the writes are done, so a retried object is examined once.
        self.report.examined(unchanged=decision.unchanged)
        for refusal in decision.refusals:
            self.report.skipped()
            self.log.warning("skip %s: %s: %s", refusal.kind.value, shown, refusal.reason)
