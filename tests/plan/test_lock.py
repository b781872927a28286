"""Every row of the Object Lock rules table (shared/spec/object-lock.md), without a server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from airflow_s3sync.plan.lock import (
    Change,
    ChangeKind,
    LockMode,
    LockState,
    Refusal,
    Retention,
    decide_legal_hold,
    decide_lock,
    decide_retention,
    format_date,
    write_time_lock,
)

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
GOV, COMP = LockMode.GOVERNANCE, LockMode.COMPLIANCE


def days(n: float) -> datetime:
    return NOW + timedelta(days=n)


def ret(mode: LockMode, n: float) -> Retention:
    return Retention(mode, days(n))


def test_no_destination_retention_gets_the_source_one() -> None:
    assert decide_retention(ret(GOV, 10), None, now=NOW) == Change(ChangeKind.RETENTION, retention=ret(GOV, 10))
    assert decide_retention(ret(COMP, 10), None, now=NOW) == Change(ChangeKind.RETENTION, retention=ret(COMP, 10))


def test_an_expired_destination_retention_counts_as_none() -> None:
    change = decide_retention(ret(COMP, 10), ret(COMP, -1), now=NOW)
    assert change == Change(ChangeKind.RETENTION, retention=ret(COMP, 10))


@pytest.mark.parametrize(("mode", "dest_days"), [(GOV, 10), (COMP, 10), (COMP, 20)])
def test_same_mode_as_long_or_longer_is_left_alone(mode: LockMode, dest_days: int) -> None:
    """(A longer GOVERNANCE is the bypass row below.)"""
    assert decide_retention(ret(mode, 10), ret(mode, dest_days), now=NOW) is None


def test_dates_compare_to_the_second() -> None:
    source = Retention(GOV, days(10) + timedelta(microseconds=999_000))
    assert decide_retention(source, ret(GOV, 10), now=NOW) is None


def test_longer_governance_is_refused_without_bypass_and_shortened_with_it() -> None:
    refusal = decide_retention(ret(GOV, 10), ret(GOV, 20), now=NOW)
    assert isinstance(refusal, Refusal) and "bypass_governance_retention=True" in refusal.reason
    change = decide_retention(ret(GOV, 10), ret(GOV, 20), now=NOW, bypass_governance=True)
    assert change == Change(ChangeKind.RETENTION, retention=ret(GOV, 10), bypass_governance=True)


def test_shorter_governance_is_extended_without_bypass() -> None:
    assert decide_retention(ret(GOV, 20), ret(GOV, 10), now=NOW) == Change(ChangeKind.RETENTION, retention=ret(GOV, 20))


@pytest.mark.parametrize(("dest_days", "expected_days"), [(5, 10), (30, 30)])
def test_compliance_over_governance_takes_the_later_date_with_bypass(dest_days: int, expected_days: int) -> None:
    change = decide_retention(ret(COMP, 10), ret(GOV, dest_days), now=NOW, bypass_governance=True)
    assert change == Change(ChangeKind.RETENTION, retention=ret(COMP, expected_days), bypass_governance=True)


def test_switching_governance_to_compliance_is_refused_without_bypass() -> None:
    refusal = decide_retention(ret(COMP, 10), ret(GOV, 5), now=NOW)
    assert isinstance(refusal, Refusal) and "bypass_governance_retention=True" in refusal.reason


@pytest.mark.parametrize("dest_days", [5, 10, 30])
@pytest.mark.parametrize("bypass", [False, True])
def test_compliance_is_never_weakened_to_governance(dest_days: int, bypass: bool) -> None:
    refusal = decide_retention(ret(GOV, 10), ret(COMP, dest_days), now=NOW, bypass_governance=bypass)
    assert isinstance(refusal, Refusal) and "COMPLIANCE is never weakened" in refusal.reason


def test_shorter_compliance_is_extended() -> None:
    assert decide_retention(ret(COMP, 20), ret(COMP, 10), now=NOW) == Change(
        ChangeKind.RETENTION, retention=ret(COMP, 20)
    )


@pytest.mark.parametrize("bypass", [False, True])
def test_compliance_is_never_shortened(bypass: bool) -> None:
    assert decide_retention(ret(COMP, 10), ret(COMP, 20), now=NOW, bypass_governance=bypass) is None


@pytest.mark.parametrize("dest", [None, ret(GOV, 5), ret(COMP, 5)])
def test_no_source_retention_never_removes_one(dest: Retention | None) -> None:
    assert decide_retention(None, dest, now=NOW, bypass_governance=True) is None


@pytest.mark.parametrize("dest", [None, ret(GOV, 5), ret(COMP, -5)])
def test_an_expired_source_retention_is_skipped(dest: Retention | None) -> None:
    refusal = decide_retention(ret(COMP, -1), dest, now=NOW)
    assert isinstance(refusal, Refusal) and "expired" in refusal.reason


def test_an_expired_retention_copied_while_active_is_unchanged() -> None:
    assert decide_retention(ret(GOV, -1), ret(GOV, -1), now=NOW) is None


def test_legal_hold_rows() -> None:
    assert decide_legal_hold(True, False) == Change(ChangeKind.LEGAL_HOLD, legal_hold=True)
    assert decide_legal_hold(True, True) is None
    assert decide_legal_hold(False, False) is None
    refusal = decide_legal_hold(False, True)
    assert isinstance(refusal, Refusal) and "release_legal_holds=True" in refusal.reason
    assert decide_legal_hold(False, True, release=True) == Change(ChangeKind.LEGAL_HOLD, legal_hold=False)


def test_decide_lock_combines_both_and_can_ignore_holds() -> None:
    source = LockState(retention=ret(GOV, 10), legal_hold=True)
    decision = decide_lock(source, LockState(), now=NOW)
    assert [change.describe() for change in decision.changes] == [
        f"GOVERNANCE until {format_date(days(10))}",
        "ON",
    ]
    without_holds = decide_lock(source, LockState(), now=NOW, copy_legal_hold=False)
    assert [change.kind for change in without_holds.changes] == [ChangeKind.RETENTION]
    assert decide_lock(source, source, now=NOW).unchanged
    mixed = decide_lock(LockState(retention=ret(GOV, 10)), LockState(retention=ret(COMP, 1), legal_hold=True), now=NOW)
    assert not mixed.changes and len(mixed.refusals) == 2


def test_from_head_reads_mode_date_hold_and_version() -> None:
    state = LockState.from_head(
        {
            "ObjectLockMode": "COMPLIANCE",
            "ObjectLockRetainUntilDate": datetime(2027, 1, 1),
            "ObjectLockLegalHoldStatus": "ON",
            "VersionId": "v1",
        }
    )
    assert state == LockState(Retention(COMP, datetime(2027, 1, 1, tzinfo=UTC)), True, "v1")
    assert LockState.from_head({"VersionId": "null"}) == LockState()


def test_write_time_lock_carries_only_what_protects() -> None:
    assert write_time_lock(LockState(ret(COMP, 3), True), now=NOW) == {
        "ObjectLockMode": "COMPLIANCE",
        "ObjectLockRetainUntilDate": days(3),
        "ObjectLockLegalHoldStatus": "ON",
    }
    assert write_time_lock(LockState(ret(COMP, -3), False), now=NOW) == {}


def test_format_date_is_utc_whole_seconds() -> None:
    assert (
        format_date(datetime(2027, 1, 1, 1, 0, 0, 500, tzinfo=timezone(timedelta(hours=1)))) == "2027-01-01T00:00:00Z"
    )
