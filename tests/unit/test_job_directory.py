from __future__ import annotations

import os

import pytest

from lwr.core.job_directory import JobDirectory, confine, validate_job_id
from lwr.errors import BadRequest, NotFound


@pytest.mark.parametrize(
    "name, expected",
    [
        ("a.txt", "a.txt"),
        ("sub/dir/a.txt", "sub/dir/a.txt"),
        ("./a.txt", "a.txt"),
        ("sub//a.txt", "sub/a.txt"),
    ],
)
def test_confine_accepts(tmp_path, name, expected):
    assert confine(tmp_path, name) == tmp_path / expected


@pytest.mark.parametrize(
    "name", ["", "/abs", "\\abs", "../x", "a/../../x", "a/..", "..", "nul\x00", ".", "./"]
)
def test_confine_refuses(tmp_path, name):
    with pytest.raises(BadRequest):
        confine(tmp_path, name)


def test_confine_refuses_symlink_escape(tmp_path):
    inside = tmp_path / "job"
    inside.mkdir()
    os.symlink(tmp_path, inside / "up")
    with pytest.raises(BadRequest, match="outside"):
        confine(inside, "up/secret")
    os.symlink(inside / "sub", inside / "ok")
    assert confine(inside, "ok/file") == inside / "ok" / "file"


@pytest.mark.parametrize("job_id", ["1", "abc-DEF_1.2", "a" * 255])
def test_valid_job_ids(job_id):
    assert validate_job_id(job_id) == job_id


@pytest.mark.parametrize("job_id", ["", ".", "..", ".hidden", "a/b", "a b", "é", "a" * 256, "x\x00"])
def test_invalid_job_ids(job_id):
    with pytest.raises(BadRequest):
        validate_job_id(job_id)


@pytest.mark.parametrize(
    "file_type, directory",
    [
        ("input", "inputs"),
        ("input_extra", "inputs"),
        ("config", "configs"),
        ("tool", "tool_files"),
        ("workdir", "working"),
        ("metadata", "metadata"),
        ("unstructured", "unstructured"),
        ("jobdir", ""),
        ("output", "outputs"),
        ("output_workdir", "working"),
        ("output_metadata", "metadata"),
    ],
)
def test_type_directories(tmp_path, file_type, directory):
    job = JobDirectory(tmp_path / "job")
    assert job.path_for("f", file_type) == (job.path / directory / "f" if directory else job.path / "f")


def test_unknown_type(tmp_path):
    with pytest.raises(BadRequest, match="unknown file type"):
        JobDirectory(tmp_path).path_for("f", "bogus")


def test_outputs_contents_and_globs(tmp_path):
    job = JobDirectory(tmp_path / "job")
    job.create()
    (job.working / "report-17.txt").write_text("r")
    (job.outputs / "d_files").mkdir()
    (job.outputs / "d_files" / "x").write_text("x")
    assert job.contents("outputs") == ["d_files/x"]
    with job.open_output("report-*.txt", "output_workdir") as handle:
        assert handle.read() == b"r"
    with pytest.raises(NotFound):
        job.open_output("missing", "output")
    with pytest.raises(BadRequest):
        job.open_output("x", "input")


def test_outputs_may_link_inside_the_job_only(tmp_path):
    job = JobDirectory(tmp_path / "job")
    job.create()
    (job.path / "inputs" / "in.dat").write_text("input")
    (tmp_path / "outside").write_text("secret")
    os.symlink(job.path / "inputs" / "in.dat", job.outputs / "absolute")
    os.symlink("../inputs/in.dat", job.outputs / "relative")
    os.symlink("relative", job.outputs / "chained")
    os.symlink(job.path / "inputs", job.working / "dir-link")
    for name, file_type in [
        ("absolute", "output"),
        ("relative", "output"),
        ("chained", "output"),
        ("dir-link/in.dat", "output_workdir"),
    ]:
        with job.open_output(name, file_type) as handle:
            assert handle.read() == b"input", name
    os.symlink(tmp_path / "outside", job.outputs / "out-absolute")
    os.symlink("../../outside", job.outputs / "out-relative")
    os.symlink("/dev/zero", job.outputs / "zero")
    os.symlink("loop", job.outputs / "loop")
    os.mkfifo(job.outputs / "fifo")
    for name in ("out-absolute", "out-relative", "zero", "loop", "fifo"):
        with pytest.raises((BadRequest, NotFound)):
            job.open_output(name, "output")


def test_own_records_are_never_read_through_symlinks(tmp_path):
    job = JobDirectory(tmp_path / "job")
    job.create()
    (tmp_path / "secret").write_text("secret")
    os.symlink(tmp_path / "secret", job.internal_file("tool_stdout"))
    os.symlink("/dev/zero", job.internal_file("exit_code"))
    os.mkfifo(job.internal_file("job_stderr"))
    assert job.read_stream("tool_stdout", 100) == ""
    assert job.tool_stream("tool_stdout", 100) == ""
    assert job.exit_code() is None
    assert job.read_stream("job_stderr", 100) == ""
    assert job.read_internal("tool_stdout") is None


def test_read_stream_keeps_head_and_tail(tmp_path):
    job = JobDirectory(tmp_path / "job")
    job.create()
    job.internal_file("tool_stdout").write_bytes(b"A" * 100 + b"B" * 100)
    text = job.read_stream("tool_stdout", 20)
    assert text.startswith("A" * 10) and text.endswith("B" * 10) and "truncated" in text


def test_exit_code(tmp_path):
    job = JobDirectory(tmp_path / "job")
    job.create()
    assert job.exit_code() is None
    job.internal_file("exit_code").write_text("3\n")
    assert job.exit_code() == 3
    job.internal_file("exit_code").write_text("garbage")
    assert job.exit_code() is None


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o277, 0o011, 0o000])
@pytest.mark.parametrize("handed_over", [False, True])
def test_layout_modes_whatever_the_umask(tmp_path, umask, handed_over):
    import stat

    from lwr.protocol.layout import SUBDIRECTORIES

    outer = 0o711 if handed_over else 0o700
    job = JobDirectory(tmp_path / "staging" / "job")
    (tmp_path / "staging").mkdir()
    (job.path / "working").mkdir(parents=True, mode=0o755)  # already there, too open: made private
    (job.path / "working").chmod(0o755)
    previous = os.umask(umask)
    try:
        job.create(handed_over)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(job.path.stat().st_mode) == outer
    for name in SUBDIRECTORIES:
        expected = outer if name == "lwr" else 0o700
        assert stat.S_IMODE((job.path / name).stat().st_mode) == expected, name


def test_create_refuses_a_file_in_place_of_a_directory(tmp_path):
    job = JobDirectory(tmp_path / "job")
    job.path.mkdir()
    (job.path / "outputs").write_text("not a directory")
    with pytest.raises(FileExistsError):
        job.create()
