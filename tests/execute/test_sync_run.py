"""SyncRun against in-memory backends: routing, failures, retries, cancellation, dry runs and
the delete gate — no S3 server."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError

from airflow_s3sync.errors import S3SyncError
from airflow_s3sync.execute.run import SyncOptions, SyncRun
from airflow_s3sync.execute.runner import JobRunner
from airflow_s3sync.hooks.backend import Written, is_transient
from airflow_s3sync.locations import S3Location, parse_location
from airflow_s3sync.plan.checksum import Digests
from airflow_s3sync.plan.route import READ_WHOLE_MAX as READ_WHOLE_BELOW
from tests.execute.fakes import FakeBackend, FakeStore, client_error

BUCKET = "bkt"
OLD = datetime.now(UTC) - timedelta(days=1)
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


def make_run(
    source: str,
    dest: str,
    log: LogRecorder,
    *,
    source_hook: FakeBackend | None = None,
    dest_hook: FakeBackend | None = None,
    fast: bool = True,
    **options: Any,
) -> SyncRun:
    """A SyncRun; ``fast`` swaps its runner for one with 2 workers and a 10 ms backoff."""
    run = SyncRun(
        source=parse_location(source),
        dest=parse_location(dest),
        source_hook=source_hook,
        dest_hook=dest_hook,
        options=SyncOptions(**options),
        log=log.logger,
    )
    if fast:
        run.runner = JobRunner(workers=2, log=log.logger, transient=is_transient, backoff=0.01)
    return run


def write_files(root: Path, files: dict[str, bytes]) -> Path:
    """Files below ``root``, a day old (so they never look newer than what S3 holds)."""
    when = OLD.timestamp()
    for name, data in files.items():
        path = root.joinpath(*name.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, (when, when))
    return root


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def native_pair(*, multipart_threshold: int = 8 * 1024 * 1024) -> tuple[FakeBackend, FakeBackend]:
    """(botocore fake, native fake) of one service."""
    native = FakeBackend(name="native", multipart_threshold=multipart_threshold)
    return FakeBackend(native.store, native=native, multipart_threshold=multipart_threshold), native


# --------------------------------------------------------------------------- routing
def test_upload_small_objects_go_native_and_from_the_threshold_to_botocore(tmp_path: Path, log: LogRecorder) -> None:
    hook, native = native_pair(multipart_threshold=1024)
    src = write_files(tmp_path / "src", {"big": b"b" * 1024, "bigger": b"c" * 5000, "small": b"s" * 1023})

    report = make_run(str(src), f"s3://{BUCKET}/p", log, dest_hook=hook).run()

    assert native.keys_of("upload_file") == ["p/small"]
    assert sorted(hook.keys_of("upload_file")) == ["p/big", "p/bigger"]
    assert hook.store.keys(BUCKET) == ["p/big", "p/bigger", "p/small"]
    assert hook.store.data(BUCKET, "p/bigger") == b"c" * 5000
    assert report.counts["uploaded"] == 3
    assert report.bytes_transferred == 1024 + 5000 + 1023


def test_download_small_objects_go_native_and_from_the_threshold_to_botocore(tmp_path: Path, log: LogRecorder) -> None:
    hook, native = native_pair(multipart_threshold=1024)
    hook.store.put(BUCKET, "p/small", b"s" * 1023, mtime=OLD)
    hook.store.put(BUCKET, "p/sub/big", b"b" * 1024, mtime=OLD)
    out = tmp_path / "out"

    report = make_run(f"s3://{BUCKET}/p/", str(out), log, source_hook=hook).run()

    assert native.keys_of("download_file") == ["p/small"]
    assert hook.keys_of("download_file") == ["p/sub/big"]
    assert (out / "small").read_bytes() == b"s" * 1023
    assert (out / "sub" / "big").read_bytes() == b"b" * 1024
    assert int((out / "small").stat().st_mtime) == int(OLD.timestamp())  # the object's time
    assert report.counts["downloaded"] == 2


@pytest.mark.parametrize(
    ("dest", "object_key"),
    [
        (f"s3://{BUCKET}/a//", "a//f.txt"),  # an empty segment
        (f"s3://{BUCKET}/.", "./f.txt"),  # a '.' segment
        (f"s3://{BUCKET}/d/../", "d/../f.txt"),  # a '..' segment
        (f"s3://{BUCKET}/x\x01/", "x\x01/f.txt"),  # a control character
        ("s3://arn:aws:s3:us-east-1:123456789012:accesspoint/ap/p", "p/f.txt"),  # an access point
    ],
)
def test_uploads_of_keys_the_native_client_would_rewrite_go_to_botocore(
    tmp_path: Path, log: LogRecorder, dest: str, object_key: str
) -> None:
    hook, native = native_pair()
    src = write_files(tmp_path / "src", {"f.txt": b"data"})

    make_run(str(src), dest, log, dest_hook=hook).run()

    assert native.calls_named("upload_file") == []
    assert hook.keys_of("upload_file") == [object_key]
    location = parse_location(dest)
    assert isinstance(location, S3Location)
    assert hook.store.data(location.bucket, object_key) == b"data"


def test_a_control_character_routes_that_one_object_to_botocore(tmp_path: Path, log: LogRecorder) -> None:
    hook, native = native_pair()
    src = write_files(tmp_path / "src", {"plain.txt": b"1", "tab\tname.txt": b"2", "bell\x07.txt": b"3"})

    make_run(str(src), f"s3://{BUCKET}/p", log, dest_hook=hook).run()

    assert native.keys_of("upload_file") == ["p/plain.txt"]
    assert sorted(hook.keys_of("upload_file")) == ["p/bell\x07.txt", "p/tab\tname.txt"]


@pytest.mark.parametrize(("prefix", "key"), [("a//", "a//b"), ("x/", "x/c\x01d")])
def test_downloads_of_keys_the_native_client_would_rewrite_go_to_botocore(
    tmp_path: Path, log: LogRecorder, prefix: str, key: str
) -> None:
    hook, native = native_pair()
    hook.store.put(BUCKET, key, b"odd", mtime=OLD)
    out = tmp_path / "out"

    make_run(f"s3://{BUCKET}/{prefix}", str(out), log, source_hook=hook).run()

    assert native.calls_named("download_file") == []
    assert hook.keys_of("download_file") == [key]
    assert (out / key[len(prefix) :]).read_bytes() == b"odd"


def test_download_of_a_non_empty_directory_key_is_refused_and_reaches_no_backend(
    tmp_path: Path, log: LogRecorder
) -> None:
    """``dir/`` with data cannot be a local file name: the plan refuses it before routing (a
    zero-byte ``dir/`` is a directory marker the listing leaves out)."""
    hook, native = native_pair()
    hook.store.put(BUCKET, "p/dir/", b"not a marker", mtime=OLD)
    hook.store.put(BUCKET, "p/marker/", b"", mtime=OLD)
    out = tmp_path / "out"

    report = make_run(f"s3://{BUCKET}/p", str(out), log, source_hook=hook).run()

    assert native.calls_named("download_file") == hook.calls_named("download_file") == []
    assert report.counts["skipped"] == 1
    assert report.warnings == 1
    assert any("dir/" in message for message in log.at(logging.WARNING))
    assert list(out.iterdir()) == []


@pytest.mark.parametrize(
    ("extra_args", "carrier"),
    [
        ({}, "native"),
        ({"ContentType": "text/plain"}, "native"),
        ({"CacheControl": "no-cache"}, "botocore"),
        ({"ContentType": "text/plain", "Metadata": {"a": "b"}}, "botocore"),
        ({"ServerSideEncryption": "AES256"}, "botocore"),
    ],
)
def test_request_arguments_other_than_content_type_route_the_run_to_botocore(
    tmp_path: Path, log: LogRecorder, extra_args: dict[str, Any], carrier: str
) -> None:
    hook, native = native_pair()
    src = write_files(tmp_path / "src", {"a.txt": b"a", "b.txt": b"b"})

    make_run(str(src), f"s3://{BUCKET}/p", log, dest_hook=hook, extra_args=extra_args).run()

    used, unused = (native, hook) if carrier == "native" else (hook, native)
    assert sorted(used.keys_of("upload_file")) == ["p/a.txt", "p/b.txt"]
    assert unused.calls_named("upload_file") == []
    assert all(call.details["extra_args"] == extra_args for call in used.calls_named("upload_file"))


def test_native_client_disabled_means_botocore_carries_everything(tmp_path: Path, log: LogRecorder) -> None:
    native = FakeBackend(name="native")
    hook = FakeBackend(native.store, native=native, native_enabled=False)
    src = write_files(tmp_path / "src", {"a": b"a"})

    make_run(str(src), f"s3://{BUCKET}/p", log, dest_hook=hook).run()

    assert hook.keys_of("upload_file") == ["p/a"]
    assert native.calls == []


def test_same_service_copy_is_one_copy_object_up_to_copy_cutoff_and_in_parts_above(log: LogRecorder) -> None:
    store = FakeStore()
    native = FakeBackend(store, name="native")
    source_hook = FakeBackend(store, name="source")
    dest_hook = FakeBackend(store, name="dest", native=native)
    store.put("src", "in/at-cutoff", b"x" * 100, mtime=OLD)
    store.put("src", "in/above", b"y" * 101, mtime=OLD)
    store.put("src", "in/tiny", b"z", mtime=OLD)

    report = make_run(
        "s3://src/in", "s3://dst/out", log, source_hook=source_hook, dest_hook=dest_hook, copy_cutoff=100
    ).run()

    in_parts = {call.key: call.details["in_parts"] for call in dest_hook.calls_named("copy_object")}
    assert in_parts == {"out/above": True, "out/at-cutoff": False, "out/tiny": False}
    copies = dest_hook.calls_named("copy_object")
    assert {call.details["source"] for call in copies} == {
        ("src", "in/above"),
        ("src", "in/at-cutoff"),
        ("src", "in/tiny"),
    }
    assert all(call.details["source_backend"] is source_hook for call in copies)
    assert source_hook.writes() == [] and native.calls == []
    assert dest_hook.calls_named("upload_stream", "open_object", "head_object") == []
    assert store.data("dst", "out/above") == b"y" * 101
    assert report.counts["copied"] == 3


@pytest.mark.parametrize("answer_written", [False, True])
def test_copy_between_services_streams_and_verifies(log: LogRecorder, answer_written: bool) -> None:
    source_hook = FakeBackend(name="source")
    dest_store = FakeStore()
    dest_native = FakeBackend(dest_store, name="native")
    dest_hook = FakeBackend(dest_store, name="dest", native=dest_native, answer_written=answer_written)
    small, large = b"small,data\n", os.urandom(READ_WHOLE_BELOW + 1)
    source_hook.store.put("src", "in/large.bin", large, mtime=OLD)
    source_hook.store.put("src", "in/small.csv", small, mtime=OLD, ContentType="text/csv", Metadata={"k": "v"})

    report = make_run("s3://src/in", "s3://dst/out", log, source_hook=source_hook, dest_hook=dest_hook).run()

    # Small objects are written by the native client (their properties as attributes), larger
    # ones stream through s3transfer.
    assert dest_hook.keys_of("upload_stream") == ["out/large.bin"]
    assert dest_native.keys_of("upload_bytes") == ["out/small.csv"]
    assert dest_native.calls_named("upload_bytes")[0].details["attributes"] == {"Content-Type": "text/csv", "k": "v"}
    assert dest_hook.calls_named("copy_object") == []
    # Up to READ_WHOLE_BELOW one GetObject serves properties and data; above, HeadObject then a
    # GetObject opened by the upload, both conditional on the listed ETag.
    assert source_hook.keys_of("head_object") == ["in/large.bin"]
    assert sorted(source_hook.keys_of("open_object")) == ["in/large.bin", "in/small.csv"]
    assert {call.details["etag"] for call in source_hook.calls_named("open_object", "head_object")} == {
        f'"{md5(large)}"',
        f'"{md5(small)}"',
    }
    assert dest_hook.store.data("dst", "out/large.bin") == large
    assert dest_hook.store.data("dst", "out/small.csv") == small
    # The write's own ETag answer spares the HeadObject; without one, digests() checks (the
    # native client always answers with the ETag).
    expected_digests = [] if answer_written else ["out/large.bin"]
    assert sorted(dest_hook.keys_of("digests")) == expected_digests
    assert report.counts["copied"] == 2
    assert report.bytes_transferred == len(small) + len(large)


def test_streamed_copy_fails_when_the_destination_does_not_hold_what_was_sent(log: LogRecorder) -> None:
    source_hook, dest_hook = FakeBackend(name="source"), FakeBackend(name="dest")
    source_hook.store.put("src", "in/a", b"abc", mtime=OLD)

    def wrong(bucket: str, key: str, **head_args: Any) -> Digests:
        return Digests(3, md5="0" * 32)

    dest_hook.digests = wrong  # type: ignore[method-assign]
    run = make_run("s3://src/in", "s3://dst/out", log, source_hook=source_hook, dest_hook=dest_hook)

    with pytest.raises(S3SyncError, match=r"verification failed: s3://dst/out/a has MD5 0{32}"):
        run.run()
    assert len(dest_hook.calls_named("upload_stream")) == 1  # a mismatch is not retried
    assert run.report.counts["copied"] == 0


# --------------------------------------------------------------------------- failures
@pytest.mark.parametrize(
    "error",
    [S3SyncError("refused by the test"), client_error("AccessDenied", 403)],
    ids=["S3SyncError", "ClientError-403"],
)
def test_one_permanent_failure_among_many(tmp_path: Path, log: LogRecorder, error: Exception) -> None:
    hook = FakeBackend()
    hook.store.put(BUCKET, "p/zz-stale", b"stale")
    files = {f"f{index:02d}": f"data {index}".encode() for index in range(20)}
    src = write_files(tmp_path / "src", files)
    hook.fail(error, keys=["p/f07"], times=None)
    run = make_run(str(src), f"s3://{BUCKET}/p", log, dest_hook=hook, delete=True)

    with pytest.raises(S3SyncError) as raised:
        run.run()

    message = str(raised.value)
    assert "nothing was deleted" in message and "1 item(s) failed" in message
    assert f"upload {src / 'f07'} to s3://{BUCKET}/p/f07" in message
    assert hook.keys_of("upload_file").count("p/f07") == 1  # permanent: one attempt
    written = {f"p/{name}" for name in files if name != "f07"}
    assert set(hook.store.keys(BUCKET)) == written | {"p/zz-stale"}
    assert hook.calls_named("delete_keys", "delete_key") == []
    assert run.report.counts["uploaded"] == 19 and run.report.failure_count == 1
    assert run.report.retries == 0


@pytest.mark.parametrize(
    "error",
    [EndpointConnectionError(endpoint_url="x"), client_error("SlowDown", 503)],
    ids=["EndpointConnectionError", "SlowDown-503"],
)
def test_a_transient_failure_is_retried(tmp_path: Path, log: LogRecorder, error: Exception) -> None:
    hook = FakeBackend()
    files = {f"f{index}": bytes([65 + index]) * (100 + index) for index in range(5)}
    src = write_files(tmp_path / "src", files)
    hook.fail(error, keys=["p/f3"], times=1, partial=True)  # half the bytes, then the error

    report = make_run(str(src), f"s3://{BUCKET}/p", log, dest_hook=hook).run()

    assert hook.keys_of("upload_file").count("p/f3") == 2
    assert report.retries == 1
    assert report.counts["uploaded"] == 5 and report.failure_count == 0
    assert hook.store.data(BUCKET, "p/f3") == files["f3"]
    assert report.bytes_transferred == sum(map(len, files.values()))  # the failed attempt's bytes taken back
    assert any(message.startswith("retrying upload") for message in log.at(logging.WARNING))


def test_a_transient_failure_that_persists_fails_after_three_attempts(tmp_path: Path, log: LogRecorder) -> None:
    hook = FakeBackend()
    src = write_files(tmp_path / "src", {"a": b"a", "b": b"b"})
    hook.fail(EndpointConnectionError(endpoint_url="x"), keys=["p/b"], times=None)
    run = make_run(str(src), f"s3://{BUCKET}/p", log, dest_hook=hook)

    with pytest.raises(S3SyncError, match=r"upload .*/b to s3://bkt/p/b: Could not connect"):
        run.run()
    assert hook.keys_of("upload_file").count("p/b") == 3
    assert run.report.retries == 2
    assert hook.store.keys(BUCKET) == ["p/a"]


def test_a_permanent_failure_is_not_retried(tmp_path: Path, log: LogRecorder) -> None:
    hook = FakeBackend()
    src = write_files(tmp_path / "src", {"a": b"a"})
    hook.fail(client_error("AccessDenied", 403), keys=["p/a"], times=1)  # would succeed on a retry
    run = make_run(str(src), f"s3://{BUCKET}/p", log, dest_hook=hook)

    with pytest.raises(S3SyncError, match="AccessDenied"):
        run.run()
    assert hook.keys_of("upload_file") == ["p/a"]
    assert run.report.retries == 0
    assert hook.store.keys(BUCKET) == []


def test_a_retried_streamed_copy_reads_the_source_again(log: LogRecorder) -> None:
    source_hook, dest_hook = FakeBackend(name="source"), FakeBackend(name="dest")
    data = b"0123456789" * 10
    source_hook.store.put("src", "in/a", data, mtime=OLD)
    dest_hook.fail(EndpointConnectionError(endpoint_url="x"), keys=["out/a"], on=["upload_stream"], partial=True)

    report = make_run("s3://src/in", "s3://dst/out", log, source_hook=source_hook, dest_hook=dest_hook).run()

    assert source_hook.keys_of("open_object") == ["in/a", "in/a"]  # a fresh body for the second attempt
    assert dest_hook.store.data("dst", "out/a") == data
    assert report.retries == 1 and report.bytes_transferred == len(data)


# --------------------------------------------------------------------------- cancellation
def _stop_when_blocked(run: SyncRun, hook: FakeBackend, release: threading.Event, count: int) -> threading.Thread:
    """A thread that stops ``run`` once ``count`` calls wait at ``hook``'s gate, then lets them go."""

    def stop() -> None:
        try:
            if hook.wait_blocked(count):
                run.stop()
        finally:
            release.set()

    thread = threading.Thread(target=stop, name="test-stopper")
    thread.start()
    return thread


