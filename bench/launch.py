"""Run one command and record its wall time, exit status, CPU time and peak RSS, like ``/usr/bin/time``.

    python -I -S bench/launch.py RESULT.json COMMAND [ARG ...]

Why a launcher: Linux keeps, across ``execve``, the peak RSS of the memory the new program
replaces, and Python's subprocess starts children with vfork (the parent's memory). So
``ru_maxrss`` of a tool started straight from a benchmark process that holds Airflow or 100,000
listed keys would report *that* process's peak. Started from this small interpreter (``-I -S``:
no site, nothing imported but ``os``, ``sys``, ``json``, ``time``) by ``fork``, the floor is the
few MiB this process occupies (about 5 MiB here; GNU time's is 1 MiB).

The CPU time is ``ru_utime + ru_stime`` of the same ``os.wait4``: the command's, every thread's,
and that of the children it waited for (Linux adds a reaped child's usage to its parent's); this
launcher's own is not in it.
"""

import json
import os
import sys
import time


def main() -> int:
    result_path, argv = sys.argv[1], sys.argv[2:]
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the child: become the command
        try:
            os.execvp(argv[0], argv)
        except OSError as exc:
            os.write(2, f"cannot run {argv[0]}: {exc}\n".encode())
        os._exit(127)
    _pid, status, usage = os.wait4(pid, 0)
    seconds = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    with open(result_path, "w") as out:
        cpu = usage.ru_utime + usage.ru_stime
        json.dump({"seconds": seconds, "exit": code, "cpu_seconds": cpu, "maxrss_kib": usage.ru_maxrss}, out)
    return code if 0 <= code < 256 else 1


if __name__ == "__main__":
    sys.exit(main())
