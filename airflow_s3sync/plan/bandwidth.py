"""``max_bandwidth``: a rate in bytes per second, or an rclone-style timetable of rates.

A rate is an integer (bytes per second) or a string: a number with an optional unit, ``B``,
``K``/``KB``/``KiB``, ``M``/``MB``/``MiB``, ``G``/``GB``/``GiB`` (all powers of 1024, as both
``aws s3``'s ``max_bandwidth`` and rclone's ``--bwlimit`` read them), an optional ``/s``, or
``off`` (no cap). A timetable is rates by time of day, ``"08:00,10MiB 19:00,off"``: each rate
holds from its time (local time on the worker) to the next; before the first, the last one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time

from airflow_s3sync.errors import S3SyncError

_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024**2, "mb": 1024**2, "mib": 1024**2}
_UNITS |= {"g": 1024**3, "gb": 1024**3, "gib": 1024**3}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*(?:/s)?\s*$", re.IGNORECASE)
_SLOT = re.compile(r"^(\d{1,2}):(\d{2}),(.+)$")


@dataclass(frozen=True)
class Bandwidth:
    """A cap on bytes per second that may change by time of day.

    :param slots: ``(from, bytes per second or None for no cap)`` in ascending time order;
        one slot from midnight for a fixed rate.
    """

    slots: tuple[tuple[time, int | None], ...]

    def rate_at(self, when: datetime) -> int | None:
        """The cap at ``when`` (bytes per second), ``None`` for none."""
        now = when.time()
        rate = self.slots[-1][1]
        for start, slot_rate in self.slots:
            if start <= now:
                rate = slot_rate
        return rate

    def lower(self, other: Bandwidth | None) -> Bandwidth:
        """The lower of the two caps at every time of day."""
        if other is None:
            return self
        times = sorted({start for start, _ in self.slots} | {start for start, _ in other.slots})
        slots = []
        for start in times:
            when = datetime.combine(datetime(2000, 1, 1), start)
            rates = [rate for rate in (self.rate_at(when), other.rate_at(when)) if rate is not None]
            slots.append((start, min(rates) if rates else None))
        return Bandwidth(tuple(slots))

    def describe(self) -> str:
        """The cap as a log line says it: ``2.0 MiB/s``, or the timetable."""
        if len(self.slots) == 1 and self.slots[0][0] == time(0, 0):
            return _rate_text(self.slots[0][1])
        return " ".join(f"{start:%H:%M},{_rate_text(rate)}" for start, rate in self.slots)


def _rate_text(rate: int | None) -> str:
    if rate is None:
        return "off"
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if rate >= size:
            return f"{rate / size:.1f} {unit}/s"
    return f"{rate} B/s"


def parse_rate(value: object, *, what: str = "max_bandwidth") -> int | None:
    """Bytes per second of one rate (see the module's docstring); ``None`` for ``off``."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise S3SyncError(f"{what} must be bytes per second, a string such as '50MiB', or a timetable; got {value!r}")
    if isinstance(value, int):
        if value < 1:
            raise S3SyncError(f"{what} must be at least 1 byte per second, got {value}")
        return value
    if value.strip().lower() == "off":
        return None
    match = _RATE.match(value)
    if match is None or match.group(2).lower() not in _UNITS:
        raise S3SyncError(
            f"{what} {value!r} is no rate: give bytes per second, or a number with a unit (B, KiB, MiB, GiB; "
            "K, M, G and KB, MB, GB are the same powers of 1024), e.g. '50MiB' or '512KiB/s', or 'off'"
        )
    rate = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    if rate < 1:
        raise S3SyncError(f"{what} {value!r} is less than 1 byte per second")
    return rate


def parse_bandwidth(value: object, *, what: str = "max_bandwidth") -> Bandwidth | None:
    """``max_bandwidth`` as a :class:`Bandwidth`; ``None`` (no cap) for ``None`` or ``"off"``."""
    if value is None:
        return None
    if isinstance(value, str) and "," in value:
        slots: dict[time, int | None] = {}
        for part in value.split():
            match = _SLOT.match(part)
            if match is None or int(match.group(1)) > 23 or int(match.group(2)) > 59:
                raise S3SyncError(
                    f"{what} timetable {value!r}: {part!r} is not HH:MM,RATE (e.g. '08:00,10MiB 19:00,off'; "
                    "days of the week are not supported)"
                )
            start = time(int(match.group(1)), int(match.group(2)))
            if start in slots:
                raise S3SyncError(f"{what} timetable {value!r} names {start:%H:%M} twice")
            slots[start] = parse_rate(match.group(3), what=f"{what} timetable {value!r}:")
        return Bandwidth(tuple(sorted(slots.items())))
    rate = parse_rate(value, what=what)
    return None if rate is None else Bandwidth(((time(0, 0), rate),))
