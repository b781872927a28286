"""The page sampler the key-range planners share."""

from __future__ import annotations

from airflow_s3sync.execute.sampling import PageSampler
from airflow_s3sync.plan.shards import plan_key_ranges


class Pages:
    """ListObjectsV2 pages of ``size`` keys over ``keys`` in the given (server's) order."""

    def __init__(self, keys: list[str], size: int) -> None:
        self.keys, self.size, self.asked = keys, size, []

    def list_page(self, *, bucket: str, prefix: str, start_after: str | None = None) -> tuple[list[str], bool]:
        self.asked.append((bucket, prefix, start_after))
        rest = [key for key in self.keys if start_after is None or key > start_after]
        return rest[: self.size], len(rest) > self.size


def test_each_page_is_asked_for_once_and_counted():
    pages = Pages([f"k{n:04d}" for n in range(1000)], 100)
    probe = PageSampler(pages, bucket="b", prefix="p/")
    assert probe(None) == probe(None) == ([f"k{n:04d}" for n in range(100)], True)
    ranges = plan_key_ranges(probe, 4, max_probes=6)
    assert len(ranges) == 4 and ranges[0][0] is None and ranges[-1][1] is None
    assert probe.requests == len(pages.asked) == len(set(pages.asked)) <= 6
    assert all(asked[:2] == ("b", "p/") for asked in pages.asked)
    assert not probe.out_of_order


def test_a_page_out_of_s3_order_is_sorted_and_said():
    pages = Pages(["a/b", "a-b", "a-b", "a0"], 10)  # path-segment order, a key twice
    probe = PageSampler(pages, bucket="b", prefix="")
    assert probe(None) == (["a-b", "a/b", "a0"], False)
    assert probe.out_of_order
