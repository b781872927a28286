"""JobRunner: inline mode, back-pressure, retries, failures that are not Exceptions, stop(), SlowDowns."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import pytest

from airflow_s3sync.execute import runner as runner_module
from airflow_s3sync.execute.runner import Job, JobRunner
from airflow_s3sync.hooks.backend import RetryUnchecked, is_throttle, is_transient
from tests.execute.fakes import client_error

LOG = logging.getLogger("test.runner")
WAIT = 5.0  # the longest any step of these tests may take


class Fatal(BaseException):
    """Not an Exception: what KeyboardInterrupt or SystemExit look like to the runner."""


class Recorder:
    """Jobs whose runs and failures are recorded."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.runs: list[str] = []
        self.failures: dict[str, BaseException] = {}
        self.threads: dict[str, threading.Thread] = {}

    def job(self, name: str, body: Callable[[], None] = lambda: None) -> Job:
        def run() -> None:
            with self.lock:
                self.runs.append(name)
                self.threads[name] = threading.current_thread()
            body()

        def failed(error: BaseException) -> None:
            with self.lock:
                self.failures[name] = error

        return Job(name, run, failed)

    def count(self, name: str) -> int:
        with self.lock:
            return self.runs.count(name)


def blocking(started: threading.Event, release: threading.Event) -> Callable[[], None]:
    def body() -> None:
        started.set()
        assert release.wait(WAIT), "the test never released this job"

    return body


def in_thread(target: Callable[[], None]) -> threading.Event:
    """Run ``target`` in a daemon thread; the Event is set when it returned."""
    returned = threading.Event()

    def call() -> None:
        target()
        returned.set()

    threading.Thread(target=call, daemon=True).start()
    return returned


def test_inline_mode_runs_each_job_in_the_callers_thread_before_submit_returns() -> None:
    jobs = Recorder()
    runner = JobRunner(workers=0, log=LOG)

    with runner:
        runner.submit(jobs.job("a"))
        assert jobs.runs == ["a"]  # done before submit returned
        runner.submit(jobs.job("b", lambda: 1 / 0))
        assert isinstance(jobs.failures["b"], ZeroDivisionError)

    assert jobs.threads["a"] is threading.current_thread()
    assert jobs.threads["b"] is threading.current_thread()


def test_inline_mode_retries_transient_failures() -> None:
    jobs = Recorder()
    errors = [ConnectionError("dropped")]

    def flaky() -> None:
        if errors:
            raise errors.pop()

    runner = JobRunner(workers=0, log=LOG, transient=lambda error: isinstance(error, ConnectionError), backoff=0.001)
    runner.submit(jobs.job("a", flaky))

    assert jobs.count("a") == 2 and jobs.failures == {} and runner.retries == 1


def test_workers_run_jobs_in_other_threads() -> None:
    jobs = Recorder()
    with JobRunner(workers=2, log=LOG) as runner:
        for name in "abc":
            runner.submit(jobs.job(name))
    assert sorted(jobs.runs) == ["a", "b", "c"]
    assert all(thread is not threading.current_thread() for thread in jobs.threads.values())


def test_submit_blocks_while_twice_the_workers_jobs_are_unfinished() -> None:
    jobs = Recorder()
    runner = JobRunner(workers=2, log=LOG)
    started = [threading.Event() for _ in range(5)]
    release = [threading.Event() for _ in range(5)]
    try:
        for index in range(4):  # 2 running + 2 queued: every submit returns at once
            returned = in_thread(
                lambda index=index: runner.submit(jobs.job(f"j{index}", blocking(started[index], release[index])))
            )
            assert returned.wait(WAIT), f"submit {index} blocked with fewer than 4 jobs unfinished"
        assert started[0].wait(WAIT) and started[1].wait(WAIT)

        returned = in_thread(lambda: runner.submit(jobs.job("j4", blocking(started[4], release[4]))))
        assert not returned.wait(0.5), "the fifth submit did not wait for a free slot"
        assert sorted(jobs.runs) == ["j0", "j1"]  # the queued two wait for a worker

        release[0].set()  # one job finishes: one slot frees
        assert returned.wait(WAIT), "the fifth submit still blocks after a job finished"
        assert started[2].wait(WAIT)  # the first queued job took the free worker
    finally:
        for event in release:
            event.set()
        runner.wait()
    assert sorted(jobs.runs) == ["j0", "j1", "j2", "j3", "j4"]
    assert jobs.failures == {}


