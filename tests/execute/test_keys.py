"""A sync of named keys (``keys=``): looked up on both sides, never listed, decided and deleted as
a full sync would — on in-memory backends (the servers and real S3 events: test_keys_sync)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from botocore.exceptions import EndpointConnectionError

from airflow_s3sync.errors import S3SyncError
from airflow_s3sync.plan import CompareMode, build_rules
from airflow_s3sync.plan.key_range import KeyRange
from tests.execute.conftest import LogRecorder
from tests.execute.fakes import FakeBackend, FakeStore
from tests.execute.test_sync_run import OLD, make_run, write_files


def two_buckets() -> tuple[FakeBackend, FakeStore]:
    store = FakeStore()
    backend = FakeBackend(store)
    for key in ("a", "b", "c", "unnamed"):
        store.put("src", f"in/{key}", f"<{key}>".encode(), mtime=OLD)
    store.put("dst", "out/b", b"<b>")  # same size, newer: up to date
    store.put("dst", "out/c", b"old c, other size")
    store.put("dst", "out/gone", b"only at the destination")
    store.put("dst", "out/unnamed-dest", b"not named: left alone")
    return backend, store


def test_named_keys_are_looked_up_not_listed_and_decided_as_a_full_sync(log: LogRecorder) -> None:
    backend, store = two_buckets()

    report = make_run(
        "s3://src/in", "s3://dst/out", log, source_hook=backend, dest_hook=backend, delete=True,
        keys=("a", "b", "c", "gone", "missing-everywhere"),
    ).run()  # fmt: skip

    assert backend.calls_named("list_entries") == []
    assert sorted(backend.keys_of("lookup")) == sorted(
        [f"in/{key}" for key in ("a", "b", "c", "gone", "missing-everywhere")]
        + [f"out/{key}" for key in ("a", "b", "c", "gone", "missing-everywhere")]
    )
    assert sorted(log.actions()) == [
        "copy: s3://src/in/a to s3://dst/out/a",
        "copy: s3://src/in/c to s3://dst/out/c",
        "delete: s3://dst/out/gone",
    ]
    assert (report.counts["copied"], report.counts["deleted"], report.counts["skipped"]) == (2, 1, 1)
    assert sorted(report.changed_keys) == ["a", "c"]
    assert store.data("dst", "out/unnamed-dest") == b"not named: left alone"
    assert "out/unnamed" not in store.keys("dst")


def test_named_keys_keep_filters_modes_key_ranges_and_dry_runs(log: LogRecorder) -> None:
    backend, store = two_buckets()
    store.put("src", "in/b", b"<B>", mtime=OLD)  # same size, other bytes, older: only checksum sees it

    report = make_run(
        "s3://src/in", "s3://dst/out", log, source_hook=backend, dest_hook=backend, delete=True, dryrun=True,
        rules=tuple(build_rules(exclude=["a"])), mode=CompareMode.CHECKSUM, key_range=KeyRange("a", None),
        keys=("a", "b", "c", "gone"),
    ).run()  # fmt: skip

    assert sorted(log.actions()) == [
        "(dryrun) copy: s3://src/in/b to s3://dst/out/b",
        "(dryrun) copy: s3://src/in/c to s3://dst/out/c",
        "(dryrun) delete: s3://dst/out/gone",
    ]
    assert report.counts["deleted"] == 1 and backend.writes() == []


def test_max_delete_counts_the_deletes_of_named_keys(log: LogRecorder) -> None:
    backend, store = two_buckets()
    run = make_run(
        "s3://src/in", "s3://dst/out", log, source_hook=backend, dest_hook=backend, delete=True, max_delete=0,
        keys=("gone",),
    )  # fmt: skip
    with pytest.raises(S3SyncError, match="refusing to delete 1 item"):
        run.run()
    assert "out/gone" in store.keys("dst")


def test_a_failed_lookup_deletes_nothing(log: LogRecorder) -> None:
    backend, store = two_buckets()
    backend.fail(EndpointConnectionError(endpoint_url="x"), keys=["in/c"], on=["lookup"], times=None)

    with pytest.raises(S3SyncError, match="nothing was deleted: a listing failed"):
        make_run(
            "s3://src/in", "s3://dst/out", log, source_hook=backend, dest_hook=backend, delete=True,
            keys=("a", "c", "gone"),
        ).run()  # fmt: skip

    assert "out/gone" in store.keys("dst")
    assert any(line.startswith("listing failed") for line in log.at(logging.ERROR))


def test_named_files_are_uploaded_and_named_missing_files_deleted(tmp_path: Path, log: LogRecorder) -> None:
    dest = FakeBackend()
    dest.store.put("dst", "p/old", b"gone from the directory")
    dest.store.put("dst", "p/kept", b"not named")
    src = write_files(tmp_path / "src", {"new": b"n", "sub/x": b"x", "unnamed": b"u"})
    (tmp_path / "src" / "dir").mkdir()

    report = make_run(
        str(src), "s3://dst/p", log, dest_hook=dest, delete=True, keys=("new", "old", "sub/x", "dir", "a//b")
    ).run()

    assert sorted(dest.store.keys("dst")) == ["p/kept", "p/new", "p/sub/x"]
    assert (report.counts["uploaded"], report.counts["deleted"]) == (2, 1)
