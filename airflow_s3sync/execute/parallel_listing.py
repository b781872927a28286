"""A listing of many key ranges at once that is still one stream, in S3's order, in flat memory.

The ranges partition the keyspace in order; ``threads`` threads list them, each from its own
``StartAfter``, at most ``threads`` ranges ahead of the reader. What a range lists before the
reader gets to it waits in memory up to ``memory_entries`` entries a range, then in a temporary
file, so memory stays flat however far the listers run ahead. Each range is checked in order and
joined to the next (:mod:`airflow_s3sync.plan.ranged_read`): the stream is the sequential listing,
or a :class:`~airflow_s3sync.plan.merge.ListingOrderError` where it could differ from it.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import IO

from airflow_s3sync.plan.entries import Entry
from airflow_s3sync.plan.key_range import KeyRange
from airflow_s3sync.plan.ranged_read import UNREAD, RangeRead, check_joined

#: Entries per range kept in memory before the rest waits on disk (about 3 MB a range).
MEMORY_ENTRIES = 10_000
_CHUNK = 1_000

#: Lists every key after a ``StartAfter`` (``None``: from the first), in the server's order.
ListAfter = Callable[[str | None], Iterator[Entry]]


class _Stopped(Exception):
    """The reader closed the listing."""


class _RangeBuffer:
    """One range's entries between its lister and the reader: chunks in memory, and past
    ``memory_entries`` pickled to a temporary file as plain tuples (read back in order)."""

    def __init__(self, memory_entries: int) -> None:
        self._limit = memory_entries
        self._ready = threading.Condition()
        self._chunks: deque[list[Entry] | tuple[int, int]] = deque()
        self._in_memory = 0
        self._file: IO[bytes] | None = None
        self._written = 0
        self._done = False
        self._error: BaseException | None = None
        self.first_seen = threading.Event()

    def put(self, chunk: list[Entry]) -> None:
        """Add a chunk (called by the lister only)."""
        if self._in_memory + len(chunk) > self._limit:
            rows = [(entry.key, entry.size, entry.mtime, entry.etag, entry.storage_class) for entry in chunk]
            data = pickle.dumps(rows, protocol=pickle.HIGHEST_PROTOCOL)
            if self._file is None:
                self._file = tempfile.TemporaryFile(prefix="s3sync-listing-")
            os.pwrite(self._file.fileno(), data, self._written)
            item: list[Entry] | tuple[int, int] = (self._written, len(data))
            self._written += len(data)
        else:
            item = chunk
        with self._ready:
            if isinstance(item, list):
                self._in_memory += len(item)
            self._chunks.append(item)
            self._ready.notify()

    def end(self, error: BaseException | None = None) -> None:
        """No more chunks; the listing failed with ``error``, if given."""
        with self._ready:
            self._done, self._error = True, error
            self._ready.notify()
        self.first_seen.set()

    def __iter__(self) -> Iterator[Entry]:
        while True:
            with self._ready:
                while not self._chunks and not self._done:
                    self._ready.wait()
                if not self._chunks:
                    if self._error is not None:
                        raise self._error
                    return
                item = self._chunks.popleft()
                if isinstance(item, list):
                    self._in_memory -= len(item)
            if isinstance(item, list):
                yield from item
                continue
            assert self._file is not None
            for row in pickle.loads(os.pread(self._file.fileno(), item[1], item[0])):
                yield Entry(*row)

    def close(self) -> None:
        """Drop the temporary file."""
        if self._file is not None:
            self._file.close()


class ParallelListing:
    """The entries of ``ranges`` (a partition of the keyspace, in order), listed by ``threads``
    threads at once and given in order (see the module's docstring); iterate once, then
    :meth:`close` (also stops the listers early)."""

    def __init__(
        self,
        list_after: ListAfter,
        ranges: Sequence[KeyRange],
        *,
        threads: int,
        memory_entries: int = MEMORY_ENTRIES,
    ) -> None:
        self._list_after = list_after
        self._reads = [RangeRead(key_range) for key_range in ranges]
        self._buffers = [_RangeBuffer(memory_entries) for _ in ranges]
        self._pool = ThreadPoolExecutor(max_workers=max(threads, 1), thread_name_prefix="s3sync-ranged-listing")
        self._window = max(threads, 1)
        self._started = 0
        self._stopped = threading.Event()

    def _list(self, index: int) -> None:
        read, buffer = self._reads[index], self._buffers[index]
        listed = self._list_after(read.key_range.start_after)
        chunk: list[Entry] = []
        try:
            for entry in read.entries(self._seen(listed, read, buffer)):
                chunk.append(entry)
                if len(chunk) >= _CHUNK:
                    buffer.put(chunk)
                    chunk = []
            if chunk:
                buffer.put(chunk)
        except BaseException as error:  # noqa: BLE001 - handed to the reader, in order
            if chunk:
                buffer.put(chunk)  # what was listed before the error, as a sequential listing gives it
            buffer.end(error)
        else:
            buffer.end()
        finally:
            close = getattr(listed, "close", None)
            if close is not None:
                close()

    def _seen(self, listed: Iterator[Entry], read: RangeRead, buffer: _RangeBuffer) -> Iterator[Entry]:
        """``listed``, telling the reader once the range's first key is known; stops when closed."""
        for entry in listed:
            if self._stopped.is_set():
                raise _Stopped
            yield entry
            if not buffer.first_seen.is_set() and read.first_key is not UNREAD:
                buffer.first_seen.set()

    def _start_up_to(self, index: int) -> None:
        while self._started <= min(index, len(self._reads) - 1):
            self._pool.submit(self._list, self._started)
            self._started += 1

    def __iter__(self) -> Iterator[Entry]:
        for index, buffer in enumerate(self._buffers):
            self._start_up_to(index + self._window - 1)
            yield from buffer
            if index + 1 < len(self._reads):
                self._start_up_to(index + 1)  # with one thread, only now
                self._buffers[index + 1].first_seen.wait()
                if self._reads[index + 1].first_key is not UNREAD:  # else its listing failed: raised next
                    check_joined(self._reads[index], self._reads[index + 1])

    def close(self) -> None:
        """Stop the listers, wait for them, and drop what they left."""
        self._stopped.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        for buffer in self._buffers:
            buffer.close()
