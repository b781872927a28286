"""checksum=True: same-size items are decided by content, not by time (real servers over HTTP).

Each scenario is built so that the time rule of ``aws s3 sync`` gets it wrong: identical content
with times that would transfer it, and different content with times that would not. A dry run
in the default mode shows that first; then ``checksum=True`` decides by content.
"""

from __future__ import annotations

import json
import os
import time

import pytest
from boto3.s3.transfer import TransferConfig

from airflow_s3sync import S3SyncOperator
from tests.conftest import new_bucket, write
from tests.support import S3Server, use_connection

MIB = 1024 * 1024


def sync(**kwargs) -> dict:
    return S3SyncOperator(task_id="sync", **kwargs).execute({})


def planned(logs, **kwargs) -> list[str]:
    """The lines a default-mode dry run prints: what the time rule would do."""
    logs.clear()
    sync(dryrun=True, **kwargs)
    lines = logs.actions()
    logs.clear()
    return lines


def test_upload_by_content(aws_default: S3Server, tmp_path, logs):
    bucket = new_bucket(aws_default)
    client = aws_default.client()
    client.put_object(Bucket=bucket, Key="same.txt", Body=b"hello")
    client.put_object(Bucket=bucket, Key="differs.txt", Body=b"xxxxx")
    write(tmp_path / "same.txt", "hello", age=-3600)  # newer than the object: the time rule uploads
    write(tmp_path / "differs.txt", "world", age=3600)  # older: the time rule skips
    args = {"source": str(tmp_path), "dest": f"s3://{bucket}"}
    assert planned(logs, **args) == [f"(dryrun) upload: {tmp_path}/same.txt to s3://{bucket}/same.txt"]

    summary = sync(checksum=True, **args)

    assert logs.actions() == [f"upload: {tmp_path}/differs.txt to s3://{bucket}/differs.txt"]
    assert (summary["uploaded"], summary["skipped"], summary["warnings"]) == (1, 1, 0)
    assert client.get_object(Bucket=bucket, Key="differs.txt")["Body"].read() == b"world"


def test_download_by_content(aws_default: S3Server, tmp_path, logs):
    bucket = new_bucket(aws_default)
    client = aws_default.client()
    client.put_object(Bucket=bucket, Key="same.txt", Body=b"hello")
    client.put_object(Bucket=bucket, Key="differs.txt", Body=b"xxxxx")
    write(tmp_path / "same.txt", "hello", age=-3600)  # local newer: the AWS CLI's rule downloads
    write(tmp_path / "differs.txt", "world", age=3600)  # local older: it skips
    args = {"source": f"s3://{bucket}", "dest": str(tmp_path)}
    assert planned(logs, **args) == [f"(dryrun) download: s3://{bucket}/same.txt to {tmp_path}/same.txt"]

    summary = sync(checksum=True, **args)

    assert logs.actions() == [f"download: s3://{bucket}/differs.txt to {tmp_path}/differs.txt"]
    assert (summary["downloaded"], summary["skipped"]) == (1, 1)
    assert (tmp_path / "differs.txt").read_text() == "xxxxx"
    assert (tmp_path / "same.txt").read_text() == "hello"


def test_copy_by_content(moto_default: S3Server, logs):
    src, dst = new_bucket(moto_default), new_bucket(moto_default)
    client = moto_default.client()
    client.put_object(Bucket=src, Key="differs.txt", Body=b"xxxxx")
    client.put_object(Bucket=dst, Key="same.txt", Body=b"hello")
    time.sleep(1.1)  # listings have one-second times
    client.put_object(Bucket=dst, Key="differs.txt", Body=b"world")  # newer: the time rule skips
    client.put_object(Bucket=src, Key="same.txt", Body=b"hello")  # newer: the time rule copies
    args = {"source": f"s3://{src}", "dest": f"s3://{dst}"}
    assert planned(logs, **args) == [f"(dryrun) copy: s3://{src}/same.txt to s3://{dst}/same.txt"]

    summary = sync(checksum=True, **args)

    assert logs.actions() == [f"copy: s3://{src}/differs.txt to s3://{dst}/differs.txt"]
    assert (summary["copied"], summary["skipped"]) == (1, 1)
    assert client.get_object(Bucket=dst, Key="differs.txt")["Body"].read() == b"xxxxx"


