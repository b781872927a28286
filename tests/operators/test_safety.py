"""Nothing lost, nothing weakened: bad input, failed listings and transfers, max_delete, escaping keys."""

from __future__ import annotations

import os

import pytest
from botocore.exceptions import EndpointConnectionError

from airflow_s3sync import S3SyncHook, S3SyncOperator
from airflow_s3sync.errors import InvalidLocationError, S3SyncError
from airflow_s3sync.execute.runner import Job, JobRunner
from airflow_s3sync.hooks.backend import ObjectRef
from airflow_s3sync.hooks.botocore_backend import BotocoreBackend
from airflow_s3sync.hooks.local import LocalTree
from tests.conftest import new_bucket, write
from tests.support import use_connection


def sync(**kwargs):
    return S3SyncOperator(task_id="sync", **kwargs).execute({})


def keys(server, bucket):
    return sorted(o["Key"] for o in server.client().list_objects_v2(Bucket=bucket).get("Contents", []))


@pytest.mark.parametrize("bad", ["s3://", "s3:/x", "gs://x", "", "s3://bad bucket"])
def test_malformed_locations_fail_at_construction_without_any_request(bad, monkeypatch):
    # An endpoint nobody listens on: any request would fail with a connection error instead.
    use_connection(monkeypatch, "aws_default", '{"conn_type": "aws", "extra": {"endpoint_url": "http://127.0.0.1:9"}}')
    with pytest.raises(InvalidLocationError):
        S3SyncOperator(task_id="sync", source="s3://bucket/data", dest=bad)
    with pytest.raises(InvalidLocationError):
        S3SyncOperator(task_id="sync", source=bad, dest="/tmp/somewhere")


def test_templated_locations_are_validated_again_when_executed(monkeypatch):
    use_connection(monkeypatch, "aws_default", '{"conn_type": "aws", "extra": {"endpoint_url": "http://127.0.0.1:9"}}')
    op = S3SyncOperator(task_id="sync", source="{{ params.source }}", dest="s3://bucket/x")
    op.source = "s3:/rendered-badly"  # what a template could render to
    with pytest.raises(InvalidLocationError):
        op.execute({})


def test_two_local_sides_are_rejected(tmp_path):
    with pytest.raises(S3SyncError, match="at least one side must be an s3:// location"):
        S3SyncOperator(task_id="sync", source=str(tmp_path), dest=str(tmp_path / "copy"))


def test_unknown_extra_args_are_rejected_before_any_request(tmp_path):
    with pytest.raises(S3SyncError, match="not allowed for uploads"):
        S3SyncOperator(task_id="sync", source=str(tmp_path), dest="s3://b", extra_args={"Bucket": "other"})


