"""The local filesystem side: a sorted, lazy walk and the writes a download needs."""

from __future__ import annotations

import logging
import os
import re
import secrets
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from types import TracebackType
from typing import BinaryIO

from airflow_s3sync.errors import S3SyncError
from airflow_s3sync.plan.entries import Entry
from airflow_s3sync.plan.key_range import KeyRange

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no locks, so stale temporary files are only skipped
    fcntl = None  # type: ignore[assignment]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: The suffix of a download's temporary file: ``.NAME.XXXXXXXX.s3sync`` beside ``NAME``.
TEMP_SUFFIX = ".s3sync"
_TEMP_NAME = re.compile(r"\..+\.[0-9a-f]{8}\.s3sync", re.DOTALL)
_NAME_MAX = 255


def temp_name(name: str) -> str:
    """A fresh temporary name for a download of the file ``name``: ``.NAME.XXXXXXXX.s3sync``, the
    name cut (at a character boundary) so the whole fits in 255 bytes."""
    suffix = f".{secrets.token_hex(4)}{TEMP_SUFFIX}"
    stem = f".{name}".encode()[: _NAME_MAX - len(suffix)].decode(errors="ignore")
    return stem + suffix


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is one :func:`temp_name` makes."""
    return _TEMP_NAME.fullmatch(name) is not None


class AtomicFile:
    """A download's temporary file beside ``path``, renamed over it by :meth:`commit` and removed
    if the download fails; a context manager.

    The file is locked (``flock``) while it is written: a killed process's lock goes with it, so
    a later walk tells a temporary file left by an interrupted download (unlocked: removed) from
    one another run is writing right now (locked: left alone). Either way the walk never lists one.
    """

    def __init__(self, path: str) -> None:
        directory, name = os.path.split(path)
        self.path = path
        self.temp = os.path.join(directory, temp_name(name))
        # Mode 0o666 as for any new file, so the umask applies (mkstemp would make it 0o600).
        fd = os.open(self.temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self.file: BinaryIO = os.fdopen(fd, "wb")
        except BaseException:
            os.close(fd)
            os.unlink(self.temp)
            raise
        self._done = False

    def commit(self) -> None:
        """Flush the data and rename the temporary file over ``path`` (the lock is held until then)."""
        self.file.flush()
        os.replace(self.temp, self.path)
        self._done = True
        self.file.close()

    def discard(self) -> None:
        """Remove the temporary file, unless committed (nothing is left under either name)."""
        if self._done:
            return
        self._done = True
        try:
            os.unlink(self.temp)
        except FileNotFoundError:
            pass
        finally:
            self.file.close()

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.discard()


def remove_if_stale(path: str) -> bool:
    """Remove the temporary file ``path`` unless a live download holds its lock; whether it did."""
    if fcntl is None:
        return False
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.unlink(path)
    except OSError:
        return False  # being written (or gone)
    finally:
        os.close(fd)
    return True


class LocalTree:
    """Files below one local directory, listed in S3 key order.

    The walk is depth-first and lazy: one directory's names are held at a time, sorted
    with ``/`` appended to directory names so that the order equals S3's UTF-8 byte order
    of the resulting keys (``a-b`` < ``a.b`` < ``a/b`` < ``a0``). Like ``aws s3 sync``,
    symlinks are followed unless ``follow_symlinks=False`` (then they are skipped
    silently); broken links, special files and unreadable entries are skipped with a
    warning. Unlike it, symlink loops are detected and skipped instead of nested ~40 deep.
    The temporary files of downloads (``.NAME.XXXXXXXX.s3sync``) are never listed; with
    ``remove_stale_temp_files`` (a download's destination, not in a dry run) those an
    interrupted download left behind are removed as the walk meets them.

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
        #: Remove the temporary files interrupted downloads left (set for a download's destination).
        self.remove_stale_temp_files = False
        #: Temporary files the walk removed.
        self.removed_temp_files = 0
        self._last_parent: str | None = None

    def _warn(self, message: str) -> None:
        self.warnings += 1
        self.log.warning("warning: %s", message)

    def iter_entries(self, *, key_range: KeyRange | None = None) -> Iterator[Entry]:
        """Yield every file below the root (in ``key_range``) as an :class:`Entry`, ascending by key.

        A missing root yields nothing (a download destination that does not exist yet). With a
        key range, directories that cannot hold a key of it are not read, and the walk ends
        at the first key past it.
        """
        if not os.path.isdir(self.root):
            return
        root_stat = os.stat(self.root)
        entries = self._walk(self.root, "", frozenset({(root_stat.st_dev, root_stat.st_ino)}), key_range)
        yield from entries if key_range is None else key_range.filter(entries)

    def _walk(
        self, directory: str, rel: str, ancestors: frozenset[tuple[int, int]], key_range: KeyRange | None
    ) -> Iterator[Entry]:
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
            if key_range is not None and not key_range.may_hold_below(rel + sort_name):
                continue
            identity = (st.st_dev, st.st_ino)
            if identity in ancestors:
                self._warn(f"Skipping file {path}. It is a symbolic link loop.")
                continue
            yield from self._walk(path, rel + sort_name, ancestors | {identity}, key_range)

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
            if is_temp_name(dir_entry.name):
                self._temp_file(path)
                return None
            return dir_entry.name, path, st, False
        self._warn(f"Skipping file {path}. File is character special device, block special device, FIFO, or socket.")
        return None

    def _temp_file(self, path: str) -> None:
        """A download's temporary file: never data; removed if an interrupted download left it."""
        if self.remove_stale_temp_files and remove_if_stale(path):
            self.removed_temp_files += 1
            self.log.info("removed %s, the temporary file of an interrupted download", path)
        else:
            self.log.debug("skip %s: the temporary file of a download", path)

    def _mtime(self, path: str, st: os.stat_result) -> datetime:
        try:
            return datetime.fromtimestamp(st.st_mtime, UTC)
        except (OverflowError, ValueError, OSError):
            self._warn(f"File {path} has an invalid timestamp; the epoch (1970-01-01) is used as its time.")
            return _EPOCH

    def lookup(self, key: str) -> Entry | None:
        """The file of ``key`` as the walk would list it, or ``None``: no such file, not a
        regular file, a download's temporary file, a symlink not followed, or a key the walk
        would never list (not canonical: ``a//b``, ``./a``). An error other than a missing
        file is raised: the lookup is then incomplete."""
        if not local_key_is_canonical(key):
            return None
        path = os.path.join(self.root, *key.split("/"))
        if is_temp_name(os.path.basename(path)):
            return None
        try:
            if not self.follow_symlinks and _any_link(self.root, key):
                return None
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        return Entry(key=key, size=st.st_size, mtime=self._mtime(path, st))

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
        """Set atime and mtime to ``when``, to the microsecond.

        S3 gives whole seconds, and so does the AWS CLI; other servers (rclone's) give
        milliseconds, which a file set to whole seconds would never match again: every
        ``exact_timestamps`` run would download it anew. The UTC epoch is used directly, which
        avoids the AWS CLI's DST bug (aws-cli#6595).
        """
        nanoseconds = int(when.replace(microsecond=0).timestamp()) * 1_000_000_000 + when.microsecond * 1_000
        os.utime(path, ns=(nanoseconds, nanoseconds))


def local_key_is_canonical(key: str) -> bool:
    """Whether ``key`` is a relative path the walk could list: no empty, ``.`` or ``..``
    segment, no leading or trailing ``/``."""
    return bool(key) and all(segment not in ("", ".", "..") for segment in key.split("/"))


def _any_link(root: str, key: str) -> bool:
    """Whether the path of ``key`` below ``root``, or a directory on the way, is a symlink."""
    path = root
    for segment in key.split("/"):
        path = os.path.join(path, segment)
        if os.path.islink(path):
            return True
    return False
