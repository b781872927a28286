"""W2 — two endpoints: streaming from one S3 endpoint to another, throughput and peak memory.

Two ``rclone serve s3`` processes on 127.0.0.1 play two providers. Endpoint A holds 1,000 x 64
KiB objects (uploaded with s5cmd) and, separately, one 100 MiB object (uploaded with boto3's
defaults: 8 MiB parts, as ``aws s3 cp`` would). Each set is copied from A to B by

  ours     S3SyncOperator(source="s3://source/...", dest="s3://ours/...", source_aws_conn_id="src",
           dest_aws_conn_id="dst", max_concurrency=10): the bytes stream through the worker
           (GetObject -> PutObject or parts, nothing on disk)
  rclone   ``rclone sync --transfers 16 --checkers 16 srca:source/... dstb:rclone/...`` (what a user
           who wants speed gives it; its defaults are 4 transfers and 8 checkers)

``aws s3 sync`` and ``s5cmd`` cannot sync between two endpoints. The operator runs in a child
process per set (``bench/ours_child.py``) that reports its RSS before the transfer and its peak
during it (VmHWM, reset just before the transfer); imports and interpreter start are not timed.
rclone is timed as a command, start-up included, and its CPU time and peak RSS come from
``os.wait4``; ours' CPU time is the child's during the transfer (``getrusage`` deltas); the
servers' CPU is counted for no one. The targets: the small objects in <= 0.8 x rclone's time,
the big one at least at rclone's throughput (<= 1.0 x its time), CPU per small object <= rclone's,
and ours' memory within concurrency x part size + 100 MB (10 x 8 MiB + 100 MB = 175 MiB), taken
as the growth during the transfer (the peak less the RSS before it, which holds Airflow; both
shown). Results are verified (count and bytes at B). No timing is asserted.

    .venv/bin/python bench/cross_endpoint.py            # full size
    .venv/bin/python bench/cross_endpoint.py --quick    # 200 x 64 KiB and 1 x 32 MiB
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    KIB,
    MIB,
    RCLONE_SPEED,
    Outcome,
    Target,
    Totals,
    clean_environ,
    cpu,
    cpu_cell,
    failure_notes,
    listing_totals,
    local_totals,
    make_tree,
    mib,
    missing_tools,
    progress,
    ratio_to_fastest_peer,
    run_command,
    run_ours_child,
    s3_listing,
    s5cmd_upload,
    seconds_cell,
    sync_command,
    table,
    target_table,
    tool_env,
    verify,
    write_outputs,
    write_random_file,
)
from tests.support import rclone_server, use_connection

PART = 8 * MIB  # s3transfer's default multipart_chunksize, the operator's part size
SETS = ("small", "big")
SPEED_TARGETS = {"small": 0.8, "big": 1.0}  # ours / rclone, wall time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=1000, help="number of small objects (default 1000)")
    parser.add_argument("--small-kib", type=int, default=64)
    parser.add_argument("--mib", type=int, default=100, help="size of the big object (default 100)")
    parser.add_argument("--concurrency", type=int, default=10, help="the operator's max_concurrency (its default)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds before a run is killed")
    parser.add_argument("--quick", action="store_true", help="200 small objects, a 32 MiB big one")
    parser.add_argument("--json", help="also write the results as JSON to this path (for bench/all.py)")
    args = parser.parse_args()
    if args.quick:
        args.small, args.mib = 200, 32
    if missing := missing_tools(["s5cmd", "rclone"]):
        print(f"missing tools: {missing} (make bench installs them)", file=sys.stderr)
        return 2

    results: dict[str, dict[str, Outcome]] = {"ours": {}, "rclone": {}}
    with tempfile.TemporaryDirectory(prefix="s3sync-bench-w2-") as tmp:
        work = Path(tmp)
        make_tree(work / "small", args.small, args.small_kib * KIB, 10)
        write_random_file(work / "big" / "big.bin", args.mib * MIB)
        expected = {name: local_totals(work / name) for name in SETS}
        (work / "a").mkdir()
        (work / "b").mkdir()
        with rclone_server(work / "a") as a, rclone_server(work / "b") as b:
            progress("W2 set-up: uploading the source objects to endpoint A")
            source = a.client()
            source.create_bucket(Bucket="source")
            s5cmd_upload(a, work / "small", "s3://source/small/")
            source.upload_file(str(work / "big" / "big.bin"), "source", "big/big.bin")
            dest = b.client()
            for bucket in results:
                dest.create_bucket(Bucket=bucket)

            env = clean_environ(os.environ)
            env["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"
            use_connection(env, "src", a.connection_json())
            use_connection(env, "dst", b.connection_json())
            renv = tool_env(a, {"srca": a, "dstb": b})
            progress("W2 ours' fixed cost: an empty prefix ...")
            empty = {"source": "s3://source/empty/", "dest": "s3://ours/empty/"}
            (fixed,) = run_ours_child(
                [{**empty, "source_aws_conn_id": "src", "dest_aws_conn_id": "dst"}], env, args.timeout
            )
            for name in SETS:
                progress(f"W2 {name}: ours ...")
                run = {
                    "source": f"s3://source/{name}/",
                    "dest": f"s3://ours/{name}/",
                    "source_aws_conn_id": "src",
                    "dest_aws_conn_id": "dst",
                    "max_concurrency": args.concurrency,
                }
                (ours,) = run_ours_child([run], env, args.timeout)
                results["ours"][name] = checked(ours, dest, "ours", name, expected[name])
                progress(f"W2 {name}: rclone ...")
                where = (f"s3://source/{name}/", f"s3://rclone/{name}/")
                cmd = sync_command("rclone", a.endpoint_url, *where, remotes=("srca", "dstb"))
                outcome = run_command(cmd, renv, args.timeout)
                results["rclone"][name] = checked(outcome, dest, "rclone", name, expected[name])
                progress(
                    f"W2 {name}: " + ", ".join(f"{tool} {seconds_cell(row[name])}" for tool, row in results.items())
                )
    markdown, data = report(args, results, expected, fixed)
    write_outputs("w2", markdown, data, args.json)
    return 0


def checked(outcome: Outcome, client: Any, bucket: str, name: str, expected: Totals) -> Outcome:
    error = verify(listing_totals(s3_listing(client, bucket, f"{name}/")), expected)
    if outcome.ok and error:
        outcome.error = f"{error} (the tool reported success after {outcome.seconds:.2f} s)"
    return outcome


def report(
    args: argparse.Namespace, results: dict[str, dict[str, Outcome]], expected: dict[str, Totals], fixed: Outcome
) -> tuple[str, dict[str, Any]]:
    bound = args.concurrency * PART + 100 * 10**6
    labels = {
        "small": f"{args.small:,} x {args.small_kib} KiB",
        "big": f"1 x {args.mib} MiB",
    }
    tools = {"ours": "airflow-s3sync", "rclone": "rclone sync"}
    rows = []
    ratios: dict[str, float | None] = {}
    cpu_ratios: dict[str, float | None] = {}
    speed_targets, other_targets = [], []
    for name in SETS:
        count = expected[name].count
        for tool, label in tools.items():
            o = results[tool][name]
            if o.ok and o.seconds:
                speed = [f"{o.seconds:.2f}", f"{expected[name].size / MIB / o.seconds:.1f}"]
                rate = count / o.seconds
                speed.append(f"{rate:.0f}" if rate >= 10 else f"{rate:.2f}")
            else:
                speed = ["fails", "—", "—"]
            growth = mib(o.rss_growth) if tool == "ours" else "—"
            rows.append([labels[name], label, *speed, cpu_cell(o, count), mib(o.rss_peak), growth])
        ours, peers = results["ours"][name], {"rclone": results["rclone"][name]}
        speed, lean = ratio_to_fastest_peer(ours, peers), ratio_to_fastest_peer(ours, peers, cpu)
        ratios[name], cpu_ratios[name] = speed.value, lean.value
        rows.append([labels[name], "**ours / rclone**", speed.cell(), "", "", lean.cell(), "", ""])
        limit = SPEED_TARGETS[name]
        goal = f"wall time ≤ {limit} x rclone" + (" (throughput ≥ rclone's)" if limit == 1.0 else "")
        speed_targets.append(Target.of_ratio(f"W2 {labels[name]}", goal, limit, speed))
        if name == "small":
            other_targets.append(Target.of_ratio(f"W2 {labels[name]}", "CPU per object ≤ rclone", 1.0, lean))
        before = ours.extra.get("rss_before") if ours.extra else None
        if ours.ok and ours.rss_growth is not None and ours.rss_peak is not None and before is not None:
            measured = f"{mib(ours.rss_growth)} MiB (peak {mib(ours.rss_peak)} MiB, {mib(before)} MiB before)"
            met: bool | None = ours.rss_growth <= bound
        else:
            measured, met = "not measured", None
        goal = f"RSS growth ≤ {args.concurrency} x {PART // MIB} MiB + 100 MB = {bound / MIB:.0f} MiB"
        other_targets.append(Target(f"W2 {labels[name]}: ours' memory", goal, measured, met))
    targets = speed_targets + other_targets
    lines = [
        "## W2 — two endpoints: streaming A → B",
        "",
        "Two `rclone serve s3` endpoints on 127.0.0.1; ours: connections `src` and `dst`, max_concurrency="
        f"{args.concurrency}, part size {PART // MIB} MiB, in a child process (imports neither timed nor counted); "
        f"`rclone sync {' '.join(RCLONE_SPEED)}` between two remotes. Seconds, MiB/s, objects/s, CPU ms/object "
        "(user + system CPU of the syncing process and its children during the transfer / objects; the servers' "
        "CPU is counted for no one), peak RSS (MiB) and ours' RSS growth during the transfer (MiB).",
        "",
        *table(["set", "tool", "seconds", "MiB/s", "objects/s", "CPU ms/object", "peak RSS", "RSS growth"], rows),
        "",
        *target_table(targets),
        "",
        "Ours' fixed cost per run (an empty source prefix, same child-process set-up; included in every ours row): "
        + (
            f"{fixed.seconds:.2f} s, {fixed.cpu:.2f} s of CPU."
            if fixed.ok and fixed.seconds is not None and fixed.cpu is not None
            else f"fails — `{fixed.error}`."
        ),
    ]
    notes = failure_notes({(tool, labels[n]): o for tool, row in results.items() for n, o in row.items()})
    if notes:
        lines += ["", *notes]
    data = {
        "workload": "W2",
        "params": vars(args),
        "results": {tool: {n: o.to_json() for n, o in row.items()} for tool, row in results.items()},
        "ratios": ratios,
        "cpu_ratios": cpu_ratios,
        "rss_bound": bound,
        "fixed_cost": fixed.to_json(),
        "targets": [t.to_json() for t in targets],
    }
    return "\n".join(lines) + "\n", data


if __name__ == "__main__":
    sys.exit(main())
