"""W3 — no-op re-syncs of many objects: listing and comparison cost, and peak memory.

One ``rclone serve s3`` on 127.0.0.1 holds 100,000 tiny objects (16 bytes, 1,000 per folder).
Set-up, not timed: the local tree is written, uploaded once with s5cmd (the fastest uploader
here) to s3://w3-src/data/, then ``rclone sync`` runs once over it — after an s5cmd upload
rclone's first sync rewrites every object to record the local mtime as metadata, which is not a
no-op — and s5cmd copies the bucket to s3://w3-copy/data/ (an exact copy, metadata included).
Then, for ours, s5cmd (its defaults) and rclone (``--transfers 16 --checkers 16``, what a user who
wants speed gives it):

  local -> S3   the local tree -> s3://w3-src/data/   (nothing to do)
  S3 -> S3      s3://w3-src/data/ -> s3://w3-copy/data/  (nothing to do)

Each tool runs each scenario twice in a row: the first run warms caches (server, page cache,
the operator's clients) and is shown in parentheses; the second is the measurement. Both are
checked to be no-ops (no object added, removed or rewritten: keys, sizes, ETags, LastModified).
Peak RSS: the CLI tools' from ``os.wait4`` (ru_maxrss of the measured run, via bench/launch.py);
ours runs both runs in one child process (``bench/ours_child.py``; imports and interpreter start
not timed) that reads its VmHWM: the peak over both runs is shown, with its growth over the RSS
the process had after its imports (a warm process keeps what its first run took). CPU per
object: user + system CPU of the syncing process and its children during the measured run
(``os.wait4`` of a command; ``getrusage`` deltas in ours' child) / the objects; the server's CPU
is counted for no one. The ratios are ours / min(s5cmd, rclone); the target: <= 1.0 in wall time.
No timing is asserted.

    .venv/bin/python bench/w3_noop.py                  # 100,000 objects
    .venv/bin/python bench/w3_noop.py --objects 2000   # or --quick
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
    PEERS,
    RCLONE_SPEED,
    TOOL_LABELS,
    Outcome,
    Target,
    Totals,
    changed_between,
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
    s5cmd_binary,
    s5cmd_upload,
    seconds_cell,
    sync_command,
    table,
    target_table,
    tool_env,
    verify,
    write_outputs,
)
from tests.support import S3Server, rclone_server, use_connection

TOOLS = ("ours", "ours-ranged", "s5cmd", "rclone")
#: What the rows of ours give the operator: its defaults, and each S3 side listed by 8 key ranges at once.
OURS = {"ours": {}, "ours-ranged": {"listing_threads": 8}}
SCENARIOS = {"local": "local → S3", "s3s3": "S3 → S3"}


def locations(scenario: str, tree: Path) -> tuple[str, str, str]:
    """(source, dest, the bucket that must not change)."""
    if scenario == "local":
        return str(tree), "s3://w3-src/data/", "w3-src"
    return "s3://w3-src/data/", "s3://w3-copy/data/", "w3-copy"


def set_up(server: S3Server, tree: Path, timeout: float) -> None:
    client = server.client()
    for bucket in ("w3-src", "w3-copy"):
        client.create_bucket(Bucket=bucket)
    progress("W3 set-up: s5cmd uploads the tree")
    s5cmd_upload(server, tree, "s3://w3-src/data/", timeout)
    progress("W3 set-up: rclone records the local mtimes as metadata (its first sync after another uploader)")
    settle = run_command(
        sync_command("rclone", server.endpoint_url, str(tree), "s3://w3-src/data/"), tool_env(server), timeout
    )
    if not settle.ok:
        raise RuntimeError(f"set-up rclone sync failed: {settle.error}")
    progress("W3 set-up: s5cmd copies the bucket")
    cmd = [str(s5cmd_binary()), "--endpoint-url", server.endpoint_url, "--log", "error", "cp"]
    copy = run_command([*cmd, "s3://w3-src/data/*", "s3://w3-copy/data/"], tool_env(server), timeout)
    if not copy.ok:
        raise RuntimeError(f"set-up copy with s5cmd failed: {copy.error}")


def run_cli(tool: str, server: S3Server, source: str, dest: str, timeout: float) -> list[Outcome]:
    cmd = sync_command(tool, server.endpoint_url, source, dest)
    return [run_command(cmd, tool_env(server), timeout) for _ in range(2)]


def run_scenario(
    scenario: str, tools: list[str], server: S3Server, tree: Path, expected: Totals, env: dict[str, str], timeout: float
) -> dict[str, Outcome]:
    client = server.client()
    source, dest, bucket = locations(scenario, tree)
    row: dict[str, Outcome] = {}
    for tool in tools:
        progress(f"W3 {SCENARIOS[scenario]}: {tool} ...")
        before = s3_listing(client, bucket)
        if tool in OURS:
            runs = run_ours_child([{"source": source, "dest": dest, **OURS[tool]}] * 2, env, timeout)
        else:
            runs = run_cli(tool, server, source, dest, timeout)
        after = s3_listing(client, bucket)
        first, measured = runs
        if tool in OURS and first.rss_peak is not None and measured.rss_peak is not None and first.extra:
            # A warm process keeps the memory its first run took (freed arenas stay mapped), so the
            # measured run's own growth says little: show the peak over both runs, and its growth
            # over the RSS the fresh process had after its imports.
            measured.rss_peak = max(first.rss_peak, measured.rss_peak)
            measured.rss_growth = measured.rss_peak - first.extra["rss_before"]
        error = verify(listing_totals(after), expected)
        if measured.ok and error:
            measured.error = f"{error} (the tool reported success after {measured.seconds:.2f} s)"
        notes = [f"first run fails: `{first.error}`"] if first.error else []
        if changed := changed_between(before, after):
            notes.append(f"not a no-op: {changed} objects added, removed or rewritten over the two runs")
        if measured.note:
            notes.append(measured.note)
        measured.note = "; ".join(notes) or None
        measured.extra = {**(measured.extra or {}), "first": first.to_json()}
        row[tool] = measured
        progress(f"W3 {SCENARIOS[scenario]}: {tool} {seconds_cell(measured)} s (first {seconds_cell(first)} s)")
    return row


def report(args: argparse.Namespace, results: dict[str, dict[str, Outcome]], count: int) -> tuple[str, dict[str, Any]]:
    tools = list(next(iter(results.values()), {}))
    rows = []
    for tool in tools:
        cells = [TOOL_LABELS.get(tool, "airflow-s3sync, listing_threads=8")]
        for scenario in SCENARIOS:
            o = results[scenario][tool]
            rss = mib(o.rss_peak) + (f" (+{mib(o.rss_growth)})" if o.rss_growth is not None else "")
            first = Outcome.from_json(o.extra["first"]) if o.extra and "first" in o.extra else None
            cells += [seconds_cell(o) + (f" ({seconds_cell(first)})" if first else ""), cpu_cell(o, count), rss]
        rows.append(cells)
    ratios: dict[str, float | None] = {}
    cpu_ratios: dict[str, float | None] = {}
    targets: list[Target] = []
    if "ours" in tools:
        cells = ["**ours / best peer**"]
        for scenario, label in SCENARIOS.items():
            row = results[scenario]
            peers = {t: row[t] for t in PEERS if t in row}
            speed, lean = ratio_to_fastest_peer(row["ours"], peers), ratio_to_fastest_peer(row["ours"], peers, cpu)
            ratios[scenario], cpu_ratios[scenario] = speed.value, lean.value
            cells += [speed.cell(), lean.cell(), ""]
            targets.append(Target.of_ratio(f"W3 {label}", "wall time ≤ 1.0 x min(s5cmd, rclone)", 1.0, speed))
            targets.append(
                Target.of_ratio(f"W3 {label} (reconcile)", "wall time ≤ 0.5 x min(s5cmd, rclone)", 0.5, speed)
            )
            if "ours-ranged" in row:
                ranged = ratio_to_fastest_peer(row["ours-ranged"], peers)
                targets.append(
                    Target.of_ratio(
                        f"W3 {label} (reconcile), listing_threads=8",
                        "wall time ≤ 0.5 x min(s5cmd, rclone)",
                        0.5,
                        ranged,
                    )
                )
        rows.append(cells)
    header = ["tool"]
    for label in SCENARIOS.values():
        header += [f"{label}: seconds (first run)", "CPU ms/object", "peak RSS MiB"]
    lines = [
        "## W3 — no-op re-sync of many objects",
        "",
        f"One `rclone serve s3` on 127.0.0.1; {args.objects:,} objects of {args.object_bytes} bytes, "
        f"{args.per_folder:,} per folder, already in sync (set-up: s5cmd upload, one settling rclone sync, s5cmd "
        f"copy); rclone with `{' '.join(RCLONE_SPEED)}`, s5cmd with its defaults. Each tool ran each scenario "
        "twice in a row: the second run is measured, the first in parentheses. CPU ms/object: user + system CPU of "
        "the syncing process and its children during the measured run / objects (the server's CPU is counted for "
        "no one). Peak RSS of the whole process: the CLIs' measured run; ours (a child process running both) over "
        "both runs, with in parentheses its growth over the RSS it had after importing Airflow and the operator. "
        "Last row: ours / the fastest peer (seconds) and ours / the peer using the least CPU.",
        "",
        *table(header, rows),
        "",
        *target_table(targets),
    ]
    notes = failure_notes({(t, SCENARIOS[s]): o for s, row in results.items() for t, o in row.items()})
    if notes:
        lines += ["", *notes]
    data = {
        "workload": "W3",
        "params": vars(args),
        "objects": count,
        "results": {s: {t: o.to_json() for t, o in row.items()} for s, row in results.items()},
        "ratios": ratios,
        "cpu_ratios": cpu_ratios,
        "targets": [t.to_json() for t in targets],
    }
    return "\n".join(lines) + "\n", data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=100_000, help="number of objects (default 100000)")
    parser.add_argument("--object-bytes", type=int, default=16)
    parser.add_argument("--per-folder", type=int, default=1000)
    parser.add_argument("--tools", default=",".join(TOOLS), help="comma-separated subset of " + ",".join(TOOLS))
    parser.add_argument("--timeout", type=float, default=3600, help="seconds before a run is killed")
    parser.add_argument("--quick", action="store_true", help="2,000 objects")
    parser.add_argument("--json", help="also write the results as JSON to this path (for bench/all.py)")
    args = parser.parse_args()
    if args.quick:
        args.objects = 2000
    tools = [tool for tool in args.tools.split(",") if tool]
    if unknown := set(tools) - set(TOOLS):
        parser.error(f"unknown tools: {sorted(unknown)}")
    if missing := missing_tools(["s5cmd", "rclone"]):
        print(f"missing tools: {missing} (make bench installs them)", file=sys.stderr)
        return 2

    results: dict[str, dict[str, Outcome]] = {}
    with tempfile.TemporaryDirectory(prefix="s3sync-bench-w3-") as tmp:
        work = Path(tmp)
        tree = work / "tree"
        progress(f"W3 set-up: writing {args.objects:,} local files")
        make_tree(tree, args.objects, args.object_bytes, -(-args.objects // args.per_folder))
        expected = local_totals(tree)
        (work / "store").mkdir()
        with rclone_server(work / "store") as server:
            set_up(server, tree, args.timeout)
            for bucket in ("w3-src", "w3-copy"):
                if error := verify(listing_totals(s3_listing(server.client(), bucket)), expected):
                    raise RuntimeError(f"set-up left {bucket} incomplete: {error}")
            env = clean_environ(os.environ)
            env["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"
            use_connection(env, "aws_default", server.connection_json())
            for scenario in SCENARIOS:
                results[scenario] = run_scenario(scenario, tools, server, tree, expected, env, args.timeout)
    markdown, data = report(args, results, expected.count)
    write_outputs("w3", markdown, data, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
