#!/usr/bin/env python
"""Event-driven replication on a real multi-process Airflow, measured.

1. moto's server (S3 and SQS) on 127.0.0.1: a source bucket whose object created and removed
   notifications go to an SQS queue of moto's, and a replica bucket with Object Lock;
2. a temporary ``AIRFLOW_HOME`` with ``example_dags/s3sync_event_replication.py`` in its DAGs
   folder, its connection going through a recording proxy (every S3 request of the DAGs is
   counted at the wire; the harness's own requests go straight to moto);
3. ``airflow api-server``, ``scheduler`` (LocalExecutor), ``dag-processor`` and ``triggerer``;
   the event DAG is unpaused and nobody triggers it;
4. objects are written into the source at a steady rate (and some deleted), and the replica is
   watched until it holds them (and not the deleted ones).

It reports the replica lag from each PUT to the object's first sight in the replica (p50, p99,
max), the DAG runs, the S3 requests of the DAGs per changed object by operation, and that the
only listings were the one-key preflights. ``make event-demo`` runs it at a larger size;
``tests/dags/test_event_demo.py`` at a small one.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import scale  # noqa: E402
from scale import (  # noqa: E402
    airflow_env,
    check_alive,
    fail,
    free_port,
    query,
    run_airflow_env,
    say,
    services,
    wait_healthy,
    wait_parsed,
)

from tests.faults import FaultProxy  # noqa: E402
from tests.support import connection_json_via, moto_server, notifications_to_a_queue, run_airflow  # noqa: E402

EXAMPLE_DAG = ROOT / "example_dags" / "s3sync_event_replication.py"
DAG_IDS = ["s3sync_event_replication", "s3sync_event_reconcile"]
PREFIX = "data/"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=120, help="objects written (default 120)")
    parser.add_argument("--rate", type=float, default=2.0, help="objects written per second (default 2)")
    parser.add_argument("--deletes", type=int, default=5, help="of them, deleted again later (default 5)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds the replica may lag at the end")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the Airflow home and logs (printed)")
    return parser.parse_args(argv)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="s3sync-events-"))
    try:
        return event_demo(args, work)
    finally:
        if args.keep:
            say(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def event_demo(args: argparse.Namespace, work: Path) -> int:
    home, logs = work / "home", work / "logs"
    (home / "dags").mkdir(parents=True)
    logs.mkdir()
    with moto_server() as moto, FaultProxy(moto.endpoint_url, rate=0.0, seed=1) as proxy:
        s3 = moto.client()
        source, replica = f"events-src-{uuid.uuid4().hex[:8]}", f"events-dst-{uuid.uuid4().hex[:8]}"
        s3.create_bucket(Bucket=source)
        s3.create_bucket(Bucket=replica, ObjectLockEnabledForBucket=True)
        queue, _ = notifications_to_a_queue(moto, source)
        port = free_port()
        env = airflow_env(home, connection_json_via(moto, proxy.endpoint_url), port, parallelism=4)
        # The queue is reached through the proxy too: the DAG's connection is the only one.
        env.update(
            S3SYNC_EVENTS_QUEUE=queue.replace(moto.endpoint_url, proxy.endpoint_url),
            S3SYNC_EVENTS_SOURCE=f"s3://{source}/{PREFIX}",
            S3SYNC_EVENTS_DEST=f"s3://{replica}/{PREFIX}",
            S3SYNC_EVENTS_POLL_SECONDS="1",
        )
        scale._ENV.update(env)
        run_airflow(env, "db", "migrate")
        shutil.copy(EXAMPLE_DAG, home / "dags")
        db = home / "airflow.db"
        names = ("api-server", "scheduler", "dag-processor", "triggerer")
        with services(env, logs, port, names) as running:
            up = wait_healthy(port, running, 240, ("metadatabase", "scheduler", "dag_processor", "triggerer"))
            wait_parsed(db, DAG_IDS, running, 240)
            run_airflow_env(running, ["dags", "unpause", DAG_IDS[0]])
            say(f"Airflow healthy in {up:.0f} s; {DAG_IDS[0]} unpaused; nobody triggers it")
            before = Counter(proxy.operations())
            result = write_and_watch(args, s3, source, replica, running)
            wait_runs_done(db, running, 120)  # the retention of the last keys too
            operations = Counter(proxy.operations()) - before
            runs = query(db, "select state from dag_run where dag_id = ?", DAG_IDS[0])
            tasks = query(
                db, "select task_id, state, count(*) from task_instance where dag_id = ? group by 1, 2", DAG_IDS[0]
            )
    result["ok"] = result["ok"] and all(state == "success" for (state,) in runs)
    result.update(
        dag_runs=len(runs),
        dag_run_states=dict(Counter(state for (state,) in runs)),
        task_states={f"{task} {state}": count for task, state, count in tasks},
        s3_requests={op: n for op, n in sorted(operations.items()) if not op.startswith(("POST", "GET ?"))},
    )
    changed = args.objects + args.deletes
    result["s3_requests_per_changed_object"] = round(sum(result["s3_requests"].values()) / changed, 2)
    report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if result["ok"] else 1


def write_and_watch(
    args: argparse.Namespace, s3: Any, source: str, replica: str, running: dict[str, Any]
) -> dict[str, Any]:
    """Write ``args.objects`` objects at ``args.rate`` a second, delete ``args.deletes`` of them,
    and watch the replica (a listing of the harness's own, straight to moto) until it holds
    exactly the objects left; the lag of each from its PUT to its first sight in the replica."""
    written: dict[str, float] = {}
    seen: dict[str, float] = {}
    deleted: set[str] = set()
    interval = 1 / args.rate
    start = time.monotonic()
    next_write, last_look = start, 0.0
    index = 0
    deadline = None
    while True:
        now = time.monotonic()
        if index < args.objects and now >= next_write:
            key = f"{PREFIX}obj-{index:05d} é.bin"
            s3.put_object(Bucket=source, Key=key, Body=f"object {index}".encode())
            written[key] = time.monotonic()
            index += 1
            next_write += interval
            if index == args.objects:
                for gone in list(written)[: args.deletes]:
                    s3.delete_object(Bucket=source, Key=gone)
                    deleted.add(gone)
                deadline = time.monotonic() + args.timeout
        if now - last_look >= 0.25:
            last_look = now
            check_alive(running)
            present = {
                item["Key"]
                for page in s3.get_paginator("list_objects_v2").paginate(Bucket=replica, Prefix=PREFIX)
                for item in page.get("Contents", [])
            }
            for key in present - seen.keys():
                seen[key] = time.monotonic()
            expected = set(written) - deleted
            if deadline is not None and present == expected:
                break
            if deadline is not None and now > deadline:
                missing, extra = sorted(expected - present)[:5], sorted(present - expected)[:5]
                fail(f"the replica lags more than {args.timeout:.0f} s: missing {missing}, extra {extra}", running)
        time.sleep(0.05)
    lags = [seen[key] - written[key] for key in written if key in seen]
    return {
        "ok": True,
        "objects": args.objects,
        "deleted": args.deletes,
        "seconds_writing": round(written[max(written, key=written.get)] - start, 1),
        "lag_p50": round(statistics.median(lags), 2),
        "lag_p99": round(percentile(lags, 0.99), 2),
        "lag_max": round(max(lags), 2),
    }


def wait_runs_done(db: Path, running: dict[str, Any], timeout: float) -> None:
    """Wait until no run of the event DAG is queued or running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        check_alive(running)
        busy = query(db, "select count(*) from dag_run where dag_id = ? and state in ('queued', 'running')", DAG_IDS[0])
        if busy[0][0] == 0:
            return
        time.sleep(0.5)
    fail(f"the event DAG's runs did not end within {timeout:.0f} s", running)


def report(result: dict[str, Any]) -> None:
    say("")
    say(f"{result['objects']} objects written over {result['seconds_writing']} s, {result['deleted']} deleted again")
    say(f"replica lag from PUT: p50 {result['lag_p50']} s, p99 {result['lag_p99']} s, max {result['lag_max']} s")
    say(f"DAG runs (none triggered by hand): {result['dag_runs']} {result['dag_run_states']}")
    say(f"S3 requests of the DAGs: {result['s3_requests']}")
    say(f"  = {result['s3_requests_per_changed_object']} per changed object, transfers and retention included")
    say(f"ListObjectsV2 (one-key preflights, 2 per task): {result['s3_requests'].get('ListObjectsV2', 0)}")


if __name__ == "__main__":
    sys.exit(main())
