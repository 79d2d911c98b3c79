"""The short soak: bench/soak.py for about two minutes, every fault kind at least once.

Galaxy's real Pulsar client drives lwr over AMQP and HTTP (and Slurm) while lwr is killed -9,
the broker restarts, the staging disk fills, the files endpoint fails three ways and slurmctld
is killed -9. Scaled down from the issue's ~2,000 jobs to what two shared cores finish in about
two minutes (a few hundred jobs); the long run (docs/reliability.md) is the 100,000-job one.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

FAULTS = [
    "kill_lwr",
    "broker_restart",
    "disk_full",
    "endpoint_error",
    "endpoint_reset",
    "endpoint_stall",
    "kill_slurmctld",
]


def test_short_soak_loses_nothing(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    command = [
        sys.executable,
        str(ROOT / "bench" / "soak.py"),
        "--jobs",
        "1500",
        "--duration",
        "90",
        "--directory",
        str(tmp_path / "soak"),
        "--kill-every",
        "15",
        "--broker-every",
        "35",
        "--disk-every",
        "30",
        "--endpoint-every",
        "10",
        "--slurmctld-every",
        "40",
        "--job-timeout",
        "120",
        "--slurm-share",
        "3",
        "--retention",
        "30",
        "--progress-every",
        "30",
        "--results",
        str(results),
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    output = run.stdout + run.stderr[-4000:]
    last = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
    assert last.startswith("SOAK PASS"), output[-6000:]
    figures = json.loads(results.read_text())
    assert figures["verdicts"]["ok"] >= 100, figures
    for verdict in ("lost", "ran_twice", "wrong_output", "duplicate_final", "out_of_order"):
        assert figures["verdicts"][verdict] == 0, figures["problems"]
    for fault in FAULTS:
        assert figures["faults"].get(fault, 0) >= 1, (fault, figures["faults"])
    assert set(figures["by_mode"]) == {"http", "mq", "slurm"}
    assert not figures["fault_errors"]
