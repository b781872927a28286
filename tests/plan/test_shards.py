"""The key range planner: a partition of the keyspace, at most N ranges, roughly even, cheap."""

from __future__ import annotations

import bisect
import itertools
import random
import string

import pytest

from airflow_s3sync.plan.key_range import KeyRange
from airflow_s3sync.plan.shards import default_max_probes, plan_key_ranges


class Lister:
    """ListObjectsV2 over a sorted key list: ``page`` keys after ``start_after``."""

    def __init__(self, keys, page=1000):
        self.keys = sorted(set(keys))
        self.page = page
        self.calls: list[str | None] = []

    def __call__(self, start_after):
        self.calls.append(start_after)
        i = 0 if start_after is None else bisect.bisect_right(self.keys, start_after)
        return self.keys[i : i + self.page], i + self.page < len(self.keys)


def assert_partition(ranges, shards, keys):
    assert 1 <= len(ranges) <= shards
    assert ranges[0][0] is None and ranges[-1][1] is None
    for (_, end), (start_after, _) in itertools.pairwise(ranges):
        assert end == start_after and end is not None
    for start_after, end in ranges:
        KeyRange(start_after, end)  # raises unless start_after < end
    shards_of = [KeyRange(*r) for r in ranges]
    for key in keys:
        assert sum(key in shard for shard in shards_of) == 1, key


def random_keys(rng: random.Random) -> list[str]:
    kind = rng.choice(["flat", "dirs", "slash-suffix", "unicode", "tiny", "skewed"])
    n = rng.choice([0, 1, 2, 5, 50, 999, 1000, 1001, 3000, 12000])
    if kind == "flat":
        return [f"part-{rng.randrange(10**6):06d}.parquet" for _ in range(n)]
    if kind == "dirs":
        return [f"y={rng.randrange(3)}/m={rng.randrange(12):02d}/{rng.randrange(10**5)}.csv" for _ in range(n)]
    if kind == "slash-suffix":  # keys that differ only after a "/", and their neighbours in byte order
        stems = ["a", "a-b", "a.b", "a0", "ab"]
        return [
            f"{rng.choice(stems)}{rng.choice(['', '/', '/x', '/x/y', '/'])}{rng.randrange(n + 1)}" for _ in range(n)
        ]
    if kind == "unicode":
        alphabet = "aé日本\U0001f600/-."
        return ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 8))) for _ in range(n)]
    if kind == "skewed":
        return [("hot/" if rng.random() < 0.9 else "cold/") + str(rng.random()) for _ in range(n)]
    return ["".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(1, 3))) for _ in range(n)]


@pytest.mark.parametrize("seed", range(150))
def test_ranges_partition_any_keyspace(seed):
    rng = random.Random(seed)
    keys = random_keys(rng)
    shards = rng.choice([1, 2, 3, 4, 7, 16, 50])
    lister = Lister(keys, page=rng.choice([1, 3, 10, 100, 1000]))
    budget = rng.choice([None, 1, 2, 5, 40])
    ranges = plan_key_ranges(lister, shards, max_probes=budget)
    assert_partition(ranges, shards, lister.keys)
    assert len(lister.calls) <= (default_max_probes(shards) if budget is None else budget) or shards == 1
    # Keys added after the split still fall into exactly one range.
    assert_partition(ranges, shards, random_keys(random.Random(seed + 1000)))


def test_an_empty_prefix_is_one_range():
    lister = Lister([])
    assert plan_key_ranges(lister, 8) == [[None, None]]
    assert len(lister.calls) == 1


def test_one_page_is_split_exactly():
    keys = [f"k{i:03d}" for i in range(600)]
    ranges = plan_key_ranges(Lister(keys), 4)
    counts = [sum(key in KeyRange(*r) for key in keys) for r in ranges]
    assert counts == [150, 150, 150, 150]


@pytest.mark.parametrize(
    "keys",
    [
        [f"part-{i:05d}.parquet" for i in range(20000)],
        [f"data/{i:08d}" for i in range(100000)],
        [f"{random.Random(1).random():.12f}{i}" for i in range(40000)],
        [
            f"year=2024/month={m:02d}/day={d:02d}/f{i}.csv"
            for m in range(1, 13)
            for d in range(1, 29)
            for i in range(90)
        ],
    ],
    ids=["flat", "deep-numbered", "random", "partitioned"],
)
def test_large_keyspaces_are_split_roughly_evenly_from_a_sample(keys):
    lister = Lister(keys)
    shards = 8
    ranges = plan_key_ranges(lister, shards)
    assert shards - 1 <= len(ranges) <= shards
    counts = [sum(1 for key in lister.keys if key in KeyRange(*r)) for r in ranges]
    ideal = len(keys) / shards
    assert max(counts) <= 2.5 * ideal and min(counts) >= ideal / 4, counts
    # A sample: a bounded number of requests, far fewer than a listing of a large prefix.
    assert len(lister.calls) <= default_max_probes(shards)
    if len(keys) >= 100_000:
        assert len(lister.calls) < len(keys) / 1000 / 2


@pytest.mark.parametrize("bad", [0, -1, 1.5, "4", True])
def test_shards_must_be_a_positive_integer(bad):
    with pytest.raises(ValueError, match="shards"):
        plan_key_ranges(Lister(["a"]), bad)
