"""A parallel listing by key ranges: the stream equals the sequential listing (property tests over
random key sets, range counts, thread counts and spill limits), a server whose order or
StartAfter is not S3's is caught rather than trusted, errors come in order, memory stays flat."""

from __future__ import annotations

import bisect
import hashlib
import itertools
import random
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest

from airflow_s3sync.execute.parallel_listing import ParallelListing
from airflow_s3sync.plan.entries import Entry
from airflow_s3sync.plan.key_range import KeyRange
from airflow_s3sync.plan.merge import ListingOrderError
from airflow_s3sync.plan.ranged_read import RangeRead, check_joined
from tests.plan.test_shards import random_keys

T = datetime(2026, 1, 1, tzinfo=UTC)


class Server:
    """Listings of a key set in an order: ``order`` maps any string (a key, or a StartAfter
    that is none) to its place; ``ignores_start_after`` lists from the first key always."""

    def __init__(self, keys: list[str], order: Callable[[str], object] = str, *, ignores_start_after: bool = False):
        self.order = order
        self.keys = sorted(set(keys), key=order)
        self.places = [order(key) for key in self.keys]
        self.ignores_start_after = ignores_start_after
        self.calls = 0

    def entry(self, key: str) -> Entry:
        return Entry(key, 0 if key.endswith("/") else len(key) + 1, T, f'"{key}"', "STANDARD")

    def list_after(self, start_after: str | None) -> Iterator[Entry]:
        self.calls += 1
        start = 0
        if start_after is not None and not self.ignores_start_after:
            start = bisect.bisect_right(self.places, self.order(start_after))  # type: ignore[call-overload]
        for key in self.keys[start:]:
            yield self.entry(key)


def expected(keys: list[str]) -> list[str]:
    return [key for key in sorted(set(keys)) if not key.endswith("/")]


def random_ranges(rng: random.Random, keys: list[str]) -> list[KeyRange]:
    """A partition into 1-12 ranges at random strings, keys or not."""
    points: set[str] = set()
    for _ in range(rng.randrange(12)):
        if keys and rng.random() < 0.6:
            key = rng.choice(keys)
            points.add(key if rng.random() < 0.7 else key[: rng.randrange(len(key) + 1)])
        else:
            points.add("".join(rng.choice("a-/.0z日") for _ in range(rng.randint(1, 4))))
    bounds = [None, *sorted(point for point in points if point), None]
    return [KeyRange(low, high) for low, high in itertools.pairwise(bounds)]


def listed(server: Server, ranges: list[KeyRange], *, threads: int, memory_entries: int = 50_000) -> list[str]:
    listing = ParallelListing(server.list_after, ranges, threads=threads, memory_entries=memory_entries)
    try:
        return [entry.key for entry in listing]
    finally:
        listing.close()


def path_order(key: str) -> object:
    """A directory walk's order: by path segments (``a/b`` before ``a-b``)."""
    return key.split("/")


def hashed_order(key: str) -> object:
    return hashlib.md5(key.encode()).digest()


@pytest.mark.parametrize("seed", range(120))
def test_on_s3_order_the_stream_is_the_sequential_listing(seed):
    rng = random.Random(seed)
    keys = random_keys(rng) + [f"dir{rng.randrange(5)}/" for _ in range(rng.randrange(3))]  # markers too
    server = Server(keys)
    ranges = random_ranges(rng, keys)
    got = listed(server, ranges, threads=rng.choice([1, 2, 3, 8]), memory_entries=rng.choice([1, 7, 1000, 50_000]))
    assert got == expected(keys)
    assert server.calls == len(ranges)


@pytest.mark.parametrize("seed", range(120))
@pytest.mark.parametrize("kind", ["path order", "hashed order", "ignores StartAfter"])
def test_on_other_orders_the_stream_is_the_sequential_listing_or_an_error(seed, kind):
    rng = random.Random(seed)
    keys = random_keys(rng)
    if kind == "ignores StartAfter":
        server = Server(keys, ignores_start_after=True)
    else:
        server = Server(keys, path_order if kind == "path order" else hashed_order)
    ranges = random_ranges(rng, keys)
    try:
        got = listed(server, ranges, threads=rng.choice([1, 2, 8]), memory_entries=rng.choice([3, 50_000]))
    except ListingOrderError:
        return
    assert got == expected(keys)


