"""Slurm: ``sbatch``, one ``squeue`` for all jobs, ``sacct`` for jobs squeue has forgotten, ``scancel``."""

from __future__ import annotations

import dataclasses

from lwr.core.states import JobState
from lwr.managers.cli.job_plugins.base import BatchSubmission, JobPlugin
from lwr.managers.cli.job_plugins.options import OptionGrammar
from lwr.managers.polling import BatchStatus
from lwr.protocol.failure import FailureClass

#: Job states (squeue ``%T``, sacct ``State``) that are not final.
ACTIVE_STATES: dict[str, JobState] = {
    "PENDING": JobState.QUEUED,
    "CONFIGURING": JobState.QUEUED,
    "REQUEUED": JobState.QUEUED,
    "REQUEUE_FED": JobState.QUEUED,
    "REQUEUE_HOLD": JobState.QUEUED,
    "RESV_DEL_HOLD": JobState.QUEUED,
    "SPECIAL_EXIT": JobState.QUEUED,
    "RUNNING": JobState.RUNNING,
    "COMPLETING": JobState.RUNNING,
    "SUSPENDED": JobState.RUNNING,
    "STOPPED": JobState.RUNNING,
    "SIGNALING": JobState.RUNNING,
    "STAGE_OUT": JobState.RUNNING,
    "RESIZING": JobState.RUNNING,
}

#: Final job states, with what they mean to a Galaxy user and the failure class they are.
FINAL_STATES: dict[str, tuple[JobState, str, FailureClass | None]] = {
    "COMPLETED": (JobState.COMPLETE, "completed", None),
    # The job script died (a COMPLETED or FAILED job always has its exit code recorded).
    "FAILED": (JobState.FAILED, "failed", FailureClass.JOB_SCRIPT_FAILED),
    "CANCELLED": (JobState.CANCELLED, "cancelled", FailureClass.CANCELLED_BY_SYSTEM),
    "TIMEOUT": (JobState.FAILED, "time limit reached", FailureClass.WALLTIME_REACHED),
    "DEADLINE": (JobState.FAILED, "deadline reached", FailureClass.WALLTIME_REACHED),
    "NODE_FAIL": (JobState.FAILED, "node failure", FailureClass.NODE_FAILURE),
    "OUT_OF_MEMORY": (JobState.FAILED, "out of memory", FailureClass.MEMORY_LIMIT_REACHED),
    "PREEMPTED": (JobState.FAILED, "preempted", FailureClass.PREEMPTED),
    "BOOT_FAIL": (JobState.FAILED, "node boot failure", FailureClass.NODE_FAILURE),
    "REVOKED": (JobState.FAILED, "revoked by a sibling cluster", FailureClass.CANCELLED_BY_SYSTEM),
}

SEPARATOR = "|"

#: squeue's reason (``%r``) for a job Slurm requeued and held because its launch failed.
LAUNCH_FAILED_HELD = "launch failed requeued held"


def slurm_status(state: str, detail: str | None = None, name: str | None = None) -> BatchStatus | None:
    """Map a Slurm state name (``"CANCELLED by 0"`` is read as CANCELLED) to a status."""
    status = _state_status(state, detail)
    return dataclasses.replace(status, name=name) if status is not None and name else status


def _state_status(state: str, detail: str | None) -> BatchStatus | None:
    words = state.strip().split()
    name = words[0].rstrip("+") if words else ""
    if name in ACTIVE_STATES:
        held = name == "PENDING" and (detail or "").replace("_", " ").lower() == LAUNCH_FAILED_HELD
        return BatchStatus(ACTIVE_STATES[name], detail if held else None, held_after_failed_launch=held)
    if name in FINAL_STATES:
        mapped, meaning, failure_class = FINAL_STATES[name]
        reason = f"slurm: {name} ({meaning})"
        if detail and detail not in ("None", "0:0", ""):
            reason += f", {detail}"
        if mapped is JobState.COMPLETE:
            return BatchStatus(mapped)
        return BatchStatus(mapped, reason, failure_class)
    return None


