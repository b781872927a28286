"""KeyRange: one shard of a keyspace, start_after < key <= end in UTF-8 byte order."""

from __future__ import annotations

import random

import pytest

from airflow_s3sync.errors import S3SyncError
from airflow_s3sync.plan.entries import Entry
from airflow_s3sync.plan.key_range import KeyRange, parse_key_range

KEYS = ["a", "a-b", "a.b", "a/", "a/b", "a/b/c", "a/c", "a0", "b", "é", "日本", "\U0001f600"]


def test_python_string_order_is_utf8_byte_order_for_keys():
    shuffled = random.Random(3).sample(KEYS, len(KEYS))
    assert sorted(shuffled) == sorted(shuffled, key=lambda key: key.encode("utf-8"))


def test_bounds_are_exclusive_below_and_inclusive_above():
    shard = KeyRange("a/", "a0")
    assert [key for key in KEYS if key in shard] == ["a/b", "a/b/c", "a/c", "a0"]
    assert "a/" not in shard and "a0" in shard
    assert shard.past_end("b") and not shard.past_end("a0")
    assert [key for key in KEYS if key in KeyRange(None, "a-b")] == ["a", "a-b"]
    assert [key for key in KEYS if key in KeyRange("日本", None)] == ["\U0001f600"]
    assert all(key in KeyRange() for key in KEYS) and KeyRange().is_full


@pytest.mark.parametrize("start_after", [None, "", "a", "a/", "a/b", "a/bz", "a0", "b"])
@pytest.mark.parametrize("end", [None, "a", "a/", "a/a", "a/b", "a/b/c", "a0", "c"])
def test_directory_pruning_never_drops_a_key_in_the_range(start_after, end):
    if start_after is not None and end is not None and start_after >= end:
        return
    shard = KeyRange(start_after, end)
    for directory in ("a/", "a/b/", "b/", "a/b/c/"):
        extra = ["a/b/c/d", "b/x", "a/b/zz"]
        below = [key for key in KEYS + extra if key.startswith(directory) and key != directory]
        if any(key in shard for key in below):
            assert shard.may_hold_below(directory), (directory, below)


def test_directory_pruning_prunes():
    assert not KeyRange("b", None).may_hold_below("a/")
    assert not KeyRange(None, "a/").may_hold_below("a/")  # every key below sorts after "a/"
    assert not KeyRange(None, "a.z").may_hold_below("a/")
    assert KeyRange("a/b", None).may_hold_below("a/")


def test_filter_stops_at_the_first_key_past_the_end():
    seen = []

    def listing():
        for key in KEYS:
            seen.append(key)
            yield Entry(key, 1, None)

    assert [entry.key for entry in KeyRange("a/", "a/c").filter(listing())] == ["a/b", "a/b/c", "a/c"]
    assert seen[-1] == "a0"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, KeyRange()),
        (["a", "b"], KeyRange("a", "b")),
        (("a", None), KeyRange("a", None)),
        ([None, None], KeyRange()),
        ('["a", null]', KeyRange("a", None)),
        ("['a', 'b']", KeyRange("a", "b")),
        ("[None, 'b']", KeyRange(None, "b")),
    ],
)
def test_parse(given, expected):
    assert parse_key_range(given) == expected


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (["b", "a"], "must sort before end"),
        (["a", "a"], "must sort before end"),
        (["a"], "pair"),
        ("a", "pair"),
        ([1, 2], "string or None"),
        ({"start_after": "a"}, "pair"),
    ],
)
def test_parse_rejects(given, message):
    with pytest.raises(S3SyncError, match=message):
        parse_key_range(given)


def test_describe():
    assert KeyRange().describe() == "all keys"
    assert KeyRange(None, "m").describe() == "keys up to 'm'"
    assert KeyRange("m", None).describe() == "keys after 'm' up to last key"
