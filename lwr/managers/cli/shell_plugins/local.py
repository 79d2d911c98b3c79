"""LocalShell: batch commands run on lwr's own host (lwr runs on a submit host)."""

from __future__ import annotations

import subprocess

from lwr.managers.cli.shell_plugins.base import COMMAND_TIMEOUT, CommandResult, Shell


def run_argv(argv: list[str], timeout: float) -> CommandResult:
    try:
        completed = subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as error:
        raise OSError(f"{argv[0]} did not answer within {timeout:.0f} s") from error
    return CommandResult(
        completed.returncode,
        completed.stdout.decode(errors="replace"),
        completed.stderr.decode(errors="replace"),
    )


class LocalShell(Shell):
    def run(self, argv: list[str], timeout: float = COMMAND_TIMEOUT) -> CommandResult:
        return run_argv(argv, timeout)