def test_missing_bucket_fails_before_any_change(aws_default, tmp_path):
    write(tmp_path / "a.txt")
    with pytest.raises(S3SyncError, match="bucket 'no-such-bucket' does not exist"):
        sync(source=str(tmp_path), dest="s3://no-such-bucket/x")
    with pytest.raises(S3SyncError, match="does not exist"):
        sync(source="s3://no-such-bucket", dest=str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_wrong_credentials_fail_before_any_change(rclone, monkeypatch, tmp_path):
    bucket = new_bucket(rclone)
    write(tmp_path / "a.txt")
    use_connection(monkeypatch, "aws_default", rclone.connection_json(secret_key="wrong"))
    with pytest.raises(S3SyncError, match="denied"):
        sync(source=str(tmp_path), dest=f"s3://{bucket}")
    assert keys(rclone, bucket) == []


def test_missing_local_source_is_a_clear_error(moto_default, tmp_path):
    bucket = new_bucket(moto_default)
    with pytest.raises(S3SyncError, match="does not exist"):
        sync(source=str(tmp_path / "nope"), dest=f"s3://{bucket}")


def failing_listing(monkeypatch, bucket: str, after: int) -> None:
    """Fault injection: the listing of ``bucket`` drops its connection after ``after`` real entries."""
    real = BotocoreBackend.list_entries

    def listing(self, **kwargs):
        for n, entry in enumerate(real(self, **kwargs)):
            if kwargs["bucket"] == bucket and n == after:
                raise EndpointConnectionError(endpoint_url="http://127.0.0.1/dropped")
            yield entry

    monkeypatch.setattr(BotocoreBackend, "list_entries", listing)


@pytest.mark.parametrize("failing_side", ["source", "dest"])
def test_a_failed_listing_means_no_deletes(failing_side, moto_default, monkeypatch, logs):
    source, dest = new_bucket(moto_default), new_bucket(moto_default)
    client = moto_default.client()
    for key in ("a", "b", "c"):
        client.put_object(Bucket=source, Key=key, Body=b"new")
    for key in ("a", "stale1", "stale2", "zzz"):
        client.put_object(Bucket=dest, Key=key, Body=b"old!")
    failing_listing(monkeypatch, source if failing_side == "source" else dest, after=1)

    with pytest.raises(S3SyncError, match=r"nothing was deleted: a listing failed \(Could not connect"):
        sync(source=f"s3://{source}", dest=f"s3://{dest}", delete=True)

    assert {"stale1", "stale2", "zzz"} <= set(keys(moto_default, dest))
    assert not [line for line in logs.actions() if line.startswith("delete")]


def test_failed_transfers_fail_the_task_after_the_others_and_block_deletes(moto_default, tmp_path, logs):
    bucket = new_bucket(moto_default)
    client = moto_default.client()
    # "a" and "a/b" cannot both exist as local paths: exactly one of them fails.
    for key in ("a", "a/b", "ok.txt"):
        client.put_object(Bucket=bucket, Key=key, Body=b"data")
    write(tmp_path / "stale.txt")

    with pytest.raises(S3SyncError, match=r"nothing was deleted: 1 item\(s\) failed: download s3://.*/a(/b)? to "):
        sync(source=f"s3://{bucket}", dest=str(tmp_path), delete=True)

    assert (tmp_path / "ok.txt").read_bytes() == b"data"
    assert (tmp_path / "stale.txt").exists()
    assert len([line for line in logs.at("error") if line.startswith("download failed: ")]) == 1


def test_max_delete_is_checked_before_the_first_delete(moto_default, tmp_path, logs):
    bucket = new_bucket(moto_default)
    client = moto_default.client()
    for key in ("x1", "x2", "x3"):
        client.put_object(Bucket=bucket, Key=key, Body=b"old")
    write(tmp_path / "new.txt")

    summary = sync(source=str(tmp_path), dest=f"s3://{bucket}", delete=True, max_delete=2, dryrun=True)
    assert summary["deleted"] == 3
    assert any("a real run would fail" in line for line in logs.at("warning"))

    with pytest.raises(S3SyncError, match=r"refusing to delete 3 item.*max_delete=2; nothing was deleted"):
        sync(source=str(tmp_path), dest=f"s3://{bucket}", delete=True, max_delete=2)
    assert keys(moto_default, bucket) == ["new.txt", "x1", "x2", "x3"]

    assert sync(source=str(tmp_path), dest=f"s3://{bucket}", delete=True, max_delete=3)["deleted"] == 3
    assert keys(moto_default, bucket) == ["new.txt"]


def test_dryrun_changes_nothing(moto_default, tmp_path, logs):
    bucket = new_bucket(moto_default)
    moto_default.client().put_object(Bucket=bucket, Key="gone", Body=b"x")
    write(tmp_path / "a.txt")
    summary = sync(source=str(tmp_path), dest=f"s3://{bucket}", delete=True, dryrun=True)
    assert summary["dryrun"] is True and summary["uploaded"] == 1 and summary["deleted"] == 1
    assert logs.actions() == [
        f"(dryrun) upload: {tmp_path}/a.txt to s3://{bucket}/a.txt",
        f"(dryrun) delete: s3://{bucket}/gone",
    ]
    assert keys(moto_default, bucket) == ["gone"]
    summary = sync(source=f"s3://{bucket}", dest=str(tmp_path / "new-dir"), dryrun=True)
    assert summary["downloaded"] == 1
    assert not (tmp_path / "new-dir").exists()


def test_keys_that_would_escape_the_directory_are_refused(moto_default, tmp_path, logs):
    bucket = new_bucket(moto_default)
    client = moto_default.client()
    for key in ("data/../../evil.txt", "data/fine.txt", "data/sub/../inside.txt"):
        client.put_object(Bucket=bucket, Key=key, Body=b"payload")
    dest = tmp_path / "dest"

    summary = sync(source=f"s3://{bucket}/data", dest=str(dest))

    assert summary["downloaded"] == 1 and summary["skipped"] == 2 and summary["warnings"] == 2
    assert "warning: Skipping file ../../evil.txt. File references a parent directory." in logs.at("warning")
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()) == ["dest/fine.txt"]


