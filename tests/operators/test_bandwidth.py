"""max_bandwidth over real servers: an 8 MiB upload, download and stream between endpoints at
2 MiB/s take at least 3.5 s each; 16 files of 512 KiB on 16 workers share the tokens (as long
as one 8 MiB file); a connection's cap applies too, the lower of the two. Only lower bounds:
no test asserts how fast an uncapped transfer is."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from airflow_s3sync import S3SyncOperator
from airflow_s3sync.errors import S3SyncError
from tests.conftest import new_bucket
from tests.support import S3Server, use_connection

MIB = 1024 * 1024
#: 8 MiB at 2 MiB/s is 4 s; the bucket may start a quarter second's burst ahead.
LOWER_BOUND = 3.5


def timed_sync(**kwargs: object) -> tuple[float, dict]:
    started = time.monotonic()
    result = S3SyncOperator(task_id="sync", **kwargs).execute({})
    return time.monotonic() - started, result


@pytest.fixture
def endpoints(moto: S3Server, rclone: S3Server, monkeypatch: pytest.MonkeyPatch) -> tuple[S3Server, S3Server]:
    use_connection(monkeypatch, "s3_moto", moto.connection_json())
    use_connection(monkeypatch, "s3_rclone", rclone.connection_json())
    return moto, rclone


def test_upload_download_and_stream_of_8_mib_at_2_mib_per_second(endpoints, tmp_path: Path, logs) -> None:
    moto, rclone = endpoints
    src_dir = tmp_path / "src"
    src_dir.mkdir()
    (src_dir / "big.bin").write_bytes(data := os.urandom(8 * MIB))
    bucket, other = new_bucket(moto), new_bucket(rclone)
    conns = {"source_aws_conn_id": "s3_moto", "dest_aws_conn_id": "s3_moto"}

    upload, result = timed_sync(source=str(src_dir), dest=f"s3://{bucket}/up/", max_bandwidth="2MiB", **conns)
    assert result["uploaded"] == 1 and upload >= LOWER_BOUND, upload
    assert any("bandwidth capped at 2.0 MiB/s" in line for line in logs.at("info"))

    download, result = timed_sync(
        source=f"s3://{bucket}/up/", dest=str(tmp_path / "down"), max_bandwidth=2 * MIB, **conns
    )
    assert result["downloaded"] == 1 and download >= LOWER_BOUND, download
    assert (tmp_path / "down" / "big.bin").read_bytes() == data

    stream, result = timed_sync(
        source=f"s3://{bucket}/up/",
        dest=f"s3://{other}/copy/",
        source_aws_conn_id="s3_moto",
        dest_aws_conn_id="s3_rclone",
        max_bandwidth="2M",
    )
    assert result["copied"] == 1 and stream >= LOWER_BOUND, stream
    assert rclone.client().get_object(Bucket=other, Key="copy/big.bin")["Body"].read() == data
    print(f"capped at 2 MiB/s: upload {upload:.2f} s, download {download:.2f} s, stream {stream:.2f} s")


def test_all_workers_and_clients_share_the_tokens(endpoints, tmp_path: Path) -> None:
    """16 objects of 512 KiB on 16 workers, 8 MiB in all, each moved whole by the fast clients
    (obstore's uploads and downloads, the CRT client's streams): as long as one 8 MiB file."""
    moto, rclone = endpoints
    src_dir = tmp_path / "src"
    src_dir.mkdir()
    for i in range(16):
        (src_dir / f"part-{i:02d}.bin").write_bytes(os.urandom(512 * 1024))
    bucket, other = new_bucket(moto), new_bucket(rclone)
    common = {"max_bandwidth": "2MiB", "max_concurrency": 16, "source_aws_conn_id": "s3_moto"}
    seconds = {}
    seconds["upload"], result = timed_sync(
        source=str(src_dir), dest=f"s3://{bucket}/p/", dest_aws_conn_id="s3_moto", **common
    )
    assert result["uploaded"] == 16
    seconds["download"], result = timed_sync(source=f"s3://{bucket}/p/", dest=str(tmp_path / "down"), **common)
    assert result["downloaded"] == 16
    seconds["stream"], result = timed_sync(
        source=f"s3://{bucket}/p/", dest=f"s3://{other}/p/", dest_aws_conn_id="s3_rclone", **common
    )
    assert result["copied"] == 16
    assert min(seconds.values()) >= LOWER_BOUND, seconds


def test_the_connections_cap_applies_and_the_lower_wins(
    moto: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, logs
) -> None:
    use_connection(monkeypatch, "capped", moto.connection_json(max_bandwidth="2MiB"))
    src_dir = tmp_path / "src"
    src_dir.mkdir()
    (src_dir / "big.bin").write_bytes(os.urandom(8 * MIB))
    bucket = new_bucket(moto)
    seconds, result = timed_sync(
        source=str(src_dir), dest=f"s3://{bucket}/p/", dest_aws_conn_id="capped", max_bandwidth="64MiB"
    )
    assert result["uploaded"] == 1 and seconds >= LOWER_BOUND, seconds
    assert any("bandwidth capped at 2.0 MiB/s" in line for line in logs.at("info"))


def test_a_bad_cap_is_refused_before_any_request(moto: S3Server, tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(S3SyncError, match="max_bandwidth '10 parsecs' is no rate"):
        S3SyncOperator(task_id="sync", source=str(tmp_path), dest="s3://b/p/", max_bandwidth="10 parsecs")
    use_connection(monkeypatch, "badcap", moto.connection_json(max_bandwidth="lots"))
    operator = S3SyncOperator(
        task_id="sync", source=str(tmp_path), dest="s3://no-such-bucket/p/", dest_aws_conn_id="badcap"
    )
    with pytest.raises(S3SyncError, match="connection 'badcap': extra 'max_bandwidth'"):
        operator.execute({})
