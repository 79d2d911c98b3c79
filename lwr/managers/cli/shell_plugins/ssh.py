"""SecureShell and ParamikoShell: batch commands run on a submit host over SSH.

The job directory must be on a file system the submit host and the compute nodes share with
lwr (the job script records its exit code there, and lwr reads it). The remote side receives
one command line in which every argument is quoted with :func:`shlex.quote`, so no value from a
client or the configuration is ever interpreted by the remote shell.
"""

from __future__ import annotations

import shlex
import threading
from dataclasses import dataclass
from typing import Any

from lwr.managers.cli.shell_plugins.base import COMMAND_TIMEOUT, CommandResult, Shell
from lwr.managers.cli.shell_plugins.local import run_argv

#: ssh's own exit status when the connection (not the remote command) failed.
SSH_CONNECTION_FAILED = 255


@dataclass(frozen=True)
class SshTarget:
    hostname: str
    username: str = ""
    port: int = 22
    private_key: str = ""
    #: A known_hosts file to check the host key against; empty means ssh's own default files.
    known_hosts: str = ""
    connect_timeout: int = 15


class SecureShell(Shell):
    """Runs ``ssh -p PORT -i KEY -o BatchMode=yes user@host -- <quoted argv>``."""

    def __init__(self, target: SshTarget) -> None:
        self.target = target

    def ssh_argv(self, argv: list[str]) -> list[str]:
        t = self.target
        command = [
            "ssh",
            "-p",
            str(t.port),
            "-o",
            "BatchMode=yes",
            "-o",
            f"ConnectTimeout={t.connect_timeout}",
            "-o",
            "LogLevel=ERROR",
        ]
        if t.private_key:
            command += ["-i", t.private_key, "-o", "IdentitiesOnly=yes"]
        if t.known_hosts:
            command += ["-o", f"UserKnownHostsFile={t.known_hosts}", "-o", "StrictHostKeyChecking=yes"]
        destination = f"{t.username}@{t.hostname}" if t.username else t.hostname
        return [*command, destination, "--", shlex.join(argv)]

    def run(self, argv: list[str], timeout: float = COMMAND_TIMEOUT) -> CommandResult:
        result = run_argv(self.ssh_argv(argv), timeout)
        if result.returncode == SSH_CONNECTION_FAILED:
            raise OSError(f"ssh to {self.target.hostname}:{self.target.port} failed: {result.stderr.strip()}")
        return result

    def describe(self) -> str:
        return f"SecureShell({self.target.username}@{self.target.hostname}:{self.target.port})"


class ParamikoShell(Shell):
    """The same over one kept-open paramiko connection (``pip install lwr[ssh]``)."""

    def __init__(self, target: SshTarget) -> None:
        self.target = target
        self._client: Any = None
        self._lock = threading.Lock()

    def _connect(self) -> Any:
        import paramiko  # optional dependency: imported only by sites that choose this plugin

        client = paramiko.SSHClient()
        if self.target.known_hosts:
            client.load_host_keys(self.target.known_hosts)
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
        else:
            client.load_system_host_keys()
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect(
            self.target.hostname,
            port=self.target.port,
            username=self.target.username or None,
            key_filename=self.target.private_key or None,
            allow_agent=False,
            look_for_keys=not self.target.private_key,
            timeout=self.target.connect_timeout,
        )
        return client

    def run(self, argv: list[str], timeout: float = COMMAND_TIMEOUT) -> CommandResult:
        with self._lock:
            try:
                if (
                    self._client is None
                    or not self._client.get_transport()
                    or not self._client.get_transport().is_active()
                ):
                    self._client = self._connect()
                _stdin, stdout, stderr = self._client.exec_command(shlex.join(argv), timeout=timeout)
                out = stdout.read().decode(errors="replace")
                err = stderr.read().decode(errors="replace")
                status = stdout.channel.recv_exit_status()
            except OSError:
                self._client = None
                raise
            except Exception as error:  # paramiko's SSHException and friends
                self._client = None
                raise OSError(f"ssh to {self.target.hostname}:{self.target.port} failed: {error}") from error
        return CommandResult(status, out, err)

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def describe(self) -> str:
        return f"ParamikoShell({self.target.username}@{self.target.hostname}:{self.target.port})"