def test_stop_during_transfers_fails_the_run_and_starts_nothing_new(tmp_path: Path, log: LogRecorder) -> None:
    hook = FakeBackend()
    hook.store.put(BUCKET, "p/000-stale", b"old")  # planned for deletion before any transfer
    src = write_files(tmp_path / "src", {f"f{index}": b"data" for index in range(10)})
    release = threading.Event()
    hook.block(release, on=["upload_file"])
    run = make_run(str(src), f"s3://{BUCKET}/p", log, dest_hook=hook, delete=True)  # 2 workers
    stopper = _stop_when_blocked(run, hook, release, 2)

    with pytest.raises(S3SyncError, match="the run was stopped"):
        run.run()
    stopper.join(5)

    assert run.runner.stopping
    assert len(hook.calls_named("upload_file")) == 2  # only the two that were running
    assert hook.calls_named("delete_keys", "delete_key") == []
    assert "p/000-stale" in hook.store.keys(BUCKET)
    assert run.report.counts["uploaded"] == 2
    assert any("not deleting 1 item(s)" in message for message in log.at(logging.WARNING))


def test_stop_during_deletes_stops_deleting(tmp_path: Path, log: LogRecorder) -> None:
    hook = FakeBackend()
    for index in range(5):
        hook.store.put(BUCKET, f"p/gone{index}", b"old")
    src = write_files(tmp_path / "src", {"keep": b"k"})
    release = threading.Event()
    hook.block(release, on=["delete_key"])
    run = make_run(str(src), f"s3://{BUCKET}/p", log, dest_hook=hook, delete=True)
    stopper = _stop_when_blocked(run, hook, release, 1)

    with pytest.raises(S3SyncError, match="sync stopped while deleting"):
        run.run()
    stopper.join(5)

    assert hook.keys_of("delete_key") == ["p/gone0"]
    assert hook.store.keys(BUCKET) == ["p/gone1", "p/gone2", "p/gone3", "p/gone4", "p/keep"]


