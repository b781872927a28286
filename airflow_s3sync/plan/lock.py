"""The Object Lock rules: which retention and legal hold a destination object should get.

Pure: callers read both sides' lock state (HeadObject) and pass the current time; the rules
table of ``shared/spec/object-lock.md`` is enforced here whatever a server would accept.
Dates are compared to the second, because servers store retain-until dates with different
precision (moto keeps whole seconds): a date written and read back must compare equal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum


class LockMode(Enum):
    """An Object Lock retention mode."""

    GOVERNANCE = "GOVERNANCE"
    COMPLIANCE = "COMPLIANCE"


@dataclass(frozen=True, slots=True)
class Retention:
    """A retention: mode and retain-until date (timezone-aware)."""

    mode: LockMode
    until: datetime

    def active(self, now: datetime) -> bool:
        """Whether it still protects the object at ``now``."""
        return _seconds(self.until) > _seconds(now)

    def __str__(self) -> str:
        return f"{self.mode.value} until {format_date(self.until)}"


@dataclass(frozen=True, slots=True)
class LockState:
    """One object version's lock state, as HeadObject reports it.

    :param retention: the retention, or ``None``.
    :param legal_hold: whether a legal hold is ON.
    :param version_id: the version the state belongs to (writes go to this version).
    """

    retention: Retention | None = None
    legal_hold: bool = False
    version_id: str | None = None

    @classmethod
    def from_head(cls, response: dict[str, object]) -> LockState:
        """The state in a HeadObject (or GetObject) response."""
        mode, until = response.get("ObjectLockMode"), response.get("ObjectLockRetainUntilDate")
        retention = None
        if isinstance(mode, str) and isinstance(until, datetime):
            retention = Retention(LockMode(mode), until if until.tzinfo else until.replace(tzinfo=UTC))
        version_id = response.get("VersionId")
        return cls(
            retention=retention,
            legal_hold=response.get("ObjectLockLegalHoldStatus") == "ON",
            version_id=version_id if isinstance(version_id, str) and version_id != "null" else None,
        )


class ChangeKind(Enum):
    """What to write at the destination."""

    RETENTION = "retention"  # PutObjectRetention
    LEGAL_HOLD = "legal-hold"  # PutObjectLegalHold


@dataclass(frozen=True, slots=True)
class Change:
    """One write to make: a retention (with the bypass header if it shortens or removes
    GOVERNANCE) or a legal hold status."""

    kind: ChangeKind
    retention: Retention | None = None
    legal_hold: bool = False
    bypass_governance: bool = False

    def describe(self) -> str:
        """The end of the log line: ``GOVERNANCE until 2027-01-01T00:00:00Z`` or ``ON``."""
        if self.kind is ChangeKind.RETENTION:
            return str(self.retention)
        return "ON" if self.legal_hold else "OFF"


@dataclass(frozen=True, slots=True)
class Refusal:
    """A difference this package leaves alone on purpose, with the reason (logged, counted)."""

    kind: ChangeKind
    reason: str


@dataclass(frozen=True, slots=True)
class LockDecision:
    """Everything to do for one object: writes, and differences refused."""

    changes: tuple[Change, ...] = ()
    refusals: tuple[Refusal, ...] = ()

    @property
    def unchanged(self) -> bool:
        """Nothing to write and nothing refused: the destination already matches."""
        return not self.changes and not self.refusals


def format_date(value: datetime) -> str:
    """``2027-01-01T00:00:00Z``: UTC, whole seconds."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _seconds(value: datetime) -> int:
    return int(value.timestamp())


