"""`make demo`: replicate a bucket with the example DAG, end to end, on an embedded S3 server.

Starts moto's S3 server on 127.0.0.1, creates a source bucket with sample data and a replica
with one stale object, runs ``example_dags/s3sync_hourly_replication.py`` through
``airflow dags test`` in a temporary AIRFLOW_HOME, shows the task's ``aws s3 sync`` lines and
both buckets, then runs it a second time to show that an up-to-date replica costs no copies.
Then ``example_dags/s3sync_worm_replication.py`` replicates a WORM bucket (Object Lock) and
its retention and legal holds, which ``aws s3 sync`` cannot copy. Last,
``example_dags/s3sync_sharded_replication.py`` splits a prefix into key ranges and syncs them as
mapped tasks, then adds up their counts.
"""

from __future__ import annotations

import shutil
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support import airflow_home, dag_run_states, moto_server, run_airflow, use_connection  # noqa: E402

DAG_ID = "s3sync_hourly_replication"
WORM_DAG_ID = "s3sync_worm_hourly"
SHARDED_DAG_ID = "s3sync_sharded_replication"
#: What the sharded run shows: the ranges, each shard's range and summary, the total.
SHARD_LINE_PREFIXES = ("key range", "  (", "summary: ")
#: What the sharded DAG's Python tasks print (plain lines in the output).
SHARD_PRINTED = ("the shards would delete", "replication summary over")
ACTION_PREFIXES = (
    "copy: ",
    "delete: ",
    "upload: ",
    "download: ",
    "summary: ",
    "warning: ",
    "retention: ",
    "legal-hold: ",
    "skip ",
)


def show_bucket(client, bucket: str) -> None:
    objects = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    print(f"  s3://{bucket}: {len(objects)} object(s)")
    for obj in objects:
        print(f"    {obj['Key']:<28} {obj['Size']:>6} bytes")


def task_lines(output: str, prefixes: tuple[str, ...] = ACTION_PREFIXES, printed: tuple[str, ...] = ()) -> list[str]:
    """The tasks' action and summary lines, from the output of ``airflow dags test``; ``printed``:
    the starts of lines Python tasks print."""
    lines = []
    for raw in output.splitlines():
        if printed and raw.startswith(printed):
            lines.append(raw)
            continue
        if "] " not in raw or not any(marker in raw for marker in (" [airflow.task.operators.", " [task]")):
            continue
        message = raw.split("] ", 1)[1].rsplit(" [", 1)[0].rstrip()
        if message.lstrip().startswith(prefixes) or message.startswith(prefixes):
            lines.append(message)
    return lines


def show_locks(client, bucket: str) -> None:
    for obj in client.list_objects_v2(Bucket=bucket).get("Contents", []):
        head = client.head_object(Bucket=bucket, Key=obj["Key"])
        until = head.get("ObjectLockRetainUntilDate")
        lock = f"{head['ObjectLockMode']} until {until:%Y-%m-%d}" if until else "no retention"
        print(f"    s3://{bucket}/{obj['Key']:<22} {lock}, legal hold {head.get('ObjectLockLegalHoldStatus', 'OFF')}")


def run_dag(
    env: dict[str, str],
    logical_date: str,
    dag_id: str = DAG_ID,
    *args: str,
    prefixes: tuple[str, ...] = ACTION_PREFIXES,
    printed: tuple[str, ...] = (),
) -> str:
    """Run the DAG once; print its tasks' lines; return the run's state."""
    result = run_airflow(env, "dags", "test", dag_id, logical_date, *args, check=False)
    states = dag_run_states(env, dag_id)
    state = states[-1] if states else "unknown"
    print(f"  DAG run state: {state}")
    for line in task_lines(result.stdout + result.stderr, prefixes, printed):
        print(f"  | {line}")
    if state != "success":
        print(result.stdout[-4000:], result.stderr[-4000:], sep="\n")
    return state


