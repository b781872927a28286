"""The job runner: bounded concurrency, back-pressure, retries of transient failures, progress.

One runner serves the sync and the retention run. A job is a plain callable that does all of
one object's work in the runner's own worker thread — what must be read first, the backend
call, the follow-ups — and raises on failure; the runner retries it from the start when the
failure is transient (a dropped connection, a 5xx, a body cut short) and reports it otherwise.

A SlowDown (the server asks for fewer requests) halves the number of jobs running at once (once
a second at most: a burst of them is one signal); without another it grows back by one job at a
time, back to all workers in ``recovery`` seconds (additive increase, multiplicative decrease, as
TCP does), so a throttled bucket is not hammered by every worker at once.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType

from airflow_s3sync.execute.repeated import RepeatedErrors
from airflow_s3sync.hooks.backend import RetryUnchecked, error_signature, is_throttle

#: Attempts of one job when its failures are transient (each request inside is retried too).
JOB_ATTEMPTS = 3
#: The longest wait before a job's next attempt, in seconds.
MAX_BACKOFF = 20.0
#: Seconds without a SlowDown in which the concurrency grows back from one job to all workers.
SLOWDOWN_RECOVERY = 5.0
#: SlowDowns closer together than this (seconds) halve the concurrency once.
SLOWDOWN_BURST = 1.0


@dataclass(frozen=True, slots=True)
class Job:
    """One object's work.

    :param name: what the job is, for log lines (``upload ./a to s3://b/a``).
    :param run: does the work; raises on failure. Run again from the start after a transient
        failure, so it must be safe to repeat.
    :param failed: records the final failure (called once, with the last error).
    """

    name: str
    run: Callable[[], None]
    failed: Callable[[BaseException], None]


class JobRunner:
    """Runs jobs in ``workers`` threads, at most ``2 x workers`` submitted and unfinished at once
    (``submit`` blocks beyond that, so memory stays flat however long the plan is), logging a
    progress line every ``progress_interval`` seconds and once at the end.

    ``workers=0`` runs each job inline, in ``submit`` (for tests and debugging).

    :param workers: worker threads (the operator's ``max_concurrency``).
    :param log: where retries and progress go.
    :param progress: returns the progress line's text (called from the progress thread).
    :param transient: whether an error is worth another attempt of the whole job.
    :param attempts: attempts per job for transient errors.
    :param backoff: seconds before the first retry; doubled each time, with jitter, up to
        ``max_backoff``.
    :param throttled: whether a job's error is a SlowDown, which also calls :meth:`slow_down`.
    :param recovery: seconds without a SlowDown in which the concurrency grows back from one job
        to ``workers`` (one more job every ``recovery / workers`` seconds).
    :param name: the prefix of its worker threads' names.
    :param repeated: told of every object done or failed; when it says the same error answers
        object after object, the runner stops (see :mod:`airflow_s3sync.execute.repeated`).
    """

    def __init__(
        self,
        *,
        workers: int,
        log: logging.Logger,
        progress: Callable[[int, int], str] | None = None,
        progress_interval: float = 5.0,
        transient: Callable[[BaseException], bool] = lambda error: False,
        attempts: int = JOB_ATTEMPTS,
        backoff: float = 0.5,
        max_backoff: float = MAX_BACKOFF,
        throttled: Callable[[BaseException], bool] = is_throttle,
        recovery: float = SLOWDOWN_RECOVERY,
        name: str = "s3sync",
        repeated: RepeatedErrors | None = None,
    ) -> None:
        self.workers = workers
        self.repeated = repeated
        self.log = log
        self.retries = 0
        #: SlowDown answers seen (by a job's attempt, or reported by :meth:`slow_down`).
        self.slowdowns = 0
        #: The fewest jobs allowed to run at once so far.
        self.lowest_concurrency = max(workers, 1)
        #: Jobs that finally failed (counted here too, so a reporting bug cannot hide one).
        self.failures = 0
        self._progress = progress
        self._progress_interval = progress_interval
        self._transient = transient
        self._attempts = attempts
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._throttled = throttled
        self._recovery = recovery
        # Jobs allowed to run at once (lowered by SlowDowns), jobs running, and the clocks of
        # the last cut and of the calm since the last SlowDown.
        self._limit = max(workers, 1)
        self._running = 0
        self._last_cut = -float("inf")
        self._calm_since = time.monotonic()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name) if workers else None
        self._slots = threading.BoundedSemaphore(max(2 * workers, 1))
        self._lock = threading.Condition()
        self._in_flight = 0
        self._done = 0
        self._stopping = threading.Event()
        self._closed = threading.Event()
        self._progress_thread: threading.Thread | None = None

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stopping.is_set()

    @property
    def concurrency(self) -> int:
        """Jobs allowed to run at once now: ``workers``, or fewer for a while after a SlowDown."""
        with self._lock:
            return self._current_limit(time.monotonic())

    def slow_down(self, *, count: bool = True) -> None:
        """A request was answered SlowDown: halve the jobs running at once (not below one).
        A burst of them cuts once per second; safe from any thread. ``count=False`` when another
        runner of the same run counts it already."""
        now = time.monotonic()
        with self._lock:
            self.slowdowns += count
            self._current_limit(now)  # what it has grown back to so far
            self._calm_since = now
            if now - self._last_cut < SLOWDOWN_BURST or self._limit == 1:
                return
            self._last_cut = now
            self._limit = max(1, self._limit // 2)
            self.lowest_concurrency = min(self.lowest_concurrency, self._limit)
            limit = self._limit
        self.log.warning(
            "SlowDown from the server: at most %d object(s) at once for a while (of %d)", limit, self.workers
        )

    def _current_limit(self, now: float) -> int:
        """The limit, raised by one per ``recovery / workers`` seconds of calm (call with the lock held)."""
        if self._limit < self.workers:
            step = self._recovery / self.workers
            steps = int((now - self._calm_since) // step) if step > 0 else self.workers
            if steps > 0:
                self._limit = min(self.workers, self._limit + steps)
                self._calm_since += steps * step
        return self._limit

    def _enter(self) -> bool:
        """Wait until one more job may run (False if the runner stops meanwhile)."""
        with self._lock:
            while not self._stopping.is_set():
                if self._running < self._current_limit(time.monotonic()):
                    self._running += 1
                    return True
                self._lock.wait(timeout=0.1)
        return False

    def _leave(self) -> None:
        with self._lock:
            self._running -= 1
            self._lock.notify_all()

    def stop(self) -> None:
        """Start nothing new: jobs not yet started are dropped. Safe from any thread."""
        self._stopping.set()

    def submit(self, job: Job) -> None:
        """Run ``job`` in a worker (inline when ``workers=0``); blocks while the queue is full."""
        if self._pool is None:
            self._execute(job)
            return
        while not self._slots.acquire(timeout=0.2):
            if self._stopping.is_set():
                self._report(job, InterruptedError("the run was stopped"))
                return
        with self._lock:
            self._in_flight += 1
        try:
            self._pool.submit(self._execute_and_release, job)
        except BaseException:
            self._finished(release=True)
            raise

    def _execute_and_release(self, job: Job) -> None:
        try:
            self._execute(job)
        finally:
            self._finished(release=True)

    def _finished(self, *, release: bool) -> None:
        with self._lock:
            self._in_flight -= 1
            self._done += 1
            self._lock.notify_all()
        if release:
            self._slots.release()

    def _execute(self, job: Job) -> None:
        attempt, last_error, rerouted = 1, None, False
        while self._enter():
            try:
                job.run()
                if self.repeated is not None:
                    self.repeated.object_done()
                return
            except BaseException as error:  # noqa: BLE001 - every failure is the job's outcome
                if isinstance(error, Exception) and self._throttled(error):
                    self.slow_down()
                if isinstance(error, RetryUnchecked) and not rerouted:
                    # Not a failure of the attempt: the next one reads another way. Once, at once.
                    rerouted, delay = True, 0.0
                    self.log.warning("retrying %s at once: %s", job.name, error)
                    attempt -= 1
                elif attempt >= self._attempts or not isinstance(error, Exception) or not self._transient(error):
                    self._report(job, error)
                    return
                else:
                    delay = min(self._max_backoff, self._backoff * 2 ** (attempt - 1)) * (0.5 + random.random())
                    with self._lock:
                        self.retries += 1
                    self.log.warning("retrying %s in %.1fs (attempt %d failed: %s)", job.name, delay, attempt, error)
                last_error = error
            finally:
                self._leave()
            if self._stopping.wait(delay):  # waiting takes no place among the running jobs
                break
            attempt += 1
        # Stopped before the job ran, or while it waited to retry: the last error says more.
        self._report(job, last_error or InterruptedError("the run was stopped"))

    def _report(self, job: Job, error: BaseException) -> None:
        with self._lock:
            self.failures += 1
        if self.repeated is not None and self.repeated.object_failed(error_signature(error), job.name):
            self.log.error("stopping: %s", self.repeated.message)
            self.stop()
        try:
            job.failed(error)
        except Exception:  # a reporting bug must not hang the run
            self.log.exception("could not report the failure of %s", job.name)

    def wait(self) -> None:
        """Block until every submitted job has finished."""
        with self._lock:
            self._lock.wait_for(lambda: self._in_flight == 0)

    def _log_progress(self) -> None:
        if self._progress is None:
            return
        with self._lock:
            done, in_flight = self._done, self._in_flight
        self.log.info("%s", self._progress(done, in_flight))

    def _report_progress(self) -> None:
        while not self._closed.wait(self._progress_interval):
            self._log_progress()

    def __enter__(self) -> JobRunner:
        if self._progress is not None:
            self._progress_thread = threading.Thread(target=self._report_progress, name="s3sync-progress", daemon=True)
            self._progress_thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None:
            self.stop()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self.wait()
        self._closed.set()
        if self._progress_thread is not None:
            self._progress_thread.join()
        self._log_progress()
