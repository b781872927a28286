"""Hourly replication of a data-lake prefix with :class:`~airflow_s3sync.S3SyncOperator`.

Every hour, ``s3://example-source/data/`` is synced to ``s3://example-replica/data/`` the way
``aws s3 sync --delete --exclude '*.tmp' --exclude '_temporary/*'`` would do it: new and
changed objects are copied server-side, objects gone from the source are deleted from the
replica (never more than ``max_delete`` at once, and never after a failed listing or
transfer), and each action appears in the task log as the line the AWS CLI prints.

The downstream ``report`` task receives the run's summary and the ``changed_keys`` XCom —
the keys this run wrote — which is what a retention or indexing step downstream would use.

Connections: ``aws_default`` for both sides, for example from an environment variable::

    AIRFLOW_CONN_AWS_DEFAULT='{"conn_type": "aws", "login": "KEY", "password": "SECRET",
                               "extra": {"region_name": "eu-west-1"}}'

Add ``"endpoint_url": "https://s3.example.com"`` to ``extra`` for S3-compatible storage.
Trigger with other locations through the DAG's params, e.g.
``airflow dags trigger s3sync_hourly_replication -c '{"source": "s3://a/x/", "dest": "s3://b/x/"}'``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_s3sync import S3SyncOperator

with DAG(
    dag_id="s3sync_hourly_replication",
    description="Replicate a data-lake prefix to a replica bucket every hour",
    schedule="@hourly",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    params={
        "source": Param("s3://example-source/data/", type="string"),
        "dest": Param("s3://example-replica/data/", type="string"),
    },
    tags=["s3sync", "example"],
) as dag:
    replicate = S3SyncOperator(
        task_id="replicate",
        source="{{ params.source }}",
        dest="{{ params.dest }}",
        source_aws_conn_id="aws_default",
        dest_aws_conn_id="aws_default",
        delete=True,
        max_delete=1000,
        exclude=["*.tmp", "_temporary/*"],
        max_concurrency=16,
    )

    @task
    def report(summary: dict[str, Any], changed_keys: list[str] | None) -> int:
        """Log what the replication did; return how many keys it wrote. ``changed_keys`` is
        ``None`` when more keys were written than the sync's ``changed_keys_limit``."""
        print(f"replication summary: {summary}")
        written = summary["changed_keys_count"]
        if changed_keys is None:
            print(f"{written} key(s) written this run: more than changed_keys_limit, not listed")
        else:
            print(f"{written} key(s) written this run: {changed_keys[:20]}")
        return written

    report(replicate.output, replicate.output["changed_keys"])
