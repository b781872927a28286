"""``keys=`` against real servers: keys named by the S3 event notifications moto's S3 sends to
its own SQS (created, overwritten, deleted; a key with a space, one with non-ASCII characters),
synced without listing — a recording proxy sees no ListObjectsV2 but the one-key preflights."""

from __future__ import annotations

import json

import pytest

from airflow_s3sync import ObjectLockRetentionOperator, S3SyncOperator
from tests.conftest import new_bucket
from tests.operators.test_object_lock import in_days, lock_bucket, lock_of, put
from tests.support import S3Server, bucket_tree, notifications_to_a_queue, recorded, use_connection


def test_keys_from_real_s3_events_sync_exactly_those_keys_without_listing(
    moto: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, dest = new_bucket(moto), new_bucket(moto)
    client = moto.client()
    for key in ("data/old.txt", "data/plain.txt", "data/untouched.txt"):
        client.put_object(Bucket=source, Key=key, Body=f"first {key}".encode())
    use_connection(monkeypatch, "plain", moto.connection_json())
    S3SyncOperator(task_id="full", source=f"s3://{source}/data/", dest=f"s3://{dest}/", source_aws_conn_id="plain",
                   dest_aws_conn_id="plain").execute({})  # fmt: skip
    client.put_object(Bucket=dest, Key="not-named.txt", Body=b"left alone: no event names it")
    _, drain = notifications_to_a_queue(moto, source)
    drain()  # the s3:TestEvent of the configuration

    client.put_object(Bucket=source, Key="data/a b.txt", Body=b"a key with a space")
    client.put_object(Bucket=source, Key="data/café/naïve.txt", Body=b"non-ASCII")
    client.put_object(Bucket=source, Key="data/plain.txt", Body=b"overwritten, longer than before")
    client.delete_object(Bucket=source, Key="data/old.txt")
    client.put_object(Bucket=source, Key="elsewhere/x", Body=b"outside the source location")
    events = drain()
    assert len(events) == 5

    with recorded(moto, monkeypatch, "events") as proxy:
        summary = S3SyncOperator(
            task_id="events", source=f"s3://{source}/data/", dest=f"s3://{dest}/", source_aws_conn_id="events",
            dest_aws_conn_id="events", delete=True, keys=events,
        ).execute({})  # fmt: skip

    assert (summary["copied"], summary["deleted"], summary["failed"]) == (3, 1, 0)
    source_tree = bucket_tree(moto, source, "data/")
    assert bucket_tree(moto, dest) == {**source_tree, "not-named.txt": b"left alone: no event names it"}
    assert proxy.operations("ListObjectsV2") == ["ListObjectsV2", "ListObjectsV2"]  # the preflights
    per_key = len(proxy.operations("HeadObject")) / 4
    assert per_key <= 2, proxy.operations()  # one lookup a side and key


def test_retention_takes_the_keys_of_s3_events(moto: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    source, dest = lock_bucket(moto), lock_bucket(moto)
    client = moto.client()
    _, drain = notifications_to_a_queue(moto, source)
    drain()
    for key in ("k1", "k 2"):
        put(client, dest, key)
    for key in ("k1", "k 2"):
        put(client, source, key, mode="GOVERNANCE", until=in_days(20))
    events = drain()
    use_connection(monkeypatch, "aws_default", moto.connection_json())

    summary = ObjectLockRetentionOperator(
        task_id="retention", source=f"s3://{source}", dest=f"s3://{dest}", keys=[json.loads(body) for body in events]
    ).execute({})

    assert (summary["objects"], summary["applied"]) == (2, 2)
    assert lock_of(client, dest, "k 2") == lock_of(client, source, "k 2")
