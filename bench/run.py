"""W1 — one endpoint: S3SyncOperator against aws s3 sync, s5cmd and rclone, same run, same server.

The server is one ``rclone serve s3`` on 127.0.0.1 (a separate process, so it does not compete
with the in-process operator for the GIL). The local tree is 1,000 x 4 KiB files in 10 folders
plus 4 x 20 MiB files. Every tool runs four phases against its own fresh buckets:

  upload          the local tree -> s3://w1-TOOL/data/
  no-op re-sync   the same again (listing and comparison only)
  S3 -> S3        s3://w1-TOOL/data/ -> s3://w1-TOOL-copy/data/ (same endpoint, same credentials)
  download        s3://w1-TOOL/data/ -> a new local directory

After each phase the result is verified (object count and total bytes; for the re-sync, also
that no object was rewritten). A tool that fails a phase, or leaves a wrong result, gets "fails"
in that cell and the error's last line in the notes; the benchmark carries on.

The peers run as a user who wants speed runs them: rclone with ``--transfers 16 --checkers 16``
(its defaults are 4 and 8), s5cmd with its defaults (256 workers), aws as it is (10 requests);
ours with its defaults (10). The operator runs in-process (``S3SyncOperator(task_id=...,
source=..., dest=...).execute({})``, connection ``aws_default`` from ``AIRFLOW_CONN_AWS_DEFAULT``),
so neither an interpreter start nor Airflow's import is timed or counted; the others are timed
as commands, start-up included. Each run's CPU (user + system of the syncing process and its
children: ``os.wait4`` of a command, ``getrusage`` deltas around ``execute``) is shown per object
(every object of the tree, the large ones too); the server's CPU is counted for no one. The
ratios are ours / min(s5cmd, rclone) per phase; the targets: wall time <= 0.8 x, and CPU per
object uploaded, copied and downloaded <= 1.0 x. No timing is asserted.

    .venv/bin/python bench/run.py            # full size
    .venv/bin/python bench/run.py --quick    # 100 small files + 2 x 20 MiB, well under a minute
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")  # no log record per object in the timing

from bench.common import (
    KIB,
    MIB,
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
    exception_line,
    failure_notes,
    listing_totals,
    local_totals,
    make_tree,
    missing_tools,
    progress,
    ratio_to_fastest_peer,
    run_command,
    s3_listing,
    seconds_cell,
    sync_command,
    table,
    target_table,
    timed_call,
    tool_env,
    verify,
    write_outputs,
)
from tests.support import S3Server, rclone_server, use_connection

TOOLS = ("ours", "aws", "s5cmd", "rclone")
PHASES = {"upload": "upload", "resync": "no-op re-sync", "s3s3": "S3 → S3", "download": "download"}
SPEED_TARGET = 0.8  # ours / min(s5cmd, rclone), wall time, every phase
CPU_PHASES = ("upload", "s3s3", "download")  # CPU per object: ours <= min(s5cmd, rclone)


def run_tool(tool: str, server: S3Server, source: str, dest: str, timeout: float) -> Outcome:
    if tool == "ours":
        try:  # imported before the clock starts (a no-op after the first phase)
            from airflow_s3sync import S3SyncOperator
        except Exception as exc:  # noqa: BLE001 - an operator that cannot be imported fails its cells
            return Outcome(error="import: " + exception_line(exc))
        return timed_call(lambda: S3SyncOperator(task_id="bench", source=source, dest=dest).execute({}))
    return run_command(sync_command(tool, server.endpoint_url, source, dest), tool_env(server), timeout)


def checked(outcome: Outcome, error: str | None) -> Outcome:
    """The outcome, turned into a failure when the verification found a wrong result."""
    if outcome.ok and error:
        outcome.error = f"{error} (the tool reported success after {outcome.seconds:.2f} s)"
    return outcome


def run_phases(
    tool: str, server: S3Server, tree: Path, work: Path, expected: Totals, timeout: float
) -> dict[str, Outcome]:
    client = server.client()
    bucket, copy = f"w1-{tool}", f"w1-{tool}-copy"
    for name in (bucket, copy):
        client.create_bucket(Bucket=name)
    data, copied = f"s3://{bucket}/data/", f"s3://{copy}/data/"
    row: dict[str, Outcome] = {}

    outcome = run_tool(tool, server, str(tree), data, timeout)
    uploaded = s3_listing(client, bucket, "data/")
    row["upload"] = checked(outcome, verify(listing_totals(uploaded), expected))

    outcome = run_tool(tool, server, str(tree), data, timeout)
    after = s3_listing(client, bucket, "data/")
    row["resync"] = checked(outcome, verify(listing_totals(after), expected))
    rewritten = changed_between(uploaded, after)
    if rewritten and row["resync"].ok:
        row["resync"].note = f"not a no-op: {rewritten} objects added, removed or rewritten"

    outcome = run_tool(tool, server, data, copied, timeout)
    row["s3s3"] = checked(outcome, verify(listing_totals(s3_listing(client, copy, "data/")), expected))

    download = work / f"download-{tool}"  # does not exist yet: each tool creates it
    outcome = run_tool(tool, server, data, str(download), timeout)
    row["download"] = checked(outcome, verify(local_totals(download), expected))  # (0, 0) if not created
    shutil.rmtree(download, ignore_errors=True)
    return row


def probe_upload_part_copy(server: S3Server) -> str:
    """Whether the server answers UploadPartCopy with an ETag: s3transfer (aws, and boto3's
    managed copy) copies objects above 8 MiB in parts this way and needs one."""
    client = server.client()
    client.create_bucket(Bucket="w1-probe")
    client.put_object(Bucket="w1-probe", Key="source", Body=b"x" * 1024)
    upload = client.create_multipart_upload(Bucket="w1-probe", Key="copy")
    try:
        answer = client.upload_part_copy(
            Bucket="w1-probe",
            Key="copy",
            UploadId=upload["UploadId"],
            PartNumber=1,
            CopySource={"Bucket": "w1-probe", "Key": "source"},
        )
    except Exception as exc:  # noqa: BLE001 - the answer is the finding
        return f"UploadPartCopy fails on this server: {type(exc).__name__}: {exc}"
    finally:
        client.abort_multipart_upload(Bucket="w1-probe", Key="copy", UploadId=upload["UploadId"])
    if answer.get("CopyPartResult", {}).get("ETag"):
        return "this server answers UploadPartCopy with an ETag"
    return (
        "this server answers UploadPartCopy without an ETag (an empty body), so s3transfer's multipart copy "
        "(aws s3 sync, boto3's managed copy) fails above 8 MiB with `'ETag'`; s5cmd and rclone use CopyObject"
    )


def report(
    args: argparse.Namespace, results: dict[str, dict[str, Outcome]], probe: str, count: int
) -> tuple[str, dict[str, Any]]:
    header = ["tool"]
    for label in PHASES.values():
        header += [f"{label}: s", "CPU ms/object"]
    rows = []
    for tool, row in results.items():
        cells = [TOOL_LABELS[tool]]
        for phase in PHASES:
            cells += [seconds_cell(row.get(phase)), cpu_cell(row.get(phase), count)]
        rows.append(cells)
    ratios: dict[str, float | None] = {}
    cpu_ratios: dict[str, float | None] = {}
    targets: list[Target] = []
    if "ours" in results:
        cells, cpu_targets = ["**ours / best peer**"], []
        for phase, label in PHASES.items():
            peers = {tool: results[tool].get(phase) for tool in PEERS if tool in results}
            speed = ratio_to_fastest_peer(results["ours"].get(phase), peers)
            lean = ratio_to_fastest_peer(results["ours"].get(phase), peers, cpu)
            ratios[phase], cpu_ratios[phase] = speed.value, lean.value
            cells += [speed.cell(), lean.cell()]
            goal = f"wall time ≤ {SPEED_TARGET} x min(s5cmd, rclone)"
            targets.append(Target.of_ratio(f"W1 {label}", goal, SPEED_TARGET, speed))
            if phase in CPU_PHASES:
                goal = "CPU per object ≤ min(s5cmd, rclone)"
                cpu_targets.append(Target.of_ratio(f"W1 {label}", goal, 1.0, lean))
        rows.append(cells)
        targets += cpu_targets
    lines = [
        "## W1 — one endpoint: upload, no-op re-sync, S3 → S3, download",
        "",
        f"One `rclone serve s3` on 127.0.0.1. Local tree: {args.small:,} x {args.small_kib} KiB files in "
        f"{args.folders} folders + {args.large} x {args.large_mib} MiB files. Each tool: its own buckets; rclone "
        f"with `{' '.join(RCLONE_SPEED)}`, the others with their defaults; ours in-process (no interpreter start "
        "timed or counted), the others as commands. Wall seconds; CPU ms/object = user + system CPU of the "
        f"syncing process and its children during the phase / {count:,} objects (the large ones too; the server's "
        'CPU is counted for no one); "fails" = error or wrong result (count / bytes verified after every phase). '
        "Last row: ours / the fastest peer (seconds) and ours / the peer using the least CPU, of s5cmd and rclone.",
        "",
        *table(header, rows),
        "",
        *target_table(targets),
    ]
    notes = failure_notes({(tool, PHASES[p]): o for tool, row in results.items() for p, o in row.items()})
    lines += ["", *notes, f"- Server probe: {probe}."]
    data = {
        "workload": "W1",
        "server_probe": probe,
        "params": vars(args),
        "objects": count,
        "phases": PHASES,
        "results": {tool: {p: o.to_json() for p, o in row.items()} for tool, row in results.items()},
        "ratios": ratios,
        "cpu_ratios": cpu_ratios,
        "targets": [t.to_json() for t in targets],
    }
    return "\n".join(lines) + "\n", data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=1000, help="number of small files (default 1000)")
    parser.add_argument("--small-kib", type=int, default=4)
    parser.add_argument("--folders", type=int, default=10, help="folders the small files are spread over")
    parser.add_argument("--large", type=int, default=4, help="number of large files (default 4)")
    parser.add_argument("--large-mib", type=int, default=20)
    parser.add_argument("--tools", default=",".join(TOOLS), help="comma-separated subset of " + ",".join(TOOLS))
    parser.add_argument("--timeout", type=float, default=1800, help="seconds before a command is killed")
    parser.add_argument("--quick", action="store_true", help="100 small files, 2 large ones")
    parser.add_argument("--json", help="also write the results as JSON to this path (for bench/all.py)")
    args = parser.parse_args()
    if args.quick:
        args.small, args.large = 100, 2
    tools = [tool for tool in args.tools.split(",") if tool]
    if unknown := set(tools) - set(TOOLS):
        parser.error(f"unknown tools: {sorted(unknown)}")
    if missing := missing_tools(tools):
        print(f"missing tools: {missing} (make bench installs them)", file=sys.stderr)
        return 2
    kept = clean_environ(os.environ)  # no AWS_*/RCLONE_* from the host in the operator's process
    os.environ.clear()
    os.environ.update(kept)

    with tempfile.TemporaryDirectory(prefix="s3sync-bench-w1-") as tmp:
        work = Path(tmp)
        tree = work / "tree"
        make_tree(tree, args.small, args.small_kib * KIB, args.folders)
        make_tree(tree / "large", args.large, args.large_mib * MIB, 1, start=args.small)
        expected = local_totals(tree)
        (work / "store").mkdir()
        with rclone_server(work / "store") as server:
            use_connection(os.environ, "aws_default", server.connection_json())
            probe = probe_upload_part_copy(server)
            results: dict[str, dict[str, Outcome]] = {}
            for tool in tools:
                progress(f"W1 {tool} ...")
                results[tool] = run_phases(tool, server, tree, work, expected, args.timeout)
                progress(f"W1 {tool}: " + ", ".join(f"{PHASES[p]} {seconds_cell(o)}" for p, o in results[tool].items()))
    markdown, data = report(args, results, probe, expected.count)
    write_outputs("w1", markdown, data, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
