"""remote_copy's copy_out checks the real path of its destination; it must also write there.

Performed for real: another process flips a directory of the destination path between a real
directory (allowed) and a symlink to a directory outside the allow-list while lwr copies an output
there 300 times. Nothing may land outside.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from lwr.errors import StagingError
from lwr.staging.allow_list import UrlPolicy
from lwr.staging.transfer import Transfers

COPIES = 300

FLIPPER = r"""
import os, sys, time
shared, outside, stop = sys.argv[1], sys.argv[2], sys.argv[3]
real, hidden, link = os.path.join(shared, "results"), os.path.join(shared, ".results"), os.path.join(shared, ".link")
while not os.path.exists(stop):
    try:
        os.symlink(outside, link)
        os.rename(real, hidden)
        os.rename(link, real)
        time.sleep(0.0002)
        os.unlink(real)
        os.rename(hidden, real)
        time.sleep(0.0002)
    except OSError:  # lwr may have re-created "results" meanwhile: start over
        for name in (link, real):
            if os.path.islink(name):
                os.unlink(name)
        if os.path.isdir(hidden) and not os.path.exists(real):
            os.rename(hidden, real)
"""


def test_copy_out_never_writes_outside_the_checked_directory(tmp_path: Path) -> None:
    shared, outside = tmp_path / "shared", tmp_path / "outside"
    (shared / "results").mkdir(parents=True)
    outside.mkdir()
    output = tmp_path / "out.dat"
    output.write_text("output")
    stop = tmp_path / "stop"
    transfers = Transfers(UrlPolicy([f"file://{shared}"]))
    flipper = subprocess.Popen([sys.executable, "-c", FLIPPER, str(shared), str(outside), str(stop)])
    copied = 0
    try:
        for index in range(COPIES):
            try:
                transfers.copy_out(output, str(shared / "results" / f"out{index}.dat"))
                copied += 1
            except (StagingError, OSError):
                pass  # refused, or lost the race: either is fine, as long as nothing lands outside
            assert list(outside.iterdir()) == [], "an output was written outside the allowed directory"
    finally:
        stop.touch()
        flipper.wait(30)
    assert flipper.returncode == 0
    assert copied > 0
    assert sorted(path.name for path in (shared / "results").iterdir() if path.name.endswith(".part")) == []
