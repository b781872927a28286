"""One key range's share of a listing, read from its ``StartAfter``, and the check that joins
the ranges of a parallel listing into one listing that lost no key.

A range ``(start_after, end]`` is listed from ``StartAfter=start_after`` and read up to the first
key past ``end``, which is kept (:attr:`RangeRead.next_key`). The next range's listing, from
``StartAfter=end``, must begin with exactly that key (:func:`check_joined`). On a server whose
order or ``StartAfter`` is not S3's this is what keeps a key from being lost unseen: each
``StartAfter`` listing is a suffix of the one full listing, in the server's order; the first
range's is all of it; a range that reads only keys in range, ascending, up to a key ``h`` whose
suffix is the next range's listing, has read exactly the keys before ``h``. So, by induction,
the ranges read the whole listing, once, in S3's order — or one of the checks fails and says so
(a :class:`~airflow_s3sync.plan.merge.ListingOrderError`, as a sequential listing's order check).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from airflow_s3sync.plan.entries import Entry
from airflow_s3sync.plan.key_range import KeyRange
from airflow_s3sync.plan.merge import ListingOrderError

#: A range's first or next key not known yet (its listing has not got that far).
UNREAD = object()


class RangeRead:
    """Reads one range's listing (every key after ``key_range.start_after``, in the server's
    order) and yields its entries, checked in range and ascending, stopping at the first key
    past the range's end.

    :attr:`first_key` is the first key the listing gave at all (``None``: none), for the
    previous range's check; :attr:`next_key` the key it stopped at (``None``: the listing
    ended). Zero-byte keys ending in ``/`` (directory markers) are checked like any key but not
    yielded.
    """

    def __init__(self, key_range: KeyRange) -> None:
        self.key_range = key_range
        self.first_key: object = UNREAD
        self.next_key: object = UNREAD

    def entries(self, listed: Iterable[Entry]) -> Iterator[Entry]:
        """The range's entries of ``listed``; raises :class:`ListingOrderError` (side left
        unnamed) at a key out of S3's order or before the range."""
        key_range = self.key_range
        previous = key_range.start_after
        for entry in listed:
            key = entry.key
            if self.first_key is UNREAD:
                self.first_key = key
            if key_range.past_end(key):
                self.next_key = key
                return
            if previous is not None and key <= previous:
                raise ListingOrderError("", key, previous)
            previous = key
            if entry.size == 0 and key.endswith("/"):
                continue
            yield entry
        if self.first_key is UNREAD:
            self.first_key = None
        self.next_key = None


def check_joined(before: RangeRead, after: RangeRead) -> None:
    """Raise :class:`ListingOrderError` unless ``after``'s listing begins with the key
    ``before`` stopped at (both read that far)."""
    if before.next_key != after.first_key:
        boundary = str(before.key_range.end)
        found = after.first_key if isinstance(after.first_key, str) else before.next_key
        raise ListingOrderError("", str(found), boundary)
