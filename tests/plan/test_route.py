"""The routing table: which call carries each transfer, what is read first, what follows."""

import pytest

from airflow_s3sync.plan import Direction
from airflow_s3sync.plan.route import RouteContext, TransferKind, TransferSpec, native_key, route

MIB = 1024 * 1024
UP, COPY, DOWN = Direction.UPLOAD, Direction.COPY, Direction.DOWNLOAD


@pytest.mark.parametrize(
    ("context", "size", "key", "expected"),
    [
        # uploads and downloads: the native client for small objects with keys it keeps as they are
        (RouteContext(UP, native=True), 10, "a/b.txt", TransferSpec(TransferKind.UPLOAD, native=True)),
        (RouteContext(UP, native=False), 10, "a/b.txt", TransferSpec(TransferKind.UPLOAD)),
        (RouteContext(UP, native=True), 8 * MIB, "big", TransferSpec(TransferKind.UPLOAD)),
        (RouteContext(UP, native=True), 8 * MIB - 1, "big", TransferSpec(TransferKind.UPLOAD, native=True)),
        (RouteContext(UP, native=True), 10, "ctl\x01.txt", TransferSpec(TransferKind.UPLOAD)),
        (
            RouteContext(DOWN, native=True),
            10,
            "a/b.txt",
            TransferSpec(TransferKind.DOWNLOAD, native=True, set_mtime=True),
        ),
        (RouteContext(DOWN, native=True), 10, "a//b.txt", TransferSpec(TransferKind.DOWNLOAD, set_mtime=True)),
        (RouteContext(DOWN, native=True), 9 * MIB, "a", TransferSpec(TransferKind.DOWNLOAD, set_mtime=True)),
        # same-endpoint copies: one CopyObject up to the cutoff, parts above it
        (RouteContext(COPY, native=True), 10, "k", TransferSpec(TransferKind.COPY)),
        (RouteContext(COPY, copy_cutoff=5 * MIB), 5 * MIB, "k", TransferSpec(TransferKind.COPY)),
        (RouteContext(COPY, copy_cutoff=5 * MIB), 5 * MIB + 1, "k", TransferSpec(TransferKind.PART_COPY)),
        (
            RouteContext(COPY, copy_object_lock=True, copy_tags=True),
            20 * MIB,
            "k",
            TransferSpec(TransferKind.COPY, read_lock=True),  # CopyObject carries lock headers and tags itself
        ),
        (
            RouteContext(COPY, copy_cutoff=MIB, copy_object_lock=True, copy_tags=True),
            20 * MIB,
            "k",
            TransferSpec(TransferKind.PART_COPY, read_lock=True, read_tags=True, lock_after=True, tags_after=True),
        ),
        # between endpoints: streamed and verified; lock again after a multipart write
        # ... written by the native client when small (read whole by one GetObject) with a key it keeps
        (
            RouteContext(COPY, streamed=True, native=True),
            MIB,
            "k",
            TransferSpec(TransferKind.STREAM, native=True, verify=True),
        ),
        (RouteContext(COPY, streamed=True, native=True), MIB + 1, "k", TransferSpec(TransferKind.STREAM, verify=True)),
        (RouteContext(COPY, streamed=True, native=True), 10, "a//k", TransferSpec(TransferKind.STREAM, verify=True)),
        (
            RouteContext(COPY, streamed=True, copy_object_lock=True, copy_tags=True),
            10,
            "k",
            TransferSpec(TransferKind.STREAM, read_tags=True, verify=True),
        ),
        (
            RouteContext(COPY, streamed=True, copy_object_lock=True),
            8 * MIB,
            "k",
            TransferSpec(TransferKind.STREAM, verify=True, lock_after=True),
        ),
    ],
)
def test_route(context, size, key, expected):
    assert route(context, size=size, object_key=key) == expected


def test_access_points_never_take_the_native_client():
    spec = route(RouteContext(UP, native=True), size=10, object_key="k", bucket_is_plain=False)
    assert spec == TransferSpec(TransferKind.UPLOAD)


@pytest.mark.parametrize(
    "key",
    ["a", "a/b", "sp ace", "pct%20", "hash#", "q?", "plus+", "tilde~", "ünï/çødé", "star*", ".hidden", "..foo/bar"],
)
def test_keys_the_native_client_keeps_unchanged(key):
    assert native_key(key)


@pytest.mark.parametrize(
    "key", ["", "dir/", "/lead", "a//b", "./x", "x/./y", "x/../y", "..", "ctl\x01", "tab\there", "del\x7f", "nl\n"]
)
def test_keys_the_native_client_would_rewrite_or_reject(key):
    assert not native_key(key)
