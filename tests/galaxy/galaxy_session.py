"""One real Galaxy sending our tools to lwr and to Pulsar 0.16.0, and the servers it talks to.

Start-up, once: the cached Galaxy virtualenv (``install_galaxy.sh``, installed if missing),
RabbitMQ vhosts, an lwr serving HTTP (a ``_default_`` queued_python and a ``slurm`` queued_cli
manager) and one consuming AMQP, both resolving requirements (``tool_dependency_dir``), two
Pulsar servers configured the same way, then Galaxy with README's job_conf.yml instantiated for them. Every
case (``galaxy_cases.CASES``) is submitted at once, on lwr and on Pulsar, before the first test runs,
so the jobs run side by side; each test waits for its own two jobs and checks them.
"""

from __future__ import annotations

import stat
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from galaxy_api import GalaxyApi
from galaxy_cases import BACKENDS, CASES, Case, write_tool_copies
from galaxy_job_conf import Backend, job_conf_for
from galaxy_server import ADMIN_API_KEY, ADMIN_EMAIL, GalaxyServer, galaxy_venv

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "messaging"))
sys.path.insert(0, str(ROOT / "bench"))

from mq_helpers import Vhost  # noqa: E402
from pulsar_server import PulsarServer  # noqa: E402

from server import TOKEN, LwrServer, free_port  # noqa: E402

#: The one input every tool reads.
INPUT_TEXT = "hello lwr\nsecond line\nthird line\n"
#: What the remote package prints (tool_dependency_dir/lwrtestpkg/1.0/bin/lwrtestpkg).
PACKAGE_OUTPUT = "lwrtestpkg 1.0, resolved on the remote server"
SLURM_MANAGER = "[manager:slurm]\ntype = queued_cli\njob_plugin = Slurm\nmin_polling_interval = 0.25\n"


@dataclass
class Run:
    """A tool submitted to Galaxy for one backend: Galaxy's reply to the submission."""

    case: Case
    backend: str
    server: str
    reply: dict[str, Any]

    @property
    def job_id(self) -> str:
        return str(self.reply["jobs"][0]["id"])


@dataclass
class GalaxySession:
    galaxy: GalaxyServer
    api: GalaxyApi
    history_id: str
    input_id: str
    servers: dict[str, Any]
    runs: dict[tuple[str, str], Run] = field(default_factory=dict)

    def run(self, case: Case, backend: str) -> Run:
        return self.runs[(case.id, backend)]

    def server_log(self, run: Run) -> str:
        return f"--- {run.server} log (tail) ---\n{self.servers[run.server].log_text()[-6000:]}"


