"""The example DAGs, run for real: temporary AIRFLOW_HOME, `airflow db migrate`, `airflow dags test`."""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support import S3Server, airflow_home, dag_run_states, run_airflow, use_connection

EXAMPLES = Path(__file__).resolve().parents[2] / "example_dags"
DAG_ID = "s3sync_hourly_replication"


@pytest.fixture(scope="module")
def home(moto: S3Server):
    with airflow_home() as (dags, env):
        for example in EXAMPLES.glob("*.py"):
            shutil.copy(example, dags)
        use_connection(env, "aws_default", moto.connection_json())
        yield Path(env["AIRFLOW_HOME"]), env


def xcom_values(airflow_home: Path, key: str, dag_id: str = DAG_ID) -> list:
    with sqlite3.connect(airflow_home / "airflow.db") as db:
        rows = db.execute("select value from xcom where key = ? and dag_id = ?", (key, dag_id)).fetchall()
    return [json.loads(value) if isinstance(value, str | bytes) else value for (value,) in rows]


def test_provider_is_registered(home):
    _, env = home
    assert "airflow-s3sync" in run_airflow(env, "providers", "list").stdout


def test_hourly_replication_dag_succeeds_and_replicates(home, moto):
    airflow_home_path, env = home
    client = moto.client()
    for bucket in ("example-source", "example-replica"):
        client.create_bucket(Bucket=bucket)
    for key in ("data/a.csv", "data/sub/b.csv", "data/skip.tmp", "other/c.csv"):
        client.put_object(Bucket="example-source", Key=key, Body=key.encode())
    client.put_object(Bucket="example-replica", Key="data/stale.csv", Body=b"old")

    result = run_airflow(env, "dags", "test", DAG_ID, "2026-01-01T00:00:00+00:00", check=False)

    assert dag_run_states(env, DAG_ID) == ["success"], result.stdout[-5000:] + result.stderr[-5000:]
    listed = client.list_objects_v2(Bucket="example-replica")["Contents"]
    assert sorted(o["Key"] for o in listed) == ["data/a.csv", "data/sub/b.csv"]
    assert sorted(xcom_values(airflow_home_path, "changed_keys")[0]) == ["a.csv", "sub/b.csv"]


def test_worm_dags_carry_retention_hourly_for_changed_keys_and_daily_for_everything(home, moto):
    airflow_home_path, env = home
    client = moto.client()
    src, dst = "example-worm", "example-worm-replica"
    for bucket in (src, dst):
        client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    until = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    client.put_object(
        Bucket=src,
        Key="records/2026/a.pdf",
        Body=b"a",
        ObjectLockMode="COMPLIANCE",
        ObjectLockRetainUntilDate=until,
    )
    client.put_object(Bucket=src, Key="records/b.pdf", Body=b"b", ObjectLockLegalHoldStatus="ON")
    client.put_object(Bucket=src, Key="records/c.pdf", Body=b"c")

    result = run_airflow(env, "dags", "test", "s3sync_worm_hourly", "2026-01-01T00:00:00+00:00", check=False)

    assert dag_run_states(env, "s3sync_worm_hourly") == ["success"], result.stdout[-5000:] + result.stderr[-5000:]
    head = client.head_object(Bucket=dst, Key="records/2026/a.pdf")
    assert (head["ObjectLockMode"], head["ObjectLockRetainUntilDate"]) == ("COMPLIANCE", until)
    assert client.head_object(Bucket=dst, Key="records/b.pdf")["ObjectLockLegalHoldStatus"] == "ON"
    assert "ObjectLockMode" not in client.head_object(Bucket=dst, Key="records/c.pdf")
    changed = xcom_values(airflow_home_path, "changed_keys", "s3sync_worm_hourly")[0]
    assert sorted(changed) == ["2026/a.pdf", "b.pdf", "c.pdf"]
    [summary] = [
        value for value in xcom_values(airflow_home_path, "return_value", "s3sync_worm_hourly") if "applied" in value
    ]
    assert {"applied": 2, "unchanged": 1, "skipped": 0, "failed": 0}.items() <= summary.items()

    # Later the source's retention is extended, without the data changing: only the scan sees it.
    client.put_object_retention(
        Bucket=src,
        Key="records/b.pdf",
        Retention={"Mode": "GOVERNANCE", "RetainUntilDate": until},
    )
    result = run_airflow(env, "dags", "test", "s3sync_worm_daily_scan", "2026-01-02T00:00:00+00:00", check=False)

    assert dag_run_states(env, "s3sync_worm_daily_scan") == ["success"], result.stdout[-5000:] + result.stderr[-5000:]
    assert client.head_object(Bucket=dst, Key="records/b.pdf")["ObjectLockMode"] == "GOVERNANCE"


