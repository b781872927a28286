"""A large prefix replicated in key-range shards, spread over Airflow workers.

``ranges`` splits the source prefix into ``params.shards`` key ranges of roughly equal size,
from a sample of the listing (a few ListObjectsV2 requests, not a listing of every key). Every
later step is mapped over those ranges, so each shard is a task instance of its own, named by
its range, that any worker can run; together they do exactly what one unsharded sync does:

1. ``plan``: a dry run of each shard (``delete=True, dryrun=True``) that counts what it would
   delete; ``check_deletes`` fails the DAG run before anything changes when the shards together
   would delete more than ``params.max_delete`` (``max_delete`` on one task only counts its own
   shard's deletes).
2. ``sync``: each shard synced for real, with ``--delete`` semantics inside its range only. A
   shard whose listing failed deletes nothing, and fails; the other shards are unaffected.
3. ``retention``: each shard's Object Lock retention and legal holds copied for the keys that
   shard wrote (its ``changed_keys``; ``None``, over the limit, means the whole range). Off
   with ``params.copy_retention = false`` (both buckets need Object Lock otherwise).
4. ``summary``: the shards' counts added up.

On the CeleryExecutor or KubernetesExecutor the mapped instances run on as many workers as are
free; ``max_active_tis_per_dagrun`` caps how many shards of one run go at once (the endpoints'
request rates are shared), and a pool (``pool="s3sync"``) caps them across DAGs.

Connection: ``aws_default`` for both sides (see ``s3sync_hourly_replication.py``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Param, task
from airflow.sdk.exceptions import AirflowFailException

from airflow_s3sync import ObjectLockRetentionOperator, S3KeyRangesOperator, S3SyncOperator

COUNTS = ("uploaded", "copied", "downloaded", "deleted", "skipped", "failed", "bytes_transferred", "retries")

with DAG(
    dag_id="s3sync_sharded_replication",
    description="Replicate a large prefix in key-range shards mapped over workers",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    params={
        "source": Param("s3://example-source/data/", type="string"),
        "dest": Param("s3://example-replica/data/", type="string"),
        "shards": Param(4, type="integer", minimum=1),
        "max_delete": Param(10_000, type="integer", minimum=0),
        "copy_retention": Param(True, type="boolean"),
    },
    tags=["s3sync", "example"],
) as dag:
    ranges = S3KeyRangesOperator(task_id="ranges", location="{{ params.source }}", shards="{{ params.shards }}")

    common: dict[str, Any] = {"source": "{{ params.source }}", "dest": "{{ params.dest }}", "delete": True}
    plan = S3SyncOperator.partial(task_id="plan", dryrun=True, changed_keys_limit=0, **common).expand(
        key_range=ranges.output
    )

    @task
    def check_deletes(plans: list[dict[str, Any]], params: dict[str, Any] | None = None) -> int:
        """Fail before any change when all shards together would delete more than allowed."""
        limit = (params or {}).get("max_delete", 10_000)
        total = sum(summary["deleted"] for summary in plans)
        print(f"the shards would delete {total} object(s) in all (limit {limit})")
        if total > limit:
            raise AirflowFailException(f"the sync would delete {total} objects, more than max_delete={limit}")
        return total

    sync = S3SyncOperator.partial(task_id="sync", max_concurrency=16, **common).expand(key_range=ranges.output)

    @task
    def retention_shards(
        changed: list[list[str] | None], shards: list[list[str | None]], params: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """One retention task per shard: its written keys (``None``: the whole range)."""
        if not (params or {}).get("copy_retention", True):
            return []
        return [{"keys": keys, "key_range": bounds} for keys, bounds in zip(changed, shards, strict=True)]

    retention = ObjectLockRetentionOperator.partial(
        task_id="retention", source="{{ params.source }}", dest="{{ params.dest }}"
    ).expand_kwargs(retention_shards(sync.output["changed_keys"], ranges.output))

    @task(trigger_rule="none_failed")
    def summary(syncs: list[dict[str, Any]], ti: Any = None) -> dict[str, Any]:
        """The shards' counts added up: what one unsharded run would have reported."""
        total: dict[str, Any] = {name: sum(shard.get(name, 0) for shard in syncs) for name in COUNTS}
        total["shards"] = len(syncs)
        # Pulled, not passed: with copy_retention off the retention task has no instance to read.
        retentions = ti.xcom_pull(task_ids="retention") if ti is not None else None
        total["retention_applied"] = sum(shard["applied"] for shard in retentions or [] if shard)
        print(f"replication summary over {len(syncs)} shard(s): {total}")
        return total

    guard = check_deletes(plan.output)
    guard >> sync
    retention >> summary(sync.output)
