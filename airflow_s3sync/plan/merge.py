"""One-pass merge of two listings sorted in S3 key order."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from airflow_s3sync.plan.entries import Entry, Pair


class ListingOrderError(ValueError):
    """A listing was not strictly ascending; merging it would give wrong decisions."""


def _checked(entries: Iterable[Entry], side: str) -> Iterator[Entry]:
    previous: str | None = None
    for entry in entries:
        if previous is not None and entry.key <= previous:
            raise ListingOrderError(
                f"{side} listing is not in ascending key order: {entry.key!r} came after {previous!r}"
            )
        previous = entry.key
        yield entry


def merge(src: Iterable[Entry], dst: Iterable[Entry]) -> Iterator[Pair]:
    """Walk two ascending listings together and yield one :class:`Pair` per compare key.

    Python compares ``str`` by code point, which is the UTF-8 byte order S3 lists keys in.
    Memory use is constant: one entry of each side is held at a time. Out-of-order or
    duplicate keys raise :class:`ListingOrderError` instead of being trusted.
    """
    src_it = _checked(src, "source")
    dst_it = _checked(dst, "destination")
    s = next(src_it, None)
    d = next(dst_it, None)
    while s is not None or d is not None:
        if d is None or (s is not None and s.key < d.key):
            yield Pair(s, None)
            s = next(src_it, None)
        elif s is None or d.key < s.key:
            yield Pair(None, d)
            d = next(dst_it, None)
        else:
            yield Pair(s, d)
            s = next(src_it, None)
            d = next(dst_it, None)
