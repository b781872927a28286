"""The decision tables of sync-semantics.md section 2.4, row by row."""

from datetime import UTC, datetime, timedelta

import pytest

from airflow_s3sync.plan import CompareMode, Direction, Entry, needs_transfer

T = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
D, S, E = CompareMode.DEFAULT, CompareMode.SIZE_ONLY, CompareMode.EXACT_TIMESTAMPS

# (sizes equal?, source time - destination time in seconds, default, size_only, exact_timestamps)
UPLOAD_AND_COPY = [
    (False, 0, True, True, True),
    (False, -10, True, True, True),
    (True, 10, True, False, True),
    (True, 0, False, False, False),
    (True, -10, False, False, False),
    (True, 0.5, True, False, True),  # sub-second local mtime counts as newer
]
# For downloads the source is S3 and the destination is the local file.
DOWNLOAD = [
    (False, 0, True, True, True),
    (True, -10, True, False, True),  # local newer: overwritten by the S3 copy
    (True, 0, False, False, False),
    (True, 10, False, False, True),  # S3 newer: skipped unless exact timestamps
]


def decide(direction, same_size, src_minus_dst, mode):
    src = Entry("k", 10, T + timedelta(seconds=src_minus_dst))
    dst = Entry("k", 10 if same_size else 11, T)
    return needs_transfer(src, dst, direction=direction, mode=mode)[0]


@pytest.mark.parametrize("direction", [Direction.UPLOAD, Direction.COPY])
@pytest.mark.parametrize(("same_size", "delta", "default", "size_only", "exact"), UPLOAD_AND_COPY)
def test_upload_and_copy_table(direction, same_size, delta, default, size_only, exact):
    assert decide(direction, same_size, delta, D) is default
    assert decide(direction, same_size, delta, S) is size_only
    assert decide(direction, same_size, delta, E) is exact


@pytest.mark.parametrize(("same_size", "delta", "default", "size_only", "exact"), DOWNLOAD)
def test_download_table(same_size, delta, default, size_only, exact):
    assert decide(Direction.DOWNLOAD, same_size, delta, D) is default
    assert decide(Direction.DOWNLOAD, same_size, delta, S) is size_only
    assert decide(Direction.DOWNLOAD, same_size, delta, E) is exact


def test_exact_timestamps_wins_over_size_only():
    assert CompareMode.from_flags(size_only=True, exact_timestamps=True) is E
    assert CompareMode.from_flags(size_only=True, exact_timestamps=False) is S
    assert CompareMode.from_flags(size_only=False, exact_timestamps=False) is D


def test_times_in_different_zones_compare_as_instants():
    src = Entry("k", 1, T)
    dst = Entry("k", 1, T.astimezone(__import__("datetime").timezone(timedelta(hours=5))))
    assert needs_transfer(src, dst, direction=Direction.UPLOAD, mode=D) == (False, "same size, source is not newer")