FAILING_DAG = """
from datetime import datetime

from airflow.sdk import DAG

from airflow_s3sync import S3SyncOperator

with DAG(dag_id="s3sync_failing", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    S3SyncOperator(task_id="replicate", source="s3://no-such-bucket/data/", dest="s3://example-replica/data/")
"""


def test_a_failing_sync_fails_the_dag_run(home):
    """The state assertion above can fail: a sync from a missing bucket fails its run."""
    airflow_home_path, env = home
    (airflow_home_path / "dags" / "s3sync_failing.py").write_text(FAILING_DAG)

    result = run_airflow(env, "dags", "test", "s3sync_failing", check=False)

    assert dag_run_states(env, "s3sync_failing") == ["failed"]
    assert "bucket 'no-such-bucket' does not exist" in result.stdout + result.stderr


@pytest.mark.parametrize("changed_keys", [None, ["a", "b"]], ids=["over-the-limit", "listed"])
def test_the_hourly_report_task_handles_changed_keys_over_the_limit(changed_keys):
    """The sync pushes ``changed_keys=None`` when more keys changed than its limit."""
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "example_dags" / "s3sync_hourly_replication.py"
    spec = importlib.util.spec_from_file_location("hourly_replication_dag", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    assert module.report.function({"changed_keys_count": 20_001}, changed_keys) == 20_001


SHARDED = "s3sync_sharded_replication"


def test_sharded_dag_maps_the_sync_over_key_ranges_and_adds_up_the_shards(home, moto):
    airflow_home_path, env = home
    client = moto.client()
    src, dst = "example-sharded", "example-sharded-replica"
    for bucket in (src, dst):
        client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    until = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    keys = [f"data/{d}/{i:03d}.csv" for d in ("a", "a-b", "a.b", "b", "c") for i in range(40)]
    for n, key in enumerate(keys):
        lock = {"ObjectLockMode": "GOVERNANCE", "ObjectLockRetainUntilDate": until} if n % 50 == 0 else {}
        client.put_object(Bucket=src, Key=key, Body=key.encode(), **lock)
    for stale in ("data/a/zzz.csv", "data/z/old.csv", "data/0/old.csv"):
        client.put_object(Bucket=dst, Key=stale, Body=b"stale")
    conf = {"source": f"s3://{src}/data/", "dest": f"s3://{dst}/data/", "shards": 3}

    result = run_airflow(env, "dags", "test", SHARDED, "-c", json.dumps(conf), check=False)

    assert dag_run_states(env, SHARDED) == ["success"], result.stdout[-5000:] + result.stderr[-5000:]
    listed = client.list_objects_v2(Bucket=dst, Prefix="data/")["Contents"]
    assert sorted(o["Key"] for o in listed) == sorted(keys)
    head = client.head_object(Bucket=dst, Key=keys[50])
    assert (head["ObjectLockMode"], head["ObjectLockRetainUntilDate"]) == ("GOVERNANCE", until)
    values = xcom_values(airflow_home_path, "return_value", SHARDED)
    [ranges] = [v for v in values if isinstance(v, list) and v and isinstance(v[0], list)]
    assert len(ranges) == 3 and ranges[0][0] is None and ranges[-1][1] is None
    [total] = [v for v in values if isinstance(v, dict) and "shards" in v]
    assert (total["shards"], total["copied"], total["deleted"], total["failed"]) == (3, len(keys), 3, 0)
    assert total["retention_applied"] == len(keys) // 50
    with sqlite3.connect(airflow_home_path / "airflow.db") as db:
        names = db.execute(
            "select rendered_map_index from task_instance where dag_id = ? and task_id = 'sync' order by map_index",
            (SHARDED,),
        ).fetchall()
    assert [name for (name,) in names] == [
        f"keys up to {ranges[0][1]!r}",
        f"keys after {ranges[1][0]!r} up to {ranges[1][1]!r}",
        f"keys after {ranges[2][0]!r} up to last key",
    ]


def test_sharded_dag_refuses_before_any_change_when_the_shards_would_delete_too_much(home, moto):
    _, env = home
    client = moto.client()
    src, dst = "example-sharded-guard", "example-sharded-guard-replica"
    for bucket in (src, dst):
        client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=src, Key="data/keep.csv", Body=b"x")
    stale = [f"data/{c}/old.csv" for c in "amz"]
    for key in stale:
        client.put_object(Bucket=dst, Key=key, Body=b"stale")
    conf = {
        "source": f"s3://{src}/data/",
        "dest": f"s3://{dst}/data/",
        "shards": 3,
        "max_delete": 2,
        "copy_retention": False,
    }

    result = run_airflow(env, "dags", "test", SHARDED, "-c", json.dumps(conf), check=False)

    assert "failed" in dag_run_states(env, SHARDED)
    assert "more than max_delete=2" in result.stdout + result.stderr
    listed = client.list_objects_v2(Bucket=dst)["Contents"]
    assert sorted(o["Key"] for o in listed) == stale


