"""Listings read ahead in a thread of their own, so both sides are listed while the plan runs."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

_END = object()


class Prefetch:
    """Iterates ``items`` in a background thread, at most ``depth`` batches of ``batch`` items
    ahead of the consumer (a queue operation per item would cost more than it saves).

    An error of the listing is raised to the consumer where the listing stopped; :meth:`close`
    ends the thread early (the consumer stopped).
    """

    def __init__(self, items: Iterator[Any], *, depth: int = 8, batch: int = 500, name: str = "s3sync-listing") -> None:
        self._items = items
        self._batch = batch
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)  # of batches
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._fill, name=name, daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._closed.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _fill(self) -> None:
        batch: list[Any] = []
        try:
            for item in self._items:
                batch.append(item)
                if len(batch) >= self._batch:
                    if not self._put(batch):
                        return
                    batch = []
        except BaseException as error:  # noqa: BLE001 - handed to the consumer
            if self._put(batch):
                self._put(_Failure(error))
            return
        finally:
            close = getattr(self._items, "close", None)
            if close is not None:
                close()  # a listing with threads of its own stops them
        if self._put(batch):
            self._put(_END)

    def __iter__(self) -> Iterator[Any]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield from item

    def close(self) -> None:
        """Stop reading ahead and wait for the thread to end."""
        self._closed.set()
        self._thread.join()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error