def test_the_checks_are_not_vacuous():
    """Where a server's order loses keys to a range split, the join check raises."""
    keys = ["a-b", "a/b"]  # path order: a/b, a-b; S3's: a-b, a/b
    server = Server(keys, path_order)
    assert [entry.key for entry in server.list_after(None)] == ["a/b", "a-b"]
    with pytest.raises(ListingOrderError):
        listed(server, [KeyRange(None, "a-b"), KeyRange("a-b", None)], threads=2)
    # ...where listing the ranges one by one with no join check would have lost both keys
    first, second = RangeRead(KeyRange(None, "a-b")), RangeRead(KeyRange("a-b", None))
    assert list(first.entries(server.list_after(None))) == []
    assert list(second.entries(server.list_after("a-b"))) == []
    with pytest.raises(ListingOrderError, match="'a/b' came after 'a-b'"):
        check_joined(first, second)
    ignoring = Server(["a", "b", "c"], ignores_start_after=True)
    with pytest.raises(ListingOrderError):
        listed(ignoring, [KeyRange(None, "a"), KeyRange("a", None)], threads=2)


def test_a_failed_range_fails_the_stream_where_it_starts():
    server = Server([f"k{i:03d}" for i in range(300)])

    def list_after(start_after: str | None) -> Iterator[Entry]:
        if start_after == "k199":
            yield server.entry("k200")
            raise RuntimeError("listing failed")
        yield from server.list_after(start_after)

    ranges = [KeyRange(None, "k099"), KeyRange("k099", "k199"), KeyRange("k199", None)]
    listing = ParallelListing(list_after, ranges, threads=3)
    got: list[str] = []
    with pytest.raises(RuntimeError, match="listing failed"):
        for entry in listing:
            got.append(entry.key)
    listing.close()
    assert got == [f"k{i:03d}" for i in range(201)]


def test_close_stops_the_listers_early():
    started = threading.Event()

    def endless(start_after: str | None) -> Iterator[Entry]:
        started.set()
        i = 0
        while True:
            i += 1
            yield Entry(f"{start_after or ''}{i:012d}", 1, T)

    listing = ParallelListing(endless, [KeyRange(None, "m"), KeyRange("m", None)], threads=2)
    stream = iter(listing)
    assert next(stream).key == "000000000001"
    started.wait(5)
    before = time.monotonic()
    listing.close()
    assert time.monotonic() - before < 5
    assert not [thread for thread in threading.enumerate() if thread.name.startswith("s3sync-ranged-listing")]


def test_memory_stays_flat_while_the_listers_run_ahead():
    """200,000 entries listed ahead of a reader that waits: they wait on disk, not in memory."""
    keys = [f"data/part-{i:07d}.parquet" for i in range(200_000)]
    server = Server(keys)
    bounds = [None, *(keys[i] for i in range(50_000, 200_000, 50_000)), None]
    ranges = [KeyRange(low, high) for low, high in itertools.pairwise(bounds)]
    tracemalloc.start()
    try:
        listing = ParallelListing(server.list_after, ranges, threads=4, memory_entries=2_000)
        stream = iter(listing)
        first = next(stream)
        while any(thread.name.startswith("s3sync-ranged-listing") for thread in threading.enumerate()):
            if all(buffer._done for buffer in listing._buffers):
                break
            time.sleep(0.05)
        count = 1 + sum(1 for _ in stream)
        listing.close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert first.key == keys[0] and count == len(keys)
    # 200,000 entries held at once take over 40 MB; the listing holds 4 x 2,000 and a page each
    assert peak < 12 * 2**20, peak


@pytest.mark.parametrize("memory_entries", [1, 50_000], ids=["spilled to disk", "in memory"])
def test_entries_come_back_whole_from_memory_and_from_disk(memory_entries):
    keys = [f"k{n:03d}" for n in range(300)]
    server = Server(keys)
    ranges = [KeyRange(None, "k100"), KeyRange("k100", "k200"), KeyRange("k200", None)]
    listing = ParallelListing(server.list_after, ranges, threads=2, memory_entries=memory_entries)
    try:
        got = list(listing)
    finally:
        listing.close()
    assert got == [server.entry(key) for key in keys]