def decide_retention(
    source: Retention | None, dest: Retention | None, *, now: datetime, bypass_governance: bool = False
) -> Change | Refusal | None:
    """The rules table for retention; ``None`` when nothing is to be done.

    Never removes a retention, never weakens or shortens COMPLIANCE, and shortens GOVERNANCE
    or switches it to COMPLIANCE only with ``bypass_governance`` (S3 asks for the bypass header
    for both); a switch keeps the later of the two dates.
    """
    if source is None:
        return None
    dest_active = dest if dest is not None and dest.active(now) else None
    if not source.active(now):
        if dest is not None and dest.mode is source.mode and _seconds(dest.until) >= _seconds(source.until):
            return None  # copied while it was active; both have expired since
        return Refusal(
            ChangeKind.RETENTION,
            f"the source's retention ({source}) has expired: nothing to copy",
        )
    if dest_active is None:
        return Change(ChangeKind.RETENTION, retention=source)
    src_until, dst_until = _seconds(source.until), _seconds(dest_active.until)
    if dest_active.mode is LockMode.COMPLIANCE:
        if source.mode is LockMode.GOVERNANCE:
            return Refusal(
                ChangeKind.RETENTION,
                f"the destination is {dest_active}, the source {source}: COMPLIANCE is never weakened",
            )
        if dst_until >= src_until:
            return None
        return Change(ChangeKind.RETENTION, retention=source)
    # The destination is under GOVERNANCE.
    if source.mode is LockMode.COMPLIANCE:
        # Switching a GOVERNANCE retention's mode needs the bypass header (and permission).
        if not bypass_governance:
            return Refusal(
                ChangeKind.RETENTION,
                f"the destination is {dest_active}, the source {source}: switching GOVERNANCE to COMPLIANCE "
                "needs bypass_governance_retention=True",
            )
        until = source.until if src_until >= dst_until else dest_active.until
        return Change(ChangeKind.RETENTION, retention=Retention(LockMode.COMPLIANCE, until), bypass_governance=True)
    if dst_until == src_until:
        return None
    if dst_until < src_until:
        return Change(ChangeKind.RETENTION, retention=source)
    if bypass_governance:
        return Change(ChangeKind.RETENTION, retention=source, bypass_governance=True)
    return Refusal(
        ChangeKind.RETENTION,
        f"the destination is {dest_active}, longer than the source's {source}: "
        "shortening GOVERNANCE needs bypass_governance_retention=True",
    )


def decide_legal_hold(source: bool, dest: bool, *, release: bool = False) -> Change | Refusal | None:
    """The rules table for legal holds: set ON where the source's is ON; turn OFF only with
    ``release``."""
    if source == dest:
        return None
    if source:
        return Change(ChangeKind.LEGAL_HOLD, legal_hold=True)
    if release:
        return Change(ChangeKind.LEGAL_HOLD, legal_hold=False)
    return Refusal(
        ChangeKind.LEGAL_HOLD,
        "the destination's legal hold is ON, the source's OFF: release_legal_holds=True releases it",
    )


def decide_lock(
    source: LockState,
    dest: LockState,
    *,
    now: datetime,
    copy_legal_hold: bool = True,
    release_legal_holds: bool = False,
    bypass_governance: bool = False,
) -> LockDecision:
    """Both rules applied to one object."""
    outcomes = [decide_retention(source.retention, dest.retention, now=now, bypass_governance=bypass_governance)]
    if copy_legal_hold:
        outcomes.append(decide_legal_hold(source.legal_hold, dest.legal_hold, release=release_legal_holds))
    return LockDecision(
        changes=tuple(outcome for outcome in outcomes if isinstance(outcome, Change)),
        refusals=tuple(outcome for outcome in outcomes if isinstance(outcome, Refusal)),
    )


def write_time_lock(source: LockState, *, now: datetime) -> dict[str, object]:
    """The PutObject / CopyObject / CreateMultipartUpload arguments that give a new object
    ``source``'s lock: an active retention and a legal hold that is ON (nothing else)."""
    args: dict[str, object] = {}
    if source.retention is not None and source.retention.active(now):
        args["ObjectLockMode"] = source.retention.mode.value
        args["ObjectLockRetainUntilDate"] = source.retention.until
    if source.legal_hold:
        args["ObjectLockLegalHoldStatus"] = "ON"
    return args
