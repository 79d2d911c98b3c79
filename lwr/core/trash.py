"""The trash bin: a removed job directory is renamed away at once and deleted in the background.

Deleting a job directory of many files takes seconds; a rename takes one system call. ``clean``
and retention rename the directory into the bin (on the staging filesystem, so the rename never
copies) and one daemon thread deletes what the bin holds. What a previous process left in the bin
(it was killed before emptying it) is deleted when the bin starts.
"""

from __future__ import annotations

import queue
import shutil
import threading
from pathlib import Path

from lwr.core.job_directory import JobDirectory


class TrashBin:
    """A directory of doomed job directories and the one thread that deletes them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._queue: queue.Queue[Path] = queue.Queue()

    def start(self) -> None:
        """Queue what a previous process left in the bin, then start emptying it."""
        if self.path.is_dir():
            for leftover in self.path.iterdir():
                self.put(leftover)
        threading.Thread(target=self._empty, name="trash", daemon=True).start()

    def put(self, path: Path) -> None:
        """Delete ``path`` (already moved into the bin) in the background."""
        self._queue.put(path)

    def discard(self, directory: JobDirectory) -> None:
        """Move a job directory into the bin and queue it for deletion; a directory already gone is fine."""
        discarded = directory.discard(self.path)
        if discarded is not None:
            self.put(discarded)

    def _empty(self) -> None:
        while True:
            shutil.rmtree(self._queue.get(), ignore_errors=True)