def test_a_key_that_aliases_another_file_is_never_downloaded_then_deleted(moto_default, tmp_path, logs):
    """`d//x.txt` would land on `d/x.txt`, a destination-only file that delete=True removes after
    the transfers: the alias is refused, so the file is deleted once and stays deleted."""
    bucket = new_bucket(moto_default)
    moto_default.client().put_object(Bucket=bucket, Key="d//x.txt", Body=b"aliased")
    write(tmp_path / "d" / "x.txt", "local")

    for _ in range(2):
        summary = sync(source=f"s3://{bucket}", dest=str(tmp_path), delete=True)
        assert summary["downloaded"] == 0 and summary["warnings"] == 1

    assert not (tmp_path / "d" / "x.txt").exists()
    assert logs.actions() == [f"delete: {tmp_path}/d/x.txt"]
    assert any("d//x.txt. Its key is not a canonical path" in line for line in logs.at("warning"))


@pytest.mark.parametrize("native", [False, True], ids=["s3transfer-multipart", "native"])
def test_a_failed_download_leaves_no_file_under_the_final_name(moto_default, tmp_path, native):
    """A download of an object replaced after it was listed: its reads are conditional on the
    listed ETag (ranged GETs of a multipart download, or the native client's one GET), the
    download fails, and nothing is left behind."""
    bucket = new_bucket(moto_default)
    client = moto_default.client()
    client.put_object(Bucket=bucket, Key="big.bin", Body=b"1" * 4096)
    hook = S3SyncHook(transfer_config_args={"multipart_threshold": 1024, "multipart_chunksize": 1024})
    (listed,) = hook.backend.list_entries(bucket=bucket, prefix="")
    client.put_object(Bucket=bucket, Key="big.bin", Body=b"2" * 4096)
    target = tmp_path / "big.bin"
    backends = {backend.capabilities.name: backend for backend in hook.transfer_backends()}
    backend = backends["obstore" if native else "botocore"]
    with pytest.raises(Exception, match="did not match expected ETag"):
        backend.download_file(
            source=ObjectRef(bucket, "big.bin"),
            path=str(target),
            size=listed.size,
            etag=listed.etag,
            extra_args={},
            progress=lambda n: None,
        )
    hook.close_backends()
    assert os.listdir(tmp_path) == []


def test_changed_keys_are_pushed_to_xcom(moto_default, tmp_path):
    bucket = new_bucket(moto_default)
    write(tmp_path / "a.txt")
    write(tmp_path / "sub" / "b.txt")

    class TaskInstance:
        def __init__(self):
            self.pushed = {}

        def xcom_push(self, key, value):
            self.pushed[key] = value

    ti = TaskInstance()
    summary = S3SyncOperator(task_id="sync", source=str(tmp_path), dest=f"s3://{bucket}/pre").execute({"ti": ti})
    assert sorted(ti.pushed["changed_keys"]) == ["a.txt", "sub/b.txt"]
    assert summary["changed_keys_count"] == 2 and summary["changed_keys_truncated"] is False
    S3SyncOperator(task_id="sync", source=str(tmp_path), dest=f"s3://{bucket}/pre").execute({"ti": ti})
    assert ti.pushed["changed_keys"] == []


