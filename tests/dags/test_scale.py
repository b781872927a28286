"""bench/scale.py end to end, small: a real api-server, scheduler (LocalExecutor) and dag-processor
run the sharded DAG and then the same sync unsharded against ``rclone serve s3``; both replicas
equal the source and the shards ran as separate, overlapping task processes.

``make scale-demo`` runs the same script at 20,000 objects (the README's measured result)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from itertools import combinations
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHARDS = 3


def test_scale_script_syncs_sharded_and_unsharded_on_a_multi_process_airflow(tmp_path):
    results = tmp_path / "scale.json"
    command = [sys.executable, str(ROOT / "bench" / "scale.py"), "--objects", "300", "--shards", str(SHARDS)]
    command += ["--no-warmup", "--timeout", "300", "--json", str(results)]

    run = subprocess.run(command, capture_output=True, text=True, timeout=540, cwd=ROOT, stdin=subprocess.DEVNULL)

    output = run.stdout[-8000:] + run.stderr[-8000:]
    assert run.returncode == 0, output
    data = json.loads(results.read_text())
    assert data["ok"], output
    sharded, unsharded = data["runs"]
    for result in (sharded, unsharded):
        assert result["state"] == "success", output
        assert result["verified"] is None, output  # every key, size and ETag, and a sample's bytes
        # "skipped": the example DAG's retention step, off here (rclone serve s3 has no Object Lock)
        assert {task["state"] for task in result["tasks"]} <= {"success", "skipped"}, output

    shard_tasks = [task for task in sharded["tasks"] if task["task"].startswith("sync[")]
    assert 1 < len(shard_tasks) <= SHARDS, output
    assert len([task for task in unsharded["tasks"] if task["task"].startswith("sync")]) == 1, output

    # LocalExecutor with parallelism 4: at least two shards ran at the same time.
    spans = [(datetime.fromisoformat(t["start"]), datetime.fromisoformat(t["end"])) for t in shard_tasks]
    assert any(a[0] < b[1] and b[0] < a[1] for a, b in combinations(spans, 2)), shard_tasks

    assert "unsharded / sharded:" in run.stdout


def test_scale_script_with_latency_sends_every_request_of_the_runs_through_the_proxy(tmp_path):
    """``--latency-ms``: the DAG runs' connection points at a loopback proxy that holds each
    request; both replicas still equal the source, and the proxy saw each run's requests."""
    objects, results = 120, tmp_path / "scale.json"
    command = [sys.executable, str(ROOT / "bench" / "scale.py"), "--objects", str(objects), "--shards", "2"]
    command += ["--latency-ms", "5", "--no-warmup", "--timeout", "300", "--json", str(results)]

    run = subprocess.run(command, capture_output=True, text=True, timeout=540, cwd=ROOT, stdin=subprocess.DEVNULL)

    output = run.stdout[-8000:] + run.stderr[-8000:]
    assert run.returncode == 0, output
    data = json.loads(results.read_text())
    assert data["ok"] and data["latency_ms"] == 5, output
    for result in data["runs"]:
        assert result["state"] == "success" and result["verified"] is None, output
        # at least one CopyObject per object, plus the listings; all through the proxy
        assert result["proxy_requests"] > objects, output
        assert result["proxy_cpu"] is not None, output
    assert "held 5 ms by a loopback proxy" in run.stdout, output
