"""SIGKILL mid-run, in every direction: nothing partial under a final name, and the rerun converges.

The sync runs in a child process (``S3SyncOperator(...).execute({})``, connections from
``AIRFLOW_CONN_*`` variables) whose requests go through a ``FaultProxy`` that injects no faults but
slows bodies down (and, for server-side copies, delays each request), so the kill lands while
objects are in flight: the test waits for evidence of that (objects already written at the
destination, a multipart upload, a big PutObject or a download's temporary file in progress),
then kills the child with SIGKILL, which no handler can catch.

Multipart uploads a kill leaves are expected (S3 keeps them until aborted, see
``abort_incomplete_uploads_after``): they are listed in the messages, never failed on.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from boto3.s3.transfer import TransferConfig

from airflow_s3sync import S3SyncOperator
from airflow_s3sync.hooks.local import is_temp_name
from tests.conftest import new_bucket
from tests.faults import FaultProxy
from tests.support import (
    NO_DIFFERENCES,
    S3Server,
    bucket_tree,
    connection_json_via,
    local_tree,
    multipart_uploads,
    tree_differences,
    use_connection,
)

KIB = 1024
MIB = 1024 * KIB
#: Bytes per second of each request body through the proxy: a 9 MiB object takes seconds.
BANDWIDTH = 3 * MIB
WAIT = 90.0

CHILD = """
import json
import sys

from airflow_s3sync import S3SyncOperator

