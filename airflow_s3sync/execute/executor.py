"""Bounded concurrent transfers with per-object outcomes and periodic progress."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from s3transfer.futures import TransferFuture
from s3transfer.subscribers import BaseSubscriber

from airflow_s3sync.execute.report import SyncReport
from airflow_s3sync.plan.compare import Direction

#: Starts one transfer, given the subscribers to pass to the hook's transfer call.
StartTransfer = Callable[[Sequence[BaseSubscriber]], TransferFuture]


@dataclass(frozen=True, slots=True)
class Prepared:
    """What a :data:`PrepareTransfer` decided: how to start the transfer (``None`` in a dry
    run: only report it), what to run once it succeeded (used instead of the job's
    ``after_success`` when set), and what to run when the job ends, however it ends (e.g. close
    a source stream)."""

    start: StartTransfer | None
    after_success: Callable[[], None] | None = None
    cleanup: Callable[[], None] | None = None


#: Run in a worker thread: returns how to start the transfer, or ``None`` when, after a look
#: at the objects (a HeadObject, a checksum), there is nothing to transfer.
PrepareTransfer = Callable[[], Prepared | None]


@dataclass(frozen=True, slots=True)
class TransferJob:
    """One transfer: what it is, for the log and the report.

    :param direction: upload, copy or download.
    :param key: the compare key (what ``changed_keys`` records).
    :param size: the size from the listing, or ``None`` to let s3transfer look it up.
    :param etag: the ETag from an S3 listing; with the size it spares s3transfer a HeadObject,
        and multipart reads are made conditional on it (an object replaced since the listing
        fails).
    :param line: the ``aws s3 sync`` line without its verb, e.g. ``./a.txt to s3://b/a.txt``.
    :param after_success: run in the worker once the object is written (e.g. set mtime, apply a
        retention); if it raises, the job fails.
    """

    direction: Direction
    key: str
    size: int | None
    etag: str | None
    line: str
    after_success: Callable[[], None] | None = None


class _JobSubscriber(BaseSubscriber):
    def __init__(
        self, executor: TransferExecutor, job: TransferJob, *, on_finish: Callable[[], None] | None = None
    ) -> None:
        self._executor = executor
        self._job = job
        self._on_finish = on_finish
        self.after_success = job.after_success
        self.cleanup: Callable[[], None] | None = None
        self._lock = threading.Lock()
        self._finished = False

    def finish(self, error: BaseException | None, *, transferred: bool = True, dryrun: bool = False) -> None:
        """Record the job's outcome, once: a cancelled submission can report both through
        ``on_done`` and through the failed submit call."""
        with self._lock:
            if self._finished:
                return
            self._finished = True
        try:
            if self.cleanup is not None:
                try:
                    self.cleanup()
                except Exception as cleanup_error:  # noqa: BLE001 - the outcome is what matters
                    self._executor.log.debug("cleanup after %s failed: %s", self._job.line, cleanup_error)
            self._executor.finished(self._job, error, transferred=transferred, dryrun=dryrun)
        finally:
            if self._on_finish is not None:
                self._on_finish()

    def on_queued(self, future: TransferFuture, **kwargs: Any) -> None:
        if self._job.size is not None:
            future.meta.provide_transfer_size(self._job.size)
        if self._job.etag is not None:
            future.meta.provide_object_etag(self._job.etag)

    def on_progress(self, future: TransferFuture, bytes_transferred: int, **kwargs: Any) -> None:
        self._executor.report.add_bytes(bytes_transferred)

    def on_done(self, future: TransferFuture, **kwargs: Any) -> None:
        try:
            future.result()
        except BaseException as error:  # noqa: BLE001 - every failure is an outcome to report
            self.finish(error)
            return
        if self.after_success is not None:
            try:
                self.after_success()
            except Exception as error:  # noqa: BLE001 - the job's outcome
                self.finish(error)
                return
        self.finish(None)


class TransferExecutor:
    """Starts transfers, records each outcome with its ``aws s3 sync`` log line, and logs
    progress (objects, bytes, rate) every ``progress_interval`` seconds while it runs and
    once more at the end.

    Concurrency and back-pressure come from the hooks' s3transfer managers: their request
    pools are bounded and their submission queues block the planner when full, so memory
    stays flat however many transfers a plan holds.
    """

    def __init__(
        self, report: SyncReport, log: logging.Logger, *, progress_interval: float = 5.0, workers: int = 10
    ) -> None:
        self.report = report
        self.log = log
        self.progress_interval = progress_interval
        self.workers = workers
        self._pool: ThreadPoolExecutor | None = None
        # Prepared jobs hold a slot from submission until they finish: open source streams and
        # queued work stay bounded however long the plan is.
        self._prepared_slots = threading.BoundedSemaphore(workers * 2)
        self._in_flight = 0
        self._done = 0
        self._idle = threading.Condition()
        self._stop = threading.Event()
        self._progress_thread: threading.Thread | None = None
        self._started_at = time.monotonic()

    def submit(self, job: TransferJob, start: StartTransfer) -> None:
        """Start ``job``; ``start`` receives the subscribers to pass to the hook's transfer call.

        A transfer that cannot even start is recorded as failed; nothing is raised.
        """
        with self._idle:
            self._in_flight += 1
        subscriber = _JobSubscriber(self, job)
        try:
            start([subscriber])
        except Exception as error:  # noqa: BLE001 - reported as the item's failure
            subscriber.finish(error)

    def submit_prepared(self, job: TransferJob, prepare: PrepareTransfer) -> None:
        """Run ``prepare`` in a worker thread, then start what it returns (or count the job as
        skipped if it returns ``None``). Blocks while ``2 x workers`` prepared jobs are unfinished.
        """
        self._prepared_slots.acquire()
        with self._idle:
            self._in_flight += 1
        subscriber = _JobSubscriber(self, job, on_finish=self._prepared_slots.release)
        try:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="s3sync-prepare")
            self._pool.submit(self._run_prepared, job, prepare, subscriber)
        except BaseException as error:
            subscriber.finish(error)
            raise

    def _run_prepared(self, job: TransferJob, prepare: PrepareTransfer, subscriber: _JobSubscriber) -> None:
        try:
            prepared = prepare()
            if prepared is None:
                subscriber.finish(None, transferred=False)
                return
            if prepared.start is None:
                subscriber.finish(None, dryrun=True)
                return
            subscriber.cleanup = prepared.cleanup
            if prepared.after_success is not None:
                subscriber.after_success = prepared.after_success
            prepared.start([subscriber])
        except BaseException as error:  # noqa: BLE001 - reported as the item's failure; wait() must not hang
            subscriber.finish(error)

    def finished(
        self, job: TransferJob, error: BaseException | None, *, transferred: bool = True, dryrun: bool = False
    ) -> None:
        """Record the outcome of ``job`` and log its line (once per job): transferred, left
        alone (``transferred=False``), or only reported (``dryrun``)."""
        verb = job.direction.value
        try:
            if error is None and not transferred:
                self.report.skipped()
            elif error is None:
                self.report.transferred(job.direction, job.key)
                self.log.info("%s%s: %s", "(dryrun) " if dryrun else "", verb, job.line)
            else:
                self.report.failed(f"{verb} {job.line}: {error}")
                self.log.error("%s failed: %s %s", verb, job.line, error)
        finally:
            # Whatever happened above, the job is over: wait() must not hang on it.
            with self._idle:
                self._in_flight -= 1
                self._done += 1
                self._idle.notify_all()

    def wait(self) -> None:
        """Block until every submitted transfer has finished."""
        with self._idle:
            self._idle.wait_for(lambda: self._in_flight == 0)

    def _log_progress(self) -> None:
        elapsed = max(time.monotonic() - self._started_at, 1e-9)
        transferred = self.report.bytes_transferred
        with self._idle:
            done, in_flight = self._done, self._in_flight
        self.log.info(
            "progress: %d object(s) done, %d in flight, %s transferred (%s/s)",
            done,
            in_flight,
            format_bytes(transferred),
            format_bytes(transferred / elapsed),
        )

    def _report_progress(self) -> None:
        while not self._stop.wait(self.progress_interval):
            self._log_progress()

    def __enter__(self) -> TransferExecutor:
        self._started_at = time.monotonic()
        self._progress_thread = threading.Thread(target=self._report_progress, name="s3sync-progress", daemon=True)
        self._progress_thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        if self._progress_thread is not None:
            self._progress_thread.join()
        self._log_progress()


def format_bytes(count: float) -> str:
    """``1536`` -> ``1.5 KiB``."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