def main() -> int:
    print("Starting an embedded S3 server (moto) on 127.0.0.1 ...")
    with moto_server() as server, airflow_home() as (dags, env):
        print(f"  endpoint {server.endpoint_url}; AIRFLOW_HOME {env['AIRFLOW_HOME']} (database migrated)")
        for name in (DAG_ID, "s3sync_worm_replication", SHARDED_DAG_ID):
            shutil.copy(ROOT / "example_dags" / f"{name}.py", dags)
        use_connection(env, "aws_default", server.connection_json())
        client = server.client()
        client.create_bucket(Bucket="example-source")
        client.create_bucket(Bucket="example-replica")
        samples = {
            "data/2026/11/23/events-00.csv": "id,event\n1,login\n2,logout\n",
            "data/2026/11/23/events-01.csv": "id,event\n3,login\n",
            "data/reference/countries.csv": "code,name\nFR,France\nDE,Germany\n",
            "data/_temporary/part-0.tmp": "half-written",
            "data/README.txt": "sample data lake",
        }
        for key, body in samples.items():
            client.put_object(Bucket="example-source", Key=key, Body=body.encode())
        client.put_object(Bucket="example-replica", Key="data/2026/11/22/removed-upstream.csv", Body=b"stale")

        print("\nBefore:")
        show_bucket(client, "example-source")
        show_bucket(client, "example-replica")

        print(f"\nRunning `airflow dags test {DAG_ID}` ...")
        state = run_dag(env, "2026-11-23T10:00:00+00:00")
        print("\nAfter:")
        show_bucket(client, "example-replica")

        print("\nRunning it again: the replica is up to date, so nothing is copied ...")
        second = run_dag(env, "2026-11-23T11:00:00+00:00")

        print("\nObject Lock: a WORM bucket, replicated with its retention and legal holds ...")
        for bucket in ("example-worm", "example-worm-replica"):
            client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
        until = datetime.now(UTC) + timedelta(days=365)
        client.put_object(
            Bucket="example-worm",
            Key="records/invoice-1.pdf",
            Body=b"%PDF invoice",
            ObjectLockMode="COMPLIANCE",
            ObjectLockRetainUntilDate=until,
        )
        client.put_object(
            Bucket="example-worm", Key="records/contract.pdf", Body=b"%PDF contract", ObjectLockLegalHoldStatus="ON"
        )
        show_locks(client, "example-worm")
        print(f"\nRunning `airflow dags test {WORM_DAG_ID}` (sync, then retention of the changed keys) ...")
        worm = run_dag(env, "2026-11-23T12:00:00+00:00", WORM_DAG_ID)
        print("\nAfter:")
        show_locks(client, "example-worm-replica")

        print("\nScaling out: 600 objects synced in 3 key-range shards, mapped tasks any worker can run ...")
        client.create_bucket(Bucket="example-lake")
        client.create_bucket(Bucket="example-lake-replica")
        for day in range(1, 7):
            for n in range(100):
                client.put_object(Bucket="example-lake", Key=f"events/2026-11-{day:02d}/part-{n:03d}.json", Body=b"{}")
        client.put_object(Bucket="example-lake-replica", Key="events/2026-10-31/old.json", Body=b"{}")
        conf = '{"source": "s3://example-lake/events/", "dest": "s3://example-lake-replica/events/", '
        conf += '"shards": 3, "copy_retention": false}'
        print(f"\nRunning `airflow dags test {SHARDED_DAG_ID} -c '{conf}'` ...")
        sharded = run_dag(
            env,
            "2026-11-23T13:00:00+00:00",
            SHARDED_DAG_ID,
            "-c",
            conf,
            prefixes=SHARD_LINE_PREFIXES,
            printed=SHARD_PRINTED,
        )
        replica = client.list_objects_v2(Bucket="example-lake-replica", MaxKeys=1000).get("KeyCount", 0)
        print(f"\nAfter: s3://example-lake-replica/events/ holds {replica} object(s)")
        print("\nStopping the S3 server.")
        return 0 if state == second == worm == sharded == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
