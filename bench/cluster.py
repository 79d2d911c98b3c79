"""Cluster manager overhead: N trivial jobs through a real lwr and its queued_cli Slurm manager.

Prints figures; it is not a test. Needs the real Slurm of ``bash .ci/backends.sh``.

What is measured, per job (all clocks are this host's, so the figures compare directly):

* **submit overhead**: the client's ``submit`` request starts -> ``sbatch`` has returned the
  job id (Slurm has the job). Reported in full and without the ``sbatch`` call itself (the
  batch system's own latency), which leaves lwr's part: HTTP, writing the job script, waiting
  for a submit thread.
* **end overhead**: the job script wrote its end time (``lwr/ended_at``) -> the client's
  status poll first says ``complete``; and, from lwr's log, the part until lwr marked the job
  complete (the manager noticed the record and the core recorded the state). It includes up to one ``min_polling_interval`` by design;
  the client asks lwr only about jobs whose ``ended_at`` exists, every 20 ms.
* **polling load**: batch-system commands (``squeue``, ``sacct``, ``scontrol``) per minute while
  jobs are in flight, from the command log of wrappers placed in front of the real commands in
  the server's PATH; the wrappers also time every ``sbatch``.

Usage::

    .venv/bin/python bench/cluster.py                # 200 jobs, min_polling_interval 1.0, 4 submit threads
    .venv/bin/python bench/cluster.py -n 50 --interval 0.5 --submit-threads 4 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from server import LwrServer  # noqa: E402

COMMANDS = ("sbatch", "squeue", "sacct", "scancel", "scontrol")
FINAL = {"complete", "failed", "cancelled", "lost"}

WRAPPER = """#!/bin/bash
# bench/cluster.py: log every call of {name}, with its start and end time, then answer as {real}
start=$(date +%s.%N)
out=$({real} "$@"); rc=$?
printf '%s %s %s %s\\n' "$start" "$(date +%s.%N)" {name} "$(echo "$*" | head -c 300 | tr '\\n' ' ')" >> {log}
[ -n "$out" ] && printf '%s\\n' "$out"
exit $rc
"""


def write_wrappers(directory: Path, log: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name in COMMANDS:
        real = shutil.which(name)
        if real is None:
            sys.exit(f"{name} not found: start the test backends with bash .ci/backends.sh")
        path = directory / name
        path.write_text(WRAPPER.format(name=name, real=real, log=log))
        path.chmod(0o755)


def request(url: str, method: str = "GET", **params: str) -> dict:
    full = url + ("?" + urllib.parse.urlencode(params) if params else "")
    with urllib.request.urlopen(
        urllib.request.Request(full, method=method, data=b"" if method != "GET" else None), timeout=30
    ) as response:
        body = response.read()
    return json.loads(body) if body.strip() else {}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": statistics.median(values), "p95": percentile(values, 0.95), "max": max(values)}


def lwr_completion_times(log_text: str) -> dict[str, float]:
    """When lwr marked each job complete, from its log ("2026-11-25 11:50:47,183 INFO ... job X on slurm: complete")."""
    found: dict[str, float] = {}
    for line in log_text.splitlines():
        if " on slurm: complete" not in line:
            continue
        stamp, _, rest = line.partition(" INFO ")
        job_id = rest.split(" job ", 1)[-1].split(" on slurm", 1)[0]
        found[job_id] = time.mktime(time.strptime(stamp[:19], "%Y-%m-%d %H:%M:%S")) + int(stamp[20:23]) / 1000
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", "--jobs", type=int, default=200)
    parser.add_argument("--interval", type=float, default=1.0, help="min_polling_interval of the manager")
    parser.add_argument("--submit-threads", type=int, default=4)
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep the server directory")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="lwr-bench-cluster."))
    log = work / "commands.log"
    write_wrappers(work / "bin", log)
    managers = (
        f"[manager:slurm]\ntype = queued_cli\njob_plugin = Slurm\nmin_polling_interval = {args.interval}\n"
        f"submit_threads = {args.submit_threads}\n"
    )
    os.environ["PATH"] = f"{work / 'bin'}:{os.environ['PATH']}"  # the server inherits the wrappers
    server = LwrServer(directory=work / "server", job_managers_ini=managers)
    server.start()
    base = server.url + "managers/slurm/jobs"
    try:
        ids = [f"bench-{index}" for index in range(args.jobs)]
        submitted_at: dict[str, float] = {}
        completed_seen: dict[str, float] = {}
        directories: dict[str, Path] = {}
        started = time.time()
        for job_id in ids:
            setup = request(base, "POST", job_id=job_id)
            directories[job_id] = Path(setup["job_directory"])
            submitted_at[job_id] = time.time()
            request(f"{base}/{job_id}/submit", "POST", command_line="true")
        submitted_all = time.time()
        pending = list(ids)
        while pending:
            for job_id in list(pending):
                if not (directories[job_id] / "lwr" / "ended_at").exists():
                    continue  # still running: no need to ask lwr (keeps the client's poll rounds short)
                status = request(f"{base}/{job_id}/status")
                state = status.get("status") or status.get("state")
                if state in FINAL:
                    if state != "complete":
                        sys.exit(f"job {job_id} ended {state}: {status}")
                    completed_seen[job_id] = time.time()
                    pending.remove(job_id)
            time.sleep(0.02)
        finished = time.time()
    finally:
        server.stop()
    marked_complete = lwr_completion_times(server.log_text())

    calls = [line.split(None, 3) for line in log.read_text().splitlines()]
    sbatch_end: dict[str, float] = {}
    sbatch_duration: dict[str, float] = {}
    for call in calls:
        if call[2] == "sbatch":
            arguments = call[3].split()
            job_id = arguments[arguments.index("-J") + 1].removeprefix("lwr_")
            sbatch_end[job_id] = float(call[1])
            sbatch_duration[job_id] = float(call[1]) - float(call[0])
    submit_total = [sbatch_end[job_id] - submitted_at[job_id] for job_id in ids]
    submit_own = [submit_total[index] - sbatch_duration[job_id] for index, job_id in enumerate(ids)]
    end_overhead = [
        completed_seen[job_id] - float((directories[job_id] / "lwr" / "ended_at").read_text())
        for job_id in ids
    ]
    detection = [
        marked_complete[job_id] - float((directories[job_id] / "lwr" / "ended_at").read_text())
        for job_id in ids
        if job_id in marked_complete
    ]
    status_calls = [call for call in calls if call[2] in ("squeue", "sacct", "scontrol")]
    in_flight_minutes = (finished - started) / 60
    figures = {
        "jobs": args.jobs,
        "min_polling_interval": args.interval,
        "submit_threads": args.submit_threads,
        "wall_seconds": round(finished - started, 1),
        "submit_all_seconds": round(submitted_all - started, 2),
        "submit_overhead_total_s": summary(submit_total),
        "submit_overhead_without_sbatch_s": summary(submit_own),
        "sbatch_call_s": summary(list(sbatch_duration.values())),
        "end_overhead_s": summary(end_overhead),
        "end_detected_by_lwr_s": summary(detection) if detection else None,
        "status_commands": {
            name: sum(1 for call in status_calls if call[2] == name)
            for name in ("squeue", "sacct", "scontrol")
        },
        "status_commands_per_minute": round(len(status_calls) / in_flight_minutes, 1),
        "polling_intervals_elapsed": round((finished - started) / args.interval),
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
