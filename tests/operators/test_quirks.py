"""S3 servers that are not quite S3, each quirk put in front of a real server (moto's, or
``rclone serve s3``) by the loopback proxy of tests/quirks.py: listings in another order,
rewritten keys, answers that lie, foreign multipart ETags, one configuration error answered 500
for every object, and (moto's own) a checksum header that lies."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_s3sync import ObjectLockRetentionOperator, S3KeyRangesOperator, S3SyncOperator
from tests.conftest import LogLines, new_bucket
from tests.operators.test_object_lock import in_days, lock_bucket, lock_of, put, set_dest
from tests.quirks import QuirksProxy
from tests.support import NO_DIFFERENCES, S3Server, bucket_tree, local_tree, tree_differences, use_connection

MIB = 1024 * 1024
#: S3 lists these ``a-b, a.txt, a/b, ...``; a server listing by path segments ``a/b, a/c, a-b, ...``.
FILES = {
    key: f"<{key}>".encode()
    for key in (
        "a-b",
        "a.txt",
        "a/b",
        "a/c",
        "ev/2026-11-01.manifest.json",
        "ev/2026-11-01/p0",
        "ev/2026-11-01/p1",
        "ev/2026-11-02.manifest.json",
        "ev/2026-11-02/p0",
        "logs.txt",
        "logs/x",
        "v1.2/y",
        "v1/x",
        "z",
    )
}
#: Three shards cutting between keys the two orders put apart.
RANGES = [(None, "a.txt"), ("a.txt", "ev/2026-11-01/p0"), ("ev/2026-11-01/p0", None)]


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    """The files below ``root``, an hour old (older than anything a server holds)."""
    old = time.time() - 3600
    for key, data in files.items():
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, (old, old))
    return root


def sync(**kwargs: object) -> dict:
    return S3SyncOperator(task_id="sync", **kwargs).execute({})


@pytest.fixture
def path_ordered(server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[QuirksProxy]:
    """Connection ``quirky`` reaches ``server`` through a proxy that lists by path segments."""
    with QuirksProxy(server, path_order=True) as proxy:
        use_connection(monkeypatch, "quirky", proxy.server.connection_json())
        yield proxy


def order_warnings(logs: LogLines) -> list[str]:
    return [line for line in logs.at("warning") if "out of S3's order" in line]


# --- 1. listing order ------------------------------------------------------------------------------


def test_resyncs_over_a_server_listing_by_path_segments_transfer_nothing_the_second_time(
    server: S3Server, path_ordered: QuirksProxy, tmp_path: Path, logs: LogLines
) -> None:
    bucket = new_bucket(server)
    source = write_tree(tmp_path / "source", FILES)
    legs = {
        "upload": {"source": str(source), "dest": f"s3://{bucket}/up/", "dest_aws_conn_id": "quirky"},
        "copy": {
            "source": f"s3://{bucket}/up/",
            "dest": f"s3://{bucket}/copy/",
            "source_aws_conn_id": "quirky",
            "dest_aws_conn_id": "quirky",
        },
        "download": {"source": f"s3://{bucket}/copy/", "dest": str(tmp_path / "down"), "source_aws_conn_id": "quirky"},
    }
    for name, counter in (("upload", "uploaded"), ("copy", "copied"), ("download", "downloaded")):
        first, second = (sync(delete=True, **legs[name]) for _ in range(2))
        assert (first[counter], first["deleted"], first["failed"]) == (len(FILES), 0, 0), name
        assert (second[counter], second["deleted"], second["skipped"]) == (0, 0, len(FILES)), name

    assert tree_differences(bucket_tree(server, bucket, "up/"), FILES) == NO_DIFFERENCES
    assert tree_differences(bucket_tree(server, bucket, "copy/"), FILES) == NO_DIFFERENCES
    assert tree_differences(local_tree(tmp_path / "down"), FILES) == NO_DIFFERENCES
    # The proxy did list by path segments, and the runs said so.
    page = next(page for page in path_ordered.listed_pages if "up/a-b" in page)
    assert page.index("up/a/b") < page.index("up/a-b")
    assert order_warnings(logs)


def test_key_range_shards_over_a_server_listing_by_path_segments_equal_one_full_run(
    server: S3Server, path_ordered: QuirksProxy
) -> None:
    bucket = new_bucket(server)
    client = server.client()
    for key, data in FILES.items():
        client.put_object(Bucket=bucket, Key=f"src/{key}", Body=data)
    for prefix in ("full/", "shards/"):  # destination-only keys in every shard
        for key in ("a-a", "a/a", "ev/2026-11-01/gone", "zz"):
            client.put_object(Bucket=bucket, Key=prefix + key, Body=b"gone")

    def run(prefix: str, key_range: tuple[str | None, str | None] | None = None) -> dict:
        return sync(
            source=f"s3://{bucket}/src/",
            dest=f"s3://{bucket}/{prefix}",
            source_aws_conn_id="quirky",
            dest_aws_conn_id="quirky",
            delete=True,
            key_range=key_range,
        )

    full = run("full/")
    shards = [run("shards/", key_range) for key_range in RANGES]
    assert [sum(shard[name] for shard in shards) for name in ("copied", "deleted")] == [len(FILES), 4]
    assert (full["copied"], full["deleted"]) == (len(FILES), 4)
    assert tree_differences(bucket_tree(server, bucket, "shards/"), FILES) == NO_DIFFERENCES
    assert tree_differences(bucket_tree(server, bucket, "full/"), FILES) == NO_DIFFERENCES


def test_key_ranges_of_a_partition_layout_and_their_syncs_cover_every_key(
    server: S3Server, path_ordered: QuirksProxy, tmp_path: Path
) -> None:
    """Daily partition folders with a manifest beside each: 30 days of 8 parts and a manifest."""
    bucket = new_bucket(server)
    client = server.client()
    keys = [f"ev/2026-11-{day:02d}/part-{part}.parquet" for day in range(1, 31) for part in range(8)]
    keys += [f"ev/2026-11-{day:02d}.manifest.json" for day in range(1, 31)]
    for key in keys:
        client.put_object(Bucket=bucket, Key=key, Body=key.encode())

    ranges = S3KeyRangesOperator(
        task_id="ranges", location=f"s3://{bucket}/ev/", aws_conn_id="quirky", shards=4
    ).execute({})
    runs = [
        sync(source=f"s3://{bucket}/ev/", dest=str(tmp_path / "down"), source_aws_conn_id="quirky", key_range=key_range)
        for key_range in ranges
    ]

    assert len(ranges) > 1
    assert sum(run["downloaded"] for run in runs) == len(keys) == 270
    assert sorted(local_tree(tmp_path / "down")) == sorted(key.removeprefix("ev/") for key in keys)


def test_retention_shards_over_a_server_listing_by_path_segments_equal_one_full_run(
    moto: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = moto.client()
    source = lock_bucket(moto)
    dests = [lock_bucket(moto), lock_bucket(moto)]
    for index, key in enumerate(FILES):
        put(client, source, key, mode="GOVERNANCE", until=in_days(10 + index), hold=index % 3 == 0)
        for dest in dests:
            put(client, dest, key)
        if index % 4 == 0:
            set_dest(client, dests[1], key, mode="GOVERNANCE", until=in_days(10 + index))
            set_dest(client, dests[0], key, mode="GOVERNANCE", until=in_days(10 + index))

    with QuirksProxy(moto, path_order=True) as proxy:
        use_connection(monkeypatch, "quirky", proxy.server.connection_json())

        def run(dest: str, key_range: tuple[str | None, str | None] | None = None) -> dict:
            return ObjectLockRetentionOperator(
                task_id="r",
                source=f"s3://{source}",
                dest=f"s3://{dest}",
                source_aws_conn_id="quirky",
                dest_aws_conn_id="quirky",
                key_range=key_range,
            ).execute({})

        full = run(dests[0])
        shards = [run(dests[1], key_range) for key_range in RANGES]

    names = ("applied", "unchanged", "skipped", "failed", "objects")
    assert {name: sum(shard[name] for shard in shards) for name in names} == {name: full[name] for name in names}
    assert full["objects"] == len(FILES)
    assert [lock_of(client, dests[1], key) for key in FILES] == [lock_of(client, source, key) for key in FILES]


# --- 2. rewritten keys -----------------------------------------------------------------------------


@pytest.mark.parametrize("dest_name", ["moto", "rclone"])
def test_keys_the_destination_would_rewrite_are_skipped_and_nothing_written_is_deleted(
    moto: S3Server, rclone: S3Server, monkeypatch: pytest.MonkeyPatch, logs: LogLines, dest_name: str
) -> None:
    """Streamed to the root of a bucket of a server that stores ``a//b`` as ``a/b`` and ``/lead``
    as ``lead`` (moto behind the proxy), or refuses them (rclone itself): both are skipped with a
    warning, ``a/b`` holds the source's ``a/b``, and a second run with ``delete`` copies and
    deletes nothing (before, each run wrote them and then deleted its own copies as keys not in
    the source)."""
    server = {"moto": moto, "rclone": rclone}[dest_name]
    source, dest = new_bucket(moto), new_bucket(server)
    files = {"a//b": b"double", "a/b": b"single", "/lead": b"leading", "plain": b"plain"}
    for key, data in files.items():
        moto.client().put_object(Bucket=source, Key=f"in/{key}", Body=data)
    server.client().put_object(Bucket=dest, Key="lead", Body=b"left by an earlier run")
    use_connection(monkeypatch, "moto", moto.connection_json())
    with QuirksProxy(server, rewrite_keys=dest_name == "moto") as proxy:
        use_connection(monkeypatch, "quirky", proxy.server.connection_json())
        runs = [
            sync(
                source=f"s3://{source}/in/",
                dest=f"s3://{dest}/",
                source_aws_conn_id="moto",
                dest_aws_conn_id="quirky",
                delete=True,
            )
            for _ in range(2)
        ]

    assert (runs[0]["copied"], runs[0]["deleted"], runs[0]["warnings"]) == (2, 1, 2)  # the earlier run's "lead"
    assert (runs[1]["copied"], runs[1]["deleted"], runs[1]["warnings"]) == (0, 0, 2)
    assert bucket_tree(server, dest) == {"a/b": b"single", "plain": b"plain"}  # no probe left behind
    skipped = sorted({line for line in logs.at("warning") if line.startswith("warning: Skipping file")})
    assert [line.split(". ")[0] for line in skipped] == [
        f"warning: Skipping file s3://{source}/in//lead",
        f"warning: Skipping file s3://{source}/in/a//b",
    ]
    assert "keys with a leading '/'" in skipped[0] and "keys with '//'" in skipped[1]
    # Only the probes were ever rewritten: one per kind and run.
    assert len(proxy.rewritten) == (4 if dest_name == "moto" else 0)
    assert all(".s3sync-probe-" in moved for moved, _ in proxy.rewritten)
