from datetime import UTC, datetime, timedelta

import pytest

from airflow_s3sync.plan import (
    ActionKind,
    CompareMode,
    Direction,
    Entry,
    PathFilter,
    RefuseReason,
    build_rules,
    plan,
)
from airflow_s3sync.plan.decide import local_key_refusal

OLD = datetime(2026, 1, 1, tzinfo=UTC)
NEW = OLD + timedelta(hours=1)


def actions(src, dst, **kwargs):
    kwargs.setdefault("direction", Direction.UPLOAD)
    return [(a.kind, a.key) for a in plan(src, dst, **kwargs)]


SRC = [Entry("changed", 2, NEW), Entry("new", 1, NEW), Entry("same", 1, OLD)]
DST = [Entry("changed", 1, OLD), Entry("gone", 1, OLD), Entry("same", 1, OLD)]


def test_plan_without_delete_leaves_destination_only_items():
    assert actions(SRC, DST) == [
        (ActionKind.TRANSFER, "changed"),
        (ActionKind.TRANSFER, "new"),
        (ActionKind.SKIP, "same"),
    ]


def test_plan_with_delete_deletes_destination_only_items():
    assert (ActionKind.DELETE, "gone") in actions(SRC, DST, delete=True)


def test_excluded_destination_items_are_not_deleted():
    f = PathFilter(build_rules(exclude=["gone"]), src_root="/src", dst_root="b")
    result = actions(SRC, DST, delete=True, path_filter=f, src_path_prefix="/src/", dst_path_prefix="b/")
    assert (ActionKind.DELETE, "gone") not in result
    assert (ActionKind.TRANSFER, "new") in result


def test_size_only_mode_is_passed_through():
    src = [Entry("k", 1, NEW)]
    dst = [Entry("k", 1, OLD)]
    assert actions(src, dst) == [(ActionKind.TRANSFER, "k")]
    assert actions(src, dst, mode=CompareMode.SIZE_ONLY) == [(ActionKind.SKIP, "k")]


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("../x", RefuseReason.PARENT_DIRECTORY),
        ("a/../../x", RefuseReason.PARENT_DIRECTORY),
        ("..", RefuseReason.PARENT_DIRECTORY),
        ("/etc/passwd", RefuseReason.ABSOLUTE_PATH),
        ("a/..", RefuseReason.NOT_CANONICAL),
        ("a/../b", RefuseReason.NOT_CANONICAL),
        ("a//b", RefuseReason.NOT_CANONICAL),
        ("a/./b", RefuseReason.NOT_CANONICAL),
        ("dir/", RefuseReason.NOT_CANONICAL),
        (".", RefuseReason.NOT_CANONICAL),
        ("./a", RefuseReason.NOT_CANONICAL),
        (".hidden", None),
        ("a..b", None),
        ("...", None),
        ("trailing space ", None),
        ("back\\slash", None),
        ("ok.txt", None),
        ("a/b.c/d", None),
        ("..hidden/x", None),
    ],
)
def test_download_keys_that_escape_the_directory_are_refused(key, reason):
    assert local_key_refusal(key) is reason
    kinds = actions([Entry(key, 1, NEW)], [], direction=Direction.DOWNLOAD)
    assert kinds == [(ActionKind.TRANSFER if reason is None else ActionKind.REFUSE, key)]


def test_escaping_keys_are_fine_for_s3_destinations():
    assert actions([Entry("../x", 1, NEW)], [], direction=Direction.COPY) == [(ActionKind.TRANSFER, "../x")]


@pytest.mark.parametrize("storage_class", ["GLACIER", "DEEP_ARCHIVE"])
def test_archived_objects_are_refused_for_copy_and_download(storage_class):
    src = [Entry("cold", 1, NEW, storage_class=storage_class), Entry("warm", 1, NEW, storage_class="GLACIER_IR")]
    for direction in (Direction.COPY, Direction.DOWNLOAD):
        assert actions(src, [], direction=direction) == [(ActionKind.REFUSE, "cold"), (ActionKind.TRANSFER, "warm")]


def test_plan_is_lazy():
    def endless():
        n = 0
        while True:
            yield Entry(f"{n:09d}", 1, NEW)
            n += 1

    steps = plan(endless(), iter(()), direction=Direction.UPLOAD)
    assert [next(steps).key for _ in range(3)] == ["000000000", "000000001", "000000002"]


E1, E2 = '"' + "1" * 32 + '"', '"' + "2" * 32 + '-2"'


def test_checksum_mode_verifies_same_size_items_unless_their_etags_match():
    src = [
        Entry("local", 1, NEW),
        Entry("other-etag", 1, OLD, E1),
        Entry("resized", 1, OLD),
        Entry("same-etag", 1, NEW, E1),
    ]
    dst = [
        Entry("local", 1, OLD),
        Entry("other-etag", 1, NEW, E2),
        Entry("resized", 2, NEW),
        Entry("same-etag", 1, OLD, E1),
    ]
    assert actions(src, dst, direction=Direction.COPY, mode=CompareMode.CHECKSUM) == [
        (ActionKind.VERIFY, "local"),
        (ActionKind.VERIFY, "other-etag"),
        (ActionKind.TRANSFER, "resized"),
        (ActionKind.SKIP, "same-etag"),
    ]


def test_checksum_mode_does_not_trust_equal_etags_it_cannot_read():
    src, dst = [Entry("k", 1, OLD, '"opaque"')], [Entry("k", 1, OLD, '"opaque"')]
    assert actions(src, dst, direction=Direction.COPY, mode=CompareMode.CHECKSUM) == [(ActionKind.VERIFY, "k")]
