"""Listings out of S3's order: detected, sorted on disk with flat memory, and the plan started
again, so a sync over a server that lists by path segments (``a/b`` before ``a-b``) transfers
and deletes exactly what it would over S3 — on in-memory backends (the servers: test_quirks)."""

from __future__ import annotations

import logging
import random
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from airflow_s3sync.errors import S3SyncError
from airflow_s3sync.execute.listing_order import sorted_entries
from airflow_s3sync.execute.retention import RetentionOptions, RetentionRun
from airflow_s3sync.hooks.backend import ListingOrder
from airflow_s3sync.locations import parse_location
from airflow_s3sync.plan import Entry
from airflow_s3sync.plan.key_range import KeyRange
from airflow_s3sync.plan.merge import merge, path_order_differs
from tests.execute.conftest import LogRecorder
from tests.execute.fakes import FakeBackend, FakeStore
from tests.execute.test_sync_run import make_run, write_files

T = datetime(2026, 1, 1, tzinfo=UTC)
OLD = datetime.now(UTC) - timedelta(days=1)
#: Keys whose S3 order and path-segment order differ: ``x/…`` beside ``x-…`` and ``x.…``.
KEYS = ["a-b", "a.txt", "a/b", "a/c", "ev/2026-11-01.manifest.json", "ev/2026-11-01/p0", "v1.2/y", "v1/x", "z"]


def entries(keys: list[str]) -> list[Entry]:
    return [Entry(key, 1, T) for key in keys]


# --- the pure parts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lower", "higher", "differs"),
    [("a-b", "a/b", True), ("a.txt", "a/b", True), ("a/b", "a0", False), ("a", "a/b", False), ("a/b", "a/c", False)],
)
def test_path_order_differs_where_a_slash_meets_a_lower_character(lower: str, higher: str, differs: bool) -> None:
    assert lower < higher
    assert path_order_differs(lower, higher) is differs
    assert (sorted([lower, higher], key=lambda key: key.split("/"))[0] == higher) is differs


def test_a_source_only_key_is_unsure_only_where_the_other_order_could_bring_it_later() -> None:
    pairs = list(merge(entries(["a-b", "b", "c"]), entries(["a/b", "c"])))
    assert [(pair.key, pair.unsure) for pair in pairs] == [("a-b", True), ("a/b", False), ("b", False), ("c", False)]


def test_sorted_entries_spills_runs_and_merges_them_into_s3_order() -> None:
    keys = [f"k{n:05d}/{'x' if n % 3 else '-'}" for n in range(2_500)] + ["a-b", "a/b", "a.txt"]
    random.Random(7).shuffle(keys)
    result = [entry.key for entry in sorted_entries(entries(keys), run_size=100)]  # 26 runs on disk
    assert result == sorted(keys)


def test_sorted_entries_keeps_duplicates_for_the_merge_to_refuse() -> None:
    listing = sorted_entries(entries(["b", "a", "b"]), run_size=2)
    with pytest.raises(ValueError, match="destination listing is a duplicate key: 'b' came after 'b'"):
        list(merge([], listing))


