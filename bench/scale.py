"""`make scale-demo`: the sharded sync DAG on a real multi-process Airflow, against one task.

Everything runs on this machine, as separate processes:

1. ``rclone serve s3`` on 127.0.0.1 over a temporary directory (a bucket is a top-level folder),
   with ``--objects`` objects written straight into the source bucket's folder on disk (far
   faster than PUTs) and two empty destination buckets;
2. a temporary AIRFLOW_HOME (sqlite, ``airflow db migrate``) whose DAGs folder holds the sharded
   DAG and its baseline, and an ``AIRFLOW_CONN_AWS_DEFAULT`` pointing at the server;
3. ``airflow api-server`` (a free port on 127.0.0.1), ``airflow scheduler`` (LocalExecutor,
   ``--parallelism`` worker processes) and ``airflow dag-processor``, waited for through the
   API server's health endpoint;
4. the sharded DAG is unpaused and triggered (``airflow dags trigger --conf``) into one
   destination bucket, then the same sync unsharded into the other; each run is polled until
   it ends, the destination is compared with the source (every key, size and ETag, and the
   bytes of a sample), and both times, their ratio and each task's duration are printed.

The sharded DAG is ``example_dags/s3sync_sharded_replication.py`` (``S3KeyRangesOperator`` ->
mapped dry-run plan -> delete guard -> mapped ``S3SyncOperator(key_range=...)`` -> summary; its
Object Lock retention step is turned off with ``copy_retention=false``, since ``rclone serve s3``
has no Object Lock).
The unsharded run is, by default, the same DAG with ``shards=1`` (same tasks, same overhead);
``--baseline plain`` uses ``bench/scale_dags/s3sync_scale_unsharded.py``, one sync task. An
unmeasured warm-up run over a few objects goes first (``--no-warmup`` skips it).

S3 -> S3 on one endpoint (server-side CopyObject) is the data-lake case, and the one where the
worker's own CPU per object (botocore, logging) is the largest share of the work, so more worker
processes have the most to gain. On a small machine the S3 server, the API server and the task
supervisors share the same cores: the "cores busy" column shows when the CPU is the limit.

With ``--latency-ms N`` every request of the DAG runs goes through a loopback proxy
(``tests/faults.py``'s ``FaultProxy``, no faults injected) that holds each request for N ms before
forwarding it to the server, as a remote endpoint would (10-30 ms: AWS from another region, or a
provider across the network), and ``AIRFLOW_CONN_AWS_DEFAULT`` points at the proxy. A sync is then
bound by waiting rather than by CPU, the case where shards' extra concurrency (each has its own
``max_concurrency`` workers and its own listing) pays. The source objects are written to disk and
both replicas checked against the server directly, not through the proxy. The proxy runs as
threads of this script; its CPU time over each run is printed ("proxy cores"), so that one can see
it was not the limit.

Every process started here is stopped on the way out (also on Ctrl-C or an error), and the
temporary directory is removed unless ``--keep`` is given. Nothing prints a credential.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.faults import FaultProxy  # noqa: E402
from tests.support import BIN, connection_json_via, rclone_server, run_airflow  # noqa: E402

EXAMPLE_DAG = ROOT / "example_dags" / "s3sync_sharded_replication.py"
EXAMPLE_DAG_ID = "s3sync_sharded_replication"
PLAIN_DAG = ROOT / "bench" / "scale_dags" / "s3sync_scale_unsharded.py"
PLAIN_DAG_ID = "s3sync_scale_unsharded"
CONN_ID = "aws_default"
SOURCE_BUCKET, SOURCE_PREFIX = "scale-src", "data/"
SHARDED_BUCKET, SINGLE_BUCKET = "scale-sharded", "scale-single"
WARMUP_PREFIX, WARMUP_BUCKET, WARMUP_OBJECTS = "warmup/", "scale-warmup", 30
SERVICES = ("api-server", "scheduler", "dag-processor")


def say(message: str) -> None:
    print(message, flush=True)


# --------------------------------------------------------------------------- data


def make_objects(bucket_dir: Path, prefix: str, count: int, size: int) -> None:
    """``count`` distinct objects of ``size`` bytes under ``prefix``, in folders of up to 200 (at
    least 50 folders when there are that many objects), written as files into the directory that
    ``rclone serve s3`` serves as the bucket."""
    base = bucket_dir / prefix
    payload = os.urandom(max(size, 8))
    per_folder = max(1, min(200, count // 50))
    for n in range(count):
        folder = base / f"d{n // per_folder:05d}"
        if n % per_folder == 0:
            folder.mkdir(parents=True, exist_ok=True)
        body = (payload[: max(size - 8, 0)] + n.to_bytes(8, "big"))[-size:] if size else b""
        (folder / f"obj{n:08d}.bin").write_bytes(body)


def listing(client: Any, bucket: str, prefix: str) -> dict[str, tuple[int, str]]:
    """Every object under ``prefix``: key relative to it -> (size, ETag)."""
    found: dict[str, tuple[int, str]] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            found[obj["Key"][len(prefix) :]] = (obj["Size"], obj["ETag"])
    return found


def compare(client: Any, source: dict[str, tuple[int, str]], prefix: str, bucket: str, sample: int) -> str | None:
    """None when ``bucket/prefix`` holds exactly the keys, sizes and ETags of the ``source`` listing
    of ``SOURCE_BUCKET/prefix``, and a random sample of objects has the same bytes on both sides;
    else what differs."""
    dest = listing(client, bucket, prefix)
    if dest != source:
        missing = sorted(source.keys() - dest.keys())
        extra = sorted(dest.keys() - source.keys())
        changed = sorted(k for k in source.keys() & dest.keys() if source[k] != dest[k])
        return (
            f"{len(dest)} objects, {len(source)} expected: {len(missing)} missing {missing[:3]}, "
            f"{len(extra)} extra {extra[:3]}, {len(changed)} differ {changed[:3]}"
        )
    for key in random.Random(0).sample(sorted(source), min(sample, len(source))):
        want = client.get_object(Bucket=SOURCE_BUCKET, Key=prefix + key)["Body"].read()
        got = client.get_object(Bucket=bucket, Key=prefix + key)["Body"].read()
        if got != want:
            return f"{key}: contents differ"
    return None


# --------------------------------------------------------------------------- Airflow processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def airflow_env(home: Path, connection: str, port: int, parallelism: int) -> dict[str, str]:
    """The environment of every Airflow process: this home, LocalExecutor, the API server on
    ``port``, and the S3 connection (``AIRFLOW_CONN_*`` JSON). Nothing AIRFLOW_* or AWS_* from
    outside leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AWS_"))}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__EXECUTOR="LocalExecutor",
        AIRFLOW__CORE__PARALLELISM=str(parallelism),
        AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="True",
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{port}/execution/",
        AIRFLOW__API__BASE_URL=f"http://127.0.0.1:{port}",
        AIRFLOW__API__HOST="127.0.0.1",
        AIRFLOW__API__PORT=str(port),
        # One secret for the scheduler (which signs the tasks' tokens) and the API server.
        AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_urlsafe(64),
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
        AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
        AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK="False",
        AIRFLOW_CONN_AWS_DEFAULT=connection,
        PYTHONUNBUFFERED="1",
    )
    return env


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(f"  {self.name} | {line}" for line in text[-lines:])


