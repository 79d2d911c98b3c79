"""A job's directory on the server: its layout, and confinement of every client-supplied name.

Layout (the directory names are part of the protocol: the client rewrites paths with them)::

    <job>/inputs/  working/  outputs/  configs/  tool_files/  metadata/  unstructured/
          home/    tmp/      lwr/  (lwr's own files: job script, streams, exit code, lock)
"""

from __future__ import annotations

import fnmatch
import os
import uuid
from pathlib import Path
from typing import BinaryIO

from lwr.core import job_files
from lwr.errors import BadRequest, NotFound
from lwr.protocol.layout import LWR_SUBDIRECTORY, OUTPUT_TYPES, SUBDIRECTORIES, TYPE_DIRECTORIES, setup_layout

__all__ = ["OUTPUT_TYPES", "SUBDIRECTORIES", "TYPE_DIRECTORIES", "JobDirectory", "confine", "validate_job_id"]

#: lwr's own files inside ``<job>/lwr/``.
SCRIPT_NAME = "job.sh"
TOOL_STDOUT = "tool_stdout"
TOOL_STDERR = "tool_stderr"
JOB_STDOUT = "job_stdout"
JOB_STDERR = "job_stderr"
EXIT_CODE = "exit_code"
STARTED_AT = "started_at"
ENDED_AT = "ended_at"
PID_FILE = "pid"
RUN_LOCK = "run.lock"
LAUNCH_GUARD = "launched"

#: lwr's directories: its own alone.
PRIVATE_DIRECTORY_MODE = 0o700
#: A directory a job user must pass through (but not list) to reach the job directory handed to it.
TRAVERSE_ONLY_MODE = 0o711