# --------------------------------------------------------------------------- dry run
def test_dry_run_changes_nothing_and_reports_the_plan(tmp_path: Path, log: LogRecorder) -> None:
    hook, native = native_pair()
    hook.store.put(BUCKET, "p/stale1", b"1")
    hook.store.put(BUCKET, "p/stale2", b"2")
    src = write_files(tmp_path / "src", {"a": b"a", "b": b"bb", "sub/c": b"ccc"})

    report = make_run(str(src), f"s3://{BUCKET}/p", log, dest_hook=hook, delete=True, dryrun=True).run()

    assert hook.writes() == [] and native.calls == []
    assert {call.name for call in hook.calls} == {"check_access", "iter_entries"}
    assert report.counts["uploaded"] == 3 and report.counts["deleted"] == 2
    assert report.dryrun and report.bytes_transferred == 0
    assert report.changed_keys == ["a", "b", "sub/c"]
    actions = log.actions()
    assert len(actions) == 5 and all(line.startswith("(dryrun) ") for line in actions)
    assert f"(dryrun) upload: {src / 'sub' / 'c'} to s3://{BUCKET}/p/sub/c" in actions
    assert f"(dryrun) delete: s3://{BUCKET}/p/stale1" in actions
    assert hook.store.keys(BUCKET) == ["p/stale1", "p/stale2"]


