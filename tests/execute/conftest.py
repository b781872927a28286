"""What the tests of the execution layer share: a log recorder, quick retries."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator

import pytest

from airflow_s3sync.execute import run as run_module
from airflow_s3sync.execute.runner import JobRunner

_VERBS = ("upload: ", "copy: ", "download: ", "delete: ", "(dryrun) ")


class LogRecorder(logging.Handler):
    """The records of the ``test`` logger, formatted."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__(logging.DEBUG)
        self.logger = logger
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def at(self, level: int) -> list[str]:
        return [record.getMessage() for record in self.records if record.levelno == level]

    def actions(self) -> list[str]:
        """The ``aws s3 sync`` lines."""
        return [message for message in self.at(logging.INFO) if message.startswith(_VERBS)]


@pytest.fixture
def log() -> Iterator[LogRecorder]:
    logger = logging.getLogger("test")
    recorder = LogRecorder(logger)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(recorder)
    try:
        yield recorder
    finally:
        logger.removeHandler(recorder)
        logger.setLevel(level)


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The run's transfer and checker workers wait 10 ms before a retry, not half a second."""
    monkeypatch.setattr(run_module, "JobRunner", functools.partial(JobRunner, backoff=0.01))
