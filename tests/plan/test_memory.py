"""Planning memory does not grow with the number of keys."""

import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from airflow_s3sync.execute.deletes import DeleteQueue
from airflow_s3sync.plan import ActionKind, Direction, Entry, PathFilter, build_rules, plan

T = datetime(2026, 1, 1, tzinfo=UTC)


def listing(count: int, step: int) -> Iterator[Entry]:
    for n in range(0, count * step, step):
        yield Entry(f"data/2026/part-{n:09d}.parquet", 1024, T)


def peak_while_planning(count: int) -> tuple[int, int]:
    tracemalloc.start()
    try:
        rules = PathFilter(build_rules(exclude=["*.tmp"]), src_root="/src", dst_root="b/")
        actions = 0
        for action in plan(
            listing(count, 2),
            listing(count, 3),
            direction=Direction.UPLOAD,
            delete=True,
            path_filter=rules,
            src_path_prefix="/src/",
            dst_path_prefix="b/",
        ):
            actions += action.kind is not ActionKind.SKIP
        return tracemalloc.get_traced_memory()[1], actions
    finally:
        tracemalloc.stop()


@pytest.mark.slow  # tracemalloc over 200,000 keys
def test_planning_peak_memory_is_flat_in_the_number_of_keys():
    small_peak, small_actions = peak_while_planning(2_000)
    large_peak, large_actions = peak_while_planning(200_000)
    assert large_actions > 100 * small_actions / 2
    # 100 times the keys, yet the peak stays within a few tens of KiB of the small run's.
    assert large_peak < small_peak + 64 * 1024, (small_peak, large_peak)


@pytest.mark.slow  # tracemalloc
def test_delete_queue_keeps_keys_on_disk():
    tracemalloc.start()
    try:
        with DeleteQueue() as queue:
            for n in range(100_000):
                queue.add(f"prefix/some/fairly/long/key/name/{n:09d}\nwith a newline")
            peak = tracemalloc.get_traced_memory()[1]
            assert queue.count == 100_000
            keys = iter(queue)
            assert next(keys) == "prefix/some/fairly/long/key/name/000000000\nwith a newline"
            assert sum(1 for _ in keys) == 99_999
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024  # 100,000 keys of ~60 bytes would be ~10 MB in a list
