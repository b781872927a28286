"""Benchmark: streaming between two S3 endpoints — throughput and peak memory.

Two ``rclone serve s3`` processes on 127.0.0.1 play two providers. The operator copies a
200 MiB object from one to the other, then 500 small objects, (GetObject -> multipart upload through the worker, nothing
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


def status_bytes(field: str) -> int:
    """A size from /proc/self/status (Linux), in bytes: ``VmRSS`` now, ``VmHWM`` the peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0), so the peak measured is the transfer's."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def child(source: str, dest: str, concurrency: int) -> None:
    """Run in a fresh interpreter: import, note the RSS, copy, print the measurements as JSON.

    The peak is reset before the transfer where the kernel allows it; otherwise it may come
    from start-up, and the transfer grew the process by at most ``peak - before``."""
    from airflow_s3sync import S3SyncOperator

    operator = S3SyncOperator(
        task_id="bench",
        source=source,
        dest=dest,
        source_aws_conn_id="bench_source",
        dest_aws_conn_id="bench_dest",
        max_concurrency=concurrency,
    )
    reset = reset_peak_rss()
    before = status_bytes("VmRSS")
    start = time.perf_counter()
    summary = operator.execute({})
    seconds = time.perf_counter() - start
    peak = status_bytes("VmHWM")
    print(
        json.dumps(
            {
                "seconds": seconds,
                "rss_before": before,
                "rss_peak": peak,
                "peak_reset": reset,
                "copied": summary["copied"],
            }
        )
    )


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


def run_ours(env: dict[str, str], source: str, dest: str, concurrency: int, expected: int) -> dict:
    """The operator in a child process; its measurements."""
    cmd = [sys.executable, __file__, f"--concurrency={concurrency}", "--child", source, dest]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, timeout=1800).stdout
    result = json.loads(out.strip().splitlines()[-1])
    if result["copied"] != expected:
        raise RuntimeError(f"the operator copied {result['copied']} objects, not {expected}")
    return result


def run_rclone(env: dict[str, str], source: str, dest: str) -> float:
    start = time.perf_counter()
    subprocess.run([str(BIN / "rclone"), "copy", source, dest], env=env, capture_output=True, check=True, timeout=1800)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=200, help="size of the big object")
    parser.add_argument("--small", type=int, default=500, help="number of small objects")
    parser.add_argument("--small-kib", type=int, default=64)
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
            source = a.client()
            source.create_bucket(Bucket="source")
            with tempfile.TemporaryFile() as data:
                data.write(os.urandom(args.mib * MIB))
                data.seek(0)
                source.upload_fileobj(data, "source", "big/big.bin")
            payload = os.urandom(args.small_kib * 1024)
            for n in range(args.small):
                source.put_object(Bucket="source", Key=f"small/{n:06d}.bin", Body=payload[:-8] + n.to_bytes(8, "big"))
            for bucket in ("ours", "rclone"):
                b.client().create_bucket(Bucket=bucket)

            env = {**os.environ}
            use_connection(env, "bench_source", a.connection_json())
            use_connection(env, "bench_dest", b.connection_json())
            renv = rclone_env({"srca": a, "dstb": b})
            big = run_ours(env, "s3://source/big/", "s3://ours/big/", args.concurrency, 1)
            big_rclone = run_rclone(renv, "srca:source/big", "dstb:rclone/big")
            small = run_ours(env, "s3://source/small/", "s3://ours/small/", args.concurrency, args.small)
            small_rclone = run_rclone(renv, "srca:source/small", "dstb:rclone/small")

    since = "" if big["peak_reset"] else " (since start-up)"
    growth = big["rss_peak"] - big["rss_before"]
    bound = args.concurrency * PART + 100 * 10**6
    small_mib = args.small * args.small_kib / 1024
    lines = [
        f"# Cross-endpoint streaming ({time.strftime('%Y-%m-%d %H:%M')})",
        "",
        f"Between two `rclone serve s3` endpoints on 127.0.0.1; max_concurrency={args.concurrency}, part size "
        f"{PART // MIB} MiB. big = 1 x {args.mib} MiB; small = {args.small} x {args.small_kib} KiB.",
        "",
        "| tool | big: seconds (MiB/s) | small: seconds (objects/s) |",
        "| --- | --- | --- |",
        f"| airflow-s3sync | {big['seconds']:.2f} ({args.mib / big['seconds']:.0f}) "
        f"| {small['seconds']:.2f} ({args.small / small['seconds']:.0f}) |",
        f"| rclone copy | {big_rclone:.2f} ({args.mib / big_rclone:.0f}; {big_rclone / big['seconds']:.2f}x) "
        f"| {small_rclone:.2f} ({args.small / small_rclone:.0f}; {small_rclone / small['seconds']:.2f}x) |",
        "",
        "Ratios are tool / ours (> 1: ours is faster).",
        "",
        f"Operator process, big object: RSS {big['rss_before'] / MIB:.0f} MiB before the transfer, peak "
        f"{big['rss_peak'] / MIB:.0f} MiB{since}; growth {growth / MIB:.0f} MiB against a bound of "
        f"{bound / MIB:.0f} MiB (concurrency x part size + 100 MB): {'within' if growth <= bound else 'EXCEEDED'}. "
        f"Small objects: growth {(small['rss_peak'] - small['rss_before']) / MIB:.0f} MiB for {small_mib:.0f} MiB.",
    ]
    report = "\n".join(lines) + "\n"
    print(report)
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / "cross-endpoint.md").write_text(report)
    return 0 if growth <= bound else 1


if __name__ == "__main__":
    sys.exit(main())
