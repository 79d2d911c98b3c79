"""Torque and PBS Pro: ``qsub``, one ``qstat`` for all jobs, ``qdel``.

The two share ``qsub``/``qdel`` but not ``qstat``: Torque's ``-x`` means XML output and keeps
completed jobs (state ``C``) for ``keep_completed`` seconds; PBS Pro's ``-x`` means "include
finished jobs" (state ``F``) and ``-F json`` gives JSON. Neither can run on a test machine here:
their parsers are tested on output in the documented formats (see tests/cluster/fixtures/).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree

from lwr.core.states import JobState
from lwr.managers.cli.job_plugins.base import BatchSubmission, JobPlugin
from lwr.managers.cli.job_plugins.options import OptionGrammar
from lwr.managers.polling import BatchStatus
from lwr.protocol.failure import FailureClass

#: One-letter job states common to Torque and PBS Pro that are not final.
ACTIVE_STATES: dict[str, tuple[JobState, str]] = {
    "Q": (JobState.QUEUED, "queued"),
    "H": (JobState.QUEUED, "held"),
    "W": (JobState.QUEUED, "waiting for its start time"),
    "T": (JobState.QUEUED, "being moved"),
    "M": (JobState.QUEUED, "moved to another server"),
    "B": (JobState.RUNNING, "array job started"),
    "R": (JobState.RUNNING, "running"),
    "E": (JobState.RUNNING, "exiting"),
    "S": (JobState.RUNNING, "suspended"),
    "U": (JobState.RUNNING, "suspended (workstation busy)"),
}

#: Exit status a job killed by a signal gets: 256 + the signal number in Torque and PBS Pro.
SIGNAL_BASE = 256

#: PBS Pro's (OpenPBS) exit statuses for its own limit kills (``JOB_EXEC_KILL_*`` in job.h).
PBS_LIMIT_KILLS: dict[int, tuple[FailureClass, str]] = {
    -26: (FailureClass.MEMORY_LIMIT_REACHED, "killed over its vmem limit"),
    -27: (FailureClass.MEMORY_LIMIT_REACHED, "killed over its mem limit"),
    -28: (FailureClass.WALLTIME_REACHED, "killed over its cput limit"),
    -29: (FailureClass.WALLTIME_REACHED, "killed over its walltime limit"),
}


def finished_status(system: str, exit_status: str | int | None) -> BatchStatus:
    """A finished job (Torque ``C``, PBS Pro ``F``), judged by its ``exit_status``.

    Negative exit statuses are the server's own (``JOB_EXEC_*``): the limit kills of PBS Pro
    (:data:`PBS_LIMIT_KILLS`) are classed by limit, the others mean the job could not start.
    Torque enforces limits with signals, which cannot be told apart from a ``qdel``.
    """
    try:
        code = int(exit_status) if exit_status is not None else None
    except ValueError:
        code = None
    if code is None:
        # Deleted before it ever ran (qdel of a queued job): no exit status at all.
        return BatchStatus(JobState.CANCELLED, f"{system}: deleted before it ran")
    if code == 0:
        return BatchStatus(JobState.COMPLETE)
    if code > SIGNAL_BASE:
        signal = code - SIGNAL_BASE
        if signal == 15 or signal == 9:
            # qdel sends SIGTERM then SIGKILL; walltime and memory limits are enforced the same
            # way, and the exit status cannot tell which: no class finer than unknown.
            return BatchStatus(
                JobState.FAILED,
                f"{system}: killed by signal {signal} (deleted, or over its walltime or memory limit)",
                FailureClass.UNKNOWN,
            )
        return BatchStatus(
            JobState.FAILED, f"{system}: killed by signal {signal}", FailureClass.JOB_SCRIPT_FAILED
        )
    if code in PBS_LIMIT_KILLS:
        failure_class, meaning = PBS_LIMIT_KILLS[code]
        return BatchStatus(JobState.FAILED, f"{system}: {meaning} (exit_status {code})", failure_class)
    if code < 0:
        return BatchStatus(
            JobState.FAILED,
            f"{system}: the batch system could not run the job (exit_status {code})",
            FailureClass.LAUNCH_FAILED,
        )
    return BatchStatus(JobState.FAILED, f"{system}: exit status {code}", FailureClass.JOB_SCRIPT_FAILED)


class TorquePlugin(JobPlugin):
    system_name = "torque"
    #: lwr sets -N, -S, -o, -e; -d/-w/-D move the working or root directory, -j/-k the streams,
    #: -F passes arguments to the script, -I/-X make the submission interactive.
    grammar = OptionGrammar(
        reserved_short=frozenset("NSoedwDjkFIX"),
        short_values=frozenset("AaclmMpqrtuvW"),
    )
    #: Torque truncates job names at 15 characters on older servers.
    name_limit = 15

    def submit_argv(self, request: BatchSubmission) -> list[str]:
        return [
            "qsub",
            "-N",
            request.job_name[: self.name_limit],
            "-S",
            "/bin/bash",
            "-o",
            request.stdout_path,
            "-e",
            request.stderr_path,
            *request.native_args,
            request.script,
        ]

    def parse_submit(self, stdout: str) -> str:
        # "123.server.example.org"
        for line in stdout.splitlines():
            token = line.strip()
            if token and token.split(".")[0].split("[")[0].isdigit():
                return token
        raise ValueError(f"no job id in qsub output: {stdout.strip()!r}")

    def status_argv(self, external_ids: list[str]) -> list[str]:
        return ["qstat", "-x", *external_ids]

    def parse_status(self, stdout: str) -> dict[str, BatchStatus]:
        found: dict[str, BatchStatus] = {}
        if not stdout.strip():
            return found
        root = ElementTree.fromstring(stdout.strip())
        for job in root.iter("Job"):
            job_id = (job.findtext("Job_Id") or "").strip()
            state = (job.findtext("job_state") or "").strip()
            if not job_id:
                continue
            if state == "C":
                found[job_id] = finished_status(self.system_name, job.findtext("exit_status"))
            elif state in ACTIVE_STATES:
                found[job_id] = BatchStatus(ACTIVE_STATES[state][0])
        return found

    def ignorable_status_error(self, stderr: str) -> bool:
        return "Unknown Job Id" in stderr

    def cancel_argv(self, external_id: str) -> list[str]:
        return ["qdel", external_id]


class PbsProPlugin(TorquePlugin):
    system_name = "pbs"
    name_limit = 236

    def status_argv(self, external_ids: list[str]) -> list[str]:
        return ["qstat", "-x", "-f", "-F", "json", *external_ids]

    def parse_status(self, stdout: str) -> dict[str, BatchStatus]:
        found: dict[str, BatchStatus] = {}
        if not stdout.strip():
            return found
        jobs = json.loads(stdout).get("Jobs", {})
        for job_id, attributes in jobs.items():
            state = attributes.get("job_state", "")
            if state in ("F", "X"):
                found[job_id] = finished_status(self.system_name, attributes.get("Exit_status"))
            elif state in ACTIVE_STATES:
                found[job_id] = BatchStatus(ACTIVE_STATES[state][0])
        return found

    def ignorable_status_error(self, stderr: str) -> bool:
        return "Unknown Job Id" in stderr or "Job has finished" in stderr
