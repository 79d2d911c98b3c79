"""What a shell plugin is: run one argument list, return its status and output."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

#: Seconds a batch command may take before it is given up (a hung controller must not hang lwr).
COMMAND_TIMEOUT = 60.0


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    stdout: str
    stderr: str

    def failure(self) -> str:
        """What a failed command said, for a job's reason or a log line (at most 500 characters)."""
        return (self.stderr.strip() or self.stdout.strip() or f"exit status {self.returncode}")[:500]


class Shell(ABC):
    """Runs batch-system commands given as argument lists; never through a local shell."""

    @abstractmethod
    def run(self, argv: list[str], timeout: float = COMMAND_TIMEOUT) -> CommandResult:
        """Run ``argv``; a command that cannot be started or times out raises ``OSError``."""

    def close(self) -> None:  # noqa: B027 - a no-op unless the shell holds a connection
        """Release connections."""

    def describe(self) -> str:
        return type(self).__name__
