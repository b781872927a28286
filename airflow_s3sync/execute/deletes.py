"""Destination-only keys waiting until every transfer is done, spooled to disk."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from types import TracebackType


class DeleteQueue:
    """An append-only queue of keys kept in a temporary file, so memory stays flat no matter
    how many deletes a run plans. Keys are stored as JSON strings (S3 keys may hold newlines).
    """

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile("w+", encoding="utf-8")
        self.count = 0

    def add(self, key: str) -> None:
        """Queue ``key`` for deletion."""
        self._file.write(json.dumps(key) + "\n")
        self.count += 1

    def __iter__(self) -> Iterator[str]:
        self._file.flush()
        self._file.seek(0)
        for line in self._file:
            yield json.loads(line)

    def close(self) -> None:
        """Drop the spool file."""
        self._file.close()

    def __enter__(self) -> DeleteQueue:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
