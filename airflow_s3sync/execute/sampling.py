"""The pages a key-range planner samples: one ListObjectsV2 page of a prefix at a time."""

from __future__ import annotations

import itertools
from typing import Any


class PageSampler:
    """The probe :func:`~airflow_s3sync.plan.shards.plan_key_ranges` takes: the keys of the page
    of ``prefix`` that starts after a key, and whether more follow. Each page is asked for once
    (a repeated probe is answered from memory); :attr:`requests` counts the ListObjectsV2
    requests made. A page out of S3's order (a server of its own order) is sorted and
    :attr:`out_of_order` set: the ranges still cover every key once, as the listings of the
    ranges check and sort what they read."""

    def __init__(self, backend: Any, *, bucket: str, prefix: str) -> None:
        self._backend = backend
        self._bucket = bucket
        self._prefix = prefix
        self._pages: dict[str | None, tuple[list[str], bool]] = {}
        self.requests = 0
        self.out_of_order = False

    def __call__(self, start_after: str | None) -> tuple[list[str], bool]:
        page = self._pages.get(start_after)
        if page is None:
            self.requests += 1
            keys, more = self._backend.list_page(bucket=self._bucket, prefix=self._prefix, start_after=start_after)
            if any(later <= earlier for earlier, later in itertools.pairwise(keys)):
                self.out_of_order = True
                keys = sorted(set(keys))
            page = self._pages[start_after] = (keys, more)
        return page
