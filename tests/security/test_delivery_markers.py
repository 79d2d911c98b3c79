"""Output delivery markers (``lwr/delivered/``) are made through a descriptor, never through a link.

A job that swaps ``lwr/delivered`` for a symlink, before lwr looks or after it looked, must not
make lwr create files wherever the link points.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lwr.core.job_directory import JobDirectory
from lwr.errors import StagingError
from lwr.staging.hooks import DELIVERED_DIRECTORY, _has_marker, _mark, _open_markers


@pytest.fixture
def job(tmp_path: Path) -> JobDirectory:
    directory = JobDirectory(tmp_path / "job")
    directory.create()
    return directory


def test_a_planted_link_is_refused(job: JobDirectory, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (job.internal / DELIVERED_DIRECTORY).symlink_to(elsewhere)
    with pytest.raises(StagingError, match="not delivering outputs"):
        _open_markers(job)
    assert list(elsewhere.iterdir()) == []


def test_a_link_swapped_in_after_the_check_is_not_followed(job: JobDirectory, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = _open_markers(job)
    try:
        markers = job.internal / DELIVERED_DIRECTORY
        markers.rename(job.internal / "moved-away")
        markers.symlink_to(elsewhere)  # the job's swap, between the check and the markers
        assert not _has_marker("a" * 64, done)
        _mark("a" * 64, done)
        assert _has_marker("a" * 64, done)
    finally:
        os.close(done)
    assert list(elsewhere.iterdir()) == []
    assert (job.internal / "moved-away" / ("a" * 64)).is_file()
