"""`make scale-demo`'s baseline: the same S3 -> S3 sync as one task (no shards)."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from airflow_s3sync import S3SyncOperator

with DAG(
    dag_id="s3sync_scale_unsharded",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"source": Param("s3://scale-src/data/"), "dest": Param("s3://scale-single/data/")},
    tags=["bench"],
):
    S3SyncOperator(task_id="sync", source="{{ params.source }}", dest="{{ params.dest }}", delete=True)
