"""The run's counts as Airflow metrics (``Stats``: StatsD or OpenTelemetry, as Airflow is set up),
named ``s3sync.*`` (Airflow puts its own prefix, ``airflow.`` by default, in front).

Sent once a run ends, failed or not: counters of the objects by action, the bytes, retries,
SlowDowns and aborted uploads of a sync; a timer of the run (``s3sync.duration``); the applied,
skipped and failed objects of a retention run (``s3sync.retention.*``). Each carries the task's
``dag_id`` and ``task_id`` as tags (used by OpenTelemetry and tagged StatsD).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

log = logging.getLogger(__name__)

#: Summary field -> metric name of a sync run.
SYNC_COUNTERS = {
    "uploaded": "s3sync.uploaded",
    "copied": "s3sync.copied",
    "downloaded": "s3sync.downloaded",
    "deleted": "s3sync.deleted",
    "skipped": "s3sync.skipped",
    "failed": "s3sync.failed",
    "bytes_transferred": "s3sync.bytes",
    "retries": "s3sync.retries",
    "slowdowns": "s3sync.slowdowns",
    "aborted_uploads": "s3sync.aborted_uploads",
}
#: Summary field -> metric name of a retention run.
RETENTION_COUNTERS = {
    "applied": "s3sync.retention.applied",
    "skipped": "s3sync.retention.skipped",
    "failed": "s3sync.retention.failed",
}


def task_tags(operator: Any) -> dict[str, str]:
    """The ``dag_id`` and ``task_id`` tags of an operator (a task outside a DAG has none of the first)."""
    tags = {"task_id": str(operator.task_id)}
    dag = getattr(operator, "dag", None) if getattr(operator, "has_dag", lambda: False)() else None
    if dag is not None:
        tags["dag_id"] = str(dag.dag_id)
    return tags


def emit(summary: Mapping[str, Any], counters: Mapping[str, str], *, seconds: float, tags: Mapping[str, str]) -> None:
    """Send the ``counters`` of ``summary`` and, for a sync, the run's duration. A metrics
    backend that fails is logged, never the task's failure."""
    try:
        from airflow.sdk.observability.stats import Stats
    except ImportError:  # pragma: no cover - an Airflow without the task SDK's Stats
        return
    try:
        for field, name in counters.items():
            value = int(summary.get(field) or 0)
            if value:
                Stats.incr(name, count=value, tags=dict(tags))
        if counters is SYNC_COUNTERS:
            Stats.timing("s3sync.duration", timedelta(seconds=seconds), tags=dict(tags))
    except Exception:
        log.warning("could not send the run's metrics", exc_info=True)
