"""queued_condor: HTCondor through ``condor_submit``, ``condor_q``, ``condor_history`` and ``condor_rm``.

Every ``submit_*`` key of the manager's section (``submit_universe``, ``submit_request_memory``,
``submit_requirements``, ``submit_rank``, ``submit_+ProjectName``...) becomes a line of the
submit description; a client's per-job ``submit_*`` parameters override them. lwr writes the
lines that run its job script itself, and nobody may replace them: neither those commands
(``executable``, ``initialdir``…), in any letter case, nor the job ClassAd attributes they set
(``+Cmd``, ``MY.Iwd``, ``+PreCmd``…). A client is held to a shorter list still: the commands in
:data:`CLIENT_COMMANDS`, custom attributes (``+ProjectName``) and values without ``$`` macros
(``$ENV(...)`` would read lwr's environment). One ``condor_q``
per polling interval covers all jobs; jobs that left the queue are looked up with ONE
``condor_history`` call.

HTCondor cannot run on the test machines (no Debian package; PyPI's ``htcondor`` wheel ships
only the Python bindings, no daemons or command-line tools), so this module is tested against
command output in the documented formats (tests/cluster/fixtures/condor_*).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from lwr.core import job_directory as layout
from lwr.core.states import JobState
from lwr.errors import BadRequest, ConfigError, ManagerError
from lwr.managers.base import LaunchSpec, ManagerListener
from lwr.managers.cli.shell_plugins.base import CommandResult, Shell
from lwr.managers.cli.shell_plugins.local import LocalShell
from lwr.managers.polling import BatchStatus, PollingManager
from lwr.protocol.failure import FailureClass

SUBMIT_PREFIX = "submit_"
#: Submit-description commands lwr writes itself; configuration and clients cannot replace them.
RESERVED_COMMANDS = frozenset(
    {
        "executable",
        "arguments",
        "args",
        "initialdir",
        "initial_dir",
        "output",
        "error",
        "input",
        "log",
        "log_xml",
        "queue",
        "transfer_executable",
        "output_destination",
        "transfer_output_remaps",
    }
)
#: Job ClassAd attributes behind lwr's own commands (ClassAd names ignore case); ``+X``/``MY.X`` may not set them.
RESERVED_ATTRIBUTES = frozenset(
    {
        "cmd",
        "args",
        "arguments",
        "iwd",
        "in",
        "out",
        "err",
        "userlog",
        "userlogusexml",
        "transferexecutable",
        "transferin",
        "transferinput",
        "transferout",
        "transferoutput",
        "transferoutputremaps",
        "outputdestination",
        "shouldtransferfiles",
        "whentotransferoutput",
        "streamout",
        "streamerr",
        "env",
        "environment",
        "owner",
        "user",
        "jobuniverse",
        "jobstatus",
        "clusterid",
        "procid",
        "globaljobid",
        "precmd",
        "preargs",
        "prearguments",
        "preenv",
        "preenvironment",
        "postcmd",
        "postargs",
        "postarguments",
        "postenv",
        "postenvironment",
        "jobsubmitfile",
        "x509userproxy",
        "remoteiwd",
        "jobwrapper",
    }
)
#: The submit commands a client may set per job (with ``+Attribute`` custom attributes).
CLIENT_COMMANDS = frozenset(
    {
        "universe",
        "request_memory",
        "request_cpus",
        "request_disk",
        "request_gpus",
        "gpus_minimum_capability",
        "gpus_minimum_memory",
        "requirements",
        "rank",
        "priority",
        "accounting_group",
        "accounting_group_user",
        "concurrency_limits",
        "periodic_remove",
        "periodic_hold",
        "periodic_hold_reason",
        "periodic_release",
        "on_exit_hold",
        "on_exit_remove",
        "max_retries",
        "retry_until",
        "success_exit_code",
        "job_max_vacate_time",
        "want_graceful_removal",
        "nice_user",
        "notification",
        "notify_user",
        "docker_image",
        "container_image",
        "job_lease_duration",
        "allowed_execute_duration",
        "allowed_job_duration",
        "batch_name",
        "description",
        "hold",
        "max_materialize",
        "job_batch_name",
    }
)
_COMMAND_NAME = re.compile(r"^(?:\+|[Mm][Yy]\.)?[A-Za-z][A-Za-z0-9_]*$")
_ATTRIBUTE = re.compile(r"^(?:\+|[Mm][Yy]\.)(.+)$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SUBMITTED = re.compile(r"^\s*(\d+)\.(\d+)\s*-\s*\d+\.\d+\s*$", re.MULTILINE)
_SUBMITTED_VERBOSE = re.compile(r"submitted to cluster (\d+)\.")

HELD = 5

#: The ``JobStatus`` job-ClassAd attribute.
JOB_STATUS: dict[int, tuple[JobState, str]] = {
    1: (JobState.QUEUED, "idle"),
    2: (JobState.RUNNING, "running"),
    3: (JobState.CANCELLED, "removed"),
    4: (JobState.COMPLETE, "completed"),
    5: (JobState.QUEUED, "held"),
    6: (JobState.RUNNING, "transferring output"),
    7: (JobState.RUNNING, "suspended"),
}


def _command(key: str, value: Any, origin: str) -> tuple[str, str]:
    """One submit command (normalised name, value) from a ``submit_*`` key, or :class:`BadRequest`."""
    command = key[len(SUBMIT_PREFIX) :]
    if not _COMMAND_NAME.match(command):
        raise BadRequest(f"submit description command not allowed: {command}", origin=origin)
    attribute = _ATTRIBUTE.match(command)
    if attribute:
        name = "+" + attribute.group(1)
        if attribute.group(1).lower() in RESERVED_ATTRIBUTES:
            raise BadRequest(
                f"submit description command not allowed: {command} (lwr sets that attribute)", origin=origin
            )
    else:
        name = command.lower()
        if name in RESERVED_COMMANDS or (origin == "client" and name not in CLIENT_COMMANDS):
            raise BadRequest(f"submit description command not allowed: {command}", origin=origin)
    text = str(value)
    if _CONTROL.search(text):
        raise BadRequest(f"submit_{command} must be one line without control characters", origin=origin)
    if origin == "client" and "$" in text:
        raise BadRequest(f"submit_{command}: '$' macros are not accepted from a client", origin=origin)
    return name, text.strip()


def description_lines(settings: Mapping[str, Any], params: Mapping[str, Any]) -> list[str]:
    """``command = value`` lines from the manager's and the client's ``submit_*`` keys, validated."""
    merged: dict[str, str] = {}
    client = {k if k.startswith(SUBMIT_PREFIX) else f"{SUBMIT_PREFIX}{k}": v for k, v in params.items()}
    for source, origin in ((settings, "job_managers.ini"), (client, "client")):
        for key, value in source.items():
            if not key.startswith(SUBMIT_PREFIX) or key == "submit_native_specification" or value is None:
                continue
            name, text = _command(key, value, origin)
            merged[name.lower() if name.startswith("+") else name] = f"{name} = {text}"
    merged.setdefault("universe", "universe = vanilla")
    return list(merged.values())


def quoted_argument(text: str) -> str:
    """One argument in the new ``arguments = "..."`` syntax (single quotes protect spaces)."""
    return "'" + text.replace('"', '""').replace("'", "''") + "'"


#: Hold reasons (words of ``HoldReason``) that mean a limit was reached: the job will never run
#: again as submitted, so it fails (with a class Galaxy can resubmit on) instead of waiting held.
LIMIT_HOLDS: tuple[tuple[re.Pattern[str], FailureClass], ...] = (
    (
        re.compile(r"memory|\bmem\b|RequestMemory|MemoryUsage", re.IGNORECASE),
        FailureClass.MEMORY_LIMIT_REACHED,
    ),
    (
        re.compile(
            r"wall ?time|wall ?clock|time limit|run ?time|MaxJobRetirementTime|JobDuration", re.IGNORECASE
        ),
        FailureClass.WALLTIME_REACHED,
    ),
    (re.compile(r"disk usage|RequestDisk|DiskUsage", re.IGNORECASE), FailureClass.DISK_FULL),
)


def condor_status(code: str, detail: str | None = None) -> BatchStatus | None:
    try:
        mapped, meaning = JOB_STATUS[int(code)]
    except (ValueError, KeyError):
        return None
    if mapped is JobState.COMPLETE:
        return BatchStatus(JobState.COMPLETE)
    if mapped.is_final:
        return BatchStatus(
            mapped,
            f"condor: {meaning}" + (f" ({detail})" if detail else ""),
            FailureClass.CANCELLED_BY_SYSTEM,
        )
    if int(code) == HELD and detail:
        for pattern, failure_class in LIMIT_HOLDS:
            if pattern.search(detail):
                return BatchStatus(JobState.FAILED, f"condor: held ({detail})", failure_class)
    return BatchStatus(mapped)


def _detail(value: str | None) -> str | None:
    return None if value is None or value.strip() in ("", "undefined") else value.strip()


class CondorManager(PollingManager):
    type_name = "queued_condor"
    system_name = "condor"
    options = dict(PollingManager.options)
    option_prefixes = (SUBMIT_PREFIX,)

    def __init__(
        self, name: str, settings: Mapping[str, Any], listener: ManagerListener, shell: Shell | None = None
    ) -> None:
        super().__init__(name, settings, listener)
        self.shell = shell if shell is not None else LocalShell()
        #: The ``submit_*`` keys of job_managers.ini; the manager's own options (``submit_threads``
        #: among them) are not submit-description commands.
        self.submit_settings = {key: value for key, value in self.settings.items() if key not in self.options}
        try:
            description_lines(self.submit_settings, {})  # a bad key in job_managers.ini fails at start-up
        except BadRequest as error:
            raise ConfigError(f"[manager:{name}] {error.message}", section=f"manager:{name}") from None

    def validate(self, spec: LaunchSpec) -> None:
        description_lines(self.submit_settings, spec.submit_params)

    def submit_description(self, spec: LaunchSpec) -> str:
        directory = spec.directory
        lines = [
            *description_lines(self.submit_settings, spec.submit_params),
            "executable = /bin/bash",
            "transfer_executable = false",
            f'arguments = "{quoted_argument(spec.script)}"',
            f"initialdir = {directory.path}",
            f"output = {directory.internal_file(layout.JOB_STDOUT)}",
            f"error = {directory.internal_file(layout.JOB_STDERR)}",
            f"log = {directory.internal_file('condor.log')}",
            "queue 1",
        ]
        return "\n".join(lines) + "\n"

    def submit(self, spec: LaunchSpec) -> str:
        path = spec.directory.internal_file("condor.submit")
        path.write_text(self.submit_description(spec))
        result = self._run(["condor_submit", "-terse", str(path)])
        if result.returncode != 0:
            raise ManagerError(result.failure())
        return parse_submit(result.stdout)

    def query(self, external_ids: list[str]) -> dict[str, BatchStatus]:
        clusters = [external_id.split(".")[0] for external_id in external_ids]
        result = self._run(["condor_q", *clusters, "-af:j", "JobStatus", "HoldReason"])
        if result.returncode != 0:
            raise ManagerError(result.failure())
        statuses = parse_queue(result.stdout)
        gone = [external_id for external_id in external_ids if external_id not in statuses]
        if gone:
            constraint = " || ".join(f"ClusterId == {external_id.split('.')[0]}" for external_id in gone)
            result = self._run(
                [
                    "condor_history",
                    "-constraint",
                    constraint,
                    "-af:j",
                    "JobStatus",
                    "ExitCode",
                    "RemoveReason",
                ]
            )
            if result.returncode != 0:
                raise ManagerError(result.failure())
            statuses.update(parse_history(result.stdout))
        return statuses

    def cancel(self, external_id: str) -> None:
        result = self._run(["condor_rm", external_id])
        if result.returncode != 0 and "not found" not in result.stderr.lower():
            raise ManagerError(result.failure())

    def _run(self, argv: list[str]) -> CommandResult:
        self.commands_run += 1
        return self.shell.run(argv)


def parse_submit(stdout: str) -> str:
    """``condor_submit -terse`` prints ``FIRST - LAST`` (``123.0 - 123.0``)."""
    match = _SUBMITTED.search(stdout)
    if match:
        return f"{match.group(1)}.{match.group(2)}"
    match = _SUBMITTED_VERBOSE.search(stdout)
    if match:
        return f"{match.group(1)}.0"
    raise ValueError(f"no job id in condor_submit output: {stdout.strip()!r}")


def parse_queue(stdout: str) -> dict[str, BatchStatus]:
    """``condor_q CLUSTER... -af:j JobStatus HoldReason`` lines: ``123.0 5 reason words``."""
    found: dict[str, BatchStatus] = {}
    for line in stdout.splitlines():
        fields = line.split(None, 2)
        if len(fields) < 2:
            continue
        status = condor_status(fields[1], _detail(fields[2]) if len(fields) > 2 else None)
        if status is not None:
            found[fields[0]] = status
    return found


def parse_history(stdout: str) -> dict[str, BatchStatus]:
    """``condor_history -af:j JobStatus ExitCode RemoveReason`` lines: ``123.0 3 undefined reason words``.

    ExitCode is the job script's, which exits with the tool's code: it never decides the state
    (the script's own record does), so only the removal reason is kept.
    """
    found: dict[str, BatchStatus] = {}
    for line in stdout.splitlines():
        fields = line.split(None, 3)
        if len(fields) < 2:
            continue
        status = condor_status(fields[1], _detail(fields[3]) if len(fields) > 3 else None)
        if status is not None:
            found[fields[0]] = status
    return found
