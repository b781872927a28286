"""Benchmark: streaming one big object between two S3 endpoints — throughput and peak memory.

Two ``rclone serve s3`` processes on 127.0.0.1 play two providers. The operator copies a
200 MiB object from one to the other (GetObject -> multipart upload through the worker, nothing
on disk) in a child process that reports its peak RSS (``ru_maxrss``) and its RSS before the
transfer; ``rclone copy`` between the same two endpoints runs for comparison (``aws s3 sync`` and
``s5cmd`` cannot sync between two endpoints). The memory bound checked is the issue's:
growth during the transfer <= concurrency x part size + 100 MB. No timing is asserted anywhere.

    make bench
    .venv/bin/python bench/cross_endpoint.py --mib 200 --concurrency 10
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")

from tests.support import BIN, S3Server, rclone_server, use_connection  # noqa: E402

MIB = 1024 * 1024
PART = 8 * MIB  # s3transfer's default multipart_chunksize


def current_rss() -> int:
    """This process's resident set size now, in bytes (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def child(source: str, dest: str, concurrency: int) -> None:
    """Run in a fresh interpreter: import, note the RSS, copy, print the measurements as JSON.

    The peak (``ru_maxrss``) may come from start-up rather than the transfer; either way the
    transfer grew the process by at most ``peak - before``."""
    from airflow_s3sync import S3SyncOperator

    operator = S3SyncOperator(
        task_id="bench",
        source=source,
        dest=dest,
        source_aws_conn_id="bench_source",
        dest_aws_conn_id="bench_dest",
        max_concurrency=concurrency,
    )
    before = current_rss()
    start = time.perf_counter()
    summary = operator.execute({})
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"seconds": seconds, "rss_before": before, "rss_peak": peak, "copied": summary["copied"]}))


def rclone_env(servers: dict[str, S3Server]) -> dict[str, str]:
    env = {**os.environ, "RCLONE_CONFIG": os.devnull}
    for name, server in servers.items():
        prefix = f"RCLONE_CONFIG_{name.upper()}_"
        env.update(
            {
                prefix + "TYPE": "s3",
                prefix + "PROVIDER": "Other",
                prefix + "ENDPOINT": server.endpoint_url,
                prefix + "ACCESS_KEY_ID": server.access_key,
                prefix + "SECRET_ACCESS_KEY": server.secret_key,
                prefix + "FORCE_PATH_STYLE": "true",
            }
        )
    return env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=200, help="object size")
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--child", nargs=2, metavar=("SOURCE", "DEST"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child, args.concurrency)
        return 0

    with tempfile.TemporaryDirectory(prefix="s3sync-xbench-") as tmp:
        work = Path(tmp)
        (work / "a").mkdir()
        (work / "b").mkdir()
        with rclone_server(work / "a") as a, rclone_server(work / "b") as b:
            a.client().create_bucket(Bucket="source")
            with tempfile.TemporaryFile() as data:
                data.write(os.urandom(args.mib * MIB))
                data.seek(0)
                a.client().upload_fileobj(data, "source", "data/big.bin")
            for bucket in ("ours", "rclone"):
                b.client().create_bucket(Bucket=bucket)

            env = {**os.environ}
            use_connection(env, "bench_source", a.connection_json())
            use_connection(env, "bench_dest", b.connection_json())
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    f"--concurrency={args.concurrency}",
                    "--child",
                    "s3://source/data/",
                    "s3://ours/",
                ],
                env=env,
                capture_output=True,
                text=True,
                check=True,
                timeout=1800,
            ).stdout
            ours = json.loads(out.strip().splitlines()[-1])
            if ours["copied"] != 1:
                raise RuntimeError(f"the operator copied {ours['copied']} objects, not 1")

            start = time.perf_counter()
            subprocess.run(
                [str(BIN / "rclone"), "copy", "srca:source/data", "dstb:rclone/data"],
                env=rclone_env({"srca": a, "dstb": b}),
                capture_output=True,
                check=True,
                timeout=1800,
            )
            rclone_seconds = time.perf_counter() - start

    growth = ours["rss_peak"] - ours["rss_before"]
    bound = args.concurrency * PART + 100 * 10**6
    lines = [
        f"# Cross-endpoint streaming ({time.strftime('%Y-%m-%d %H:%M')})",
        "",
        f"One {args.mib} MiB object between two `rclone serve s3` endpoints on 127.0.0.1; "
        f"max_concurrency={args.concurrency}, part size {PART // MIB} MiB.",
        "",
        "| tool | seconds | MiB/s | ratio (tool / ours) |",
        "| --- | --- | --- | --- |",
        f"| airflow-s3sync | {ours['seconds']:.2f} | {args.mib / ours['seconds']:.0f} | 1.00 |",
        f"| rclone copy | {rclone_seconds:.2f} | {args.mib / rclone_seconds:.0f} | "
        f"{rclone_seconds / ours['seconds']:.2f} |",
        "",
        f"Operator process: RSS {ours['rss_before'] / MIB:.0f} MiB before the transfer, peak "
        f"{ours['rss_peak'] / MIB:.0f} MiB; growth {growth / MIB:.0f} MiB against a bound of "
        f"{bound / MIB:.0f} MiB (concurrency x part size + 100 MB): "
        f"{'within' if growth <= bound else 'EXCEEDED'}.",
    ]
    report = "\n".join(lines) + "\n"
    print(report)
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / "cross-endpoint.md").write_text(report)
    return 0 if growth <= bound else 1


if __name__ == "__main__":
    sys.exit(main())
