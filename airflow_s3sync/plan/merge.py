"""One-pass merge of two listings sorted in S3 key order."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from airflow_s3sync.plan.entries import Entry, Pair


class ListingOrderError(ValueError):
    """A listing was not strictly ascending; merging it would give wrong decisions.

    :param side: ``"source"`` or ``"destination"`` (``""`` when the listing itself found it, for
        the merge to name).
    :param key: the key that came too late.
    :param previous: the key listed before it.
    """

    def __init__(self, side: str, key: str, previous: str) -> None:
        self.side, self.key, self.previous = side, key, previous
        what = "a duplicate key" if key == previous else "not in ascending key order"
        super().__init__(f"{side} listing is {what}: {key!r} came after {previous!r}")


def path_order_differs(lower: str, higher: str) -> bool:
    """Whether a server that lists by path segments (``a/b`` before ``a-b``, as a directory
    walk does) lists ``lower`` after ``higher``, where S3's byte order has ``lower`` first.

    The two orders disagree exactly where, at the first character the keys differ in,
    ``higher`` has the ``/`` and ``lower`` a character that sorts below it (`` !"#$%&'()*+,-.``).
    """
    for low, high in zip(lower, higher, strict=False):
        if low != high:
            return high == "/"
    return False  # one is a prefix of the other: both orders put it first


def _checked(entries: Iterable[Entry], side: str) -> Iterator[Entry]:
    previous: str | None = None
    try:
        for entry in entries:
            if previous is not None and entry.key <= previous:
                raise ListingOrderError(side, entry.key, previous)
            previous = entry.key
            yield entry
    except ListingOrderError as error:
        if error.side:
            raise
        raise ListingOrderError(side, error.key, error.previous) from error  # found by the listing itself


def merge(src: Iterable[Entry], dst: Iterable[Entry]) -> Iterator[Pair]:
    """Walk two ascending listings together and yield one :class:`Pair` per compare key.

    Python compares ``str`` by code point, which is the UTF-8 byte order S3 lists keys in.
    Memory use is constant: one entry of each side is held at a time. Out-of-order or
    duplicate keys raise :class:`ListingOrderError` instead of being trusted.

    A source-only pair is ``unsure`` when the destination's next key could come first on a
    server that lists by path segments (:func:`path_order_differs`): if the destination's
    listing later turns out to be out of order, it may still hold the key.
    """
    src_it = _checked(src, "source")
    dst_it = _checked(dst, "destination")
    s = next(src_it, None)
    d = next(dst_it, None)
    while s is not None or d is not None:
        if d is None or (s is not None and s.key < d.key):
            assert s is not None
            yield Pair(s, None, unsure=d is not None and path_order_differs(s.key, d.key))
            s = next(src_it, None)
        elif s is None or d.key < s.key:
            yield Pair(None, d)
            d = next(dst_it, None)
        else:
            yield Pair(s, d)
            s = next(src_it, None)
            d = next(dst_it, None)
