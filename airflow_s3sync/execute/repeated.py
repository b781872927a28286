"""A server error that answers object after object ends the run at once, not after hours of
retries: a server answering ``500`` for its own configuration (SSE-S3 asked for, not set up)
would otherwise cost a minute of retries per object."""

from __future__ import annotations

import threading
from collections.abc import Callable

from airflow_s3sync.hooks.backend import RepeatedError

#: Objects in a row answered with the same error, no object done in between, that end the run.
STREAK = 20
#: Objects in a row answered with the same error beyond which its requests are no longer retried.
SUSPECT = 5
_SHOWN = 5


class RepeatedErrors:
    """Counts the objects answered in a row with the same server error (by its signature,
    :func:`~airflow_s3sync.hooks.backend.answer_signature`); any object done resets it.

    Clients call :meth:`request_failed` before retrying a request: once more than ``suspect``
    objects in a row got the error, it raises :class:`RepeatedError`, so the request fails at
    once (those already retrying stop at their next answer). The job runner
    calls :meth:`object_failed` for each object that finally failed and :meth:`object_done` for
    each that succeeded; from ``streak`` objects in a row on, :attr:`message` says why the
    run stops (and ``on_streak`` is called, once).
    """

    def __init__(
        self, *, streak: int = STREAK, suspect: int = SUSPECT, on_streak: Callable[[], None] | None = None
    ) -> None:
        self.streak = streak
        self.suspect = suspect
        self._on_streak = on_streak
        self._lock = threading.Lock()
        self._signature: str | None = None
        self._requests: list[str] = []  # the objects whose requests were answered so
        self._objects: list[str] = []  # the objects that failed so
        #: Why the run stops, once the streak is reached.
        self.message: str | None = None

    def _same(self, signature: str) -> None:
        if signature != self._signature:
            self._signature, self._requests, self._objects = signature, [], []

    def request_failed(self, signature: str, key: str) -> None:
        """A request for ``key`` is about to be retried after ``signature``; raises
        :class:`RepeatedError` once the error has answered more than ``suspect`` objects in a
        row — for every request it answers from then on, retries of the first objects too."""
        with self._lock:
            self._same(signature)
            if key not in self._requests:
                self._requests.append(key)
            count = len(self._requests)
            if count > self.suspect:
                message = f"{signature} (the same answer for {count} objects in a row: not retried)"
                raise RepeatedError(signature, message)

    def object_failed(self, signature: str | None, name: str) -> bool:
        """An object finally failed with ``signature`` (``None``: no server answer); whether
        the streak is reached now."""
        if signature is None:
            return False
        with self._lock:
            self._same(signature)
            self._objects.append(name)
            if len(self._objects) < self.streak or self.message is not None:
                return False
            shown = "; ".join(self._objects[:_SHOWN])
            self.message = (
                f"the server answered {len(self._objects)} objects in a row with the same error, "
                f"{signature} — stopped instead of retrying every object (first: {shown})"
            )
        if self._on_streak is not None:
            self._on_streak()
        return True

    def object_done(self) -> None:
        """An object succeeded: the error does not answer everything."""
        with self._lock:
            if self._signature is not None and self.message is None:
                self._signature, self._requests, self._objects = None, [], []
