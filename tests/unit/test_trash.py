"""The trash bin deletes what it is given, and what a killed predecessor left in it."""

from __future__ import annotations

import time
from pathlib import Path

from lwr.core.job_directory import JobDirectory
from lwr.core.trash import TrashBin


def _gone(path: Path, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return not path.exists()


def test_the_bin_empties_leftovers_and_discarded_directories(tmp_path: Path) -> None:
    bin_path = tmp_path / ".trash"
    leftover = bin_path / "old.1234"
    (leftover / "inputs").mkdir(parents=True)
    (leftover / "inputs" / "data").write_text("x")
    trash = TrashBin(bin_path)
    trash.start()
    assert _gone(leftover)

    job = tmp_path / "job"
    (job / "outputs").mkdir(parents=True)
    (job / "outputs" / "result").write_text("y")
    trash.discard(JobDirectory(job))
    assert not job.exists()  # renamed away at once
    deadline = time.monotonic() + 5.0
    while any(bin_path.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not any(bin_path.iterdir())
    trash.discard(JobDirectory(job))  # already gone: nothing to do