def stop(service: Service, grace: float = 30.0) -> None:
    """SIGTERM the service's process group (it runs in a session of its own, so this reaches the
    executor's workers and the API server's workers, and nothing else), then SIGKILL what is left."""
    pgid = service.process.pid
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    try:
        service.process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # children that outlive the leader
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        service.process.wait(timeout=10)


@contextlib.contextmanager
def services(
    env: dict[str, str], logs: Path, port: int, names: tuple[str, ...] = SERVICES
) -> Iterator[dict[str, Service]]:
    """The API server, the scheduler and the DAG processor (and the triggerer, if ``names`` has
    it), each in its own session; all stopped (last started first) when the block ends, however
    it ends."""
    commands = {
        "api-server": ["api-server", "--host", "127.0.0.1", "--port", str(port)],
        "scheduler": ["scheduler", "--skip-serve-logs"],  # no log server on a fixed port
        "dag-processor": ["dag-processor"],
        "triggerer": ["triggerer", "--skip-serve-logs"],
    }
    started: dict[str, Service] = {}
    try:
        for name in names:
            log = logs / f"{name}.log"
            with log.open("wb") as out:
                process = subprocess.Popen(
                    [str(BIN / "airflow"), *commands[name]],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            started[name] = Service(name, process, log)
        yield started
    finally:
        for service in reversed(list(started.values())):
            stop(service)


def check_alive(running: dict[str, Service]) -> None:
    for service in running.values():
        if service.process.poll() is not None:
            fail(f"airflow {service.name} exited with {service.process.returncode}", running)


def fail(message: str, running: dict[str, Service] | None = None) -> NoReturn:
    tails = "\n".join(s.tail() for s in (running or {}).values())
    raise SystemExit(f"error: {message}" + (f"\n{tails}" if tails else ""))


def wait_healthy(
    port: int,
    running: dict[str, Service],
    timeout: float,
    parts: tuple[str, ...] = ("metadatabase", "scheduler", "dag_processor"),
) -> float:
    """Wait until the API server answers and reports ``parts`` (the database, the scheduler and
    the DAG processor) healthy; return the seconds it took."""
    start = time.monotonic()
    url = f"http://127.0.0.1:{port}/api/v2/monitor/health"
    health: dict[str, Any] = {}
    while time.monotonic() - start < timeout:
        check_alive(running)
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                health = json.load(response)
        except (OSError, urllib.error.URLError, ValueError):
            health = {}
        if health and all((health.get(part) or {}).get("status") == "healthy" for part in parts):
            return time.monotonic() - start
        time.sleep(1)
    fail(f"Airflow was not healthy within {timeout:.0f} s: {health}", running)


# --------------------------------------------------------------------------- the metadata database


def query(db: Path, sql: str, *params: object) -> list[tuple[Any, ...]]:
    """A read-only query on the sqlite metadata database (retried while a writer holds it)."""
    for attempt in range(20):
        try:
            with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as conn:
                return conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError:
            if attempt == 19:
                raise
            time.sleep(0.25)
    return []


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def wait_parsed(db: Path, dag_ids: list[str], running: dict[str, Service], timeout: float) -> None:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        check_alive(running)
        marks = ",".join("?" * len(dag_ids))
        found = {row[0] for row in query(db, f"select dag_id from serialized_dag where dag_id in ({marks})", *dag_ids)}
        if found == set(dag_ids):
            return
        time.sleep(1)
    errors = run_airflow_env(running, ["dags", "list-import-errors"])
    fail(f"the DAGs {dag_ids} were not parsed within {timeout:.0f} s\n{errors}", running)


_ENV: dict[str, str] = {}


def run_airflow_env(running: dict[str, Service], args: list[str]) -> str:
    result = run_airflow(_ENV, *args, check=False)
    if result.returncode != 0:
        fail(
            f"airflow {' '.join(args)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}",
            running,
        )
    return result.stdout


def cpu_jiffies() -> tuple[int, int] | None:
    """(busy, total) CPU time of the whole machine so far, from /proc/stat (None elsewhere)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def busy_cores(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    if before is None or after is None or after[1] == before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1]) * (os.cpu_count() or 1)


def own_cpu() -> float:
    """CPU seconds (user + system) this process has used so far: with ``--latency-ms``, the
    proxy's threads (the rest of this process sleeps between polls of the database)."""
    times = os.times()
    return times.user + times.system


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


@dataclass
class TaskTime:
    task: str
    state: str
    seconds: float | None
    start: str | None  # as the database holds them (UTC)
    end: str | None


@dataclass
class RunResult:
    label: str
    dag_id: str
    run_id: str
    shards: int
    state: str
    seconds: float  # the run's start to its end, as the scheduler recorded them
    trigger_to_done: float  # from `airflow dags trigger` to the end being seen here
    cores_busy: float | None = None  # the machine's average busy cores over the run (all processes)
    proxy_requests: int | None = None  # requests through the latency proxy (None: no proxy)
    proxy_cpu: float | None = None  # CPU seconds of this process (the proxy's threads) over the run
    tasks: list[TaskTime] = field(default_factory=list)
    verified: str | None = "not checked"


def run_dag(
    db: Path,
    running: dict[str, Service],
    label: str,
    dag_id: str,
    conf: dict[str, Any],
    timeout: float,
    proxy: FaultProxy | None = None,
) -> RunResult:
    run_id = f"scale_{label}_{int(time.time())}"
    say(f"[{label}] airflow dags trigger {dag_id} --conf '{json.dumps(conf)}'")
    started, cpu_before = time.monotonic(), cpu_jiffies()
    own_before, requests_before = own_cpu(), (proxy.requests if proxy else 0)
    run_airflow_env(running, ["dags", "trigger", dag_id, "--conf", json.dumps(conf), "--run-id", run_id])
    state, row = "queued", None
    last_report = 0.0
    while time.monotonic() - started < timeout:
        check_alive(running)
        rows = query(
            db, "select state, start_date, end_date from dag_run where dag_id = ? and run_id = ?", dag_id, run_id
        )
        if rows:
            row = rows[0]
            state = row[0]
            if state in ("success", "failed"):
                break
        if time.monotonic() - last_report >= 15:
            last_report = time.monotonic()
            counts = query(
                db,
                "select state, count(*) from task_instance where dag_id = ? and run_id = ? group by state",
                dag_id,
                run_id,
            )
            summary = ", ".join(f"{n} {s or 'none'}" for s, n in counts) or "no tasks yet"
            say(f"[{label}] {time.monotonic() - started:5.0f} s: run {state}; tasks: {summary}")
        time.sleep(0.5)
    else:
        fail(f"the {label} run did not finish within {timeout:.0f} s (state {state})", running)
    trigger_to_done = time.monotonic() - started
    cores_busy = busy_cores(cpu_before, cpu_jiffies())
    proxy_cpu = own_cpu() - own_before if proxy else None
    proxy_requests = proxy.requests - requests_before if proxy else None
    begin, end = (parse_time(row[1]), parse_time(row[2])) if row else (None, None)
    seconds = (end - begin).total_seconds() if begin and end else trigger_to_done
    tasks = [
        TaskTime(
            task if map_index < 0 else f"{task}[{rendered or map_index}]",
            task_state or "none",
            duration,
            begin,
            finish,
        )
        for task, map_index, rendered, task_state, duration, begin, finish in query(
            db,
            "select task_id, map_index, rendered_map_index, state, duration, start_date, end_date from task_instance"
            " where dag_id = ? and run_id = ? order by start_date is null, start_date, map_index",
            dag_id,
            run_id,
        )
    ]
    shards = int(conf.get("shards", 1))
    return RunResult(
        label, dag_id, run_id, shards, state, seconds, trigger_to_done, cores_busy, proxy_requests, proxy_cpu, tasks
    )


def failed_task_logs(logs: Path, run_id: str, lines: int = 30) -> str:
    """The last lines of the task logs of the run that mention an error."""
    out = []
    for path in sorted(logs.glob(f"**/run_id={run_id}/**/*.log")):
        text = path.read_text(errors="replace")
        if "error" in text.lower():
            out.append(f"--- {path.relative_to(logs)}")
            out += text.splitlines()[-lines:]
    return "\n".join(out)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--objects", type=int, default=20_000, help="objects in the source (default 20,000)")
    parser.add_argument("--size", type=int, default=4096, help="bytes per object (default 4096)")
    parser.add_argument("--shards", type=int, default=4, help="shards of the sharded run (default 4)")
    parser.add_argument(
        "--parallelism", type=int, default=4, help="LocalExecutor worker processes, [core] parallelism (default 4)"
    )
    parser.add_argument(
        "--baseline",
        choices=("same-dag", "plain"),
        default="same-dag",
        help="the unsharded run: the sharded DAG with shards=1 (default), or a DAG of one sync task",
    )
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="hold every request of the DAG runs this many ms in a loopback proxy, as a remote endpoint would "
        "(default 0: no proxy)",
    )
    parser.add_argument("--timeout", type=float, default=1800, help="seconds each DAG run may take (default 1800)")
    parser.add_argument("--sample", type=int, default=50, help="objects whose bytes are compared after each run")
    parser.add_argument(
        "--no-warmup",
        dest="warmup",
        action="store_false",
        help=f"skip the unmeasured first run of the sharded DAG over {WARMUP_OBJECTS} objects",
    )
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, database)")
    args = parser.parse_args(argv)
    if args.objects < 1 or args.shards < 1 or args.parallelism < 2:
        parser.error("--objects and --shards must be at least 1, --parallelism at least 2")
    if not 0 <= args.latency_ms <= 10_000:
        parser.error("--latency-ms must be between 0 and 10000")
    return args


