"""Writing Object Lock changes: one place for the sync's follow-up and the retention run."""

from __future__ import annotations

from typing import Any

from airflow_s3sync.plan.lock import Change, ChangeKind


def write_lock_change(hook: Any, bucket: str, key: str, change: Change, *, version_id: str | None) -> None:
    """Send ``change`` (a retention or a legal hold) for the version ``version_id`` of ``key``."""
    if change.kind is ChangeKind.RETENTION:
        assert change.retention is not None
        hook.put_retention(
            bucket, key, change.retention, version_id=version_id, bypass_governance=change.bypass_governance
        )
    else:
        hook.put_legal_hold(bucket, key, change.legal_hold, version_id=version_id)
