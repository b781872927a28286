"""S3 -> S3 copies keep the source's properties, in one request or in parts, unless told otherwise."""

import base64
import hashlib
import json
import os

from airflow_s3sync import S3SyncOperator
from tests.conftest import new_bucket
from tests.support import use_connection

PART = 5 * 1024 * 1024


def small_parts(moto, monkeypatch):
    conn = json.loads(moto.connection_json())
    conn["extra"]["service_config"] = {
        "s3": {"transfer_config_args": {"multipart_threshold": PART, "multipart_chunksize": PART}}
    }
    use_connection(monkeypatch, "aws_default", json.dumps(conn))


def test_copies_keep_content_type_and_metadata_single_and_multipart(moto, monkeypatch):
    small_parts(moto, monkeypatch)
    src, dst = new_bucket(moto), new_bucket(moto)
    client = moto.client()
    data = {"small.csv": os.urandom(100), "large.csv": os.urandom(PART + 1)}
    for key, body in data.items():
        client.put_object(
            Bucket=src,
            Key=key,
            Body=body,
            ContentType="text/csv",
            CacheControl="max-age=60",
            Metadata={"owner": "team-a"},
        )

    summary = S3SyncOperator(task_id="copy", source=f"s3://{src}", dest=f"s3://{dst}", copy_cutoff=PART).execute({})

    assert summary["copied"] == 2
    # The copy in parts also records the content's MD5 (its ETag is none): md5chksum, as rclone.
    md5 = base64.b64encode(hashlib.md5(data["large.csv"], usedforsecurity=False).digest()).decode()
    metadata = {"small.csv": {"owner": "team-a"}, "large.csv": {"owner": "team-a", "md5chksum": md5}}
    for key in ("small.csv", "large.csv"):
        head = client.head_object(Bucket=dst, Key=key)
        assert (head["ContentType"], head.get("CacheControl"), head["Metadata"]) == (
            "text/csv",
            "max-age=60",
            metadata[key],
        ), key
    assert client.head_object(Bucket=dst, Key="large.csv")["ETag"].endswith('-2"')


def test_metadata_given_for_copies_replaces_the_sources(moto_default):
    src, dst = new_bucket(moto_default), new_bucket(moto_default)
    client = moto_default.client()
    client.put_object(Bucket=src, Key="k", Body=b"x", Metadata={"owner": "team-a"})

    S3SyncOperator(
        task_id="copy", source=f"s3://{src}", dest=f"s3://{dst}", extra_args={"Metadata": {"replica": "yes"}}
    ).execute({})

    assert client.head_object(Bucket=dst, Key="k")["Metadata"] == {"replica": "yes"}


def test_tags_given_for_copies_replace_the_sources(moto_default):
    src, dst = new_bucket(moto_default), new_bucket(moto_default)
    client = moto_default.client()
    client.put_object(Bucket=src, Key="k", Body=b"x", Tagging="owner=team-a")

    S3SyncOperator(
        task_id="copy", source=f"s3://{src}", dest=f"s3://{dst}", extra_args={"Tagging": "replica=yes"}
    ).execute({})

    assert client.get_object_tagging(Bucket=dst, Key="k")["TagSet"] == [{"Key": "replica", "Value": "yes"}]
