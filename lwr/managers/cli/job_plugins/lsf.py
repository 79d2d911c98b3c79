"""IBM Spectrum LSF: ``bsub``, one ``bjobs`` for all jobs, ``bkill``.

LSF cannot run on a test machine here; the parsers are tested on output in the documented
``bjobs -o ... delimiter`` format (tests/cluster/fixtures/).
"""

from __future__ import annotations

import re

from lwr.core.states import JobState
from lwr.managers.cli.job_plugins.base import BatchSubmission, JobPlugin
from lwr.managers.cli.job_plugins.options import OptionGrammar
from lwr.managers.polling import BatchStatus
from lwr.protocol.failure import FailureClass

ACTIVE_STATES: dict[str, JobState] = {
    "PEND": JobState.QUEUED,
    "PSUSP": JobState.QUEUED,  # held (suspended while pending)
    "WAIT": JobState.QUEUED,  # chunk job waiting for its turn
    "PROV": JobState.QUEUED,  # host being provisioned
    "RUN": JobState.RUNNING,
    "USUSP": JobState.RUNNING,
    "SSUSP": JobState.RUNNING,
    "UNKWN": JobState.RUNNING,  # mbatchd lost contact with the host; the job may still run
}

SEPARATOR = "|"

#: ``exit_reason`` prefixes (LSF's ``TERM_*`` termination reasons) and their failure classes.
TERMINATION_CLASSES: dict[str, FailureClass] = {
    "TERM_RUNLIMIT": FailureClass.WALLTIME_REACHED,
    "TERM_CPULIMIT": FailureClass.WALLTIME_REACHED,
    "TERM_DEADLINE": FailureClass.WALLTIME_REACHED,
    "TERM_MEMLIMIT": FailureClass.MEMORY_LIMIT_REACHED,
    "TERM_SWAP": FailureClass.MEMORY_LIMIT_REACHED,
    "TERM_PREEMPT": FailureClass.PREEMPTED,
    "TERM_ADMIN": FailureClass.CANCELLED_BY_SYSTEM,
    "TERM_FORCE_ADMIN": FailureClass.CANCELLED_BY_SYSTEM,
    "TERM_HOST": FailureClass.NODE_FAILURE,
    "TERM_ZOMBIE": FailureClass.NODE_FAILURE,
    "TERM_UNKNOWN": FailureClass.UNKNOWN,
}
_SUBMITTED = re.compile(r"Job <(\d+)> is submitted")


class LsfPlugin(JobPlugin):
    system_name = "lsf"
    #: lwr sets -J, -cwd, -o, -e; -oo/-eo/-i/-is and the -I*/-K family (interactive, waiting) are
    #: reserved too, and -Zs (spool the command file).
    grammar = OptionGrammar(
        reserved_short=frozenset(
            {
                "J",
                "cwd",
                "o",
                "e",
                "oo",
                "eo",
                "i",
                "is",
                "I",
                "Ip",
                "Is",
                "IS",
                "ISp",
                "ISs",
                "IX",
                "K",
                "Zs",
            }
        ),
        short_values=frozenset(
            {"q", "n", "R", "W", "M", "P", "G", "m", "app", "sla", "g", "u", "w", "b", "t", "c"}
        ),
        word_options=True,
    )

    def submit_argv(self, request: BatchSubmission) -> list[str]:
        return [
            "bsub",
            "-J",
            request.job_name,
            "-cwd",
            request.working_directory,
            "-o",
            request.stdout_path,
            "-e",
            request.stderr_path,
            *request.native_args,
            "/bin/bash",
            request.script,
        ]

    def parse_submit(self, stdout: str) -> str:
        match = _SUBMITTED.search(stdout)
        if match is None:
            raise ValueError(f"no job id in bsub output: {stdout.strip()!r}")
        return match.group(1)

    def status_argv(self, external_ids: list[str]) -> list[str]:
        return [
            "bjobs",
            "-a",
            "-noheader",
            "-o",
            f"jobid stat exit_code exit_reason delimiter='{SEPARATOR}'",
            *external_ids,
        ]

    def parse_status(self, stdout: str) -> dict[str, BatchStatus]:
        found: dict[str, BatchStatus] = {}
        for line in stdout.splitlines():
            fields = [field.strip() for field in line.split(SEPARATOR)]
            if len(fields) < 2 or not fields[0].isdigit():
                continue
            job_id, state = fields[0], fields[1]
            exit_code = fields[2] if len(fields) > 2 else "-"
            reason = fields[3] if len(fields) > 3 and fields[3] not in ("", "-") else None
            if state in ACTIVE_STATES:
                found[job_id] = BatchStatus(ACTIVE_STATES[state])
            elif state == "DONE":
                found[job_id] = BatchStatus(JobState.COMPLETE)
            elif state == "EXIT":
                found[job_id] = self._exited(exit_code, reason)
            elif state == "ZOMBI":
                found[job_id] = BatchStatus(
                    JobState.FAILED,
                    "lsf: ZOMBI (killed while its host was unreachable)",
                    FailureClass.NODE_FAILURE,
                )
        return found

    def _exited(self, exit_code: str, reason: str | None) -> BatchStatus:
        text = (reason or "").lower()
        if "killed by owner" in text or "bkill" in text or "killed by lsf administrator" in text:
            return BatchStatus(JobState.CANCELLED, f"lsf: {reason}")
        detail = reason or (f"exit code {exit_code}" if exit_code not in ("", "-") else "exited")
        term = (reason or "").split(":")[0].strip().upper()
        failure_class = TERMINATION_CLASSES.get(
            term, FailureClass.JOB_SCRIPT_FAILED if not reason else FailureClass.UNKNOWN
        )
        return BatchStatus(JobState.FAILED, f"lsf: EXIT ({detail})", failure_class)

    def ignorable_status_error(self, stderr: str) -> bool:
        return "is not found" in stderr

    def cancel_argv(self, external_id: str) -> list[str]:
        return ["bkill", external_id]