def test_dry_run_download_neither_writes_nor_creates_the_directory(tmp_path: Path, log: LogRecorder) -> None:
    hook, native = native_pair()
    hook.store.put(BUCKET, "p/a", b"a", mtime=OLD)
    out = tmp_path / "missing"

    report = make_run(f"s3://{BUCKET}/p", str(out), log, source_hook=hook, dryrun=True).run()

    assert hook.writes() == [] and native.calls == []
    assert not out.exists()
    assert report.counts["downloaded"] == 1
    assert log.actions() == [f"(dryrun) download: s3://{BUCKET}/p/a to {out / 'a'}"]


def test_dry_run_above_max_delete_warns_instead_of_failing(tmp_path: Path, log: LogRecorder) -> None:
    hook = FakeBackend()
    for index in range(3):
        hook.store.put(BUCKET, f"p/gone{index}", b"old")
    src = write_files(tmp_path / "src", {"a": b"a"})

    report = make_run(str(src), f"s3://{BUCKET}/p", log, dest_hook=hook, delete=True, dryrun=True, max_delete=2).run()

    assert report.counts["deleted"] == 3
    assert hook.writes() == []
    assert any("a real run would fail: refusing to delete 3" in message for message in log.at(logging.WARNING))


# --------------------------------------------------------------------------- the delete gate
def test_a_listing_failure_means_no_delete(log: LogRecorder) -> None:
    store = FakeStore()
    hook = FakeBackend(store)
    for name in ("a", "b", "c", "d"):
        store.put("src", f"in/{name}", name.encode(), mtime=OLD)
    store.put("dst", "out/a0-dest-only", b"keep me")  # planned for deletion before the failure
    hook.fail_listing("src", after=2, error=EndpointConnectionError(endpoint_url="x"))
    run = make_run("s3://src/in", "s3://dst/out", log, source_hook=hook, dest_hook=hook, delete=True)

    with pytest.raises(S3SyncError, match=r"nothing was deleted: a listing failed \(Could not connect"):
        run.run()

    assert hook.calls_named("delete_keys", "delete_key") == []
    assert "out/a0-dest-only" in store.keys("dst")
    assert set(hook.keys_of("copy_object")) <= {"out/a", "out/b"}  # nothing past the failure
    assert any(message.startswith("listing failed") for message in log.at(logging.ERROR))


