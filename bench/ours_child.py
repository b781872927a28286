"""Run S3SyncOperator in this fresh interpreter and record each run's time, CPU and memory.

    python bench/ours_child.py SPEC.json RESULT.json

SPEC holds ``{"runs": [{"source": ..., "dest": ..., <other operator arguments>}, ...]}``; the runs
go one after the other in this process. Before each, the peak RSS (VmHWM) is reset to the current
RSS where the kernel allows it, so ``rss_peak`` is that run's peak and ``rss_peak - rss_before``
its growth; ``cpu`` is the CPU time of this process (every thread) and its children during the
run (``getrusage`` deltas). Imports happen before the first run and are neither timed nor
counted; connections come from the ``AIRFLOW_CONN_*`` variables of the environment. A failing run
records its error's last line.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")  # no log record per object

from bench.common import cpu_seconds, exception_line, reset_peak_rss, status_bytes


def main() -> int:
    spec_path, result_path = sys.argv[1:3]
    runs: list[dict[str, Any]] = json.loads(Path(spec_path).read_text())["runs"]
    results: list[dict[str, Any]] = []
    try:
        from airflow_s3sync import S3SyncOperator
    except Exception as exc:  # noqa: BLE001 - reported in every cell
        error = "import: " + exception_line(exc)
        failed = {"error": error, "seconds": None, "cpu": None, "rss_before": 0, "rss_peak": 0, "peak_reset": False}
        results = [failed] * len(runs)
        Path(result_path).write_text(json.dumps({"runs": results}))
        return 0
    for number, arguments in enumerate(runs):
        reset = reset_peak_rss()
        before = status_bytes("VmRSS")
        cpu, start = cpu_seconds(), time.perf_counter()
        summary, error, detail = None, None, None
        try:
            summary = S3SyncOperator(task_id=f"bench{number}", **arguments).execute({})
        except Exception as exc:  # noqa: BLE001 - a failed run is a result
            error, detail = exception_line(exc), str(exc)[-4000:]
        seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
        results.append(
            {
                "seconds": seconds,
                "cpu": cpu,
                "error": error,
                "rss_before": before,
                "rss_peak": status_bytes("VmHWM"),
                "peak_reset": reset,
                "summary": summary,
                "detail": detail,
            }
        )
    Path(result_path).write_text(json.dumps({"runs": results}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
