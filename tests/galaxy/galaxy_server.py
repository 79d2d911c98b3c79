"""A real Galaxy (galaxy-web, uvicorn) on a loopback port, configured for the lwr tests.

Galaxy is installed by ``install_galaxy.sh`` into a cached virtualenv; this module writes a
``galaxy.yml`` (SQLite, no Conda, no mulled containers, an empty data-table config so start-up
fetches nothing), a ``tool_conf.xml`` and the ``job_conf.yml`` it is given, then starts Galaxy
and waits for its API.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
INSTALL_SCRIPT = HERE / "install_galaxy.sh"
ADMIN_EMAIL = "admin@example.org"
#: Galaxy creates an admin user whose API key is this on first start (bootstrap_admin_api_key).
ADMIN_API_KEY = "lwr-test-admin-key-0123456789"


def galaxy_venv() -> Path:
    """The cached Galaxy virtualenv, installed first if it is missing or broken."""
    result = subprocess.run(["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{INSTALL_SCRIPT} failed:\n{result.stdout}\n{result.stderr}")
    return Path(result.stdout.strip().splitlines()[-1])


@dataclass
class GalaxyServer:
    """A Galaxy process and the files it was configured with."""

    directory: Path
    venv: Path
    port: int
    job_conf: dict[str, Any]
    tool_files: list[Path]
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.directory / "galaxy.log"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def write_config(self) -> Path:
        data = self.directory / "data"
        data.mkdir(parents=True, exist_ok=True)
        (self.directory / "tool_data_table_conf.xml").write_text("<tables/>\n")
        (self.directory / "job_conf.yml").write_text(yaml.safe_dump(self.job_conf, sort_keys=False))
        tools = "\n".join(f'    <tool file="{path}"/>' for path in self.tool_files)
        (self.directory / "tool_conf.xml").write_text(
            f'<toolbox>\n  <section id="lwr" name="lwr tests">\n{tools}\n  </section>\n</toolbox>\n'
        )
        galaxy = {
            "data_dir": str(data),
            "database_connection": f"sqlite:///{data}/galaxy.sqlite?isolation_level=IMMEDIATE&timeout=120",
            "tool_config_file": str(self.directory / "tool_conf.xml"),
            "job_config_file": str(self.directory / "job_conf.yml"),
            "tool_data_table_config_path": str(self.directory / "tool_data_table_conf.xml"),
            "tool_dependency_dir": str(self.directory / "galaxy-dependencies"),
            "bootstrap_admin_api_key": ADMIN_API_KEY,
            "admin_users": ADMIN_EMAIL,
            "id_secret": "lwr-galaxy-tests-id-secret-0123",
            # The job files API's address, for jobs staged over AMQP (remote_transfer).
            "galaxy_infrastructure_url": self.url,
            "conda_auto_init": False,
            "conda_auto_install": False,
            "enable_mulled_containers": False,
            "watch_tools": "false",
            "enable_celery_tasks": False,
            "check_job_script_integrity": False,
            "cleanup_job": "never",
            "log_level": "DEBUG",
        }
        path = self.directory / "galaxy.yml"
        path.write_text(
            yaml.safe_dump({"gravity": {"process_manager": None}, "galaxy": galaxy}, sort_keys=False)
        )
        return path

    def start(self) -> GalaxyServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.write_config()
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "VIRTUAL_ENV": str(self.venv),
            "PATH": f"{self.venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        env.pop("PYTHONPATH", None)  # Galaxy's own interpreter, not the test suite's lwr checkout
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [str(self.venv / "bin" / "galaxy-web"), "-c", str(config), "-b", f"127.0.0.1:{self.port}"],
            cwd=self.directory,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 600.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"Galaxy exited with {self.process.returncode}:\n{self.log_text()[-20000:]}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/api/version", timeout=2) as response:
                    if response.status == 200 and "version_major" in json.load(response):
                        return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"Galaxy did not answer within {timeout} s:\n{self.log_text()[-20000:]}")

    def stop(self) -> None:
        """SIGTERM Galaxy's process group (Galaxy and the local jobs it started), SIGKILL if it lingers."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


if __name__ == "__main__":  # pragma: no cover - manual use: print the venv's path
    print(galaxy_venv(), file=sys.stderr)