def test_a_destination_listing_failure_means_no_delete(tmp_path: Path, log: LogRecorder) -> None:
    hook = FakeBackend()
    for index in range(4):
        hook.store.put(BUCKET, f"p/gone{index}", b"old")
    src = write_files(tmp_path / "src", {"z": b"z"})
    hook.fail_listing(BUCKET, after=3, error=S3SyncError("listing cut short"))
    run = make_run(str(src), f"s3://{BUCKET}/p", log, dest_hook=hook, delete=True)

    with pytest.raises(S3SyncError, match="a listing failed"):
        run.run()
    assert hook.calls_named("delete_keys", "delete_key") == []
    assert len(hook.store.keys(BUCKET)) == 4


@pytest.mark.parametrize(("max_delete", "deleted"), [(2, False), (3, True)])
def test_max_delete_is_checked_before_the_first_delete(
    tmp_path: Path, log: LogRecorder, max_delete: int, deleted: bool
) -> None:
    hook = FakeBackend()
    for index in range(3):
        hook.store.put(BUCKET, f"p/gone{index}", b"old")
    src = write_files(tmp_path / "src", {"new": b"n"})
    run = make_run(str(src), f"s3://{BUCKET}/p", log, dest_hook=hook, delete=True, max_delete=max_delete)

    if deleted:
        run.run()
        assert hook.keys_of("delete_key") == ["p/gone0", "p/gone1", "p/gone2"]
        assert hook.store.keys(BUCKET) == ["p/new"]
        return
    with pytest.raises(S3SyncError, match=r"refusing to delete 3 item.*max_delete=2; nothing was deleted"):
        run.run()
    assert hook.calls_named("delete_keys", "delete_key") == []
    assert hook.store.keys(BUCKET) == ["p/gone0", "p/gone1", "p/gone2", "p/new"]  # the upload happened