def test_a_dag_run_sends_the_s3sync_metrics_with_the_counts_of_its_summary(home, moto):
    """A UDP socket on 127.0.0.1 as Airflow's StatsD host gets ``airflow.s3sync.*`` from the
    example DAG's run under ``airflow dags test``, with the counts of the run's summary."""
    import socket

    airflow_home_path, env = home
    client = moto.client()
    for bucket in ("example-source", "example-replica"):
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(Bucket=bucket)
    for key in ("data/m1.csv", "data/m2.csv", "data/m3.csv"):
        client.put_object(Bucket="example-source", Key=key, Body=b"metrics " + key.encode())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as statsd:
        statsd.bind(("127.0.0.1", 0))
        statsd.settimeout(0.2)
        metrics_env = {
            **env,
            "AIRFLOW__METRICS__STATSD_ON": "True",
            "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
            "AIRFLOW__METRICS__STATSD_PORT": str(statsd.getsockname()[1]),
        }
        result = run_airflow(metrics_env, "dags", "test", DAG_ID, "2026-01-02T00:00:00+00:00", check=False)
        packets: list[str] = []
        with contextlib.suppress(TimeoutError):
            while True:
                packets += statsd.recv(65536).decode().splitlines()

    assert "success" in dag_run_states(env, DAG_ID), result.stdout[-3000:] + result.stderr[-3000:]
    summaries = [value for value in xcom_values(airflow_home_path, "return_value") if isinstance(value, dict)]
    summary = summaries[-1]
    sent = {}
    for packet in packets:
        name, _, rest = packet.partition(":")
        if name.startswith("airflow.s3sync."):
            value, kind = rest.split("|")[:2]
            sent.setdefault(name, []).append((float(value), kind))
    assert summary["copied"] >= 3
    assert sent["airflow.s3sync.copied"] == [(summary["copied"], "c")], packets
    assert sent["airflow.s3sync.bytes"] == [(summary["bytes_transferred"], "c")], packets
    assert [kind for _, kind in sent["airflow.s3sync.duration"]] == ["ms"], packets
