"""A stand-in for the sharded example DAG, for bench/scale.py: shards without ``key_range``.

A task lists the source's top-level folders (one delimiter listing) and deals them out to
``shards`` groups; each mapped ``S3SyncOperator`` syncs the whole prefix with filters that keep
only its group's folders (filters apply to both sides, so its deletes stay inside the group).
"""

from __future__ import annotations

import json
from datetime import datetime

from airflow.sdk import DAG, Param, task

from airflow_s3sync import S3SyncOperator

with DAG(
    dag_id="s3sync_scale_standin",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={
        "source": Param("s3://scale-src/data/"),
        "dest": Param("s3://scale-sharded/data/"),
        "shards": Param(4, type="integer", minimum=1),
    },
    tags=["bench"],
):

    @task
    def ranges(params: dict | None = None) -> list[dict[str, list[str]]]:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        bucket, _, prefix = params["source"].removeprefix("s3://").partition("/")
        client = S3Hook(aws_conn_id="aws_default").get_conn()
        folders: list[str] = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
            folders += [p["Prefix"][len(prefix) :] for p in page.get("CommonPrefixes", [])]
        shards = max(1, min(int(params["shards"]), len(folders)))
        groups = [folders[i::shards] for i in range(shards)]
        return [{"exclude": ["*"], "include": [f"{folder}*" for folder in group]} for group in groups]

    sync = S3SyncOperator.partial(
        task_id="sync", source="{{ params.source }}", dest="{{ params.dest }}", delete=True
    ).expand_kwargs(ranges())

    @task
    def summary(results: list[dict]) -> dict[str, int]:
        totals = {key: sum(r[key] for r in results) for key in ("copied", "deleted", "skipped", "failed")}
        print("summary:", json.dumps(totals))
        return totals

    summary(sync.output)