def test_a_clean_run_deletes_exactly_the_destination_only_keys(tmp_path: Path, log: LogRecorder) -> None:
    hook = FakeBackend()
    src = write_files(tmp_path / "src", {"keep": b"same", "new": b"new", "sub/changed": b"longer now"})
    hook.store.put(BUCKET, "p/keep", b"same")  # same size, newer at S3: skipped
    hook.store.put(BUCKET, "p/sub/changed", b"short")
    for key in ("p/gone", "p/sub/gone", "p2/outside", "other/x", "p"):
        hook.store.put(BUCKET, key, b"dest")

    report = make_run(str(src), f"s3://{BUCKET}/p", log, dest_hook=hook, delete=True).run()

    assert hook.keys_of("delete_key") == ["p/gone", "p/sub/gone"]
    assert len(hook.calls_named("delete_keys")) == 1
    assert sorted(hook.keys_of("upload_file")) == ["p/new", "p/sub/changed"]
    assert hook.store.keys(BUCKET) == ["other/x", "p", "p/keep", "p/new", "p/sub/changed", "p2/outside"]
    assert report.counts == {"uploaded": 2, "copied": 0, "downloaded": 0, "deleted": 2, "skipped": 1, "failed": 0}
    assert f"delete: s3://{BUCKET}/p/sub/gone" in log.actions()