@pytest.mark.parametrize("workers", [0, 2])
def test_a_base_exception_in_a_job_is_reported_and_never_hangs_wait(workers: int) -> None:
    jobs = Recorder()
    fatal = Fatal("interrupted")

    def boom() -> None:
        raise fatal

    # Even a runner told that every error is transient makes one attempt of a BaseException.
    runner = JobRunner(workers=workers, log=LOG, transient=lambda error: True, backoff=0.001)

    def use() -> None:  # in a thread of its own: a hang fails the test instead of stalling it
        with runner:
            runner.submit(jobs.job("boom", boom))
            runner.submit(jobs.job("after"))
        runner.wait()

    returned = in_thread(use)

    assert returned.wait(WAIT), "wait() hung after a job raised a BaseException"
    assert jobs.failures == {"boom": fatal}
    assert jobs.count("boom") == 1 and runner.retries == 0
    assert jobs.count("after") == 1  # the worker survived


def test_a_failing_failure_callback_is_logged_and_never_hangs_wait(caplog: pytest.LogCaptureFixture) -> None:
    def failed(error: BaseException) -> None:
        raise RuntimeError("reporting bug")

    def run() -> None:
        raise ValueError("job failed")

    runner = JobRunner(workers=2, log=LOG)

    def use() -> None:
        with runner:
            runner.submit(Job("bad", run, failed))
        runner.wait()

    with caplog.at_level(logging.ERROR, logger=LOG.name):
        assert in_thread(use).wait(WAIT), "wait() hung after the failure callback raised"
    assert any("could not report the failure of bad" in record.getMessage() for record in caplog.records)
    assert runner.failures == 1  # still counted: the run it belongs to cannot pass as clean


def test_stop_drops_the_jobs_not_yet_started() -> None:
    jobs = Recorder()
    runner = JobRunner(workers=2, log=LOG)
    started = [threading.Event(), threading.Event()]
    release = threading.Event()
    runner.submit(jobs.job("running-0", blocking(started[0], release)))
    runner.submit(jobs.job("running-1", blocking(started[1], release)))
    runner.submit(jobs.job("queued-0"))
    runner.submit(jobs.job("queued-1"))
    assert started[0].wait(WAIT) and started[1].wait(WAIT)

    runner.stop()
    # A submit that would wait for a slot gives up once the runner is stopping.
    returned = in_thread(lambda: runner.submit(jobs.job("late")))
    assert returned.wait(WAIT), "submit kept blocking after stop()"
    release.set()
    runner.wait()

    assert runner.stopping
    assert sorted(jobs.runs) == ["running-0", "running-1"]  # the running jobs finished
    assert sorted(jobs.failures) == ["late", "queued-0", "queued-1"]  # each dropped job is reported
    assert "late" not in jobs.runs
    for error in jobs.failures.values():
        assert isinstance(error, InterruptedError) and str(error) == "the run was stopped"


def test_stop_ends_a_retry_backoff() -> None:
    jobs = Recorder()
    attempt = threading.Event()

    def failing() -> None:
        attempt.set()
        raise ConnectionError("dropped")

    runner = JobRunner(workers=1, log=LOG, transient=lambda error: True, backoff=30.0)
    runner.submit(jobs.job("a", failing))
    assert attempt.wait(WAIT)
    runner.stop()
    returned = in_thread(runner.wait)

    assert returned.wait(WAIT), "the backoff was not cut short by stop()"
    assert jobs.count("a") == 1
    assert str(jobs.failures["a"]) == "dropped"  # the error that made it wait, not a bare "stopped"


