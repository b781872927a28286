"""S3 servers that are not quite S3, each quirk put in front of a real server (moto's, or
``rclone serve s3``) by the loopback proxy of tests/quirks.py: listings in another order,
rewritten keys, answers that lie, foreign multipart ETags, one configuration error answered 500
for every object, and (moto's own) a checksum header that lies."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_s3sync import ObjectLockRetentionOperator, S3KeyRangesOperator, S3SyncOperator
from airflow_s3sync.errors import S3SyncError
from airflow_s3sync.plan.checksum import recorded_md5
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


# --- 3. an answer that lies ------------------------------------------------------------------------


def test_a_write_the_server_stores_otherwise_than_it_answers_fails_that_object(
    moto: S3Server, monkeypatch: pytest.MonkeyPatch, logs: LogLines
) -> None:
    """The server keeps ``dir/`` with a body as 0 bytes and answers the PutObject with the MD5 of
    the body sent: a HeadObject, not the answer, decides, and the object fails."""
    source, dest = new_bucket(moto), new_bucket(moto)
    moto.client().put_object(Bucket=source, Key="in/dir/", Body=b"a body under a directory's name")
    moto.client().put_object(Bucket=source, Key="in/file", Body=b"plain")
    use_connection(monkeypatch, "moto", moto.connection_json())
    with QuirksProxy(moto, empty_dir_bodies=True) as proxy:
        use_connection(monkeypatch, "quirky", proxy.server.connection_json())
        with pytest.raises(S3SyncError, match=r"1 item\(s\) failed") as raised:
            sync(
                source=f"s3://{source}/in/",
                dest=f"s3://{dest}/out/",
                source_aws_conn_id="moto",
                dest_aws_conn_id="quirky",
            )

    assert proxy.emptied == ["out/dir/"]
    assert f"s3://{dest}/out/dir/ has 0 bytes, 31 were sent" in str(raised.value)
    assert [line for line in logs.at("info") if line.startswith("copy: ")] == [
        f"copy: s3://{source}/in/file to s3://{dest}/out/file"
    ]


# --- 4. content identity that settles --------------------------------------------------------------


def test_checksum_settles_after_copies_in_parts_that_get_foreign_etags(
    moto: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server gives copies made of UploadPartCopy parts a multipart ETag that is no MD5 of
    part MD5s: the MD5 the copy records in its metadata lets ``checksum=True`` find the content
    the same, and the second run copies nothing."""
    bucket = new_bucket(moto)
    data = os.urandom(9 * MIB)  # above the 8 MiB multipart threshold: copied in parts
    moto.client().put_object(Bucket=bucket, Key="src/big.bin", Body=data)
    with QuirksProxy(moto, foreign_copy_etags=True) as proxy:
        use_connection(monkeypatch, "quirky", proxy.server.connection_json())
        runs = [
            sync(
                source=f"s3://{bucket}/src/",
                dest=f"s3://{bucket}/dst/",
                source_aws_conn_id="quirky",
                dest_aws_conn_id="quirky",
                copy_cutoff=5 * MIB,
                checksum=True,
            )
            for _ in range(2)
        ]
        head = proxy.server.client().head_object(Bucket=bucket, Key="dst/big.bin")

    assert [run["copied"] for run in runs] == [1, 0]
    assert head["ETag"] == proxy.foreign_etags[(bucket, "dst/big.bin")]  # what the run compared against
    assert recorded_md5(head["Metadata"]) == hashlib.md5(data, usedforsecurity=False).hexdigest()
    assert bucket_tree(moto, bucket, "dst/") == {"big.bin": data}


# --- 5. the same failure over and over -------------------------------------------------------------


def test_a_server_error_answering_every_object_fails_the_task_within_a_minute(
    moto: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, logs: LogLines
) -> None:
    """SSE-S3 asked for, not configured: every write is answered 500. 1,000 objects would take
    over an hour of retries; the run stops after 20 objects in a row, naming the error."""
    bucket = new_bucket(moto)
    source = write_tree(tmp_path / "source", {f"f{index:04d}": b"x" for index in range(1000)})
    with QuirksProxy(moto, refuse_sse=True) as proxy:
        use_connection(monkeypatch, "quirky", proxy.server.connection_json())
        started = time.monotonic()
        with pytest.raises(S3SyncError) as raised:
            sync(
                source=str(source),
                dest=f"s3://{bucket}/",
                dest_aws_conn_id="quirky",
                extra_args={"ServerSideEncryption": "AES256"},
            )
        elapsed = time.monotonic() - started

    message = str(raised.value)
    assert "the server answered 20 objects in a row with the same error, 500 InternalError" in message
    assert "(first: upload " in message
    assert elapsed < 60, elapsed
    assert proxy.refused_sse < 200, proxy.refused_sse  # not 1,000 objects times their retries
    assert [line for line in logs.at("error") if line.startswith("stopping: ")] != []


# --- 6. a checksum header that lies (moto's own) ---------------------------------------------------


def test_an_object_whose_checksum_header_lies_streams_to_another_endpoint_and_downloads(
    moto: S3Server, rclone: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """moto's CopyObject of a multipart object keeps the composite CRC32 without its "-N":
    botocore rejects every full GET of the copy; it is read without that check and verified by
    its ETag, on the way to another endpoint and to a local directory."""
    from tests.hooks.test_unchecked import DATA, mislabelled_copy

    use_connection(monkeypatch, "moto", moto.connection_json())
    use_connection(monkeypatch, "rclone", rclone.connection_json())
    ref = mislabelled_copy(moto)
    dest = new_bucket(rclone)
    streamed = sync(
        source=f"s3://{ref.bucket}/", dest=f"s3://{dest}/", source_aws_conn_id="moto", dest_aws_conn_id="rclone"
    )
    downloaded = sync(source=f"s3://{ref.bucket}/", dest=str(tmp_path), source_aws_conn_id="moto")

    assert (streamed["copied"], streamed["failed"], downloaded["downloaded"]) == (2, 0, 2)
    assert bucket_tree(rclone, dest)["copy"] == DATA
    assert (tmp_path / "copy").read_bytes() == DATA