def extra_conf(dag_file: Path) -> dict[str, Any]:
    """The example DAG's other params, where it has them: this connection, and no Object Lock
    retention step (``rclone serve s3`` has no Object Lock)."""
    text = dag_file.read_text()
    conf: dict[str, Any] = {}
    if '"aws_conn_id": Param' in text:
        conf["aws_conn_id"] = CONN_ID
    if '"copy_retention": Param' in text:
        conf["copy_retention"] = False
    return conf


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupted)  # a `kill` cleans up like Ctrl-C
    dag_file, dag_id = EXAMPLE_DAG, EXAMPLE_DAG_ID
    work = Path(tempfile.mkdtemp(prefix="s3sync-scale-"))
    try:
        return scale_demo(args, work, dag_file, dag_id)
    except KeyboardInterrupt:
        say("interrupted: stopping everything")
        return 130
    finally:
        if args.keep:
            say(f"kept {work} (logs: {work / 'logs'}, database: {work / 'airflow' / 'airflow.db'})")
        else:
            shutil.rmtree(work, ignore_errors=True)


def scale_demo(args: argparse.Namespace, work: Path, dag_file: Path, dag_id: str) -> int:
    s3root, home, logs = work / "s3", work / "airflow", work / "logs"
    buckets = (SOURCE_BUCKET, SHARDED_BUCKET, SINGLE_BUCKET, WARMUP_BUCKET)
    for folder in (*(s3root / bucket for bucket in buckets), home / "dags", logs):
        folder.mkdir(parents=True)

    load = load_average()
    if load is not None and load > 0.5:
        say(f"note: the machine is not idle (load average {load:.2f}): the times below are noisy")
    started = time.monotonic()
    make_objects(s3root / SOURCE_BUCKET, SOURCE_PREFIX, args.objects, args.size)
    make_objects(s3root / SOURCE_BUCKET, WARMUP_PREFIX, WARMUP_OBJECTS, args.size)
    say(f"wrote {args.objects:,} objects of {args.size:,} bytes in {time.monotonic() - started:.1f} s")

    with contextlib.ExitStack() as stack:
        server = stack.enter_context(rclone_server(s3root))
        client = server.client(retries={"max_attempts": 10, "mode": "standard"})
        source = listing(client, SOURCE_BUCKET, SOURCE_PREFIX)
        warmup = listing(client, SOURCE_BUCKET, WARMUP_PREFIX)
        if len(source) != args.objects or len(warmup) != WARMUP_OBJECTS:
            fail(f"the server lists {len(source)} source objects, {args.objects} were written")
        say(f"rclone serve s3 on {server.endpoint_url}: s3://{SOURCE_BUCKET}/{SOURCE_PREFIX} lists {len(source):,}")
        proxy: FaultProxy | None = None
        # rclone serve s3 lists in S3's order, StartAfter included: declared so, each shard lists its
        # own range rather than the prefix to its end (the default for an endpoint of one's own).
        order = {"listing_order": "s3"}
        connection = server.connection_json(**order)
        if args.latency_ms > 0:  # no faults: only the wait; started before and stopped after Airflow
            proxy = FaultProxy(server.endpoint_url, rate=0.0, seed=1, latency=args.latency_ms / 1000)
            stack.enter_context(proxy)
            connection = connection_json_via(server, proxy.endpoint_url, **order)
            say(f"latency proxy on {proxy.endpoint_url}: {args.latency_ms:g} ms per request; the DAG runs use it")

        shutil.copy(dag_file, home / "dags")
        baseline_id = dag_id
        if args.baseline == "plain":
            shutil.copy(PLAIN_DAG, home / "dags")
            baseline_id = PLAIN_DAG_ID
        port = free_port()
        env = airflow_env(home, connection, port, args.parallelism)
        _ENV.clear()
        _ENV.update(env)
        started = time.monotonic()
        run_airflow(env, "db", "migrate")
        say(f"airflow db migrate (sqlite) in {time.monotonic() - started:.1f} s")

        with services(env, logs, port) as running:
            say(f"started airflow {', '.join(SERVICES)} (LocalExecutor, parallelism {args.parallelism}); waiting")
            up = wait_healthy(port, running, timeout=240)
            db = home / "airflow.db"
            wait_parsed(db, sorted({dag_id, baseline_id}), running, timeout=240)
            say(f"healthy and parsed in {up:.1f} s+; api-server on http://127.0.0.1:{port}")
            for each in sorted({dag_id, baseline_id}):
                run_airflow_env(running, ["dags", "unpause", each])

            plan = [
                ("sharded", dag_id, SHARDED_BUCKET, args.shards),
                ("unsharded", baseline_id, SINGLE_BUCKET, 1),
            ]
            if args.warmup:  # the first run pays for cold caches (imports, bytecode, page cache): not measured
                plan.insert(0, ("warm-up", dag_id, WARMUP_BUCKET, args.shards))
            results: list[RunResult] = []
            for label, run_dag_id, bucket, shards in plan:
                prefix = WARMUP_PREFIX if label == "warm-up" else SOURCE_PREFIX
                expected = warmup if label == "warm-up" else source
                conf: dict[str, Any] = {"source": f"s3://{SOURCE_BUCKET}/{prefix}", "dest": f"s3://{bucket}/{prefix}"}
                if run_dag_id != PLAIN_DAG_ID:
                    conf["shards"] = shards
                    conf.update(extra_conf(dag_file))
                result = run_dag(db, running, label, run_dag_id, conf, args.timeout, proxy)
                result.verified = compare(client, expected, prefix, bucket, args.sample)
                say(
                    f"[{label}] run {result.state} in {result.seconds:.1f} s "
                    f"(trigger to done {result.trigger_to_done:.1f} s); "
                    f"destination {'equals the source' if result.verified is None else 'DIFFERS: ' + result.verified}"
                )
                if result.proxy_cpu is not None:
                    say(
                        f"[{label}] latency proxy: {result.proxy_requests:,} requests, {result.proxy_cpu:.1f} CPU s "
                        f"({result.proxy_cpu / max(result.trigger_to_done, 1e-9):.2f} cores)"
                    )
                for task in result.tasks:
                    took = f"{task.seconds:7.1f} s" if task.seconds is not None else "      -  "
                    say(f"    {task.task:<48} {task.state:<10} {took}")
                if result.state != "success":
                    say(failed_task_logs(home / "logs", result.run_id))
                    say("\n".join(s.tail() for s in running.values()))
                if label != "warm-up":
                    results.append(result)
                if result.state != "success":
                    break

    report(args, results, dag_id)
    ok = len(results) == 2 and all(r.state == "success" and r.verified is None for r in results)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "objects": args.objects,
                    "size": args.size,
                    "shards": args.shards,
                    "parallelism": args.parallelism,
                    "latency_ms": args.latency_ms,
                    "cpus": os.cpu_count(),
                    "load_average_at_start": load,
                    "ok": ok,
                    "runs": [asdict(r) for r in results],
                },
                indent=2,
            )
        )
    return 0 if ok else 1


