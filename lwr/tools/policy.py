"""What a public lwr checks before a job may run: its tool, command line, environment and files.

The job service asks at three points (``lwr.core.jobs.LaunchPolicy``): at setup (the tool must
be in the toolbox), at submit (the command line must be one plain command matching the tool's
``command_validator``; the environment only Galaxy's own plain variables; no batch options of
the client's), and just before the job is queued, after every file arrived (each tool file must
be byte for byte the server's copy, each config file must match the tool's
``configfile_validator`` of its name). Any refusal is :class:`~lwr.errors.Forbidden` and the
job is never queued.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from lwr.core.job_directory import JobDirectory
from lwr.core.store import JobRecord
from lwr.errors import BadRequest, Forbidden
from lwr.protocol.submit import EnvItem
from lwr.tools.toolbox import Tool, Toolbox
from lwr.tools.validator import JobPaths, shell_words

log = logging.getLogger(__name__)

#: Variables a client may export in public mode (Galaxy's job resources), with plain values only.
ALLOWED_ENV = re.compile(r"^_?GALAXY_[A-Z0-9_]+$")
#: ...except those lwr's job script acts on (:mod:`lwr.core.job_script`): the client's exports
#: come after lwr's, so ``GALAXY_VIRTUAL_ENV`` would choose the ``bin/activate`` it sources and
#: ``GALAXY_LIB`` what comes first on PYTHONPATH.
SCRIPT_ENV = frozenset(
    {
        "GALAXY_VIRTUAL_ENV",
        "_GALAXY_VIRTUAL_ENV",
        "GALAXY_LIB",
        "_GALAXY_JOB_TMP_DIR",
        "_GALAXY_JOB_HOME_DIR",
        "GALAXY_SLOTS_CONFIGURED",
    }
)
_PLAIN_VALUE = re.compile(r"^[A-Za-z0-9_+.,:=@/-]*$")
#: Submit parameters a public lwr's client may send: whom the job runs as (still held to the
#: manager's allow-list of users). Every other one is a batch-system option (a native
#: specification, HTCondor commands), and those decide what runs around the validated command
#: (Slurm's ``--export=BASH_ENV=...`` or ``--container``, HTCondor's ``docker_image``, any
#: option of a DRMAA native specification): the administrator's alone.
CLIENT_SUBMIT_PARAMS = frozenset({"user", "submit_user"})
#: Largest config file checked against a validator.
MAX_CONFIG_FILE = 1 << 20
_CHUNK = 1 << 16


class ToolPolicy:
    """Public-server mode over one toolbox."""

    def __init__(self, toolbox: Toolbox) -> None:
        self.toolbox = toolbox

    def _tool(self, tool_id: str | None, tool_version: str | None) -> Tool:
        tool = self.toolbox.find(tool_id, tool_version)
        if tool is None:
            raise Forbidden(
                f"tool {tool_id!r} (version {tool_version or 'any'}) is not in this public lwr's toolbox",
                tool_id=tool_id,
                tool_version=tool_version,
            )
        return tool

    def authorize_setup(self, tool_id: str | None, tool_version: str | None) -> None:
        self._tool(tool_id, tool_version)

    def authorize_submit(
        self,
        record: JobRecord,
        directory: JobDirectory,
        command_line: str,
        env: list[EnvItem],
        submit_params: Mapping[str, Any],
    ) -> None:
        tool = self._tool(record.tool_id, record.tool_version)
        options = sorted(set(submit_params) - CLIENT_SUBMIT_PARAMS)
        if options:
            raise self._refused(
                record,
                f"submit parameters {', '.join(options)} are not allowed: batch options are this "
                "server's own in public mode",
            )
        try:
            shell_words(command_line)
        except BadRequest as error:
            raise self._refused(record, error.message) from None
        if not tool.command_validator.matches(command_line, JobPaths(directory.path)):
            raise self._refused(record, f"the command line does not match the validator of tool {tool.id}")
        for item in env:
            allowed = ALLOWED_ENV.match(item.name) and item.name not in SCRIPT_ENV
            if item.raw or not allowed or not _PLAIN_VALUE.match(item.value):
                raise self._refused(
                    record, f"environment variable {item.name!r} is not allowed (only plain GALAXY_* values)"
                )

    def authorize_launch(self, record: JobRecord, directory: JobDirectory) -> None:
        tool = self._tool(record.tool_id, record.tool_version)
        for relative, path in _files(directory.sub("tool_files")):
            if not _same_file(path, tool.directory / relative):
                raise self._refused(
                    record, f"tool file {relative!r} differs from this server's copy of tool {tool.id}"
                )
        paths = JobPaths(directory.path)
        for relative, path in _files(directory.sub("configs")):
            validator = tool.configfile_validators.get(relative)
            if validator is None:
                raise self._refused(
                    record, f"config file {relative!r} has no configfile_validator in tool {tool.id}"
                )
            text = _read_text(path)
            if text is None or not validator.matches(text.removesuffix("\n"), paths):
                raise self._refused(
                    record, f"config file {relative!r} does not match its validator in tool {tool.id}"
                )

    @staticmethod
    def _refused(record: JobRecord, why: str) -> Forbidden:
        log.warning("public mode refused job %s (tool %s): %s", record.job_id, record.tool_id, why)
        return Forbidden(f"refused by this public lwr: {why}", job_id=record.job_id, tool_id=record.tool_id)


def _files(root: Path) -> Iterator[tuple[str, Path]]:
    """Every entry under ``root`` as (relative name, path); anything but files and directories is refused."""
    if not root.is_dir():
        return
    for directory, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(directory) / name
            mode = os.lstat(path).st_mode
            relative = str(path.relative_to(root))
            if stat.S_ISDIR(mode):
                continue
            if not stat.S_ISREG(mode):
                raise Forbidden(f"{relative!r} is not a regular file")
            yield relative, path


def _open(path: Path) -> int | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return fd


def _same_file(staged: Path, original: Path) -> bool:
    """True if both are regular files with the same bytes (read from descriptors, never following links)."""
    mine, theirs = _open(staged), _open(original)
    try:
        if mine is None or theirs is None or os.fstat(mine).st_size != os.fstat(theirs).st_size:
            return False
        while True:
            left, right = os.read(mine, _CHUNK), os.read(theirs, _CHUNK)
            if left != right:
                return False
            if not left:
                return True
    finally:
        for fd in (mine, theirs):
            if fd is not None:
                os.close(fd)


def _read_text(path: Path) -> str | None:
    fd = _open(path)
    if fd is None:
        return None
    try:
        data = os.read(fd, MAX_CONFIG_FILE + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_CONFIG_FILE:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None
