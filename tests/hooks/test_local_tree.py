import logging
import os

import pytest

from airflow_s3sync.errors import S3SyncError
from airflow_s3sync.hooks.local import LocalTree
from tests.conftest import write


def keys(tree: LocalTree) -> list[str]:
    return [entry.key for entry in tree.iter_entries()]


def test_walk_yields_s3_key_order_not_directory_order(tmp_path):
    names = ["ab", "a0", "a/b", "a/c/d", "a.txt", "a-b.txt", "a!", "A.txt", "b c", "é", "z/a"]
    for name in names:
        write(tmp_path / name)
    result = keys(LocalTree(str(tmp_path)))
    assert result == ["A.txt", "a!", "a-b.txt", "a.txt", "a/b", "a/c/d", "a0", "ab", "b c", "z/a", "é"]
    assert result == sorted(result, key=lambda k: k.encode("utf-8"))


def test_entries_carry_size_and_subsecond_mtime(tmp_path):
    path = write(tmp_path / "f", "hello")
    os.utime(path, (1_700_000_000.25, 1_700_000_000.25))
    (entry,) = LocalTree(str(tmp_path)).iter_entries()
    assert entry.size == 5
    assert entry.mtime.timestamp() == 1_700_000_000.25
    assert entry.mtime.tzinfo is not None


def test_empty_directories_produce_nothing_and_missing_root_is_empty(tmp_path):
    (tmp_path / "empty" / "deeper").mkdir(parents=True)
    assert keys(LocalTree(str(tmp_path))) == []
    assert keys(LocalTree(str(tmp_path / "missing"))) == []


def test_symlinks_are_followed_by_default_and_skipped_silently_otherwise(tmp_path, caplog):
    outside = tmp_path / "outside"
    write(outside / "inner.txt", "inner")
    root = tmp_path / "root"
    write(root / "real.txt", "real")
    (root / "link.txt").symlink_to(root / "real.txt")
    (root / "linkdir").symlink_to(outside)

    assert keys(LocalTree(str(root))) == ["link.txt", "linkdir/inner.txt", "real.txt"]
    with caplog.at_level(logging.WARNING):
        tree = LocalTree(str(root), follow_symlinks=False)
        assert keys(tree) == ["real.txt"]
    assert tree.warnings == 0


def test_broken_links_and_special_files_are_skipped_with_a_warning(tmp_path, caplog):
    write(tmp_path / "ok")
    (tmp_path / "broken").symlink_to(tmp_path / "nowhere")
    os.mkfifo(tmp_path / "fifo")
    tree = LocalTree(str(tmp_path), log=logging.getLogger("walk"))
    with caplog.at_level(logging.WARNING, logger="walk"):
        assert keys(tree) == ["ok"]
    assert tree.warnings == 2
    assert tree.complete
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "broken. File does not exist." in messages
    assert "FIFO" in messages


def test_symlink_loops_are_detected(tmp_path):
    write(tmp_path / "d" / "f")
    (tmp_path / "d" / "loop").symlink_to(tmp_path / "d")
    tree = LocalTree(str(tmp_path))
    assert keys(tree) == ["d/f"]
    assert tree.warnings == 1


def test_path_for_stays_inside_the_root(tmp_path):
    tree = LocalTree(str(tmp_path))
    assert tree.path_for("a/../b") == str(tmp_path / "b")
    assert tree.path_for("a//b") == str(tmp_path / "a" / "b")
    for key in ("../x", "a/../../x", "a/.."):
        with pytest.raises(S3SyncError):
            tree.path_for(key)


def test_set_mtime_keeps_the_microseconds_so_a_listing_reads_the_same_time_back(tmp_path):
    from datetime import UTC, datetime

    path = write(tmp_path / "f")
    when = datetime(2026, 3, 29, 1, 30, 59, 708000, tzinfo=UTC)  # rclone's LastModified has milliseconds
    LocalTree.set_mtime(str(path), when)
    assert (
        os.stat(path).st_mtime_ns == int(datetime(2026, 3, 29, 1, 30, 59, tzinfo=UTC).timestamp()) * 10**9 + 708 * 10**6
    )
    [entry] = LocalTree(str(tmp_path)).iter_entries()
    assert entry.mtime == when
