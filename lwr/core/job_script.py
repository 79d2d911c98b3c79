"""The job script: the one bash script every manager runs, locally or on a cluster node.

It is the job's own record keeper, so what it writes survives lwr being killed or a batch
system forgetting the job: the tool's stdout/stderr, start and end times, and the exit code
(one write of a few bytes, so a half-written code is never read). It forks nothing but
``flock`` and the command itself: every process costs a millisecond or more per job.

Two guards make a job run at most once: creating ``lwr/launched`` exclusively is atomic, so a second copy
of the script (a relaunch after a crash, a batch-system requeue) exits without running the
command; and the script holds ``flock`` on ``lwr/run.lock`` while it runs, which lets lwr
tell after a restart whether the job is still alive and wait for it without polling.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lwr.core import job_directory as layout
from lwr.core.job_directory import JobDirectory
from lwr.errors import BadRequest

#: Exit status of a second copy of the script that refused to run the command again.
ALREADY_LAUNCHED_STATUS = 75

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class EnvItem:
    """One variable the client asked to export; ``raw`` values are shell expressions."""

    name: str
    value: str
    raw: bool = False

    def export_line(self) -> str:
        value = self.value if self.raw else shlex.quote(self.value)
        return f"export {self.name}={value}"


def parse_env(items: Any) -> list[EnvItem]:
    """Validate the ``env`` list of a submit (``[{"name": .., "value": .., "raw": ..}]``)."""
    if items is None:
        return []
    if not isinstance(items, list):
        raise BadRequest("env must be a JSON list of {name, value} objects")
    parsed = []
    for index, item in enumerate(items):
        if not isinstance(item, Mapping) or "name" not in item:
            raise BadRequest("env item must be an object with a name", index=index)
        name = item["name"]
        if not isinstance(name, str) or not _ENV_NAME.match(name):
            raise BadRequest("env name must be a shell identifier", index=index, name=str(name))
        value = item.get("value", "")
        parsed.append(EnvItem(name=name, value="" if value is None else str(value), raw=bool(item.get("raw"))))
    return parsed


@dataclass(frozen=True)
class JobScript:
    command_line: str
    env: list[EnvItem] = field(default_factory=list)

    def render(self, directory: JobDirectory) -> str:
        q = shlex.quote
        lwr_dir = directory.internal
        lines = [
            "#!/bin/bash",
            "# Written by lwr. Runs one job; records streams, times and exit code beside it.",
            f"lwr_dir={q(str(lwr_dir))}",
            f"exec 9>\"$lwr_dir/{layout.RUN_LOCK}\"",
            f"flock -n 9 || {{ echo 'lwr: this job is already running' >&2; exit {ALREADY_LAUNCHED_STATUS}; }}",
            # noclobber makes '>' an exclusive create: the launch guard without forking mkdir.
            f"if ! {{ set -C; : > \"$lwr_dir/{layout.LAUNCH_GUARD}\"; }} 2>/dev/null; then "
            f"echo 'lwr: this job was launched before; not running it twice' >&2; exit {ALREADY_LAUNCHED_STATUS}; fi",
            "set +C",
            f"echo $$ > \"$lwr_dir/{layout.PID_FILE}\"",
            f"echo \"${{EPOCHREALTIME:-$(date +%s)}}\" > \"$lwr_dir/{layout.STARTED_AT}\"",
            f"export _GALAXY_JOB_TMP_DIR={q(str(directory.sub('tmp')))}",
            f"export _GALAXY_JOB_HOME_DIR={q(str(directory.sub('home')))}",
            "[ -d \"$_GALAXY_JOB_TMP_DIR\" ] || mkdir -p \"$_GALAXY_JOB_TMP_DIR\"",
            "[ -d \"$_GALAXY_JOB_HOME_DIR\" ] || mkdir -p \"$_GALAXY_JOB_HOME_DIR\"",
            *(item.export_line() for item in self.env),
            f"cd {q(str(directory.working))} || exit 1",
            "(",
            self.command_line,
            f") > \"$lwr_dir/{layout.TOOL_STDOUT}\" 2> \"$lwr_dir/{layout.TOOL_STDERR}\" 9>&-",
            "lwr_rc=$?",
            f"echo \"${{EPOCHREALTIME:-$(date +%s)}}\" > \"$lwr_dir/{layout.ENDED_AT}\"",
            # One write of a few bytes: a reader sees no code or the whole code, never part of it.
            f"echo $lwr_rc > \"$lwr_dir/{layout.EXIT_CODE}\"",
            "exit $lwr_rc",
            "",
        ]
        return "\n".join(lines)


def write_job_script(directory: JobDirectory, command_line: str, env: Iterable[EnvItem]) -> str:
    """Write ``lwr/job.sh`` (executable) and return its path."""
    from lwr.core.atomic import write_bytes_atomically

    path = directory.internal_file(layout.SCRIPT_NAME)
    write_bytes_atomically(path, JobScript(command_line, list(env)).render(directory).encode(), durable=False)
    path.chmod(0o755 & ~layout.current_umask())  # it exports the job's environment: private under lwr's umask
    return str(path)
