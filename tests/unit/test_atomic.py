"""The one atomic-write primitive: whole or untouched, fsynced exactly when the caller says so."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from lwr.core import atomic
from lwr.staging.allow_list import UrlPolicy
from lwr.staging.transfer import Transfers


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every os.fsync the code under test makes (the real call still happens)."""
    calls: list[int] = []
    real = os.fsync

    def counting(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(atomic.os, "fsync", counting)
    return calls


def leftovers(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir() if path.name.startswith("."))


@pytest.mark.parametrize("durable, expected_fsyncs", [(True, 2), (False, 0)])
def test_atomic_file_replaces_the_target_and_fsyncs_only_when_durable(
    tmp_path: Path, fsyncs: list[int], durable: bool, expected_fsyncs: int
) -> None:
    target = tmp_path / "record.json"
    target.write_bytes(b"old")
    with atomic.atomic_file(target, durable=durable) as handle:
        handle.write(b"new")
        assert target.read_bytes() == b"old"  # nothing visible before the block ends
    assert target.read_bytes() == b"new"
    assert len(fsyncs) == expected_fsyncs  # the file's data, then the directory entry
    assert leftovers(tmp_path) == []


def test_an_error_in_the_block_leaves_the_old_content_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "record.json"
    target.write_bytes(b"old")
    with pytest.raises(ValueError), atomic.atomic_file(target, durable=True) as handle:
        handle.write(b"half")
        raise ValueError("digest mismatch")
    assert target.read_bytes() == b"old"
    assert leftovers(tmp_path) == []


def test_mode_is_applied_and_the_default_is_private(tmp_path: Path) -> None:
    with atomic.atomic_file(tmp_path / "private", durable=False) as handle:
        handle.write(b"x")
    with atomic.atomic_file(tmp_path / "shared", durable=False, mode=0o644) as handle:
        handle.write(b"x")
    assert stat.S_IMODE((tmp_path / "private").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "shared").stat().st_mode) == 0o644


@pytest.mark.parametrize("durable, expected_fsyncs", [(True, 2), (False, 0)])
def test_place_renames_a_finished_temporary(
    tmp_path: Path, fsyncs: list[int], durable: bool, expected_fsyncs: int
) -> None:
    target = tmp_path / "download.dat"
    temporary = atomic.temporary_beside(target, ".part")
    Path(temporary).write_bytes(b"whole")
    atomic.place(temporary, target, durable=durable, mode=0o640)
    assert target.read_bytes() == b"whole"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert len(fsyncs) == expected_fsyncs
    assert leftovers(tmp_path) == []


def test_write_bytes_atomically_keeps_the_outbox_leftover_pattern(tmp_path: Path) -> None:
    # The outbox removes ".*.tmp" files a killed lwr left; the primitive must keep naming them so.
    assert Path(atomic.temporary_beside(tmp_path / "entry.json")).name.startswith(".entry.json.")
    assert atomic.temporary_beside(tmp_path / "entry.json").endswith(".tmp")


def test_remote_copy_in_and_out_are_equally_durable(tmp_path: Path, fsyncs: list[int]) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "in.dat").write_bytes(b"input")
    (tmp_path / "out.dat").write_bytes(b"output")
    staging = Transfers(UrlPolicy([f"file://{shared}"]))
    staging.copy_in(str(shared / "in.dat"), tmp_path / "job" / "in.dat")
    copied_in = len(fsyncs)
    staging.copy_out(tmp_path / "out.dat", str(shared / "results" / "out.dat"))
    assert copied_in == 2 and len(fsyncs) - copied_in == 2
    assert (tmp_path / "job" / "in.dat").read_bytes() == b"input"
    assert (shared / "results" / "out.dat").read_bytes() == b"output"
