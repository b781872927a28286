"""One token bucket every byte of a run's transfers draws from (``max_bandwidth``).

Bytes are taken before they move: a taker that finds the bucket short goes into debt and sleeps
until its bytes would have been earned, so however many workers take at once the run moves at
most ``rate`` bytes a second (plus a quarter second's burst). It also serves as s3transfer's
``LeakyBucket`` (``consume(amount, request_token)``), so a ``TransferManager`` given it through a
``BandwidthLimiter`` meters the parts of its uploads and downloads with the same tokens.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime

from airflow_s3sync.plan.bandwidth import Bandwidth

#: Seconds of tokens the bucket may hold when takers are idle.
BURST_SECONDS = 0.25


class Throttle:
    """The run's bandwidth cap, shared by all its workers.

    :param bandwidth: the cap (its rate is read at each take: a timetable changes it).
    :param clock: monotonic seconds; :param now: local wall time (for the timetable).
    """

    def __init__(
        self,
        bandwidth: Bandwidth,
        *,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = datetime.now,
    ) -> None:
        self.bandwidth = bandwidth
        self._clock, self._now = clock, now
        self._lock = threading.Lock()
        self._tokens = 0.0
        self._last = clock()
        self._stopped = threading.Event()

    def take(self, amount: int) -> None:
        """Wait until ``amount`` more bytes may move."""
        if amount <= 0:
            return
        rate = self.bandwidth.rate_at(self._now())
        with self._lock:
            now = self._clock()
            if rate is None:
                self._tokens, self._last = 0.0, now
                return
            self._tokens = min(self._tokens + (now - self._last) * rate, rate * BURST_SECONDS) - amount
            self._last = now
            wait = -self._tokens / rate if self._tokens < 0 else 0.0
        if wait > 0:
            self._stopped.wait(wait)

    def consume(self, amt: int, request_token: object = None) -> None:
        """s3transfer's ``LeakyBucket.consume``: :meth:`take` (never refuses, waits instead)."""
        self.take(amt)

    def stop(self) -> None:
        """Stop waiting: a stopped run's transfers end at once."""
        self._stopped.set()
