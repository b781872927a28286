"""The same server error answering object after object ends the run at once, naming the error
and the first objects; errors that come and go are retried as before."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from airflow_s3sync.errors import S3SyncError
from airflow_s3sync.execute.repeated import RepeatedErrors
from airflow_s3sync.hooks.backend import RepeatedError, answer_signature, error_signature
from tests.execute.conftest import LogRecorder
from tests.execute.fakes import FakeBackend, client_error
from tests.execute.test_sync_run import BUCKET, make_run, write_files

ERROR = "500 InternalError: Server side encryption is not configured"


def test_requests_are_given_up_once_the_error_answered_suspect_objects_in_a_row() -> None:
    repeated = RepeatedErrors(streak=4, suspect=2)
    repeated.request_failed(ERROR, "a")
    repeated.request_failed(ERROR, "a")  # a retry of the same object is no new object
    repeated.request_failed(ERROR, "b")
    with pytest.raises(RepeatedError, match="the same answer for 3 objects in a row") as raised:
        repeated.request_failed(ERROR, "c")
    assert error_signature(raised.value) == ERROR
    with pytest.raises(RepeatedError):  # the first objects' retries stop too
        repeated.request_failed(ERROR, "a")
    repeated.object_done()  # one object through: the error does not answer everything
    repeated.request_failed(ERROR, "c")


def test_the_streak_counts_failed_objects_of_one_error_and_resets_on_a_success_or_another_error() -> None:
    stopped: list[bool] = []
    repeated = RepeatedErrors(streak=3, on_streak=lambda: stopped.append(True))
    assert not repeated.object_failed(ERROR, "a")
    assert not repeated.object_failed("503 other", "b")  # another error starts again
    assert not repeated.object_failed(ERROR, "c")
    repeated.object_done()
    assert not repeated.object_failed(ERROR, "d")
    assert not repeated.object_failed(None, "no answer")  # a dropped connection is not the server's answer
    assert not repeated.object_failed(ERROR, "e")
    assert repeated.object_failed(ERROR, "f")
    assert stopped == [True]
    assert repeated.message == (
        f"the server answered 3 objects in a row with the same error, {ERROR} — stopped instead of "
        "retrying every object (first: d; e; f)"
    )


@pytest.mark.parametrize(
    ("status", "code", "signature"),
    [(500, "InternalError", "500 InternalError: m"), (503, "SlowDown", None), (404, "NoSuchKey", None), (0, "", None)],
)
def test_throttles_and_answers_about_one_object_make_no_streak(status: int, code: str, signature: str | None) -> None:
    assert answer_signature(status, code, "m") == signature


def test_a_server_error_answering_every_upload_stops_the_run_after_the_streak(tmp_path: Path, log: LogRecorder) -> None:
    dest = FakeBackend()
    src = write_files(tmp_path / "src", {f"f{index:03d}": b"x" for index in range(200)})
    dest.fail(client_error("InternalError", 500), on=["upload_file", "write_object"], times=None)
    run = make_run(str(src), f"s3://{BUCKET}/p", log, dest_hook=dest, delete=True)

    with pytest.raises(S3SyncError, match=r"the server answered 20 objects in a row with the same error, 500 Intern"):
        run.run()

    attempts = len(dest.calls_named("upload_file", "write_object"))
    assert attempts < 3 * 30, attempts  # 20 objects and those in flight, 3 attempts each; not 200
    stop = [line for line in log.at(logging.ERROR) if line.startswith("stopping: ")]
    assert len(stop) == 1 and "(first: upload " in stop[0]


def test_an_error_that_spares_some_objects_is_retried_object_by_object(tmp_path: Path, log: LogRecorder) -> None:
    dest = FakeBackend()
    src = write_files(tmp_path / "src", {f"f{index:03d}": b"x" for index in range(60)})
    failing = [f"p/f{index:03d}" for index in range(60) if index % 10]  # every tenth object goes through
    dest.fail(client_error("InternalError", 500), keys=failing, on=["upload_file", "write_object"], times=None)
    run = make_run(str(src), f"s3://{BUCKET}/p", log, dest_hook=dest, max_concurrency=1)

    with pytest.raises(S3SyncError, match="54 item"):
        run.run()
    assert run.repeated.message is None
    assert sorted(dest.store.keys(BUCKET)) == [f"p/f{index:03d}" for index in range(0, 60, 10)]