def report(args: argparse.Namespace, results: list[RunResult], dag_id: str) -> None:
    say("")
    via = f", every request held {args.latency_ms:g} ms by a loopback proxy" if args.latency_ms > 0 else ""
    say(
        f"{args.objects:,} objects x {args.size:,} bytes, S3 -> S3 on one rclone serve s3 endpoint (CopyObject){via}, "
        f"LocalExecutor parallelism {args.parallelism}, {os.cpu_count()} CPUs, DAG {dag_id}"
    )
    proxied = args.latency_ms > 0
    head = f"{'run':<10} {'shards':>6} {'state':<8} {'run time':>9} {'trigger→done':>13} {'cores busy':>10}"
    say(head + (f" {'requests':>9} {'proxy cores':>11}" if proxied else "") + "  destination")
    for r in results:
        verdict = "= source" if r.verified is None else f"DIFFERS ({r.verified})"
        busy = f"{r.cores_busy:.2f}" if r.cores_busy is not None else "-"
        line = f"{r.label:<10} {r.shards:>6} {r.state:<8} {r.seconds:>8.1f}s {r.trigger_to_done:>12.1f}s {busy:>10}"
        if proxied:
            requests = f"{r.proxy_requests:,}" if r.proxy_requests is not None else "-"
            cores = f"{r.proxy_cpu / r.trigger_to_done:.2f}" if r.proxy_cpu is not None and r.trigger_to_done else "-"
            line += f" {requests:>9} {cores:>11}"
        say(f"{line}  {verdict}")
    if len(results) == 2 and results[0].seconds > 0:
        say(f"unsharded / sharded: {results[1].seconds / results[0].seconds:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
