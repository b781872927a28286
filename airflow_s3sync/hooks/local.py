"""The local filesystem side: a sorted, lazy walk and the writes a download needs."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime

from airflow_s3sync.errors import S3SyncError
from airflow_s3sync.plan.entries import Entry

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class LocalTree:
    """Files below one local directory, listed in S3 key order.

    The walk is depth-first and lazy: one directory's names are held at a time, sorted
    with ``/`` appended to directory names so that the order equals S3's UTF-8 byte order
    of the resulting keys (``a-b`` < ``a.b`` < ``a/b`` < ``a0``). Like ``aws s3 sync``,
    symlinks are followed unless ``follow_symlinks=False`` (then they are skipped
    silently); broken links, special files and unreadable entries are skipped with a
    warning. Unlike it, symlink loops are detected and skipped instead of nested ~40 deep.

    :param root: the directory; relative paths are made absolute now.
    :param follow_symlinks: follow symlinks to files and directories.
    :param log: where warnings go.
    """

    def __init__(self, root: str, *, follow_symlinks: bool = True, log: logging.Logger | None = None) -> None:
        self.root = os.path.abspath(root)
        self.follow_symlinks = follow_symlinks
        self.log = log or logging.getLogger(__name__)
        #: False once a directory could not be read: then the listing is incomplete and
        #: nothing may be deleted on the strength of it.
        self.complete = True
        self.warnings = 0
        self._last_parent: str | None = None

    def _warn(self, message: str) -> None:
        self.warnings += 1
        self.log.warning("warning: %s", message)

    def iter_entries(self) -> Iterator[Entry]:
        """Yield every file below the root as an :class:`Entry`, ascending by key.

        A missing root yields nothing (a download destination that does not exist yet).
        """
        if not os.path.isdir(self.root):
            return
        root_stat = os.stat(self.root)
        yield from self._walk(self.root, "", frozenset({(root_stat.st_dev, root_stat.st_ino)}))

    def _walk(self, directory: str, rel: str, ancestors: frozenset[tuple[int, int]]) -> Iterator[Entry]:
        try:
            with os.scandir(directory) as scan:
                dir_entries = list(scan)
        except OSError:
            self.complete = False
            self._warn(f"Skipping file {directory}{os.sep}. File/Directory is not readable.")
            return
        items: list[tuple[str, str, os.stat_result, bool]] = []
        for dir_entry in dir_entries:
            item = self._classify(dir_entry)
            if item is not None:
                items.append(item)
        items.sort(key=lambda item: item[0])
        for sort_name, path, st, is_dir in items:
            if not is_dir:
                yield Entry(key=rel + sort_name, size=st.st_size, mtime=self._mtime(path, st))
                continue
            identity = (st.st_dev, st.st_ino)
            if identity in ancestors:
                self._warn(f"Skipping file {path}. It is a symbolic link loop.")
                continue
            yield from self._walk(path, rel + sort_name, ancestors | {identity})

    def _classify(self, dir_entry: os.DirEntry[str]) -> tuple[str, str, os.stat_result, bool] | None:
        """(sort name, path, stat, is_dir) of a directory entry, or None to skip it."""
        path = dir_entry.path
        try:
            dir_entry.name.encode("utf-8")
        except UnicodeEncodeError:
            self._warn(f"Skipping file {path!r}. Its name cannot be encoded as UTF-8; check the locale settings.")
            return None
        try:
            if dir_entry.is_symlink() and not self.follow_symlinks:
                return None
            st = dir_entry.stat(follow_symlinks=True)
        except FileNotFoundError:
            self._warn(f"Skipping file {path}. File does not exist.")
            return None
        except OSError:
            self._warn(f"Skipping file {path}. File/Directory is not readable.")
            return None
        if stat.S_ISDIR(st.st_mode):
            return dir_entry.name + "/", path, st, True
        if stat.S_ISREG(st.st_mode):
            return dir_entry.name, path, st, False
        self._warn(f"Skipping file {path}. File is character special device, block special device, FIFO, or socket.")
        return None

    def _mtime(self, path: str, st: os.stat_result) -> datetime:
        try:
            return datetime.fromtimestamp(st.st_mtime, UTC)
        except (OverflowError, ValueError, OSError):
            self._warn(f"File {path} has an invalid timestamp; the epoch (1970-01-01) is used as its time.")
            return _EPOCH

    def path_for(self, key: str) -> str:
        """The absolute local path of ``key``; raises if it would fall outside the root."""
        path = os.path.normpath(os.path.join(self.root, *key.split("/")))
        if os.path.commonpath([self.root, path]) != self.root or path == self.root:
            raise S3SyncError(f"key {key!r} would be written outside {self.root}")
        return path

    def prepare_parent(self, path: str) -> None:
        """Create the directories a file at ``path`` needs.

        Keys arrive in sorted order, so files of one directory come together: remembering the
        last directory made spares a ``makedirs`` (and its failed ``mkdir``) per file.
        """
        parent = os.path.dirname(path)
        if parent != self._last_parent:
            os.makedirs(parent, exist_ok=True)
            self._last_parent = parent

    def delete(self, key: str) -> None:
        """Remove the file of ``key`` (empty directories are left, as ``aws s3 sync`` does)."""
        os.remove(self.path_for(key))

    @staticmethod
    def set_mtime(path: str, when: datetime) -> None:
        """Set atime and mtime to ``when`` truncated to whole seconds.

        The UTC epoch is used directly, which avoids the AWS CLI's DST bug (aws-cli#6595).
        """
        seconds = int(when.timestamp())
        os.utime(path, (seconds, seconds))