def test_extra_args_reach_every_written_object(moto_default, tmp_path):
    bucket = new_bucket(moto_default)
    write(tmp_path / "page.html")
    write(tmp_path / "data.bin")
    sync(
        source=str(tmp_path),
        dest=f"s3://{bucket}",
        extra_args={"StorageClass": "STANDARD_IA", "Metadata": {"origin": "airflow"}},
    )
    client = moto_default.client()
    html = client.head_object(Bucket=bucket, Key="page.html")
    assert html["StorageClass"] == "STANDARD_IA"
    assert html["Metadata"] == {"origin": "airflow"}
    assert html["ContentType"] == "text/html"  # guessed from the name, like the AWS CLI
    assert client.head_object(Bucket=bucket, Key="data.bin")["StorageClass"] == "STANDARD_IA"


def test_progress_shows_totals_and_an_eta_once_the_plan_is_complete(moto_default, tmp_path, logs):
    import re

    bucket = new_bucket(moto_default)
    for n in range(2000):
        write(tmp_path / f"d{n // 100:02d}" / f"f{n:04d}", "x" * 1000)
    sync(source=str(tmp_path), dest=f"s3://{bucket}", progress_interval=0.05, max_concurrency=8)
    progress = [line for line in logs.at("info") if line.startswith("progress: ")]
    so_far = (
        r"progress: [\d,]+ of [\d,]+\+ object\(s\) so far, [\d,]+ in flight, "
        r"[\d.]+ (B|KiB|MiB) of [\d.]+ (B|KiB|MiB)\+, [\d.]+ (B|KiB|MiB)/s"
    )
    totals = (
        r"progress: [\d,]+ of 2,000 object\(s\), [\d.]+ (B|KiB|MiB) of 1\.9 MiB, [\d.]+ (B|KiB|MiB)/s, "
        r"ETA \d+:\d\d:\d\d"
    )
    assert all(re.fullmatch(so_far, line) or re.fullmatch(totals, line) for line in progress), progress
    assert any(re.fullmatch(totals, line) for line in progress[:-1]), progress  # while transferring
    assert re.fullmatch(r"progress: 2,000 of 2,000 object\(s\), 1\.9 MiB of 1\.9 MiB, .*, ETA 0:00:00", progress[-1])


@pytest.mark.timeout(120)
def test_sigterm_stops_the_run_while_the_planner_waits_for_a_full_queue(moto_default, tmp_path):
    """As in Airflow: SIGTERM lands on the thread running execute(), whose handler calls on_kill,
    while that thread is blocked on the job runner's full queue."""
    import signal
    import sys
    import threading
    import time
    import traceback

    bucket = new_bucket(moto_default)
    moto_default.client().put_object(Bucket=bucket, Key="zzz-stale", Body=b"x")
    for n in range(3000):
        (tmp_path / f"f{n:05d}").write_text("x")
    op = S3SyncOperator(task_id="sync", source=str(tmp_path), dest=f"s3://{bucket}", delete=True, max_concurrency=1)
    main = threading.main_thread()
    blocked = threading.Event()

    def kill_when_blocked() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            run = op.__dict__.get("_run")
            frame = sys._current_frames().get(main.ident)
            stack = "".join(traceback.format_stack(frame)) if frame else ""
            if run is not None and run.report.counts["uploaded"] > 20 and "self._slots.acquire" in stack:
                blocked.set()
                os.kill(os.getpid(), signal.SIGTERM)
                return
            time.sleep(0.005)

    previous = signal.signal(signal.SIGTERM, lambda signum, frame: op.on_kill())
    try:
        threading.Thread(target=kill_when_blocked, daemon=True).start()
        with pytest.raises(S3SyncError, match="the run was stopped"):
            op.execute({})
    finally:
        signal.signal(signal.SIGTERM, previous)

    assert blocked.is_set()
    listed = keys(moto_default, bucket)
    assert "zzz-stale" in listed  # no delete ran
    assert len(listed) < 1000  # the queued transfers were cancelled


