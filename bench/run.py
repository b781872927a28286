"""Benchmark: S3SyncOperator against aws s3 sync, s5cmd and rclone, same run, same local server.

The server is ``rclone serve s3`` on 127.0.0.1 (a separate process, so it does not compete with the
in-process operator for the GIL). Every tool runs each scenario against its own fresh bucket:

  upload-small   many small files, local -> S3
  upload-large   a few multipart-sized files, local -> S3
  resync-noop    upload-small again onto the synced bucket (listing + comparison cost)
  download-small S3 -> a fresh local directory

Each tool runs with its own defaults (concurrency: ours 10, aws 10, s5cmd 256 workers, rclone 4
transfers), as a user would. The operator is timed in-process (no interpreter start); the others
as commands. Results: a table of seconds and the ratio tool/ours, printed and written to
bench/results/latest.md. No timing is asserted anywhere.

    make bench                      # defaults
    .venv/bin/python bench/run.py --small 200 --large 2 --large-mib 16   # a quick run
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")  # no line per object in the timing

from tests.support import BIN, S3Server, rclone_server, use_connection  # noqa: E402

TOOLS = ["ours", "aws", "s5cmd", "rclone"]


def make_files(root: Path, count: int, size: int, per_dir: int = 100) -> None:
    payload = os.urandom(size)
    for n in range(count):
        path = root / f"dir{n // per_dir:04d}" / f"file{n:06d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(payload[: size - 8] + n.to_bytes(8, "big"))
        os.utime(path, (time.time() - 3600, time.time() - 3600))


def command(tool: str, server: S3Server, source: str, dest: str) -> list[str]:
    if tool == "aws":
        return [
            str(BIN / "aws"),
            "s3",
            "sync",
            source,
            dest,
            "--endpoint-url",
            server.endpoint_url,
            "--only-show-errors",
        ]
    if tool == "s5cmd":
        src = source + "*" if source.startswith("s3://") else source.rstrip("/") + "/"
        return [str(BIN / "s5cmd"), "--endpoint-url", server.endpoint_url, "sync", src, dest.rstrip("/") + "/"]
    if tool == "rclone":

        def remote(location: str) -> str:
            return "bench:" + location[len("s3://") :] if location.startswith("s3://") else location

        return [str(BIN / "rclone"), "sync", remote(source), remote(dest)]
    raise ValueError(tool)


def tool_env(server: S3Server) -> dict[str, str]:
    env = server.cli_env()
    env.update(
        AWS_REGION=server.region,
        RCLONE_CONFIG=os.devnull,
        RCLONE_CONFIG_BENCH_TYPE="s3",
        RCLONE_CONFIG_BENCH_PROVIDER="Other",
        RCLONE_CONFIG_BENCH_ENDPOINT=server.endpoint_url,
        RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=server.access_key,
        RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=server.secret_key,
        RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE="true",
    )
    return env


def timed(run: Callable[[], None]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def run_tool(tool: str, server: S3Server, source: str, dest: str) -> float:
    if tool == "ours":
        from airflow_s3sync import S3SyncOperator

        return timed(lambda: S3SyncOperator(task_id="bench", source=source, dest=dest).execute({}))
    cmd = command(tool, server, source, dest)
    env = tool_env(server)

    def run() -> None:
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {result.stderr[-2000:]}")

    return timed(run)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=2000, help="number of small files")
    parser.add_argument("--small-kib", type=int, default=4)
    parser.add_argument("--large", type=int, default=8, help="number of large files")
    parser.add_argument("--large-mib", type=int, default=32)
    args = parser.parse_args()
    missing = [tool for tool in ("aws", "s5cmd", "rclone") if not (BIN / tool).exists()]
    if missing:
        print(f"missing tools in {BIN}: {missing} (make bench installs them)", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="s3sync-bench-") as tmp:
        work = Path(tmp)
        small, large = work / "small", work / "large"
        make_files(small, args.small, args.small_kib * 1024)
        make_files(large, args.large, args.large_mib * 1024 * 1024, per_dir=args.large)
        (work / "store").mkdir()
        with rclone_server(work / "store") as server:
            use_connection(os.environ, "aws_default", server.connection_json())
            client = server.client()
            results: dict[str, dict[str, float]] = {}
            for tool in TOOLS:
                buckets = {name: f"bench-{tool}-{name}-{uuid.uuid4().hex[:6]}" for name in ("small", "large")}
                for bucket in buckets.values():
                    client.create_bucket(Bucket=bucket)
                small_dest = f"s3://{buckets['small']}/data/"
                row = results.setdefault(tool, {})
                row["upload-small"] = run_tool(tool, server, str(small), small_dest)
                row["upload-large"] = run_tool(tool, server, str(large), f"s3://{buckets['large']}/data/")
                row["resync-noop"] = run_tool(tool, server, str(small), small_dest)
                download = work / f"download-{tool}"
                download.mkdir()
                row["download-small"] = run_tool(tool, server, small_dest, str(download))
                copied = sum(1 for p in download.rglob("*") if p.is_file())
                if copied != args.small:
                    raise RuntimeError(f"{tool} downloaded {copied} of {args.small} files")
                shutil.rmtree(download)
                print(f"{tool:>7}: " + ", ".join(f"{k} {v:.2f}s" for k, v in row.items()), flush=True)

    scenarios = list(results["ours"])
    lines = [
        f"# airflow-s3sync benchmark ({time.strftime('%Y-%m-%d %H:%M')})",
        "",
        f"Server: rclone serve s3 on 127.0.0.1. small = {args.small} x {args.small_kib} KiB, "
        f"large = {args.large} x {args.large_mib} MiB. Seconds (ratio tool / ours; > 1 means ours is faster).",
        "",
        "| tool | " + " | ".join(scenarios) + " |",
        "| --- |" + " --- |" * len(scenarios),
    ]
    for tool, row in results.items():
        cells = [
            f"{row[s]:.2f}" if tool == "ours" else f"{row[s]:.2f} ({row[s] / results['ours'][s]:.2f}x)"
            for s in scenarios
        ]
        lines.append(f"| {tool} | " + " | ".join(cells) + " |")
    report = "\n".join(lines) + "\n"
    print("\n" + report)
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.md").write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
