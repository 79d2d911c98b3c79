"""A job's directory on the server: its layout, and confinement of every client-supplied name.

Layout (the directory names are part of the protocol: the client rewrites paths with them)::

    <job>/inputs/  working/  outputs/  configs/  tool_files/  metadata/  unstructured/
          home/    tmp/      lwr/  (lwr's own files: job script, streams, exit code, lock)
"""

from __future__ import annotations

import glob
import os
import shutil
import uuid
from pathlib import Path

from lwr.errors import BadRequest, NotFound
from lwr.protocol.layout import OUTPUT_TYPES, SUBDIRECTORIES, TYPE_DIRECTORIES, setup_layout

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


def validate_job_id(job_id: str) -> str:
    """A job id becomes a directory name: refuse anything that could escape or collide."""
    if not job_id or len(job_id) > 255 or job_id in (".", "..") or job_id.startswith("."):
        raise BadRequest("invalid job_id", job_id=job_id)
    for char in job_id:
        if not (char.isascii() and (char.isalnum() or char in "-_.")):
            raise BadRequest("job_id may contain only letters, digits, '-', '_' and '.'", job_id=job_id)
    return job_id


def confine(directory: Path, name: str, symlink_root: Path | None = None) -> Path:
    """Resolve a client-supplied relative ``name`` inside ``directory`` or raise :class:`BadRequest`.

    Refuses absolute names, ``..`` components, NUL bytes, and any path whose symlinks lead
    out of ``symlink_root`` (by default ``directory`` itself).
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
    candidate = directory.joinpath(*clean)
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
        return self.path / "lwr"

    def internal_file(self, name: str) -> Path:
        return self.internal / name

    def exists(self) -> bool:
        return self.path.is_dir()

    def create(self) -> None:
        for name in SUBDIRECTORIES:
            (self.path / name).mkdir(parents=True, exist_ok=True)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

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
            raise BadRequest(
                f"unknown file type '{file_type}'", expected=sorted(TYPE_DIRECTORIES)
            ) from None

    def path_for(self, name: str, file_type: str) -> Path:
        """Where a client-named file of ``file_type`` lives; confined to that type's directory."""
        return confine(self.directory_for_type(file_type), name)

    def existing_output(self, name: str, file_type: str) -> Path:
        """An output the client asks to download; globs are honoured for ``output_workdir``."""
        if file_type not in OUTPUT_TYPES:
            raise BadRequest(f"'{file_type}' is not an output type", expected=sorted(OUTPUT_TYPES))
        directory = self.directory_for_type(file_type)
        if file_type == "output_workdir" and ("*" in name or "?" in name):
            confine(directory, name)
            matches = sorted(glob.glob(str(directory / name)))
            if not matches:
                raise NotFound("no output matches the pattern", name=name, type=file_type)
            name = os.path.relpath(matches[0], directory)
        # A tool may link an output to another file of the job (an input, say): allowed, as long
        # as the link stays inside the job directory.
        path = confine(directory, name, symlink_root=self.path)
        if not path.is_file():
            raise NotFound("no such output", name=name, type=file_type)
        return path

    def contents(self, sub: str) -> list[str]:
        """Relative paths of every file below a sub-directory, recursively (status reply lists)."""
        root = self.sub(sub)
        found: list[str] = []
        for dirpath, _dirnames, filenames in os.walk(root):
            relative = os.path.relpath(dirpath, root)
            for filename in filenames:
                found.append(filename if relative == "." else os.path.join(relative, filename))
        return sorted(found)

    # --- lwr's own records ------------------------------------------------------------------------
    def read_internal(self, name: str, limit: int = -1) -> bytes | None:
        try:
            with open(self.internal_file(name), "rb") as handle:
                return handle.read(limit)
        except FileNotFoundError:
            return None

    def tool_stream(self, name: str, limit: int) -> str:
        """The tool's stdout or stderr: Galaxy's command line redirects them into ``metadata/``
        itself; otherwise they are what the job script captured."""
        redirected = self.metadata / name
        if redirected.is_file() and not redirected.is_symlink():
            return self.read_stream(name, limit, redirected)
        return self.read_stream(name, limit)

    def read_stream(self, name: str, limit: int, path: Path | None = None) -> str:
        """A stdout/stderr file, keeping its start and end when longer than ``limit``."""
        path = path or self.internal_file(name)
        try:
            with open(path, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                if size <= limit:
                    data = handle.read()
                else:
                    half = limit // 2
                    head = handle.read(half)
                    handle.seek(size - half)
                    data = head + b"\n[... output truncated by lwr ...]\n" + handle.read()
        except FileNotFoundError:
            return ""
        return data.decode("utf-8", errors="replace")

    def exit_code(self) -> int | None:
        """The exit code the job script recorded, or ``None`` if it has not finished."""
        raw = self.read_internal(EXIT_CODE)
        if raw is None:
            return None
        try:
            return int(raw.strip())
        except ValueError:
            return None
