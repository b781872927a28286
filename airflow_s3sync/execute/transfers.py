"""The jobs of one sync run: a transfer job per object to write, a check job per content
comparison (``checksum=True``).

:func:`airflow_s3sync.plan.route.route` decides how each object moves; the unit of its kind
(:mod:`airflow_s3sync.execute.kinds`) carries it out in a transfer worker. Content checks run in
their own checker workers and hand the objects whose contents differ to the transfer workers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping

from airflow_s3sync.execute.checks import ContentChecker
from airflow_s3sync.execute.key_probe import KeyProbe
from airflow_s3sync.execute.kinds import Kind
from airflow_s3sync.execute.report import SyncReport
from airflow_s3sync.execute.runner import Job, JobRunner
from airflow_s3sync.execute.sides import Side
from airflow_s3sync.plan import Action, Entry
from airflow_s3sync.plan.compare import ContentDecision, decide_content
from airflow_s3sync.plan.route import RouteContext, TransferKind, TransferSpec, route


class _Bytes:
    """Counts one attempt's bytes into the report, and takes them back if the attempt fails."""

    def __init__(self, report: SyncReport) -> None:
        self._report = report
        self._count = 0
        self._lock = threading.Lock()

    def __call__(self, count: int) -> None:
        with self._lock:
            self._count += count
        self._report.add_bytes(count)

    def undo(self) -> None:
        with self._lock:
            count, self._count = self._count, 0
        self._report.add_bytes(-count)


class Transfers:
    """Makes the jobs of one sync run.

    :param source: where the data comes from.
    :param dest: where it goes.
    :param context: what routing needs to know of the run.
    :param kinds: the unit that carries out each kind of transfer this run can route to.
    :param checker: compares contents (``checksum=True``).
    :param transfer_runner: where a check hands an object whose content differs.
    :param dryrun: only report what a content check finds to transfer.
    :param key_probe: tells which odd keys the destination keeps (others are skipped).
    """

    def __init__(
        self,
        *,
        source: Side,
        dest: Side,
        context: RouteContext,
        kinds: Mapping[TransferKind, Kind],
        checker: ContentChecker,
        transfer_runner: JobRunner,
        dryrun: bool,
        report: SyncReport,
        log: logging.Logger,
        key_probe: KeyProbe | None = None,
    ) -> None:
        self.source = source
        self.key_probe = key_probe
        self.dest = dest
        self.context = context
        self.kinds = dict(kinds)
        self.checker = checker
        self.transfer_runner = transfer_runner
        self.direction = context.direction
        self.dryrun = dryrun
        self.report = report
        self.log = log

    def line(self, key: str) -> str:
        """The ``aws s3 sync`` line without its verb: ``./a.txt to s3://b/a.txt``."""
        return f"{self.source.display(key)} to {self.dest.display(key)}"

    def spec(self, src: Entry) -> TransferSpec:
        """How ``src`` is transferred."""
        return route(
            self.context,
            size=src.size,
            source_key=self.source.route_key(src.key),
            dest_key=self.dest.route_key(src.key),
        )

    def job(self, action: Action) -> Job:
        """The transfer job of a TRANSFER action (or of a VERIFY whose contents differ)."""
        src = action.pair.src
        assert src is not None
        verb, line = self.direction.value, self.line(src.key)

        def run() -> None:
            refusal = self.key_probe.refusal(src.key) if self.key_probe is not None else None
            if refusal is not None:
                self.report.skipped(warning=True)
                self.log.warning("warning: Skipping file %s. %s", self.source.display(src.key), refusal)
                return
            progress = _Bytes(self.report)
            spec = self.spec(src)
            try:
                self.kinds[spec.kind].run(spec, src, line, progress)
            except BaseException:
                progress.undo()
                raise
            self._done(src.key, verb, line)

        return Job(f"{verb} {line}", run, self._on_failure(verb, line))

    def check_job(self, action: Action) -> Job:
        """The checker job of a VERIFY action: compare the contents; hand the object to the
        transfer workers when they differ."""
        src, dst = action.pair.src, action.pair.dst
        assert src is not None and dst is not None
        verb, line = self.direction.value, self.line(src.key)

        def run() -> None:
            verdict, reason = self.checker.compare(src, dst)
            decision = decide_content(verdict)
            if decision is ContentDecision.SKIP:
                self.log.debug("skip %s: same content (%s)", src.key, reason)
                self.report.skipped()
            elif decision is ContentDecision.SKIP_BY_SIZE:
                self.report.warned()
                self.log.warning("warning: compared %s by size only (weak): %s", line, reason)
                self.report.skipped()
            elif self.dryrun:
                self._done(src.key, f"(dryrun) {verb}", line)
            else:
                self.log.debug("%s %s: content differs (%s)", verb, src.key, reason)
                self.report.planned(src.size)
                self.transfer_runner.submit(self.job(action))

        return Job(f"compare {line}", run, self._on_failure(verb, line))

    def _on_failure(self, verb: str, line: str) -> Callable[[BaseException], None]:
        def failed(error: BaseException) -> None:
            self.report.failed(f"{verb} {line}: {error}")
            self.log.error("%s failed: %s %s", verb, line, error)

        return failed

    def _done(self, key: str, verb: str, line: str) -> None:
        self.report.transferred(self.direction, key)
        self.log.info("%s: %s", verb, line)
