"""Writing Object Lock changes: one place for the sync's follow-up and the retention run."""

from __future__ import annotations

from airflow_s3sync.hooks.backend import Backend, ObjectRef
from airflow_s3sync.plan.lock import Change, ChangeKind


def write_lock_change(backend: Backend, ref: ObjectRef, change: Change, *, version_id: str | None) -> None:
    """Send ``change`` (a retention or a legal hold) for the version ``version_id`` of ``ref``."""
    if change.kind is ChangeKind.RETENTION:
        assert change.retention is not None
        backend.put_retention(
            ref=ref, retention=change.retention, version_id=version_id, bypass_governance=change.bypass_governance
        )
    else:
        backend.put_legal_hold(ref=ref, on=change.legal_hold, version_id=version_id)
