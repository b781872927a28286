"""Records waiting in a temporary file, so memory stays flat however many wait."""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Iterator
from types import TracebackType
from typing import Any


class Spool:
    """An append-only queue of picklable records kept in a temporary file."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile(prefix="s3sync-spool-")
        self.count = 0

    def add(self, record: Any) -> None:
        """Append ``record``."""
        pickle.dump(record, self._file, protocol=pickle.HIGHEST_PROTOCOL)
        self.count += 1

    def __iter__(self) -> Iterator[Any]:
        self._file.flush()
        self._file.seek(0)
        for _ in range(self.count):
            yield pickle.load(self._file)

    def close(self) -> None:
        """Drop the file."""
        self._file.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
