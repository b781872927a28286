"""The examples of the `aws s3 sync` documentation, with their exact output lines, on moto and rclone."""

from __future__ import annotations

import os

from airflow_s3sync import S3SyncOperator
from tests.conftest import new_bucket, write
from tests.support import use_connection


def sync(**kwargs):
    return S3SyncOperator(task_id="sync", **kwargs).execute({})


def keys(server, bucket: str) -> list[str]:
    response = server.client().list_objects_v2(Bucket=bucket)
    return sorted(obj["Key"] for obj in response.get("Contents", []))


def put(server, bucket: str, *names: str) -> None:
    client = server.client()
    for name in names:
        client.put_object(Bucket=bucket, Key=name, Body=f"content of {name}".encode())


def test_local_directory_to_empty_bucket(aws_default, tmp_path, monkeypatch, logs):
    bucket = new_bucket(aws_default)
    write(tmp_path / "test.txt")
    write(tmp_path / "test2.txt")
    monkeypatch.chdir(tmp_path)

    summary = sync(source=".", dest=f"s3://{bucket}")

    assert sorted(logs.actions()) == [
        f"upload: ./test.txt to s3://{bucket}/test.txt",
        f"upload: ./test2.txt to s3://{bucket}/test2.txt",
    ]
    assert keys(aws_default, bucket) == ["test.txt", "test2.txt"]
    assert summary["uploaded"] == 2 and summary["bytes_transferred"] == 2 and summary["dryrun"] is False
    logs.clear()
    assert sync(source=".", dest=f"s3://{bucket}")["skipped"] == 2
    assert logs.actions() == []


def test_bucket_to_bucket(aws_default, logs):
    src, dst = new_bucket(aws_default), new_bucket(aws_default)
    put(aws_default, src, "test.txt", "test2.txt")

    summary = sync(source=f"s3://{src}", dest=f"s3://{dst}")

    assert sorted(logs.actions()) == [
        f"copy: s3://{src}/test.txt to s3://{dst}/test.txt",
        f"copy: s3://{src}/test2.txt to s3://{dst}/test2.txt",
    ]
    assert summary["copied"] == 2
    assert aws_default.client().get_object(Bucket=dst, Key="test2.txt")["Body"].read() == b"content of test2.txt"


def test_bucket_to_local_directory_sets_mtime(aws_default, tmp_path, monkeypatch, logs):
    bucket = new_bucket(aws_default)
    put(aws_default, bucket, "test.txt", "test2.txt")
    monkeypatch.chdir(tmp_path)

    summary = sync(source=f"s3://{bucket}", dest=".")

    assert sorted(logs.actions()) == [
        f"download: s3://{bucket}/test.txt to ./test.txt",
        f"download: s3://{bucket}/test2.txt to ./test2.txt",
    ]
    assert summary["downloaded"] == 2
    # The object's time as listed (rclone's has milliseconds, moto's whole seconds), exactly.
    listed = aws_default.client().list_objects_v2(Bucket=bucket, Prefix="test.txt")["Contents"][0]["LastModified"]
    expected_ns = int(listed.replace(microsecond=0).timestamp()) * 10**9 + listed.microsecond * 1000
    assert os.stat(tmp_path / "test.txt").st_mtime_ns == expected_ns
    assert (tmp_path / "test2.txt").read_text() == "content of test2.txt"
    assert sorted(os.listdir(tmp_path)) == ["test.txt", "test2.txt"]  # no temporary files left
    logs.clear()
    assert sync(source=f"s3://{bucket}", dest=".")["skipped"] == 2


def test_delete_removes_objects_missing_locally(aws_default, tmp_path, logs):
    bucket = new_bucket(aws_default)
    write(tmp_path / "test.txt")
    write(tmp_path / "test2.txt")
    sync(source=str(tmp_path), dest=f"s3://{bucket}")
    put(aws_default, bucket, "test3.txt")
    logs.clear()

    summary = sync(source=str(tmp_path), dest=f"s3://{bucket}", delete=True)

    assert logs.actions() == [f"delete: s3://{bucket}/test3.txt"]
    assert summary["deleted"] == 1
    assert keys(aws_default, bucket) == ["test.txt", "test2.txt"]


def test_exclude_on_upload_to_prefix(aws_default, tmp_path, monkeypatch, logs):
    bucket = new_bucket(aws_default)
    write(tmp_path / "test.jpg")
    write(tmp_path / "test2.txt")
    monkeypatch.chdir(tmp_path)

    sync(source=".", dest=f"s3://{bucket}/path", exclude=["*.jpg"])

    assert logs.actions() == [f"upload: ./test2.txt to s3://{bucket}/path/test2.txt"]
    assert keys(aws_default, bucket) == ["path/test2.txt"]


def test_exclude_directory_on_download(aws_default, tmp_path, monkeypatch, logs):
    bucket = new_bucket(aws_default)
    put(aws_default, bucket, "test1.txt", "another/test5.txt", "deep/another/test6.txt")
    monkeypatch.chdir(tmp_path)

    sync(source=f"s3://{bucket}/", dest=".", exclude=["*another/*"])

    assert logs.actions() == [f"download: s3://{bucket}/test1.txt to ./test1.txt"]
    assert sorted(os.listdir(tmp_path)) == ["test1.txt"]


def test_source_region_and_region(moto, monkeypatch, logs):
    """--source-region / --region: each side's requests are signed for its own region, whatever
    the connection says (here eu-central-1); the copy itself crosses regions server-side."""
    use_connection(monkeypatch, "aws_default", moto.connection_json(region="eu-central-1"))
    src = new_bucket(moto, region="us-west-2")
    dst = new_bucket(moto, region="us-east-1")
    moto.client("us-west-2").put_object(Bucket=src, Key="test.txt", Body=b"west")
    op = S3SyncOperator(
        task_id="sync",
        source=f"s3://{src}",
        dest=f"s3://{dst}",
        source_region_name="us-west-2",
        dest_region_name="us-east-1",
    )
    scopes: dict[str, set[str]] = {"source": set(), "dest": set()}
    for side, hook in (("source", op.source_hook), ("dest", op.dest_hook)):
        hook.conn.meta.events.register(
            "before-send.s3",
            lambda request, side=side, **_: scopes[side].add(request.headers["Authorization"].decode().split("/")[2]),
        )

    op.execute({})

    assert logs.actions() == [f"copy: s3://{src}/test.txt to s3://{dst}/test.txt"]
    assert scopes == {"source": {"us-west-2"}, "dest": {"us-east-1"}}
    assert moto.client().get_bucket_location(Bucket=src)["LocationConstraint"] == "us-west-2"
    assert moto.client().get_object(Bucket=dst, Key="test.txt")["Body"].read() == b"west"
