"""max_bandwidth: rates, units and timetables read as aws s3 and rclone read them; the lower of
two caps; bad values refused with the reason; the shared token bucket holds a rate across threads."""

from __future__ import annotations

import threading
import time
from datetime import datetime

import pytest

from airflow_s3sync.errors import S3SyncError
from airflow_s3sync.hooks.throttle import BURST_SECONDS, Throttle
from airflow_s3sync.plan.bandwidth import parse_bandwidth, parse_rate

MIB = 1024 * 1024


@pytest.mark.parametrize(
    ("value", "rate"),
    [
        (2_000_000, 2_000_000),
        ("50MiB", 50 * MIB),
        ("50MB", 50 * MIB),
        ("50M", 50 * MIB),
        ("50mb/s", 50 * MIB),
        ("512KiB/s", 512 * 1024),
        ("1.5G", int(1.5 * 1024**3)),
        ("100", 100),
        ("100B", 100),
        (" 10 MiB ", 10 * MIB),
        ("off", None),
    ],
)
def test_rates_and_units(value, rate):
    assert parse_rate(value) == rate


@pytest.mark.parametrize("value", [0, -5, True, 1.5, "fast", "10XB", "", "10 MiB/h", "-1M", "0.0000001K", ["1M"]])
def test_bad_rates_are_refused_with_the_reason(value):
    with pytest.raises(S3SyncError, match="max_bandwidth"):
        parse_bandwidth(value)


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, 3, hour, minute)


def test_a_timetable_holds_each_rate_from_its_time_and_the_last_before_the_first():
    bandwidth = parse_bandwidth("08:00,10MiB 12:30,512K 19:00,off")
    assert bandwidth is not None
    assert bandwidth.rate_at(at(8)) == 10 * MIB
    assert bandwidth.rate_at(at(12, 29)) == 10 * MIB
    assert bandwidth.rate_at(at(12, 30)) == 512 * 1024
    assert bandwidth.rate_at(at(19)) is None
    assert bandwidth.rate_at(at(3)) is None  # before 08:00: 19:00's "off" still holds
    assert bandwidth.describe() == "08:00,10.0 MiB/s 12:30,512.0 KiB/s 19:00,off"
    assert parse_bandwidth("2MiB").describe() == "2.0 MiB/s"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "value", ["08:00,10M 25:00,off", "8,10M", "08:00,10M 08:00,1M", "Mon-08:00,10M", "08:00,10M 19:00,lots"]
)
def test_bad_timetables_are_refused_with_the_reason(value):
    with pytest.raises(S3SyncError, match="timetable"):
        parse_bandwidth(value)


def test_off_and_none_are_no_cap():
    assert parse_bandwidth(None) is None
    assert parse_bandwidth("off") is None


def test_the_lower_of_two_caps_applies_at_every_time():
    connection = parse_bandwidth("08:00,1M 19:00,off")
    operator = parse_bandwidth("4MiB")
    assert connection is not None and operator is not None
    both = connection.lower(operator)
    assert both.rate_at(at(9)) == MIB
    assert both.rate_at(at(20)) == 4 * MIB
    assert operator.lower(None) is operator


def test_the_bucket_holds_its_rate_across_threads():
    """8 threads taking 256 KiB at a time, 2 MiB in all, at 1 MiB/s: about 2 s, never less
    than the rate allows (less the burst)."""
    throttle = Throttle(parse_bandwidth(MIB))  # type: ignore[arg-type]
    started = time.monotonic()

    def take() -> None:
        throttle.take(64 * 1024)
        throttle.consume(192 * 1024, object())  # as s3transfer's BandwidthLimitedStream calls it

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert time.monotonic() - started >= 2.0 - BURST_SECONDS - 0.05


def test_off_in_the_timetable_takes_no_time_and_stop_ends_the_wait():
    throttle = Throttle(parse_bandwidth("00:00,off"))  # type: ignore[arg-type]
    started = time.monotonic()
    throttle.take(10 * 1024**3)
    assert time.monotonic() - started < 1
    slow = Throttle(parse_bandwidth(1))  # type: ignore[arg-type]
    threading.Timer(0.2, slow.stop).start()
    started = time.monotonic()
    slow.take(1000)  # 1,000 s at 1 B/s, unless stopped
    assert time.monotonic() - started < 10
