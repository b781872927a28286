"""A listing put into S3's key order with bounded memory, for servers that list in their own.

Some S3-compatible servers list keys in an order of their own (by path segments: ``a/b``
before ``a-b``) and follow it for ``StartAfter``. Their listings are read whole, cut into
sorted runs of at most ``run_size`` entries that are spilled to temporary files, and merged
back, as s5cmd sorts its listings: memory holds one run while reading and one chunk per run
while merging, however many keys there are.
"""

from __future__ import annotations

import heapq
import pickle
import tempfile
from collections.abc import Iterable, Iterator
from operator import itemgetter
from typing import IO

from airflow_s3sync.plan.entries import Entry

#: Entries per sorted run held in memory (about 30 MB of entries).
RUN_SIZE = 100_000
_CHUNK = 1_000
_Row = tuple  # (key, size, mtime, etag, storage class)


def sorted_entries(entries: Iterable[Entry], *, run_size: int = RUN_SIZE) -> Iterator[Entry]:
    """``entries`` in ascending key order (duplicates kept, for the merge to refuse).

    The whole input is read before the first entry is given; up to ``run_size`` entries
    are sorted in memory, more are spilled to disk in sorted runs and merged.
    """
    runs: list[IO[bytes]] = []
    try:
        batch: list[_Row] = []
        for entry in entries:
            batch.append((entry.key, entry.size, entry.mtime, entry.etag, entry.storage_class))
            if len(batch) >= run_size:
                runs.append(_spill(batch))
                batch = []
        batch.sort(key=itemgetter(0))
        streams = [_read_run(run) for run in runs]
        if batch:
            streams.append(iter(batch))
        for row in heapq.merge(*streams, key=itemgetter(0)):
            yield Entry(*row)
    finally:
        for run in runs:
            run.close()


def _spill(batch: list[_Row]) -> IO[bytes]:
    batch.sort(key=itemgetter(0))
    run = tempfile.TemporaryFile(prefix="s3sync-listing-")
    for start in range(0, len(batch), _CHUNK):
        pickle.dump(batch[start : start + _CHUNK], run, protocol=pickle.HIGHEST_PROTOCOL)
    run.seek(0)
    return run


def _read_run(run: IO[bytes]) -> Iterator[_Row]:
    while True:
        try:
            chunk = pickle.load(run)
        except EOFError:
            return
        yield from chunk
