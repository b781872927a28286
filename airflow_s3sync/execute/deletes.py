"""Destination-only keys waiting until every transfer is done, spooled to disk, and the gate
they must pass to be deleted."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from airflow_s3sync.errors import S3SyncError
from airflow_s3sync.execute.spool import Spool

if TYPE_CHECKING:
    from airflow_s3sync.execute.report import SyncReport
    from airflow_s3sync.execute.sides import Side


class DeleteQueue(Spool):
    """Destination-only keys waiting for the delete gate, in a temporary file (a
    :class:`~airflow_s3sync.execute.spool.Spool` of keys), so memory stays flat no matter how
    many deletes a run plans."""

    def add(self, key: str) -> None:
        """Queue ``key`` for deletion."""
        super().add(key)

    def __iter__(self) -> Iterator[str]:
        return super().__iter__()


class DeleteGate:
    """The only way to deletes: they run last, only when nothing went wrong before, and only up
    to ``max_delete`` (checked before the first).

    :param dest: the side deletes happen on.
    :param report: the run's tally (deletes and their failures are counted there).
    :param log: where the delete lines go.
    :param max_delete: the most items a run may delete, or ``None``.
    :param dryrun: only log what would be deleted.
    :param stopping: set when the run must stop (the task was killed): no further delete starts.
    """

    def __init__(
        self,
        *,
        dest: Side,
        report: SyncReport,
        log: logging.Logger,
        max_delete: int | None,
        dryrun: bool,
        stopping: threading.Event,
    ) -> None:
        self.dest = dest
        self.report = report
        self.log = log
        self.max_delete = max_delete
        self.dryrun = dryrun
        self.stopping = stopping

    def pass_through(self, deletes: DeleteQueue, problems: list[str]) -> None:
        """Delete what ``deletes`` holds unless ``problems`` (or a stop) say the run was not
        clean; raise :class:`S3SyncError` naming what went wrong."""
        if self.stopping.is_set():
            problems = ["the run was stopped (the task was killed)", *problems]
        if problems:
            if deletes.count:
                self.log.warning("not deleting %d item(s) because the run was not clean", deletes.count)
            raise S3SyncError("sync failed, nothing was deleted: " + "; ".join(problems))
        if not deletes.count:
            return
        if self.max_delete is not None and deletes.count > self.max_delete:
            message = (
                f"refusing to delete {deletes.count} item(s): more than max_delete={self.max_delete}; "
                "nothing was deleted"
            )
            if not self.dryrun:
                raise S3SyncError(message)
            self.log.warning("a real run would fail: %s", message)
        self._delete(deletes)
        if self.stopping.is_set():
            raise S3SyncError("sync stopped while deleting (the task was killed)")
        if self.report.failure_count:
            raise S3SyncError("sync failed: " + self.report.failure_message())

    def _delete(self, deletes: DeleteQueue) -> None:
        if self.dryrun:
            for key in deletes:
                self.report.deleted()
                self.log.info("(dryrun) delete: %s", self.dest.display(key))
            return
        for shown, error in self.dest.delete(self._until_stopped(deletes)):
            if error is None:
                self.report.deleted()
                self.log.info("delete: %s", shown)
            else:
                self.report.failed(f"delete {shown}: {error}")
                self.log.error("delete failed: %s %s", shown, error)

    def _until_stopped(self, keys: Iterable[str]) -> Iterator[str]:
        for key in keys:
            if self.stopping.is_set():
                return
            yield key