print("child: starting the sync", flush=True)
S3SyncOperator(task_id="killed", **json.loads(sys.argv[1])).execute({})
print("child: the sync finished", flush=True)
"""

#: Four objects above the multipart threshold (8 MiB), then small ones, in key order.
FILES = {
    **{f"big-{number}.bin": 9 * MIB + number for number in range(4)},
    **{f"small/{number:02d}.txt": 100 * KIB + number for number in range(16)},
}


def content(name: str, size: int) -> bytes:
    """Bytes that differ per file and per position (a part written at a wrong offset shows)."""
    seed = name.encode() * 8
    block = (seed * (4096 // len(seed) + 1))[:4096]
    counter = b"".join(index.to_bytes(4, "big") + block[:4092] for index in range(size // 4096 + 1))
    return counter[:size]


def make_tree(root: Path) -> dict[str, bytes]:
    expected = {}
    for name, size in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content(name, size))
        expected[name] = path.read_bytes()
    return expected


def fill_bucket(server: S3Server, bucket: str, prefix: str, expected: dict[str, bytes]) -> None:
    client = server.client()
    for name, data in expected.items():
        client.put_object(Bucket=bucket, Key=prefix + name, Body=data)


def bucket_keys(server: S3Server, bucket: str, prefix: str) -> list[str]:
    listed = server.client().list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return [item["Key"].removeprefix(prefix) for item in listed]


def temp_files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if is_temp_name(path.name))


def final_files(root: Path) -> list[str]:
    return sorted(local_tree(root, skip=(".",)))


def kill_mid_run(
    tmp_path: Path,
    connections: dict[str, str],
    evidence: Callable[[], bool],
    **kwargs: object,
) -> str:
    """Start the sync in a child process, wait until ``evidence()``, SIGKILL it; its output."""
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    log = tmp_path / "child.log"
    env = {**os.environ, **{f"AIRFLOW_CONN_{name.upper()}": value for name, value in connections.items()}}
    arguments = json.dumps({"max_concurrency": 2, "progress_interval": 0.5, **kwargs})
    with log.open("wb") as out:
        child = subprocess.Popen(
            [sys.executable, str(script), arguments], cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + WAIT
            while not evidence():
                assert child.poll() is None, f"the sync ended before the kill:\n{log.read_text()[-3000:]}"
                assert time.monotonic() < deadline, f"no evidence of progress:\n{log.read_text()[-3000:]}"
                time.sleep(0.05)
            os.kill(child.pid, signal.SIGKILL)
            assert child.wait(timeout=30) == -signal.SIGKILL
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
    return log.read_text()


@pytest.fixture
def slow_moto(moto: S3Server) -> Iterator[FaultProxy]:
    with FaultProxy(moto.endpoint_url, rate=0.0, seed=1, bandwidth=BANDWIDTH, latency=0.1) as proxy:
        yield proxy


@pytest.fixture
def slow_rclone(rclone: S3Server) -> Iterator[FaultProxy]:
    with FaultProxy(rclone.endpoint_url, rate=0.0, seed=2, bandwidth=BANDWIDTH) as proxy:
        yield proxy


def rerun(**kwargs: object) -> dict:
    return S3SyncOperator(task_id="rerun", max_concurrency=4, **kwargs).execute({})


def assert_s3_dest_after_kill(server: S3Server, bucket: str, prefix: str, expected: dict[str, bytes]) -> list[str]:
    """Every object at the destination equals its source, and the kill was mid-run; the uploads left."""
    written = bucket_tree(server, bucket, prefix)
    left = multipart_uploads(server, bucket)
    partial = sorted(key for key, data in written.items() if expected.get(key) != data)
    assert partial == [], f"objects that are not their source's bytes: {partial} (multipart uploads left: {left})"
    assert 0 < len(written) < len(expected), f"the kill was not mid-run: {sorted(written)} (uploads left: {left})"
    return left


@pytest.mark.timeout(300)
def test_a_killed_upload_leaves_no_partial_object_and_the_rerun_converges(
    moto: S3Server, slow_moto: FaultProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "source"
    expected = make_tree(source)
    bucket = new_bucket(moto)

    def evidence() -> bool:  # objects written, and a multipart upload in flight
        return bool(bucket_keys(moto, bucket, "d/")) and bool(multipart_uploads(moto, bucket))

    output = kill_mid_run(
        tmp_path,
        {"kill_dst": connection_json_via(moto, slow_moto.endpoint_url)},
        evidence,
        source=str(source),
        dest=f"s3://{bucket}/d/",
        dest_aws_conn_id="kill_dst",
    )
    assert "upload: " in output
    left = assert_s3_dest_after_kill(moto, bucket, "d/", expected)

    use_connection(monkeypatch, "kill_dst", moto.connection_json())
    rerun(source=str(source), dest=f"s3://{bucket}/d/", dest_aws_conn_id="kill_dst", delete=True)
    assert tree_differences(bucket_tree(moto, bucket, "d/"), expected) == NO_DIFFERENCES, (
        f"multipart uploads left by the kill: {left}"
    )


@pytest.mark.timeout(300)
def test_a_killed_server_side_copy_leaves_no_partial_object_and_the_rerun_converges(
    moto: S3Server, slow_moto: FaultProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = {name: content(name, size) for name, size in FILES.items()}
    source_bucket, bucket = new_bucket(moto), new_bucket(moto)
    fill_bucket(moto, source_bucket, "s/", expected)

    def evidence() -> bool:
        return bool(bucket_keys(moto, bucket, "d/")) and bool(multipart_uploads(moto, bucket))

    # Objects above 5 MiB are copied in UploadPartCopy parts: a multipart copy is in flight at the kill.
    kill_mid_run(
        tmp_path,
        {"kill_src": connection_json_via(moto, slow_moto.endpoint_url)},
        evidence,
        source=f"s3://{source_bucket}/s/",
        dest=f"s3://{bucket}/d/",
        source_aws_conn_id="kill_src",
        dest_aws_conn_id="kill_src",
        copy_cutoff=5 * MIB,
    )
    left = assert_s3_dest_after_kill(moto, bucket, "d/", expected)

    use_connection(monkeypatch, "kill_src", moto.connection_json())
    rerun(
        source=f"s3://{source_bucket}/s/",
        dest=f"s3://{bucket}/d/",
        source_aws_conn_id="kill_src",
        dest_aws_conn_id="kill_src",
        copy_cutoff=5 * MIB,
        delete=True,
    )
    assert tree_differences(bucket_tree(moto, bucket, "d/"), expected) == NO_DIFFERENCES, (
        f"multipart uploads left by the kill: {left}"
    )


def big_writes_in_flight(proxy: FaultProxy, server: S3Server, bucket: str, prefix: str) -> bool:
    """Whether a PutObject of a big object has reached the proxy for an object not yet written."""
    sizes = [int(headers.get("content-length", 0)) for headers in proxy.headers_of("PutObject")]
    sent = sum(size > 8 * MIB for size in sizes)
    listed = server.client().list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return sent > sum(item["Size"] > 8 * MIB for item in listed)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("source_in_parts", [False, True], ids=["one-put", "in-parts"])
def test_a_killed_streamed_copy_leaves_no_partial_object_and_the_rerun_converges(
    moto: S3Server,
    rclone: S3Server,
    slow_moto: FaultProxy,
    slow_rclone: FaultProxy,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    source_in_parts: bool,
) -> None:
    """A source object whose MD5 is known streams as one PutObject (killed mid-body); one
    uploaded in parts (its ETag is no MD5) streams as a multipart upload (killed mid-upload)."""
    expected = {name: content(name, size) for name, size in FILES.items()}
    source_bucket, bucket = new_bucket(moto), new_bucket(rclone)
    if source_in_parts:
        client, parts = moto.client(), TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)
        for name, data in expected.items():
            client.upload_fileobj(io.BytesIO(data), source_bucket, "s/" + name, Config=parts)
    else:
        fill_bucket(moto, source_bucket, "s/", expected)

    def evidence() -> bool:
        if not bucket_keys(rclone, bucket, "d/"):
            return False
        if source_in_parts:
            return bool(multipart_uploads(rclone, bucket))
        return big_writes_in_flight(slow_rclone, rclone, bucket, "d/")

    output = kill_mid_run(
        tmp_path,
        {
            "kill_src": connection_json_via(moto, slow_moto.endpoint_url),
            "kill_dst": connection_json_via(rclone, slow_rclone.endpoint_url),
        },
        evidence,
        source=f"s3://{source_bucket}/s/",
        dest=f"s3://{bucket}/d/",
        source_aws_conn_id="kill_src",
        dest_aws_conn_id="kill_dst",
    )
    assert "objects stream through this worker" in output
    left = assert_s3_dest_after_kill(rclone, bucket, "d/", expected)

    use_connection(monkeypatch, "kill_src", moto.connection_json())
    use_connection(monkeypatch, "kill_dst", rclone.connection_json())
    rerun(
        source=f"s3://{source_bucket}/s/",
        dest=f"s3://{bucket}/d/",
        source_aws_conn_id="kill_src",
        dest_aws_conn_id="kill_dst",
        delete=True,
    )
    assert tree_differences(bucket_tree(rclone, bucket, "d/"), expected) == NO_DIFFERENCES, (
        f"multipart uploads left by the kill: {left}"
    )


@pytest.mark.timeout(300)
@pytest.mark.parametrize("delete", [False, True], ids=["rerun", "rerun-with-delete"])
def test_a_killed_download_leaves_no_partial_file_and_the_rerun_removes_its_temporary_files(
    moto: S3Server, slow_moto: FaultProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, delete: bool
) -> None:
    expected = {name: content(name, size) for name, size in FILES.items()}
    source_bucket = new_bucket(moto)
    fill_bucket(moto, source_bucket, "s/", expected)
    target = tmp_path / "download"

    def evidence() -> bool:  # files in place, and a download's temporary file being written
        return target.is_dir() and bool(final_files(target)) and any(p.stat().st_size > 0 for p in temp_files(target))

    kill_mid_run(
        tmp_path,
        {"kill_src": connection_json_via(moto, slow_moto.endpoint_url)},
        evidence,
        source=f"s3://{source_bucket}/s/",
        dest=str(target),
        source_aws_conn_id="kill_src",
    )
    # Every file under a final name is whole; what was in flight is in temporary files only.
    leftovers = temp_files(target)
    assert leftovers, "the kill left no temporary file: it did not land mid-download"
    assert all(path.name.startswith(".") and path.name.endswith(".s3sync") for path in leftovers)
    landed = local_tree(target, skip=(".",))
    assert 0 < len(landed) < len(expected), sorted(landed)
    assert [name for name, data in landed.items() if expected[name] != data] == []
    use_connection(monkeypatch, "kill_src", moto.connection_json())

    # The directory as a source: the temporary files are no data, never uploaded (and left alone).
    elsewhere = new_bucket(moto)
    summary = rerun(source=str(target), dest=f"s3://{elsewhere}/", dest_aws_conn_id="kill_src")
    assert sorted(bucket_keys(moto, elsewhere, "")) == sorted(landed) and summary["uploaded"] == len(landed)
    assert temp_files(target) == leftovers

    # A dry run changes nothing, temporary files included; it plans the missing files only.
    summary = rerun(source=f"s3://{source_bucket}/s/", dest=str(target), source_aws_conn_id="kill_src", dryrun=True)
    assert summary["downloaded"] == len(expected) - len(landed) and summary["deleted"] == 0
    assert temp_files(target) == leftovers

    # The rerun removes them (they are never "deleted" items) and converges.
    summary = rerun(source=f"s3://{source_bucket}/s/", dest=str(target), source_aws_conn_id="kill_src", delete=delete)
    assert temp_files(target) == []
    assert summary["deleted"] == 0 and summary["downloaded"] == len(expected) - len(landed)
    assert tree_differences(local_tree(target), expected) == NO_DIFFERENCES