def test_a_failed_delete_fails_the_run_after_the_others(tmp_path: Path, log: LogRecorder) -> None:
    hook = FakeBackend()
    for index in range(3):
        hook.store.put(BUCKET, f"p/gone{index}", b"old")
    src = write_files(tmp_path / "src", {"a": b"a"})
    hook.fail(client_error("AccessDenied", 403, "DeleteObjects"), keys=["p/gone1"], on=["delete_key"], times=None)
    run = make_run(str(src), f"s3://{BUCKET}/p", log, dest_hook=hook, delete=True)

    with pytest.raises(S3SyncError, match=r"sync failed: 1 item\(s\) failed: delete s3://bkt/p/gone1: .*AccessDenied"):
        run.run()
    assert hook.store.keys(BUCKET) == ["p/a", "p/gone1"]
    assert run.report.counts["deleted"] == 2


def test_a_local_destination_deletes_only_after_every_download(tmp_path: Path, log: LogRecorder) -> None:
    hook = FakeBackend()
    hook.store.put(BUCKET, "p/a", b"a", mtime=OLD)
    hook.store.put(BUCKET, "p/b", b"b", mtime=OLD)
    out = write_files(tmp_path / "out", {"local-only": b"x"})
    hook.fail(client_error("NoSuchKey", 404, "GetObject"), keys=["p/b"], times=None)

    with pytest.raises(S3SyncError, match="nothing was deleted"):
        make_run(f"s3://{BUCKET}/p", str(out), log, source_hook=hook, delete=True).run()
    assert (out / "local-only").exists() and (out / "a").read_bytes() == b"a" and not (out / "b").exists()

    hook = FakeBackend(hook.store)  # the next run is clean
    hook.store.put(BUCKET, "p/b", b"b", mtime=OLD)
    make_run(f"s3://{BUCKET}/p", str(out), log, source_hook=hook, delete=True).run()
    assert sorted(path.name for path in out.iterdir()) == ["a", "b"]


