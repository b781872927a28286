"""Fixtures: real S3 servers over HTTP (moto and rclone), connections from AIRFLOW_CONN_* variables."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from tests.support import S3Server, moto_server, rclone_server, use_connection

#: Fixtures that start a server or an Airflow: a test that uses one (even through another
#: fixture) is ``slow``.
_SLOW_FIXTURES = frozenset({"moto", "rclone", "server", "env"})
#: Folders whose tests all run Airflow or the benchmarks' scripts in subprocesses.
_SLOW_FOLDERS = ("dags",)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark ``slow`` every test that starts a server, an Airflow or a subprocess (see
    :data:`_SLOW_FIXTURES`, :data:`_SLOW_FOLDERS`, and explicit marks): ``make test-fast``
    runs the others, ``make test`` all."""
    tests = Path(__file__).parent
    for item in items:
        folder = Path(str(item.path)).relative_to(tests).parts[0]
        if _SLOW_FIXTURES & set(getattr(item, "fixturenames", ())) or folder in _SLOW_FOLDERS:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def moto() -> Iterator[S3Server]:
    with moto_server() as server:
        yield server


@pytest.fixture(scope="session")
def rclone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with rclone_server(tmp_path_factory.mktemp("rclone-root")) as server:
        yield server


@pytest.fixture(params=["moto", "rclone"])
def server(request: pytest.FixtureRequest) -> S3Server:
    """Each test using this runs against both S3 implementations."""
    return request.getfixturevalue(request.param)


@pytest.fixture
def aws_default(server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """``aws_default`` points at ``server``."""
    use_connection(monkeypatch, "aws_default", server.connection_json())
    return server


@pytest.fixture
def moto_default(moto: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """``aws_default`` points at the moto server."""
    use_connection(monkeypatch, "aws_default", moto.connection_json())
    return moto


def new_bucket(server: S3Server, *, region: str | None = None, client=None) -> str:
    """Create a bucket with a fresh name."""
    name = f"b-{uuid.uuid4().hex[:16]}"
    client = client or server.client(region)
    if region and region != "us-east-1":
        client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})
    else:
        client.create_bucket(Bucket=name)
    return name


class LogLines:
    """Log events as they reach the task log: ``(level, message)`` with arguments formatted."""

    def __init__(self, events: list[dict]) -> None:
        self._events = events

    def all(self) -> list[tuple[str, str]]:
        return [(event["log_level"], event["event"]) for event in self._events]

    def at(self, level: str) -> list[str]:
        return [message for lvl, message in self.all() if lvl == level]

    def actions(self) -> list[str]:
        """The ``aws s3 sync`` lines (info events starting with a verb)."""
        verbs = ("upload: ", "copy: ", "download: ", "delete: ", "(dryrun) ")
        return [message for message in self.at("info") if message.startswith(verbs)]

    def clear(self) -> None:
        self._events.clear()


@pytest.fixture
def logs() -> Iterator[LogLines]:
    with capture_logs(processors=[structlog.stdlib.PositionalArgumentsFormatter()]) as events:
        yield LogLines(events)


def write(path: Path, text: str = "x", *, age: float = 3600) -> Path:
    """Write a file whose mtime is ``age`` seconds in the past (data older than any upload of it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    when = time.time() - age
    os.utime(path, (when, when))
    return path