def write_package(directory: Path) -> Path:
    """A galaxy_packages layout: ``lwrtestpkg/1.0/env.sh`` putting ``bin/lwrtestpkg`` on PATH."""
    package = directory / "lwrtestpkg" / "1.0"
    (package / "bin").mkdir(parents=True)
    program = package / "bin" / "lwrtestpkg"
    program.write_text(f"#!/bin/sh\necho '{PACKAGE_OUTPUT}'\n")
    program.chmod(program.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    (package / "env.sh").write_text(f'PATH="{package / "bin"}:$PATH"\nexport PATH\n')
    return directory


def wait_for_pulsar(server: PulsarServer, timeout: float = 60.0) -> None:
    """Wait for Pulsar's /healthz, which wants the private token too."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process is not None and server.process.poll() is not None:
            raise RuntimeError(f"pulsar exited with {server.process.returncode}:\n{server.log_text()}")
        try:
            if requests.get(f"{server.url}healthz", params={"private_token": TOKEN}, timeout=1).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"pulsar did not answer within {timeout} s:\n{server.log_text()}")


def make_servers(
    base: Path, dependencies: Path, vhosts: dict[str, Vhost], job_files_api: str
) -> dict[str, Any]:
    """The servers Galaxy talks to, by name: ``X`` serves HTTP, ``X_mq`` consumes AMQP.

    A server never does both: one with a message queue publishes every job's status there,
    and Galaxy's MQ runner would then take over the jobs of its HTTP destinations.
    """
    resolve = {"tool_dependency_dir": str(dependencies)}
    mq = {**resolve, "remote_staging_allowed_urls": job_files_api}
    pulsar_default = {"_default_": {"type": "queued_python", "num_concurrent_jobs": 4}}
    return {
        "lwr": LwrServer(
            directory=base / "lwr",
            app_options={"private_token": TOKEN, **resolve},
            job_managers_ini="[manager:_default_]\ntype = queued_python\nmax_concurrent_jobs = 4\n\n"
            + SLURM_MANAGER,
        ),
        "lwr_mq": LwrServer(
            directory=base / "lwr_mq", app_options={**mq, "message_queue_url": vhosts["lwr"].url}
        ),
        "pulsar": PulsarServer(
            directory=base / "pulsar",
            extra_app_yml={
                "private_token": TOKEN,
                **resolve,
                # Pulsar's queued_cli ignores the destination's submit_native_specification; its
                # manager asks Slurm for the same 2 CPUs (job_ncpus -> sbatch -c 2).
                "managers": {
                    **pulsar_default,
                    "slurm": {"type": "queued_cli", "job_plugin": "Slurm", "job_ncpus": 2},
                },
            },
        ),
        "pulsar_mq": PulsarServer(
            directory=base / "pulsar_mq",
            extra_app_yml={
                "private_token": TOKEN,
                **resolve,
                "message_queue_url": vhosts["pulsar"].url,
                "managers": pulsar_default,
            },
        ),
    }


def start_servers(servers: dict[str, Any]) -> None:
    for server in servers.values():
        if isinstance(server, PulsarServer):
            server.start(wait=False)
            wait_for_pulsar(server)
        else:
            server.start()


def server_of(case: Case, backend: str) -> str:
    """The name of the server (in ``make_servers``) that runs ``case``'s job for ``backend``."""
    return f"{backend}_mq" if case.transport == "amqp" else backend


@contextmanager
def start_session(base: Path) -> Iterator[GalaxySession]:
    """Start everything under ``base``, submit every case, yield; stop everything after."""
    venv = galaxy_venv()
    dependencies = write_package(base / "dependencies")
    galaxy_port = free_port()
    vhosts = {name: Vhost() for name in BACKENDS}
    servers = make_servers(base, dependencies, vhosts, f"http://127.0.0.1:{galaxy_port}/api/jobs/")
    galaxy: GalaxyServer | None = None
    try:
        start_servers(servers)
        # lwr keeps a manager's jobs in <staging_directory>/<manager>/, Pulsar in <staging_directory>/
        backends = [
            Backend(
                "lwr",
                servers["lwr"].url,
                TOKEN,
                vhosts["lwr"].url,
                str(servers["lwr_mq"].staging / "_default_"),
            ),
            Backend(
                "pulsar",
                servers["pulsar"].url,
                TOKEN,
                vhosts["pulsar"].url,
                str(servers["pulsar_mq"].staging),
            ),
        ]
        tool_files, mapping = write_tool_copies(base / "tools")
        galaxy = GalaxyServer(
            directory=base / "galaxy",
            venv=venv,
            port=galaxy_port,
            job_conf=job_conf_for(backends, mapping),
            tool_files=tool_files,
        )
        galaxy.start()
        api = GalaxyApi(galaxy.url, ADMIN_API_KEY).admin_user_api(ADMIN_EMAIL)
        history_id = api.create_history("lwr tests")
        input_id = api.upload_text(history_id, "input.txt", INPUT_TEXT)
        uploaded = api.wait_for_dataset(input_id)
        assert uploaded["state"] == "ok", f"upload failed: {uploaded}\n{galaxy.log_text()[-20000:]}"
        session = GalaxySession(galaxy, api, history_id, input_id, servers)
        for case in CASES:
            for backend in BACKENDS:
                reply = api.run_tool(
                    history_id, case.tool_id(backend), {"input": {"src": "hda", "id": input_id}}
                )
                session.runs[(case.id, backend)] = Run(case, backend, server_of(case, backend), reply)
        yield session
    finally:
        if galaxy is not None:
            galaxy.stop()
        for server in servers.values():
            server.stop()
        for vhost in vhosts.values():
            vhost.delete()