@pytest.mark.parametrize(
    ("properties", "options"),
    [
        ({"Expires": OLD}, {}),  # a property the native client cannot write
        ({"Metadata": {"content-type": "x"}}, {}),  # metadata it would take for a header
        ({}, {"copy_tags": True}),
        ({}, {"extra_args": {"StorageClass": "STANDARD_IA"}}),
    ],
    ids=["expires", "metadata-named-like-a-header", "copy_tags", "extra_args"],
)
def test_small_streamed_objects_take_botocore_for_what_the_native_client_cannot_carry(
    log: LogRecorder, properties: dict, options: dict
) -> None:
    source_hook = FakeBackend(name="source")
    dest_store = FakeStore()
    dest_native = FakeBackend(dest_store, name="native")
    dest_hook = FakeBackend(dest_store, name="dest", native=dest_native)
    source_hook.store.put("src", "in/a", b"abc", mtime=OLD, **properties)
    source_hook.object_tags = lambda bucket, key: []  # type: ignore[method-assign]

    make_run("s3://src/in", "s3://dst/out", log, source_hook=source_hook, dest_hook=dest_hook, **options).run()

    assert dest_hook.keys_of("upload_stream") == ["out/a"] and dest_native.calls_named("upload_bytes") == []


def test_a_native_streamed_write_whose_etag_is_not_the_md5_is_checked_with_a_head(log: LogRecorder) -> None:
    """The native client's answer does not say whether the object is KMS-encrypted: an ETag that
    is not the MD5 sent is no verdict; a HeadObject decides."""
    source_hook = FakeBackend(name="source")
    dest_store = FakeStore()
    dest_native = FakeBackend(dest_store, name="native")
    dest_hook = FakeBackend(dest_store, name="dest", native=dest_native)
    source_hook.store.put("src", "in/a", b"abc", mtime=OLD)
    upload_bytes = dest_native.upload_bytes

    def kms_like(data: bytes, bucket: str, key: str, **kwargs: Any) -> Written:
        written = upload_bytes(data, bucket, key, **kwargs)
        return Written(written.size, etag='"' + "f" * 32 + '"')

    dest_native.upload_bytes = kms_like  # type: ignore[method-assign]

    report = make_run("s3://src/in", "s3://dst/out", log, source_hook=source_hook, dest_hook=dest_hook).run()

    assert report.counts["copied"] == 1
    assert dest_hook.keys_of("digests") == ["out/a"]


def test_a_failure_the_report_missed_still_blocks_the_deletes(log: LogRecorder) -> None:
    """Deletes ask the runner too: a job whose failure could not be recorded in the report
    (a reporting bug) still makes the run unclean."""
    source_hook, dest_hook = FakeBackend(name="source"), FakeBackend(name="dest")
    source_hook.store.put("src", "in/a", b"a", mtime=OLD)
    dest_hook.store.put("dst", "out/stale", b"x", mtime=OLD)
    dest_hook.fail(S3SyncError("boom"), keys=["out/a"], on=["upload_stream"], times=None)
    run = make_run("s3://src/in", "s3://dst/out", log, source_hook=source_hook, dest_hook=dest_hook, delete=True)
    run.report.failed = lambda description: (_ for _ in ()).throw(RuntimeError("reporting bug"))  # type: ignore[method-assign]

    with pytest.raises(S3SyncError, match="1 transfer"):
        run.run()
    assert dest_hook.calls_named("delete_keys") == []