class SlurmPlugin(JobPlugin):
    system_name = "slurm"
    #: lwr sets -J, -D, -o, -e; --wrap would replace the script, --uid/--gid the user;
    #: --wait (-W) would hold one of lwr's submit threads for the job's whole run; --clusters
    #: (-M) would put the job on a cluster lwr's squeue and scancel do not address, where its
    #: number is another job's.
    grammar = OptionGrammar(
        reserved_short=frozenset("JDoeWM"),
        reserved_long=frozenset(
            {"job-name", "chdir", "workdir", "output", "error", "wrap", "uid", "gid", "wait", "clusters"}
        ),
        short_values=frozenset("AabcCdFGiLmnNpqStwx"),
        long_values=frozenset(
            {
                "account",
                "array",
                "begin",
                "comment",
                "constraint",
                "cpus-per-task",
                "dependency",
                "exclude",
                "gpus",
                "gres",
                "licenses",
                "mail-type",
                "mail-user",
                "mem",
                "mem-per-cpu",
                "nodelist",
                "nodes",
                "ntasks",
                "ntasks-per-node",
                "partition",
                "qos",
                "reservation",
                "time",
                "time-min",
                "tmp",
                "wckey",
            }
        ),
    )

    def submit_argv(self, request: BatchSubmission) -> list[str]:
        return [
            "sbatch",
            "--parsable",
            "-J",
            request.job_name,
            "-D",
            request.working_directory,
            "-o",
            request.stdout_path,
            "-e",
            request.stderr_path,
            *request.native_args,
            request.script,
        ]

    def parse_submit(self, stdout: str) -> str:
        # --parsable prints "ID" or "ID;CLUSTER"; be lenient with "Submitted batch job ID" too.
        for line in stdout.splitlines():
            words = line.split(";")[0].split()
            if words and words[-1].isdigit():
                return words[-1]
        raise ValueError(f"no job id in sbatch output: {stdout.strip()!r}")

    def status_argv(self, external_ids: list[str]) -> list[str]:
        return [
            "squeue",
            "-h",
            "--states=all",
            "-o",
            f"%i{SEPARATOR}%T{SEPARATOR}%r{SEPARATOR}%j",
            "-j",
            ",".join(external_ids),
        ]

    def parse_status(self, stdout: str) -> dict[str, BatchStatus]:
        found: dict[str, BatchStatus] = {}
        for line in stdout.splitlines():
            fields = line.strip().split(SEPARATOR)
            if len(fields) < 2:
                continue
            reason = fields[2] if len(fields) > 2 else None
            name = fields[3] if len(fields) > 3 else None
            status = slurm_status(fields[1], reason, name)
            if status is not None:
                found[fields[0]] = status
        return found

    def ignorable_status_error(self, stderr: str) -> bool:
        # squeue fails outright when every id asked for is unknown (a controller restarted
        # without them): no job it knows; sacct is asked next.
        return "Invalid job id specified" in stderr

    def history_argv(self, external_ids: list[str]) -> list[str] | None:
        # No JobName: slurmdbd reports "allocation" for a job whose record it has not completed
        # yet, so only squeue (the controller's own view) says whose an id is.
        return ["sacct", "-n", "-X", "-P", "-o", "JobID,State,ExitCode", "-j", ",".join(external_ids)]

    def parse_history(self, stdout: str) -> dict[str, BatchStatus]:
        found: dict[str, BatchStatus] = {}
        for line in stdout.splitlines():
            fields = line.strip().split(SEPARATOR)
            if len(fields) < 2:
                continue
            detail = f"exit code {fields[2]}" if len(fields) > 2 and fields[2] not in ("", "0:0") else None
            status = slurm_status(fields[1], detail)
            if status is not None:
                found[fields[0]] = status
        return found

    def history_unavailable(self, stderr: str) -> bool:
        return "accounting storage is disabled" in stderr

    def cancel_argv(self, external_id: str) -> list[str]:
        return ["scancel", external_id]
