"""A no-op S3 -> S3 re-sync over an endpoint whose listings wait on latency, not on CPU: listing
in one sequence against listing by key ranges at once (``listing_threads``).

``rclone serve s3`` on 127.0.0.1 holds ``--objects`` objects under two prefixes (written with
s5cmd, not timed); a loopback proxy (tests/faults.py) in front of it delays each request by
``--latency`` seconds, as a remote endpoint's round trip and listing time would. Pages hold
``--page-size`` keys, so the run has as many pages as a far larger bucket has per 1,000 keys at
this machine's scale. Each setting runs twice; the second run is shown. No assertion: figures.
On this 2-core machine rclone's own work for each page, not the added latency, bounds the run
(8.7 s in one sequence, 9.8 s in 4 ranges, 5,000 objects, pages of 100, 150 ms): the gain of
ranges against a remote endpoint with cores to spare is not measured here.

    .venv/bin/python bench/ranged_listing.py                       # 5,000 objects, pages of 100, 150 ms
    .venv/bin/python bench/ranged_listing.py --threads 1,4,8,16
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import make_tree, progress, run_command, s5cmd_binary, s5cmd_upload, tool_env
from tests.faults import FaultProxy
from tests.support import connection_json_via, rclone_server, use_connection


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=5000)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.15, help="seconds added to each request")
    parser.add_argument("--threads", default="1,8", help="listing_threads settings, comma-separated")
    args = parser.parse_args()
    from airflow_s3sync.execute.run import SyncOptions, SyncRun
    from airflow_s3sync.hooks.s3 import S3SyncHook
    from airflow_s3sync.locations import parse_location

    with tempfile.TemporaryDirectory(prefix="s3sync-bench-ranged-") as tmp:
        work = Path(tmp)
        tree = work / "tree"
        make_tree(tree, args.objects, 16, max(1, args.objects // 1000))
        (work / "store").mkdir()
        with rclone_server(work / "store") as server:
            client = server.client()
            for bucket in ("src", "dst"):
                client.create_bucket(Bucket=bucket)
            progress(f"set-up: {args.objects:,} objects, copied once")
            s5cmd_upload(server, tree, "s3://src/data/", 3600)
            cmd = [str(s5cmd_binary()), "--endpoint-url", server.endpoint_url, "--log", "error", "cp"]
            if not run_command([*cmd, "s3://src/data/*", "s3://dst/data/"], tool_env(server), 3600).ok:
                raise RuntimeError("set-up copy failed")
            with FaultProxy(server.endpoint_url, rate=0.0, seed=1, latency=args.latency) as proxy:
                use_connection(os.environ, "far", connection_json_via(server, proxy.endpoint_url))
                log = logging.getLogger("bench.ranged_listing")
                latency_ms = args.latency * 1000
                print(f"{args.objects:,} objects a side, pages of {args.page_size}, {latency_ms:.0f} ms a request")
                print("| listing_threads | seconds | CPU s (ours and the proxy) | requests |")
                print("| --- | --- | --- | --- |")
                for threads in (int(t) for t in args.threads.split(",")):
                    for attempt in range(2):
                        before, requests = resource.getrusage(resource.RUSAGE_SELF), proxy.requests
                        started = time.monotonic()
                        report = SyncRun(
                            source=parse_location("s3://src/data/"),
                            dest=parse_location("s3://dst/data/"),
                            source_hook=S3SyncHook(aws_conn_id="far", page_size=args.page_size),
                            dest_hook=S3SyncHook(aws_conn_id="far", page_size=args.page_size),
                            options=SyncOptions(listing_threads=threads),
                            log=log,
                        ).run()
                        seconds = time.monotonic() - started
                        after = resource.getrusage(resource.RUSAGE_SELF)
                        if report.counts["skipped"] != args.objects or report.counts["copied"]:
                            raise RuntimeError(f"not a no-op: {report.summary()}")
                        if attempt:
                            cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
                            print(
                                f"| {threads} | {seconds:.2f} | {cpu:.2f} | {proxy.requests - requests} |", flush=True
                            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
