"""bench/events.py end to end, small: the event-driven example DAG under a real api-server,
scheduler, dag-processor and triggerer, over moto's S3 and SQS. Objects put into the source
reach the replica (deleted ones leave it) without anyone triggering a run, listing nothing but
the one-key preflights.

``make event-demo`` runs the same script at a larger size (the README's measured result)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_objects_put_into_the_source_reach_the_replica_through_events_alone(tmp_path: Path) -> None:
    results = tmp_path / "events.json"
    command = [sys.executable, str(ROOT / "bench" / "events.py"), "--objects", "16", "--rate", "4"]
    command += ["--deletes", "2", "--timeout", "180", "--json", str(results)]

    run = subprocess.run(command, capture_output=True, text=True, timeout=540, cwd=ROOT, stdin=subprocess.DEVNULL)

    output = run.stdout[-8000:] + run.stderr[-8000:]
    assert run.returncode == 0, output
    data = json.loads(results.read_text())
    assert data["ok"] and data["dag_runs"] >= 1, output  # asset-triggered runs only: nobody triggered one
    assert set(data["dag_run_states"]) == {"success"}, output
    assert data["lag_p99"] <= 60, output
    requests = data["s3_requests"]
    # Each task of a run (the sync, the retention) lists one key per side before starting: nothing more.
    assert requests.get("ListObjectsV2", 0) <= 4 * data["dag_runs"], output
    # The sync's lookup (a HeadObject per side) and the retention's (one per side) per written key.
    assert requests["HeadObject"] <= 4 * (16 + 2) + 2 * data["dag_runs"], output
