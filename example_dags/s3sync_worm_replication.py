"""Replicate WORM data with its Object Lock retention and legal holds.

``aws s3 sync`` copies bytes, never Object Lock settings: a replica of a WORM bucket would
silently lose its retention. Two DAGs keep it:

- ``s3sync_worm_hourly``: every hour, sync the prefix, then copy retention and legal holds of
  just the keys the sync wrote (``keys=sync.output["changed_keys"]``: one HeadObject per side
  per written object, cheap enough for every run).
- ``s3sync_worm_daily_scan``: once a day, examine every object under the prefix
  (``keys=None``), so replicas stay in step when a retention was extended or a legal hold
  placed at the source without the data changing.

The destination bucket must have Object Lock enabled: the retention tasks fail with a clear
error before writing any retention otherwise (the plain sync upstream does not check it).
COMPLIANCE retention is never shortened or weakened, GOVERNANCE is never shortened and holds are
never released — unless ``bypass_governance_retention`` / ``release_legal_holds`` say so.
The sync does not delete: a replica of WORM data keeps what it was given.
``S3SyncOperator(copy_object_lock=True)`` instead locks each object as it is written, with no
window in which the new replica is unlocked; the daily scan is useful with either.

Connections: ``aws_default`` for both sides (see ``s3sync_hourly_replication``); for a
provider that rejects boto3's CRC checksums on these writes, add ``"content_md5": true`` to the
connection's extra, or ``"config_kwargs": {"request_checksum_calculation": "when_required"}``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Param

from airflow_s3sync import ObjectLockRetentionOperator, S3SyncOperator

PARAMS = {
    "source": Param("s3://example-worm/records/", type="string"),
    "dest": Param("s3://example-worm-replica/records/", type="string"),
}
DEFAULT_ARGS = {"retries": 2, "retry_delay": timedelta(minutes=5)}

with DAG(
    dag_id="s3sync_worm_hourly",
    description="Sync WORM data every hour and copy the Object Lock settings of what was written",
    schedule="@hourly",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params=PARAMS,
    tags=["s3sync", "object-lock", "example"],
):
    sync = S3SyncOperator(
        task_id="sync",
        source="{{ params.source }}",
        dest="{{ params.dest }}",
        max_concurrency=16,
    )
    ObjectLockRetentionOperator(
        task_id="retention",
        source="{{ params.source }}",
        dest="{{ params.dest }}",
        keys=sync.output["changed_keys"],  # None (every object) when the sync wrote too many to list
        max_concurrency=16,
    )

with DAG(
    dag_id="s3sync_worm_daily_scan",
    description="Keep the replica's Object Lock settings in step with the source, every object",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params=PARAMS,
    tags=["s3sync", "object-lock", "example"],
):
    ObjectLockRetentionOperator(
        task_id="retention_full_scan",
        source="{{ params.source }}",
        dest="{{ params.dest }}",
        keys=None,
        max_concurrency=32,
    )
