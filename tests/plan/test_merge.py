from datetime import UTC, datetime
from itertools import count

import pytest

from airflow_s3sync.plan import Entry, ListingOrderError, merge

T = datetime(2026, 1, 1, tzinfo=UTC)


def entries(*keys: str) -> list[Entry]:
    return [Entry(key, 1, T) for key in keys]


def shape(src: list[str], dst: list[str]) -> list[tuple[str | None, str | None]]:
    return [(p.src.key if p.src else None, p.dst.key if p.dst else None) for p in merge(entries(*src), entries(*dst))]


@pytest.mark.parametrize(
    ("src", "dst", "expected"),
    [
        ([], [], []),
        (["a"], [], [("a", None)]),
        ([], ["a"], [(None, "a")]),
        (["a", "b"], ["a", "b"], [("a", "a"), ("b", "b")]),
        (["a", "c"], ["b", "d"], [("a", None), (None, "b"), ("c", None), (None, "d")]),
        (["a", "b", "c"], ["b"], [("a", None), ("b", "b"), ("c", None)]),
        (["x"], ["a", "b", "x", "y"], [(None, "a"), (None, "b"), ("x", "x"), (None, "y")]),
        # S3 key order: '-' < '.' < '/' < '0'
        (["a-b", "a.b", "a/b", "a0"], ["a.b", "a0"], [("a-b", None), ("a.b", "a.b"), ("a/b", None), ("a0", "a0")]),
    ],
)
def test_merge_pairs_keys(src, dst, expected):
    assert shape(src, dst) == expected


@pytest.mark.parametrize(("src", "dst"), [(["b", "a"], []), ([], ["a", "a"]), (["a"], ["c", "b"])])
def test_merge_refuses_out_of_order_or_duplicate_input(src, dst):
    with pytest.raises(ListingOrderError):
        list(merge(entries(*src), entries(*dst)))


def test_merge_is_lazy_and_holds_one_entry_per_side():
    """Endless listings can be merged: nothing is read ahead of what is yielded."""
    src = (Entry(f"{n:012d}", 1, T) for n in count(0, 2))
    dst = (Entry(f"{n:012d}", 1, T) for n in count(0, 3))
    pairs = merge(src, dst)
    first = [next(pairs) for _ in range(5)]
    assert [(p.src is not None, p.dst is not None, p.key) for p in first] == [
        (True, True, "000000000000"),
        (True, False, "000000000002"),
        (False, True, "000000000003"),
        (True, False, "000000000004"),
        (True, True, "000000000006"),
    ]