def test_transient_failures_are_retried_up_to_the_attempts_and_counted() -> None:
    jobs = Recorder()
    remaining = {"recovers": 2, "never": 99}

    def flaky(name: str) -> Callable[[], None]:
        def body() -> None:
            if remaining[name] > 0:
                remaining[name] -= 1
                raise TimeoutError(f"{name} timed out")

        return body

    runner = JobRunner(workers=2, log=LOG, transient=lambda error: isinstance(error, TimeoutError), backoff=0.001)
    with runner:
        runner.submit(jobs.job("recovers", flaky("recovers")))
        runner.submit(jobs.job("never", flaky("never")))
        runner.submit(jobs.job("permanent", lambda: int("x")))

    assert jobs.count("recovers") == 3 and "recovers" not in jobs.failures
    assert jobs.count("never") == 3 and str(jobs.failures["never"]) == "never timed out"
    assert jobs.count("permanent") == 1 and isinstance(jobs.failures["permanent"], ValueError)
    assert runner.retries == 4


def test_a_read_to_be_done_unchecked_takes_no_attempt_once() -> None:
    """RetryUnchecked (a checksum header that lies) is retried at once and does not count: the
    job keeps all its attempts for real failures; a second one is an ordinary failure."""
    jobs = Recorder()
    failures = {"rerouted": [RetryUnchecked("lies"), TimeoutError("1"), TimeoutError("2")], "twice": []}
    failures["twice"] = [RetryUnchecked("lies"), RetryUnchecked("lies again"), TimeoutError("1"), TimeoutError("2")]

    def failing(name: str) -> Callable[[], None]:
        def body() -> None:
            if failures[name]:
                raise failures[name].pop(0)

        return body

    runner = JobRunner(workers=1, log=LOG, transient=is_transient, backoff=0.001)
    with runner:
        runner.submit(jobs.job("rerouted", failing("rerouted")))
        runner.submit(jobs.job("twice", failing("twice")))

    assert jobs.count("rerouted") == 4 and "rerouted" not in jobs.failures  # 1 free + 3 attempts
    assert jobs.count("twice") == 4 and str(jobs.failures["twice"]) == "2"
    assert runner.retries == 2 + 2


def test_leaving_the_runner_with_an_error_stops_it() -> None:
    jobs = Recorder()
    started, release = threading.Event(), threading.Event()
    runner = JobRunner(workers=1, log=LOG)

    def release_once_stopping() -> None:  # __exit__ stops the runner, then waits for the running job
        deadline = time.monotonic() + WAIT
        while not runner.stopping and time.monotonic() < deadline:
            time.sleep(0.01)
        release.set()

    with pytest.raises(RuntimeError, match="planning failed"), runner:
        runner.submit(jobs.job("running", blocking(started, release)))
        runner.submit(jobs.job("queued"))
        assert started.wait(WAIT)
        in_thread(release_once_stopping)
        raise RuntimeError("planning failed")

    assert runner.stopping
    assert jobs.count("queued") == 0 and isinstance(jobs.failures["queued"], InterruptedError)


def test_progress_lines_end_with_the_final_count(caplog: pytest.LogCaptureFixture) -> None:
    jobs = Recorder()
    seen: list[tuple[int, int]] = []

    def progress(done: int, in_flight: int) -> str:
        seen.append((done, in_flight))
        return f"progress: {done} done, {in_flight} in flight"

    with caplog.at_level(logging.INFO, logger=LOG.name):
        with JobRunner(workers=2, log=LOG, progress=progress, progress_interval=60) as runner:
            for name in "abc":
                runner.submit(jobs.job(name))
    assert seen == [(3, 0)]  # one line at the end (the interval never elapsed)
    assert [record.getMessage() for record in caplog.records] == ["progress: 3 done, 0 in flight"]


# --- SlowDown: fewer jobs at once for a while --------------------------------------------------------


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(runner_module, "time", clock)
    return clock


