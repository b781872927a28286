"""abort_incomplete_uploads_after: stale multipart uploads under the destination are aborted first.

rclone's S3 server reports when each upload was initiated, so old and fresh uploads meet in one
run there. moto reports every upload as initiated on 2010-11-10: there an upload is old or fresh
by the limit given.
"""

from __future__ import annotations

import time
from datetime import timedelta

from airflow_s3sync import S3SyncOperator
from tests.conftest import new_bucket, write
from tests.support import use_connection


def uploads(client, bucket: str) -> list[str]:
    return sorted(u["Key"] for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []))


def test_old_uploads_are_aborted_fresh_ones_left_and_a_dry_run_aborts_nothing(rclone, monkeypatch, tmp_path, logs):
    use_connection(monkeypatch, "aws_default", rclone.connection_json())
    client = rclone.client()
    bucket = new_bucket(rclone)
    for key in ("data/old-1", "data/sub/old-2", "elsewhere/old-3"):
        client.create_multipart_upload(Bucket=bucket, Key=key)
    time.sleep(2.5)
    client.create_multipart_upload(Bucket=bucket, Key="data/fresh")
    write(tmp_path / "a.txt")
    args = {
        "source": str(tmp_path),
        "dest": f"s3://{bucket}/data/",
        "abort_incomplete_uploads_after": timedelta(seconds=2),
    }

    dry = S3SyncOperator(task_id="s", dryrun=True, **args).execute({})
    assert dry["aborted_uploads"] == 2 and dry["uploaded"] == 1
    assert uploads(client, bucket) == ["data/fresh", "data/old-1", "data/sub/old-2", "elsewhere/old-3"]
    assert sorted(line.split(" (upload")[0] for line in logs.at("info") if "abort-upload" in line) == [
        f"(dryrun) abort-upload: s3://{bucket}/data/old-1",
        f"(dryrun) abort-upload: s3://{bucket}/data/sub/old-2",
    ]

    summary = S3SyncOperator(task_id="s", **args).execute({})
    assert summary["aborted_uploads"] == 2 and summary["uploaded"] == 1
    # Outside the prefix and younger than the limit: left alone.
    assert uploads(client, bucket) == ["data/fresh", "elsewhere/old-3"]
    assert S3SyncOperator(task_id="s", **args).execute({})["aborted_uploads"] == 0


def test_off_by_default_and_limited_to_the_key_range(moto_default, tmp_path):
    client = moto_default.client()
    bucket = new_bucket(moto_default)
    for key in ("a", "z"):
        client.create_multipart_upload(Bucket=bucket, Key=key)
    time.sleep(1.5)
    write(tmp_path / "a.txt")
    assert S3SyncOperator(task_id="s", source=str(tmp_path), dest=f"s3://{bucket}").execute({})["aborted_uploads"] == 0
    summary = S3SyncOperator(
        task_id="s",
        source=str(tmp_path),
        dest=f"s3://{bucket}",
        key_range=["m", None],
        abort_incomplete_uploads_after=timedelta(seconds=1),
    ).execute({})
    assert summary["aborted_uploads"] == 1
    assert uploads(client, bucket) == ["a"]


def test_on_moto_an_old_upload_is_aborted_and_a_fresh_one_left(moto_default, tmp_path):
    client = moto_default.client()
    bucket = new_bucket(moto_default)
    client.create_multipart_upload(Bucket=bucket, Key="data/x")  # "initiated 2010-11-10" on moto
    client.create_multipart_upload(Bucket=bucket, Key="other/y")
    write(tmp_path / "a.txt")

    def sync(after: timedelta, **kwargs) -> dict:
        return S3SyncOperator(
            task_id="s",
            source=str(tmp_path),
            dest=f"s3://{bucket}/data",
            abort_incomplete_uploads_after=after,
            **kwargs,
        ).execute({})

    assert sync(timedelta(days=365 * 100))["aborted_uploads"] == 0  # younger than a century: fresh
    assert sync(timedelta(days=1), dryrun=True)["aborted_uploads"] == 1
    assert uploads(client, bucket) == ["data/x", "other/y"]
    assert sync(timedelta(days=1))["aborted_uploads"] == 1
    assert uploads(client, bucket) == ["other/y"]
