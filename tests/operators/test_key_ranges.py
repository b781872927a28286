"""Sharding by key range, against a real S3 server (moto): N ranged runs equal one full run."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest
from botocore.exceptions import EndpointConnectionError

from airflow_s3sync import ObjectLockRetentionOperator, S3KeyRangesOperator, S3SyncOperator
from airflow_s3sync.errors import S3SyncError
from airflow_s3sync.hooks.botocore_backend import BotocoreBackend
from airflow_s3sync.plan.key_range import KeyRange
from tests.conftest import new_bucket, write
from tests.operators.test_object_lock import in_days, lock_bucket, lock_of, put, set_dest

#: Keys that differ only after a "/", and their neighbours in byte order ("a-b" < "a.b" < "a/b" < "a0").
KEYS = ["a-b", "a.b", "a/b", "a/b0", "a/c", "a0", "b/x/y", "m", "m0/n", "z", "é/1", "日本"]
#: Three shards; "a/b" and "m" are keys themselves, so a bound falling on a key is covered.
RANGES = [[None, "a/b"], ["a/b", "m"], ["m", None]]
COUNTS = ("uploaded", "copied", "downloaded", "deleted", "skipped", "failed", "bytes_transferred")


def sync(**kwargs) -> dict:
    return S3SyncOperator(task_id="sync", **kwargs).execute({})


def summed(summaries: list[dict]) -> dict[str, int]:
    return {name: sum(s[name] for s in summaries) for name in COUNTS}


def s3_state(client, bucket: str) -> dict[str, bytes]:
    listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


def local_state(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)).replace(os.sep, "/"): path.read_bytes()
        for path in root.rglob("*")
        if path.is_file()
    }


def fill_bucket(client, bucket: str, prefix: str, *, variant: str) -> None:
    """The source has every key; a destination has some same, some different, some extra."""
    for i, key in enumerate(KEYS):
        if variant == "source":
            client.put_object(Bucket=bucket, Key=prefix + key, Body=f"source {key}".encode())
        elif i % 3 == 0:
            client.put_object(Bucket=bucket, Key=prefix + key, Body=f"older content of {key}".encode())
    if variant == "dest":
        for key in ("a/d/old", "a.old", "n/extra", "zz", "é/2"):
            client.put_object(Bucket=bucket, Key=prefix + key, Body=b"extra")


def fill_dir(root: Path, *, variant: str) -> None:
    for i, key in enumerate(KEYS):
        if variant == "source":
            write(root / key, f"source {key}")
        elif i % 3 == 0:
            write(root / key, f"older content of {key}")
    if variant == "dest":
        for key in ("a/d/old", "a.old", "n/extra", "zz", "é/2"):
            write(root / key, "extra")


@pytest.mark.parametrize("direction", ["upload", "copy", "download"])
def test_three_ranged_syncs_with_delete_equal_one_full_sync(direction, moto_default, tmp_path):
    client = moto_default.client()

    def side(name: str, variant: str) -> tuple[str, callable]:
        if (direction == "upload" and variant == "source") or (direction == "download" and variant != "source"):
            root = tmp_path / name
            root.mkdir()
            fill_dir(root, variant=variant)
            return str(root), lambda: local_state(root)
        bucket = new_bucket(moto_default)
        fill_bucket(client, bucket, "data/", variant=variant)
        return f"s3://{bucket}/data/", lambda: {k[5:]: v for k, v in s3_state(client, bucket).items()}

    source, source_state = side("source", "source")
    full_dest, full_state = side("full", "dest")
    sharded_dest, sharded_state = side("sharded", "dest")
    assert full_state() == sharded_state() != source_state()

    full = sync(source=source, dest=full_dest, delete=True)
    shards = [sync(source=source, dest=sharded_dest, delete=True, key_range=r) for r in RANGES]

    assert full_state() == source_state()
    assert sharded_state() == full_state()
    assert summed(shards) == summed([full])
    assert full["deleted"] == 5 and full[{"upload": "uploaded", "copy": "copied", "download": "downloaded"}[direction]]
    assert [s["key_range"] for s in shards] == RANGES and full["key_range"] is None


def test_a_ranged_local_walk_does_not_read_directories_outside_the_range(moto_default, tmp_path):
    """A directory no key of the range can be in is not even read: a symlink loop out of the
    range gives no warning."""
    bucket = new_bucket(moto_default)
    write(tmp_path / "src" / "a" / "1.txt")
    write(tmp_path / "src" / "m" / "1.txt")
    write(tmp_path / "src" / "z" / "1.txt")
    (tmp_path / "src" / "z" / "loop").symlink_to(tmp_path / "src" / "z")
    moto_default.client().put_object(Bucket=bucket, Key="a/stale", Body=b"x")
    summary = sync(source=str(tmp_path / "src"), dest=f"s3://{bucket}", delete=True, key_range=[None, "m/zz"])
    assert summary["uploaded"] == 2 and summary["deleted"] == 1 and summary["warnings"] == 0
    assert sorted(s3_state(moto_default.client(), bucket)) == ["a/1.txt", "m/1.txt"]
    # The same walk over the whole tree does meet the loop.
    assert sync(source=str(tmp_path / "src"), dest=f"s3://{bucket}", dryrun=True)["warnings"] == 1


def test_a_failed_listing_in_one_shard_deletes_nothing_in_it(moto_default, monkeypatch):
    client = moto_default.client()
    source, dest = new_bucket(moto_default), new_bucket(moto_default)
    for key in ("a1", "a2", "m1", "m2"):
        client.put_object(Bucket=source, Key=key, Body=b"x")
    for key in ("a9", "m9", "n9"):
        client.put_object(Bucket=dest, Key=key, Body=b"x")
    real = BotocoreBackend.list_entries

    def failing(self, *, bucket, prefix, key_range=None):
        for n, entry in enumerate(real(self, bucket=bucket, prefix=prefix, key_range=key_range)):
            if bucket == source and key_range is not None and key_range.start_after == "m" and n == 1:
                raise EndpointConnectionError(endpoint_url="http://127.0.0.1/dropped")
            yield entry

    monkeypatch.setattr(BotocoreBackend, "list_entries", failing)
    first = sync(source=f"s3://{source}", dest=f"s3://{dest}", delete=True, key_range=[None, "m"])
    with pytest.raises(S3SyncError, match="a listing failed"):
        sync(source=f"s3://{source}", dest=f"s3://{dest}", delete=True, key_range=["m", None])
    assert first["deleted"] == 1  # a9, in the shard that listed fine
    assert sorted(s3_state(client, dest)) == ["a1", "a2", "m1", "m9", "n9"]


def test_max_delete_counts_one_shards_deletes(moto_default):
    client = moto_default.client()
    source, dest = new_bucket(moto_default), new_bucket(moto_default)
    client.put_object(Bucket=source, Key="keep", Body=b"x")
    for key in ("a1", "a2", "z1", "z2", "z3"):
        client.put_object(Bucket=dest, Key=key, Body=b"x")
    assert (
        sync(source=f"s3://{source}", dest=f"s3://{dest}", delete=True, max_delete=2, key_range=[None, "m"])["deleted"]
        == 2
    )
    with pytest.raises(S3SyncError, match="max_delete"):
        sync(source=f"s3://{source}", dest=f"s3://{dest}", delete=True, max_delete=2, key_range=["m", None])
    assert sorted(s3_state(client, dest)) == ["keep", "z1", "z2", "z3"]


def test_retention_over_three_ranges_equals_one_full_run(moto_default):
    client = moto_default.client()
    source = lock_bucket(moto_default)
    dests = [lock_bucket(moto_default), lock_bucket(moto_default)]
    for i, key in enumerate(KEYS):
        put(client, source, key, mode="GOVERNANCE" if i % 2 else "COMPLIANCE", until=in_days(10 + i), hold=i % 3 == 0)
        for dest in dests:
            put(client, dest, key)
            if i % 4 == 0:  # already matching
                set_dest(client, dest, key, mode="GOVERNANCE" if i % 2 else "COMPLIANCE", until=in_days(10 + i))

    def run(dest: str, **kwargs) -> dict:
        return ObjectLockRetentionOperator(task_id="r", source=f"s3://{source}", dest=f"s3://{dest}", **kwargs).execute(
            {}
        )

    full = run(dests[0])
    shards = [run(dests[1], key_range=r) for r in RANGES]
    # The same, given each shard's keys (as a mapped retention over changed_keys gets them).
    again = [run(dests[1], key_range=r, keys=KEYS) for r in RANGES]
    names = ("applied", "unchanged", "skipped", "failed", "objects", "retention_set", "legal_hold_set")
    assert {n: sum(s[n] for s in shards) for n in names} == {n: full[n] for n in names}
    assert full["objects"] == len(KEYS) and full["applied"] > 0
    assert sum(s["objects"] for s in again) == len(KEYS) and sum(s["applied"] for s in again) == 0
    assert [lock_of(client, dests[1], key) for key in KEYS] == [lock_of(client, dests[0], key) for key in KEYS]


def test_s3_key_ranges_operator_splits_a_real_prefix(moto_default):
    client = moto_default.client()
    bucket = new_bucket(moto_default)
    keys = [f"{d}/{i:04d}" for d in ("a", "a-b", "a.b", "b") for i in range(600)]
    for key in keys:
        client.put_object(Bucket=bucket, Key="data/" + key, Body=b"")
    client.put_object(Bucket=bucket, Key="other/x", Body=b"")
    op = S3KeyRangesOperator(task_id="ranges", location=f"s3://{bucket}/data", shards=4, max_probes=6)
    ranges = op.execute({})
    assert 2 <= len(ranges) <= 4
    assert ranges[0][0] is None and ranges[-1][1] is None
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
    counts = [sum(key in KeyRange(*r) for key in keys) for r in ranges]
    assert sum(counts) == len(keys) and min(counts) > 0
    assert S3KeyRangesOperator(task_id="one", location=f"s3://{bucket}/nothing/", shards=4).execute({}) == [
        [None, None]
    ]


def test_s3_key_ranges_operator_rejects_bad_input_before_any_request(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_DEFAULT", '{"conn_type": "aws", "extra": {"endpoint_url": "http://127.0.0.1:9"}}'
    )
    with pytest.raises(S3SyncError, match="not an s3:// location"):
        S3KeyRangesOperator(task_id="r", location="/tmp/dir", shards=2)
    with pytest.raises(ValueError, match="shards must be a positive integer"):
        S3KeyRangesOperator(task_id="r", location="s3://b/p/", shards=0)
    op = S3KeyRangesOperator(task_id="r", location="s3://b/p/", shards="{{ params.n }}")
    op.shards = "many"  # what the template rendered
    with pytest.raises(ValueError, match="shards must be a positive integer"):
        op.execute({})