def test_a_dry_run_compares_content_and_changes_nothing(moto_default, tmp_path, logs):
    bucket = new_bucket(moto_default)
    moto_default.client().put_object(Bucket=bucket, Key="differs.txt", Body=b"xxxxx")
    write(tmp_path / "differs.txt", "world", age=3600)
    summary = sync(source=str(tmp_path), dest=f"s3://{bucket}", checksum=True, dryrun=True)
    assert logs.actions() == [f"(dryrun) upload: {tmp_path}/differs.txt to s3://{bucket}/differs.txt"]
    assert (summary["uploaded"], summary["dryrun"]) == (1, True)
    assert moto_default.client().get_object(Bucket=bucket, Key="differs.txt")["Body"].read() == b"xxxxx"


@pytest.mark.parametrize("same", [True, False], ids=["same", "different"])
def test_multipart_etags_are_recomputed_for_local_files(server, monkeypatch, tmp_path, logs, same):
    """Against a multipart object the local file's parts are hashed at the object's part size
    (moto: a multipart ETag and HeadObject PartNumber=1; rclone: an MD5 ETag)."""
    conn = json.loads(server.connection_json())
    conn["extra"]["service_config"] = {"s3": {"transfer_config_args": {"multipart_threshold": 5 * MIB}}}
    use_connection(monkeypatch, "aws_default", json.dumps(conn))
    bucket = new_bucket(server)
    data = os.urandom(11 * MIB)
    local = tmp_path / "src" / "big.bin"
    local.parent.mkdir()
    local.write_bytes(data)
    sync(source=str(local.parent), dest=f"s3://{bucket}")  # uploaded in parts
    changed = data if same else data[:-1] + bytes([data[-1] ^ 1])
    local.write_bytes(changed)
    when = time.time() + (3600 if same else -3600)  # same: newer (time rule uploads); different: older
    os.utime(local, (when, when))
    logs.clear()

    summary = sync(source=str(local.parent), dest=f"s3://{bucket}", checksum=True)

    assert (summary["uploaded"], summary["warnings"]) == (0 if same else 1, 0)
    assert server.client().get_object(Bucket=bucket, Key="big.bin")["Body"].read() == changed


def a_six_mib_object(moto, monkeypatch):
    """Two buckets, a 6 MiB object written in one request into the second, and a connection
    that copies from 5 MiB on in parts: (first bucket, second bucket, client)."""
    conn = json.loads(moto.connection_json())
    conn["extra"]["service_config"] = {"s3": {"transfer_config_args": {"multipart_threshold": 5 * MIB}}}
    use_connection(monkeypatch, "aws_default", json.dumps(conn))
    src, dst = new_bucket(moto), new_bucket(moto)
    client = moto.client()
    client.put_object(Bucket=dst, Key="k", Body=os.urandom(6 * MIB))
    return src, dst, client


def test_without_a_comparable_checksum_size_decides_with_a_warning(moto, monkeypatch, logs):
    """A single-part source and a multipart copy of it: no checksum both have."""
    src, dst, client = a_six_mib_object(moto, monkeypatch)
    # A multipart copy of the same bytes by another tool: no MD5 recorded in its metadata.
    client.copy(
        {"Bucket": dst, "Key": "k"},
        src,
        "k",
        Config=TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB),
    )
    assert client.head_object(Bucket=src, Key="k")["ETag"].endswith('-2"')
    logs.clear()

    summary = sync(source=f"s3://{src}", dest=f"s3://{dst}", checksum=True)

    assert (summary["copied"], summary["skipped"], summary["warnings"]) == (0, 1, 1)
    [warning] = [line for line in logs.at("warning") if line.startswith("warning: ")]
    assert warning.startswith(f"warning: compared s3://{src}/k to s3://{dst}/k by size only (weak): ")


def test_a_multipart_copy_of_ours_records_its_md5_so_content_decides(moto, monkeypatch, logs):
    """The same pair, the multipart copy made by the operator: it records the source's MD5 in its
    metadata (md5chksum), which decides where the ETags cannot."""
    src, dst, client = a_six_mib_object(moto, monkeypatch)
    sync(source=f"s3://{dst}", dest=f"s3://{src}", copy_cutoff=0)
    assert client.head_object(Bucket=src, Key="k")["ETag"].endswith('-1"')  # in parts: no MD5
    logs.clear()

    summary = sync(source=f"s3://{src}", dest=f"s3://{dst}", checksum=True)

    assert (summary["copied"], summary["skipped"], summary["warnings"]) == (0, 1, 0)
    assert not [line for line in logs.at("warning") if line.startswith("warning: ")]