def test_a_slowdown_halves_the_concurrency_once_per_burst_and_it_grows_back_in_the_recovery_time(
    clock: Clock,
) -> None:
    runner = JobRunner(workers=8, log=LOG, recovery=4.0)  # grows by one job every 0.5 s of calm
    assert runner.concurrency == 8

    runner.slow_down()
    assert runner.concurrency == 4
    clock.now += 0.25
    runner.slow_down()  # the same burst: counted, no second cut
    assert runner.concurrency == 4 and runner.slowdowns == 2
    clock.now += 0.75  # grown to 5 in the half second of calm; over a second after the cut: halved
    runner.slow_down()
    assert runner.concurrency == 2 and runner.lowest_concurrency == 2

    clock.now += 0.25
    assert runner.concurrency == 2  # not yet half a second of calm
    clock.now += 0.25
    assert runner.concurrency == 3
    clock.now += 1.0
    assert runner.concurrency == 5
    clock.now += 0.5  # grown to 6 meanwhile: a new SlowDown halves that, and the calm starts over
    runner.slow_down()
    assert runner.concurrency == 3
    clock.now += 0.25
    assert runner.concurrency == 3
    clock.now += 60
    assert runner.concurrency == 8  # never above the workers
    assert runner.slowdowns == 4 and runner.lowest_concurrency == 2
    for _ in range(20):  # SlowDowns without a pause: halved each second, no growth between
        clock.now += 0.25
        runner.slow_down()
    assert runner.concurrency == 1  # never below one


def test_a_slowdown_keeps_the_other_workers_waiting_until_the_concurrency_grows_back() -> None:
    jobs = Recorder()
    running, most = 0, 0
    lock = threading.Lock()
    throttled_once = [client_error("SlowDown", 503)]

    def body() -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        try:
            time.sleep(0.05)
            if throttled_once:
                raise throttled_once.pop()
        finally:
            with lock:
                running -= 1

    # The first job fails with a SlowDown: 4 workers become 2 for the rest of the run (recovery
    # takes a minute), and the job is retried like any transient failure.
    runner = JobRunner(workers=4, log=LOG, transient=is_transient, backoff=0.001, recovery=60.0)
    with runner:
        runner.submit(jobs.job("first", body))
        deadline = time.monotonic() + WAIT
        while runner.slowdowns == 0 and time.monotonic() < deadline:  # the first attempt fails
            time.sleep(0.01)
        assert runner.concurrency == 2 and runner.slowdowns == 1
        with lock:
            most = running
        for index in range(12):
            runner.submit(jobs.job(f"j{index}", body))

    assert jobs.failures == {} and jobs.count("first") == 2 and runner.retries == 1
    assert most == 2, f"{most} jobs ran at once after the SlowDown"


def test_stop_ends_a_wait_for_a_place_among_the_running_jobs() -> None:
    jobs = Recorder()
    started, release = threading.Event(), threading.Event()
    runner = JobRunner(workers=2, log=LOG, recovery=60.0)
    runner.slow_down()  # one job at a time
    runner.submit(jobs.job("running", blocking(started, release)))
    assert started.wait(WAIT)
    runner.submit(jobs.job("waiting"))  # a worker is free, but the concurrency is 1

    runner.stop()
    release.set()
    assert in_thread(runner.wait).wait(WAIT), "a job waiting for its turn kept wait() from returning"
    assert jobs.count("waiting") == 0 and isinstance(jobs.failures["waiting"], InterruptedError)


@pytest.mark.parametrize(
    ("error", "throttle"),
    [
        (client_error("SlowDown", 503), True),
        (client_error("Throttling", 400), True),
        (client_error("TooManyRequests", 429), True),
        (client_error("InternalError", 500), False),
        (client_error("AccessDenied", 403), False),
        (ConnectionError("reset"), False),
    ],
)
def test_which_errors_are_slowdowns(error: Exception, throttle: bool) -> None:
    assert is_throttle(error) is throttle
