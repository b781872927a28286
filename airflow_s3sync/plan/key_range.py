"""Key ranges: one shard of a prefix's keyspace, ``start_after < key <= end``.

Keys are compared as S3 lists them, in UTF-8 byte order. For the strings S3 keys are (no lone
surrogates) that is the order of their code points, which is Python's own string order, so plain
``<`` is exact and no encoding is needed.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_s3sync.errors import S3SyncError
from airflow_s3sync.plan.entries import Entry


@dataclass(frozen=True, slots=True)
class KeyRange:
    """Keys ``k`` (relative to a location's prefix) with ``start_after < k <= end``.

    :param start_after: the key the range starts after; ``None`` is open (from the first key).
    :param end: the last key the range may hold; ``None`` is open (to the last key).
    """

    start_after: str | None = None
    end: str | None = None

    def __post_init__(self) -> None:
        for name in ("start_after", "end"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise S3SyncError(f"key_range {name} must be a string or None, got {value!r}")
        if self.start_after is not None and self.end is not None and self.start_after >= self.end:
            raise S3SyncError(
                f"key_range start_after {self.start_after!r} must sort before end {self.end!r} "
                "(keys k with start_after < k <= end): this range holds no key"
            )

    @property
    def is_full(self) -> bool:
        """Whether the range is the whole keyspace."""
        return self.start_after is None and self.end is None

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        return (self.start_after is None or key > self.start_after) and (self.end is None or key <= self.end)

    def past_end(self, key: str) -> bool:
        """Whether ``key`` sorts after the range (a sorted listing can stop there)."""
        return self.end is not None and key > self.end

    def may_hold_below(self, directory: str) -> bool:
        """Whether a key starting with ``directory`` (``"a/b/"``) can be in the range.

        Such keys sort after ``directory`` itself and before any string that is not an
        extension of it; so the subtree is outside when it starts at or after ``end``, or when
        ``start_after`` sorts after the directory without extending it.
        """
        if self.end is not None and directory >= self.end:
            return False
        return not (
            self.start_after is not None and self.start_after > directory and not self.start_after.startswith(directory)
        )

    def select(self, entries: Iterable[Entry]) -> Iterator[Entry]:
        """The entries in the range, wherever they come: a listing in no known order is read
        to its end."""
        if self.is_full:
            yield from entries
            return
        for entry in entries:
            if entry.key in self:
                yield entry

    def filter(self, entries: Iterable[Entry]) -> Iterator[Entry]:
        """The entries of a sorted listing that are in the range; stops at the first past it."""
        for entry in entries:
            if self.past_end(entry.key):
                return
            if entry.key in self:
                yield entry

    def describe(self) -> str:
        """``(start_after, end]`` for log lines; ``all keys`` for the full range."""
        if self.is_full:
            return "all keys"
        low = "first key" if self.start_after is None else repr(self.start_after)
        high = "last key" if self.end is None else repr(self.end)
        return f"keys after {low} up to {high}" if self.start_after is not None else f"keys up to {high}"

    def as_list(self) -> list[str | None]:
        """``[start_after, end]``, as ``S3KeyRangesOperator`` returns ranges."""
        return [self.start_after, self.end]


#: The default ``map_index_template`` of tasks mapped over ``key_range``: the range, readable.
KEY_RANGE_MAP_INDEX_TEMPLATE = "{{ task.key_range_label }}"


def parse_key_range(value: Any) -> KeyRange:
    """A ``key_range`` parameter as a :class:`KeyRange`.

    Accepts ``None`` (the whole keyspace), a :class:`KeyRange`, a pair ``(start_after, end)``
    (a list from XCom, a tuple in a DAG file) or that pair as a string (a rendered template:
    JSON, or a Python list's repr), each side a string or ``None``; anything else is an error naming what was given.
    """
    if value is None:
        return KeyRange()
    if isinstance(value, KeyRange):
        return value
    if isinstance(value, str):  # a rendered template: JSON, or Python's repr of a list
        try:
            value = json.loads(value)
        except ValueError:
            try:
                value = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                raise S3SyncError(
                    f"key_range must be a pair [start_after, end] (strings or null), got the string {value!r}"
                ) from None
    if not isinstance(value, Sequence) or isinstance(value, str | bytes) or len(value) != 2:
        raise S3SyncError(f"key_range must be a pair [start_after, end] (strings or None), got {value!r}")
    return KeyRange(value[0], value[1])