def _shuffled_listing(count: int) -> Iterator[Entry]:
    """``count`` keys in path-segment order, generated (not held): partition folders, each with
    a manifest beside it, so every folder is listed before its manifest."""
    for day in range(count // 10):
        for part in range(9):
            yield Entry(f"ev/{day:07d}/part-{part}.parquet", 1024, T)
        yield Entry(f"ev/{day:07d}.manifest.json", 100, T)


def _peak_while_sorting(count: int) -> tuple[int, int]:
    tracemalloc.start()
    try:
        previous, seen = "", 0
        for entry in sorted_entries(_shuffled_listing(count)):
            assert entry.key > previous
            previous, seen = entry.key, seen + 1
        return tracemalloc.get_traced_memory()[1], seen
    finally:
        tracemalloc.stop()


@pytest.mark.slow  # about 30 s under tracemalloc
def test_sorting_a_million_keys_out_of_order_keeps_memory_flat() -> None:
    small_peak, small = _peak_while_sorting(200_000)
    large_peak, large = _peak_while_sorting(1_000_000)
    assert (small, large) == (200_000, 1_000_000)
    # One run of 100,000 entries in memory, then a chunk per run: 5x the keys, not 5x the memory.
    assert large_peak < 1.1 * small_peak, (small_peak, large_peak)
    assert large_peak < 32 * 2**20, large_peak  # 16.2 MiB measured at both sizes


# --- a sync over a server that lists by path segments ---------------------------------------------


def quirky(store: FakeStore | None = None, **options: object) -> FakeBackend:
    options.setdefault("listing_order", ListingOrder.CHECK)
    return FakeBackend(store, path_order=True, **options)  # type: ignore[arg-type]


def fill(store: FakeStore, bucket: str, prefix: str, keys: list[str] = KEYS) -> None:
    for key in keys:
        store.put(bucket, prefix + key, key.encode(), mtime=OLD)


def order_warnings(log: LogRecorder) -> list[str]:
    return [message for message in log.at(logging.WARNING) if "out of S3's order" in message]


@pytest.mark.parametrize("quirky_side", ["source", "dest", "both"])
def test_a_copy_resync_over_a_server_listing_by_path_segments_transfers_and_deletes_nothing(
    log: LogRecorder, quirky_side: str
) -> None:
    source = quirky() if quirky_side in ("source", "both") else FakeBackend()
    dest = quirky() if quirky_side in ("dest", "both") else FakeBackend()
    fill(source.store, "src", "in/")
    fill(dest.store, "dst", "out/")

    report = make_run("s3://src/in", "s3://dst/out", log, source_hook=source, dest_hook=dest, delete=True).run()

    assert dest.calls_named("copy_object", "write_object", "write_stream", "delete_keys", "delete_key") == []
    assert log.actions() == []
    assert report.counts["skipped"] == len(KEYS)
    assert len(order_warnings(log)) == (2 if quirky_side == "both" else 1)


def test_an_upload_into_a_server_listing_by_path_segments_settles(tmp_path: Path, log: LogRecorder) -> None:
    dest = quirky()
    src = write_files(tmp_path / "src", {key: key.encode() for key in KEYS})

    first = make_run(str(src), "s3://dst/out", log, dest_hook=dest, delete=True).run()
    assert first.counts["uploaded"] == len(KEYS)
    assert sorted(dest.store.keys("dst")) == sorted(f"out/{key}" for key in KEYS)

    log.records.clear()
    second = make_run(str(src), "s3://dst/out", log, dest_hook=dest, delete=True).run()
    assert (second.counts["uploaded"], second.counts["deleted"]) == (0, 0)
    assert log.actions() == []
    assert order_warnings(log) == [
        "s3://dst/out/ lists keys out of S3's order ('a-b' came after 'a/c'): its listing is read whole "
        "and sorted on disk from now on, and the plan starts again from the first key"
    ]


def test_a_download_from_a_server_listing_by_path_segments_deletes_only_what_is_gone(
    tmp_path: Path, log: LogRecorder
) -> None:
    source = quirky()
    fill(source.store, "src", "in/")
    dest = write_files(tmp_path / "dst", {key: key.encode() for key in KEYS if key != "a.txt"} | {"gone": b"g"})

    report = make_run("s3://src/in", str(dest), log, source_hook=source, delete=True).run()

    assert sorted(log.actions()) == sorted(
        [f"download: s3://src/in/a.txt to {dest / 'a.txt'}", f"delete: {dest / 'gone'}"]
    )
    assert (report.counts["downloaded"], report.counts["deleted"]) == (1, 1)


def test_a_listing_known_to_be_out_of_order_is_sorted_from_the_start(log: LogRecorder) -> None:
    source = quirky(listing_order=ListingOrder.OWN)
    fill(source.store, "src", "in/")
    dest = FakeBackend()

    report = make_run("s3://src/in", "s3://dst/out", log, source_hook=source, dest_hook=dest).run()

    assert report.counts["copied"] == len(KEYS)
    assert order_warnings(log) == []


@pytest.mark.parametrize("listing_order", [ListingOrder.CHECK, ListingOrder.OWN])
def test_key_range_shards_over_a_server_listing_by_path_segments_equal_one_full_run(
    log: LogRecorder, listing_order: ListingOrder
) -> None:
    source = quirky(listing_order=listing_order)
    fill(source.store, "src", "in/")
    dest = FakeBackend()
    for shard in (KeyRange(None, "a.txt"), KeyRange("a.txt", "ev/2026-11-01/p0"), KeyRange("ev/2026-11-01/p0", None)):
        make_run("s3://src/in", "s3://dst/out", log, source_hook=source, dest_hook=dest, key_range=shard).run()
    assert sorted(dest.store.keys("dst")) == sorted(f"out/{key}" for key in KEYS)


def test_a_sorted_listing_that_still_repeats_a_key_fails_the_run(log: LogRecorder) -> None:
    store = FakeStore()
    fill(store, "src", "in/", ["a", "b"])
    source = quirky(store, listing_order=ListingOrder.OWN)
    original = source.list_entries

    def twice(**kwargs: object) -> Iterator[Entry]:
        for entry in original(**kwargs):  # type: ignore[arg-type]
            yield entry
            yield entry

    source.list_entries = twice  # type: ignore[method-assign]
    with pytest.raises(S3SyncError, match=r"a listing failed .*duplicate key: 'a' came after 'a'"):
        make_run("s3://src/in", "s3://dst/out", log, source_hook=source, dest_hook=FakeBackend(), delete=True).run()


def test_a_range_trusted_to_s3_order_on_a_server_that_lists_otherwise_is_caught_where_it_stops(
    log: LogRecorder,
) -> None:
    """Declared ``listing_order: s3`` but listing by path segments: the range (, 'a.txt'] stops at
    'a/b', the first key past it, where 'a-b' and 'a.txt' still come on the same page; that page
    gives the server away, and the range is listed again, sorted."""
    source = quirky(listing_order=ListingOrder.S3)
    fill(source.store, "src", "in/")
    dest = FakeBackend()

    report = make_run(
        "s3://src/in", "s3://dst/out", log, source_hook=source, dest_hook=dest, key_range=KeyRange(None, "a.txt")
    ).run()

    assert report.counts["copied"] == 2
    assert sorted(dest.store.keys("dst")) == ["out/a-b", "out/a.txt"]
    assert len(order_warnings(log)) == 1


@pytest.mark.parametrize("listing_order", [ListingOrder.S3, ListingOrder.CHECK])
def test_retention_over_a_range_of_a_server_listing_by_path_segments_examines_every_key(
    log: LogRecorder, listing_order: ListingOrder
) -> None:
    source, dest = quirky(listing_order=listing_order), FakeBackend()
    until = datetime.now(UTC) + timedelta(days=30)
    for key in KEYS:
        source.store.put("src", f"in/{key}", b"x", ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=until)
        dest.store.put("dst", f"out/{key}", b"x")
    shard = KeyRange(None, "ev/2026-11-01/p0")
    run = RetentionRun(
        source=parse_location("s3://src/in/"),
        dest=parse_location("s3://dst/out/"),
        source_backend=source,
        dest_backend=dest,
        keys=None,
        options=RetentionOptions(max_concurrency=2),
        key_range=shard,
        log=log.logger,
    )

    report = run.run()

    in_shard = [key for key in KEYS if key in shard]
    assert report.counts["objects"] == len(in_shard) == 6
    assert sorted(call.key for call in dest.calls_named("put_retention")) == sorted(f"out/{key}" for key in in_shard)
    assert len(order_warnings(log)) == 1