def current_umask() -> int:
    """The process's umask, read without changing it (``os.umask`` would, for every thread)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o077  # when in doubt, private


def make_directory(path: str, mode: int, umask: int) -> None:
    """A directory with exactly ``mode``: one ``mkdir`` when ``umask`` keeps every bit of it (the
    usual case), a ``chmod`` besides when it does not or the directory was already there."""
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        if not os.path.isdir(path):
            raise
    else:
        if not mode & umask:
            return
    os.chmod(path, mode)


#: Largest of lwr's own small records (exit code, pid, times) read back.
MAXIMUM_RECORD_SIZE = 1 << 20


def validate_job_id(job_id: str) -> str:
    """A job id becomes a directory name: refuse anything that could escape or collide."""
    if not job_id or len(job_id) > 255 or job_id in (".", "..") or job_id.startswith("."):
        raise BadRequest("invalid job_id", job_id=job_id)
    for char in job_id:
        if not (char.isascii() and (char.isalnum() or char in "-_.")):
            raise BadRequest("job_id may contain only letters, digits, '-', '_' and '.'", job_id=job_id)
    return job_id


#: Most components a client-supplied name may have (Galaxy's deepest are a few: extra files of
#: a dataset in sub-directories); far deeper would make creating its directories recurse past
#: Python's limit.
MAXIMUM_NAME_DEPTH = 128


def checked_parts(name: str) -> list[str]:
    """The components of a client-supplied relative ``name``, or :class:`BadRequest`.

    Refuses absolute names, ``..`` components, NUL bytes, names without a file component and
    names deeper than :data:`MAXIMUM_NAME_DEPTH`.
    """
    if not name or "\x00" in name:
        raise BadRequest("file name is empty or contains a NUL byte", name=name)
    if name.startswith("/") or name.startswith("\\"):
        raise BadRequest("file name must be relative", name=name)
    parts = name.replace("\\", "/").split("/")
    if any(part == ".." for part in parts):
        raise BadRequest("file name must not contain '..'", name=name)
    clean = [part for part in parts if part not in ("", ".")]
    if not clean:
        raise BadRequest("file name has no file component", name=name)
    if len(clean) > MAXIMUM_NAME_DEPTH:
        raise BadRequest(f"file name is more than {MAXIMUM_NAME_DEPTH} directories deep", depth=len(clean))
    return clean


def confine(directory: Path, name: str, symlink_root: Path | None = None) -> Path:
    """Resolve a client-supplied relative ``name`` inside ``directory`` or raise :class:`BadRequest`.

    Refuses what :func:`checked_parts` refuses, and any path whose symlinks lead out of
    ``symlink_root`` (by default ``directory`` itself). For files a job may have touched, open
    with :mod:`lwr.core.job_files` instead: a name checked here can change before it is opened.
    """
    candidate = directory.joinpath(*checked_parts(name))
    root = os.path.realpath(symlink_root or directory)
    resolved = os.path.realpath(candidate)
    if resolved != root and not resolved.startswith(root + os.sep):
        raise BadRequest("file name leads outside its directory", name=name)
    return candidate


class JobDirectory:
    """The directory of one job and the paths inside it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    # --- layout -----------------------------------------------------------------------------------
    def sub(self, name: str) -> Path:
        return self.path / name if name else self.path

    @property
    def working(self) -> Path:
        return self.path / "working"

    @property
    def outputs(self) -> Path:
        return self.path / "outputs"

    @property
    def metadata(self) -> Path:
        return self.path / "metadata"

    @property
    def internal(self) -> Path:
        """lwr's own files for this job (script, streams, exit code)."""
        return self.path / LWR_SUBDIRECTORY

    def internal_file(self, name: str) -> Path:
        return self.internal / name

    def exists(self) -> bool:
        return self.path.is_dir()

    def create(self, handed_over: bool = False) -> None:
        """The job directory and its layout, private to lwr (0700 whatever the umask).

        ``handed_over``: the job will run as another user (who will own the tree), yet lwr must still
        read the job script's records by name while it runs (the exit code tells lwr the job is
        over), so the job directory and ``lwr/`` are traverse-only (0711): nobody can list them.
        """
        outer = TRAVERSE_ONLY_MODE if handed_over else PRIVATE_DIRECTORY_MODE
        umask = current_umask()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        make_directory(str(self.path), outer, umask)
        for name in SUBDIRECTORIES:
            make_directory(
                os.path.join(self.path, name), outer if name == "lwr" else PRIVATE_DIRECTORY_MODE, umask
            )

    def discard(self, trash: Path) -> Path | None:
        """Move the directory into ``trash`` (one rename) for deletion later; None if it is gone."""
        trash.mkdir(parents=True, exist_ok=True)
        target = trash / f"{self.path.name}.{uuid.uuid4().hex}"
        try:
            os.rename(self.path, target)
        except FileNotFoundError:
            return None
        return target

    def setup_description(self) -> dict[str, str]:
        """The directory part of the setup reply the Pulsar client rewrites paths with."""
        return setup_layout(str(self.path))

    # --- client-named files -----------------------------------------------------------------------
    def directory_for_type(self, file_type: str) -> Path:
        try:
            return self.sub(TYPE_DIRECTORIES[file_type])
        except KeyError:
            raise BadRequest(f"unknown file type '{file_type}'", expected=sorted(TYPE_DIRECTORIES)) from None

    def path_for(self, name: str, file_type: str) -> Path:
        """Where a client-named file of ``file_type`` lives; confined to that type's directory,
        and never in lwr's own ``lwr/`` (the job script lwr wrote and checked, and the records
        it judges the job by: ``jobdir`` names the whole job directory)."""
        path = confine(self.directory_for_type(file_type), name)
        internal = os.path.realpath(self.internal)
        if path.relative_to(self.path).parts[:1] == (LWR_SUBDIRECTORY,) or (
            os.path.realpath(path) + os.sep
        ).startswith(internal + os.sep):
            raise BadRequest("file name leads into lwr's own directory of the job", name=name)
        return path

    def open_output(self, name: str, file_type: str) -> BinaryIO:
        """An output the client asks for, opened once (globs are honoured for ``output_workdir``).

        A tool may link an output to another file of the job (an input, say): allowed, as long as
        every step of the link stays inside the job directory; see :func:`job_files.open_confined`.
        """
        if file_type not in OUTPUT_TYPES:
            raise BadRequest(f"'{file_type}' is not an output type", expected=sorted(OUTPUT_TYPES))
        directory = self.directory_for_type(file_type)
        if file_type == "output_workdir" and ("*" in name or "?" in name):
            found = first_match(directory, name)
            if found is None:
                raise NotFound("no output matches the pattern", name=name, type=file_type)
            name = found
        relative = os.path.relpath(directory, self.path)
        parts = checked_parts(name)
        inside = "/".join(parts if relative == "." else [relative, *parts])
        try:
            fd = job_files.open_confined(self.path, inside)
        except NotFound:
            raise NotFound("no such output", name=name, type=file_type) from None
        return os.fdopen(fd, "rb")

    def contents(self, sub: str) -> list[str]:
        """Relative paths of every file below a sub-directory, recursively (status reply lists);
        symlinked directories are not entered."""
        return job_files.walk_files(self.sub(sub))

    # --- lwr's own records ------------------------------------------------------------------------
    def read_internal(self, name: str, limit: int = MAXIMUM_RECORD_SIZE) -> bytes | None:
        """Up to ``limit`` bytes of one of lwr's own files; None unless it is a regular file."""
        return job_files.read_in(self.internal, name, limit)

    def tool_stream(self, name: str, limit: int) -> str:
        """The tool's stdout or stderr: Galaxy's command line redirects them into ``metadata/``
        itself; otherwise they are what the job script captured."""
        fd = job_files.open_in(self.metadata, name)
        if fd is None:
            fd = job_files.open_in(self.internal, name)
        return read_head_and_tail(fd, limit)

    def read_stream(self, name: str, limit: int) -> str:
        """One of lwr's stdout/stderr files, keeping its start and end when longer than ``limit``."""
        return read_head_and_tail(job_files.open_in(self.internal, name), limit)

    def exit_code(self) -> int | None:
        """The exit code the job script recorded, or ``None`` if it has not finished."""
        raw = self.read_internal(EXIT_CODE, 64)
        if raw is None:
            return None
        try:
            return int(raw.strip())
        except ValueError:
            return None


def first_match(directory: Path, pattern: str) -> str | None:
    """The first (sorted) file below ``directory`` whose relative name matches ``pattern`` as
    ``glob`` would, component by component (``*`` does not match a leading dot).

    Found by walking the real directories only: ``glob`` follows the job's symlinked
    directories, and three links to ``.`` made its work grow as 3 to the pattern's depth (a
    request of ``*/`` twelve times took seven seconds of a worker; twenty, days).
    """
    parts = checked_parts(pattern)
    for name in job_files.walk_files(directory):
        components = name.split("/")
        if len(components) == len(parts) and all(
            fnmatch.fnmatchcase(component, part) and (part.startswith(".") or not component.startswith("."))
            for component, part in zip(components, parts)
        ):
            return name
    return None


def read_head_and_tail(fd: int | None, limit: int) -> str:
    """The text of an opened file, keeping its start and end when longer than ``limit``."""
    if fd is None:
        return ""
    with os.fdopen(fd, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size <= limit:
            data = handle.read(limit)
        else:
            half = limit // 2
            head = handle.read(half)
            handle.seek(size - half)
            data = head + b"\n[... output truncated by lwr ...]\n" + handle.read(half)
    return data.decode("utf-8", errors="replace")
