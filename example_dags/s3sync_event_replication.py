"""Event-driven replication: sync the keys S3 event notifications name, as they arrive.

The source bucket sends its ``s3:ObjectCreated:*`` and ``s3:ObjectRemoved:*`` notifications to an
SQS queue. Airflow's triggerer watches the queue (``AssetWatcher`` with a ``MessageQueueTrigger``
of the ``common.messaging`` provider); each batch of messages becomes an asset event, and the
``s3sync_event_replication`` DAG runs for it — one run at a time, each with every event that
arrived since the last one. The run syncs exactly the keys the events name (``keys=``: one
HeadObject per key on each side, no listing), deletes at the replica what was deleted at the
source, and carries Object Lock retention and legal holds for the keys it wrote.

Events can be lost (a queue's retention runs out, notifications are switched off for a while)
and say nothing of a retention extended later; ``s3sync_event_reconcile`` runs a full sync and
a full retention scan of the same prefix once a day, which catches all of that.

Configuration (environment variables of the scheduler, triggerer and workers, read when the DAG
file is parsed):

- ``S3SYNC_EVENTS_QUEUE``: the SQS queue URL the source bucket notifies;
- ``S3SYNC_EVENTS_SOURCE`` / ``S3SYNC_EVENTS_DEST``: the two locations (``s3://bucket/prefix/``);
- ``S3SYNC_EVENTS_SOURCE_CONN`` / ``S3SYNC_EVENTS_DEST_CONN``: their connections (``aws_default``),
  the source's also used to read the queue;
- ``S3SYNC_EVENTS_RETENTION``: ``false`` for a replica bucket without Object Lock;
- ``S3SYNC_EVENTS_POLL_SECONDS``: how long the trigger waits between empty polls (5).

Setting up the notifications is described in the README ("Event-driven replication").
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger
from airflow.sdk import DAG, Asset, AssetWatcher, task

from airflow_s3sync import ObjectLockRetentionOperator, S3SyncOperator

QUEUE = os.environ.get("S3SYNC_EVENTS_QUEUE", "https://sqs.eu-west-1.amazonaws.com/123456789012/s3sync-events")
SOURCE = os.environ.get("S3SYNC_EVENTS_SOURCE", "s3://example-source/data/")
DEST = os.environ.get("S3SYNC_EVENTS_DEST", "s3://example-replica/data/")
SOURCE_CONN = os.environ.get("S3SYNC_EVENTS_SOURCE_CONN", "aws_default")
DEST_CONN = os.environ.get("S3SYNC_EVENTS_DEST_CONN", "aws_default")
RETENTION = os.environ.get("S3SYNC_EVENTS_RETENTION", "true").lower() != "false"
POLL_SECONDS = int(os.environ.get("S3SYNC_EVENTS_POLL_SECONDS", "5"))

source_events = Asset(
    "s3sync_source_events",
    watchers=[
        AssetWatcher(
            name="source_bucket_notifications",
            trigger=MessageQueueTrigger(
                scheme="sqs",
                sqs_queue=QUEUE,
                aws_conn_id=SOURCE_CONN,
                max_messages=10,
                wait_time_seconds=1,
                waiter_delay=POLL_SECONDS,
            ),
        )
    ],
)

common: dict[str, Any] = {
    "source": SOURCE,
    "dest": DEST,
    "source_aws_conn_id": SOURCE_CONN,
    "dest_aws_conn_id": DEST_CONN,
}

with DAG(
    dag_id="s3sync_event_replication",
    description="Sync the keys S3 event notifications name, as they arrive",
    schedule=[source_events],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,  # the events that arrive meanwhile wait, batched, for the next run
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30)},
    tags=["s3sync", "example", "events"],
) as replication:

    @task(inlets=[source_events])
    def event_payloads(
        triggering_asset_events: Any = None, inlet_events: Any = None, dag_run: Any = None
    ) -> list[dict[str, Any]]:
        """The payloads (SQS message batches) of every asset event that triggered this run, and
        of those that came before it started: Airflow gives a run the events up to the one that
        queued it, and leaves those arriving while the run is being created to the next run,
        which only a later event would start. Synced now, and again by that run if it comes, a
        key costs its lookups twice, no more."""
        events = [event for events in (triggering_asset_events or {}).values() for event in events]
        if inlet_events is not None and dag_run is not None and dag_run.start_date is not None:
            accessor = inlet_events[source_events].after(dag_run.run_after.isoformat())
            events += list(accessor.before(dag_run.start_date.isoformat()))
        return [event.extra for event in events]

    sync = S3SyncOperator(task_id="sync_changed_keys", keys=event_payloads(), delete=True, **common)
    if RETENTION:
        # changed_keys is None when more keys were written than the sync's limit: every object.
        sync >> ObjectLockRetentionOperator(
            task_id="retention_of_changed_keys", keys=sync.output["changed_keys"], **common
        )

with DAG(
    dag_id="s3sync_event_reconcile",
    description="Once a day, a full sync and retention scan of what the events keep in step",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["s3sync", "example", "events"],
) as reconcile:
    # Both sides listed by 8 key ranges at once: a remote endpoint's page latency, not the
    # number of pages, sets how long the daily full listing takes.
    full = S3SyncOperator(task_id="full_sync", delete=True, max_delete=10_000, listing_threads=8, **common)
    if RETENTION:
        full >> ObjectLockRetentionOperator(task_id="full_retention_scan", **common)