def test_a_kill_before_the_run_starts_stops_it_at_once(moto_default, tmp_path):
    bucket = new_bucket(moto_default)
    moto_default.client().put_object(Bucket=bucket, Key="stale", Body=b"x")
    write(tmp_path / "a")
    op = S3SyncOperator(task_id="sync", source=str(tmp_path), dest=f"s3://{bucket}", delete=True)
    op.on_kill()
    with pytest.raises(S3SyncError, match="the run was stopped"):
        op.execute({})
    assert keys(moto_default, bucket) == ["stale"]


@pytest.mark.parametrize("limit", [None, -1, "10"])
def test_changed_keys_limit_is_validated(limit, tmp_path):
    with pytest.raises(ValueError, match="changed_keys_limit"):
        S3SyncOperator(task_id="sync", source=str(tmp_path), dest="s3://b", changed_keys_limit=limit)


def test_too_many_changed_keys_push_none_meaning_every_object(moto_default, tmp_path):
    bucket = new_bucket(moto_default)
    write(tmp_path / "a")
    write(tmp_path / "b")

    class TaskInstance:
        pushed: dict = {}

        def xcom_push(self, key, value):
            self.pushed[key] = value

    ti = TaskInstance()
    op = S3SyncOperator(task_id="sync", source=str(tmp_path), dest=f"s3://{bucket}", changed_keys_limit=1)
    summary = op.execute({"ti": ti})
    assert ti.pushed["changed_keys"] is None
    assert summary["changed_keys_truncated"] is True and summary["changed_keys_count"] == 2


def test_local_walk_warnings_reach_the_summary(moto_default, tmp_path):
    bucket = new_bucket(moto_default)
    write(tmp_path / "ok")
    (tmp_path / "broken").symlink_to(tmp_path / "nowhere")
    summary = sync(source=str(tmp_path), dest=f"s3://{bucket}")
    assert summary["uploaded"] == 1 and summary["warnings"] == 1


def test_archived_objects_are_skipped_with_the_aws_cli_warning(moto_default, logs):
    src, dst = new_bucket(moto_default), new_bucket(moto_default)
    client = moto_default.client()
    client.put_object(Bucket=src, Key="cold", Body=b"x", StorageClass="GLACIER")
    client.put_object(Bucket=src, Key="warm", Body=b"x")
    summary = sync(source=f"s3://{src}", dest=f"s3://{dst}")
    assert summary["copied"] == 1 and summary["skipped"] == 1 and summary["warnings"] == 1
    assert logs.at("warning")[-1] == (
        f"warning: Skipping file s3://{src}/cold. Object is of storage class GLACIER. Unable to perform copy "
        "operations on GLACIER objects. You must restore the object to be able to perform the operation."
    )


def test_an_mtime_that_cannot_be_set_is_a_warning_not_a_failure(moto_default, tmp_path, monkeypatch, logs):
    bucket = new_bucket(moto_default)
    moto_default.client().put_object(Bucket=bucket, Key="k", Body=b"data")

    def refuse(path: str, when: object) -> None:
        raise PermissionError("Operation not permitted")

    monkeypatch.setattr(LocalTree, "set_mtime", staticmethod(refuse))
    summary = sync(source=f"s3://{bucket}", dest=str(tmp_path))
    assert (summary["downloaded"], summary["failed"], summary["warnings"]) == (1, 0, 1)
    assert (tmp_path / "k").read_bytes() == b"data"
    assert logs.at("warning")[-1:] == [
        f"warning: Successfully downloaded s3://{bucket}/k to {tmp_path}/k but was unable to update the last "
        "modified time. Operation not permitted"
    ]


class _Abort(BaseException):
    """Not an Exception: what a worker may meet when the interpreter is going down."""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("error", [RuntimeError("HeadObject failed"), _Abort("stop")], ids=["exception", "base"])
def test_a_job_that_fails_is_reported_and_never_hangs_the_run(error):
    import logging

    failures: list[BaseException] = []

    def run() -> None:
        raise error

    with JobRunner(workers=1, log=logging.getLogger("test")) as runner:
        for n in range(5):  # more than the 2 x workers slots: a leaked slot would block here
            runner.submit(Job(f"copy a{n} to b{n}", run, failures.append))
        runner.wait()
    assert failures == [error] * 5
