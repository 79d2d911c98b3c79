"""What a job plugin is: argument lists to run and parsers for what they print.

Plugins never run anything themselves, so each is a handful of pure functions tested on real
command output (captured from a real Slurm here; from documentation and other projects' fixtures
for the systems that cannot run on a test machine).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from lwr.managers.cli.job_plugins.options import OptionGrammar
from lwr.managers.polling import BatchStatus


@dataclass(frozen=True)
class BatchSubmission:
    """One job to submit: the job script and where the batch system puts the script's streams."""

    script: str
    job_name: str
    working_directory: str
    stdout_path: str
    stderr_path: str
    native_args: list[str] = field(default_factory=list)


class JobPlugin(ABC):
    """One batch system's command set."""

    #: Prefix of final-state reasons ("slurm: TIMEOUT").
    system_name = "batch"
    #: The native-specification options the submit command may be given (see ``options``).
    grammar = OptionGrammar()

    @abstractmethod
    def submit_argv(self, request: BatchSubmission) -> list[str]:
        """The command that submits the job script."""

    @abstractmethod
    def parse_submit(self, stdout: str) -> str:
        """The job id from the submit command's output; ``ValueError`` when there is none."""

    @abstractmethod
    def status_argv(self, external_ids: list[str]) -> list[str]:
        """ONE command asking for the state of all these jobs."""

    @abstractmethod
    def parse_status(self, stdout: str) -> dict[str, BatchStatus]:
        """States by job id; jobs the output does not mention are left out."""

    def history_argv(self, external_ids: list[str]) -> list[str] | None:
        """ONE command asking the accounting records about jobs that left the queue, or ``None``."""
        return None

    def parse_history(self, stdout: str) -> dict[str, BatchStatus]:
        return {}

    def history_unavailable(self, stderr: str) -> bool:
        """True when the history command failed because the site has no accounting at all."""
        return False

    def ignorable_status_error(self, stderr: str) -> bool:
        """True when a failed status command only complained about ids it no longer knows."""
        return False

    @abstractmethod
    def cancel_argv(self, external_id: str) -> list[str]:
        """The command that cancels one job."""
