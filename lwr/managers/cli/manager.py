"""queued_cli: Slurm, Torque/PBS or LSF through their command-line tools, here or over SSH.

One ``squeue`` (``qstat``, ``bjobs``) per polling interval covers every job of the manager; jobs
the queue has forgotten are looked up in ONE accounting query (``sacct``) where the system has
one, and otherwise judged by the job script's own exit-code record.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from typing import Any

from lwr.core import job_directory as layout
from lwr.errors import BadRequest, ConfigError, ManagerError
from lwr.managers.base import LaunchSpec, ManagerListener, Option
from lwr.managers.cli.job_plugins import JOB_PLUGINS, job_plugin_name
from lwr.managers.cli.job_plugins.base import BatchSubmission, JobPlugin
from lwr.managers.cli.shell_plugins import shell_plugin_name
from lwr.managers.cli.shell_plugins.base import CommandResult, Shell
from lwr.managers.polling import (
    BatchStatus,
    PollingManager,
    batch_job_name,
    job_specification,
    specification_option,
)


def make_shell(settings: Mapping[str, Any]) -> Shell:
    """The shell plugin named in the settings (a manager's, with every option filled in)."""
    name = settings["shell_plugin"]
    if name == "LocalShell":
        from lwr.managers.cli.shell_plugins.local import LocalShell

        return LocalShell()
    from lwr.managers.cli.shell_plugins.ssh import ParamikoShell, SecureShell, SshTarget

    target = SshTarget(
        hostname=settings["shell_hostname"],
        username=settings["shell_username"],
        port=settings["shell_port"],
        private_key=settings["shell_private_key"],
        known_hosts=settings["shell_known_hosts"],
    )
    return SecureShell(target) if name == "SecureShell" else ParamikoShell(target)


_SSH_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:%-]*$")


def ssh_name(text: str) -> str:
    """A host or user name for ssh: never something ssh would read as an option (``-oProxyCommand=``)."""
    value = text.strip()
    if value and not _SSH_NAME.match(value):
        raise ValueError(
            "expected a host or user name (letters, digits, '.', '-', '_'; not starting with '-')"
        )
    return value


def port_number(text: str) -> int:
    value = int(text)
    if not 0 < value < 65536:
        raise ValueError("expected a TCP port number")
    return value


class CliManager(PollingManager):
    type_name = "queued_cli"
    options = {
        **PollingManager.options,
        "job_plugin": Option(job_plugin_name, "Slurm", "the batch system", " | ".join(JOB_PLUGINS)),
        "shell_plugin": Option(
            shell_plugin_name,
            "LocalShell",
            "where batch commands run",
            "LocalShell | SecureShell | ParamikoShell",
        ),
        "shell_hostname": Option(
            ssh_name, "localhost", "submit host for SecureShell/ParamikoShell", "a host name or address"
        ),
        "shell_username": Option(
            ssh_name, "", "user on the submit host (default: ssh's own choice)", "a user name"
        ),
        "shell_private_key": Option(str, "", "private key file for the submit host"),
        "shell_port": Option(port_number, 22, "ssh port of the submit host", "a TCP port number"),
        "shell_known_hosts": Option(
            str, "", "known_hosts file with the submit host's key (default: ssh's own files)"
        ),
        "native_specification": Option(
            specification_option,
            "",
            "extra submit options, e.g. -p short --mem=4G (a client's "
            "submit_native_specification replaces them for its job)",
            "options on one line",
        ),
    }

    def __init__(
        self, name: str, settings: Mapping[str, Any], listener: ManagerListener, shell: Shell | None = None
    ) -> None:
        super().__init__(name, settings, listener)
        self.plugin: JobPlugin = JOB_PLUGINS[self.settings["job_plugin"]]()
        self.system_name = self.plugin.system_name
        self.shell = shell if shell is not None else make_shell(self.settings)
        self.native_specification: str = self.settings["native_specification"]
        try:
            self.plugin.grammar.check(shlex.split(self.native_specification), "native_specification")
        except (ValueError, BadRequest) as error:
            message = error.message if isinstance(error, BadRequest) else str(error)
            raise ConfigError(
                f"[manager:{name}] {message}", section=f"manager:{name}", key="native_specification"
            ) from None
        #: Becomes False the first time the site turns out to have no accounting (no slurmdbd).
        self.history_available = True

    def validate(self, spec: LaunchSpec) -> None:
        self._native_args(spec)

    def _native_args(self, spec: LaunchSpec) -> list[str]:
        """The options for the submit command, checked against the plugin's grammar (never a
        positional argument, never an option lwr sets itself)."""
        client = job_specification(spec)
        text, origin = (
            (client, "submit_native_specification")
            if client
            else (self.native_specification, f"[manager:{self.name}] native_specification")
        )
        try:
            words = shlex.split(text)
        except ValueError as error:
            raise BadRequest(f"native specification is not a valid option list: {error}") from None
        return self.plugin.grammar.check(words, origin)

    def submit(self, spec: LaunchSpec) -> str:
        request = BatchSubmission(
            script=spec.script,
            job_name=batch_job_name(spec.job_id),
            working_directory=str(spec.directory.path),
            stdout_path=str(spec.directory.internal_file(layout.JOB_STDOUT)),
            stderr_path=str(spec.directory.internal_file(layout.JOB_STDERR)),
            native_args=self._native_args(spec),
        )
        result = self._run(self.plugin.submit_argv(request))
        if result.returncode != 0:
            raise ManagerError(result.failure())
        return self.plugin.parse_submit(result.stdout)

    def query(self, external_ids: list[str]) -> dict[str, BatchStatus]:
        result = self._run(self.plugin.status_argv(external_ids))
        if result.returncode != 0 and not self.plugin.ignorable_status_error(result.stderr):
            raise ManagerError(result.failure())
        statuses = self.plugin.parse_status(result.stdout)
        forgotten = [external_id for external_id in external_ids if external_id not in statuses]
        if forgotten and self.history_available:
            statuses.update(self._history(forgotten))
        return statuses

    def _history(self, external_ids: list[str]) -> dict[str, BatchStatus]:
        argv = self.plugin.history_argv(external_ids)
        if argv is None:
            self.history_available = False
            return {}
        result = self._run(argv)
        if result.returncode != 0:
            if self.plugin.history_unavailable(result.stderr + result.stdout):
                self.history_available = False
                return {}
            raise ManagerError(result.failure())
        return self.plugin.parse_history(result.stdout)

    def cancel(self, external_id: str) -> None:
        result = self._run(self.plugin.cancel_argv(external_id))
        if result.returncode != 0:
            raise ManagerError(result.failure())

    def _run(self, argv: list[str]) -> CommandResult:
        self.commands_run += 1
        return self.shell.run(argv)

    def shutdown(self) -> None:
        super().shutdown()
        self.shell.close()

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "job_plugin": type(self.plugin).__name__,
            "shell": self.shell.describe(),
        }
