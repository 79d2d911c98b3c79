"""Start a real Pulsar server (pulsar-app) on a free loopback port, for benchmarks against lwr.

Two ways to serve the same Pulsar WSGI app (``pulsar.web.wsgi:app_factory``):

* ``paste`` (default): PasteDeploy ``egg:Paste#http`` with ``threadpool_workers = 16``, i.e. the
  very server and thread pool that ``tests/server.py``'s ``LwrServer`` gives lwr, so a
  comparison measures the two applications, not two HTTP servers. This is also how Pulsar
  was served (``paster serve server.ini``) until gunicorn became its default.
* ``gunicorn``: what pulsar-app 0.16.0's own ``pulsar-serve`` does (gunicorn, 1 worker,
  ``gthread`` with 4 threads); needs ``pip install gunicorn``.

Usage as a library::

    from bench.pulsar_server import PulsarServer   # or sys.path.insert(0, "bench")
    server = PulsarServer(directory=tmp, max_concurrent_jobs=8).start()
    ... server.url ... server.pid ...
    server.stop()

Usage as a script (serve in the foreground until Ctrl-C)::

    python bench/pulsar_server.py --directory /tmp/pulsar-bench [--port 8914] [--server gunicorn]

The helper ``serve-ini`` sub-mode (``python bench/pulsar_server.py serve-ini server.ini``) is what
the ``paste`` flavour runs in its subprocess: PasteDeploy ``loadapp`` + ``loadserver``, exactly
like ``lwr serve``, with INFO logging to stderr (lwr's default when server.ini has no logging
sections).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent.parent / "tests"))

from server import free_port, stop_process, wait_for_healthz  # noqa: E402  (tests/server.py)

__all__ = ["PulsarServer", "free_port"]


@dataclass
class PulsarServer:
    """A running Pulsar server subprocess (``queued_python`` manager) and its configuration."""

    directory: Path
    max_concurrent_jobs: int = 8
    server: str = "paste"  # "paste" or "gunicorn"
    threadpool_workers: int = 16
    #: Paste's listen backlog; ``None`` keeps Paste's default (5).
    request_queue_size: int | None = None
    manager_type: str = "queued_python"
    extra_app_yml: dict[str, object] = field(default_factory=dict)
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def config_path(self) -> Path:
        return self.directory / "server.ini"

    @property
    def log_path(self) -> Path:
        return self.directory / "server.log"

    @property
    def staging(self) -> Path:
        return self.directory / "files" / "staging"

    def write_config(self) -> None:
        import json

        if not self.port:
            self.port = free_port()
        self.directory = Path(self.directory).resolve()
        (self.directory / "files" / "staging").mkdir(parents=True, exist_ok=True)
        (self.directory / "files" / "persisted_data").mkdir(parents=True, exist_ok=True)
        lines = [
            "[server:main]",
            "use = egg:Paste#http",
            "host = 127.0.0.1",
            f"port = {self.port}",
            f"threadpool_workers = {self.threadpool_workers}",
        ]
        if self.request_queue_size:
            lines.append(f"request_queue_size = {self.request_queue_size}")
        lines += ["", "[app:main]", "paste.app_factory = pulsar.web.wsgi:app_factory", ""]
        self.config_path.write_text("\n".join(lines))
        app = {
            "staging_directory": str(self.directory / "files" / "staging"),
            "persistence_directory": str(self.directory / "files" / "persisted_data"),
            # Pulsar's queued_python reads ``num_concurrent_jobs`` (pulsar/managers/queued.py) and
            # silently ignores unknown keys: lwr's ``max_concurrent_jobs`` here once ran every
            # Pulsar baseline one job at a time. tests/unit/test_pulsar_baseline.py checks it.
            "managers": {
                "_default_": {"type": self.manager_type, "num_concurrent_jobs": self.max_concurrent_jobs}
            },
            **self.extra_app_yml,
        }
        # JSON is valid YAML; no need for a YAML writer.
        (self.directory / "app.yml").write_text(json.dumps(app, indent=2) + "\n")

    def loaded_concurrency(self) -> dict[str, int | None]:
        """Worker threads per manager of a Pulsar app built in-process from this configuration.

        Loads the config the way ``pulsar.web.wsgi:app_factory`` does (``server.ini`` plus the
        ``app.yml`` next to it), so a key Pulsar does not read shows up as its default here.
        """
        return pulsar_concurrency(ini_path=self.config_path)

    def command(self) -> list[str]:
        if self.server == "paste":
            return [sys.executable, str(HERE), "serve-ini", str(self.config_path)]
        if self.server == "gunicorn":
            return [
                sys.executable,
                "-c",
                "import sys; from pulsar.scripts.serve import main; sys.exit(main())",
                str(self.config_path),
            ]
        raise ValueError(f"unknown server flavour {self.server!r} (paste or gunicorn)")

    def start(self, wait: bool = True) -> PulsarServer:
        self.directory = Path(self.directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.write_config()
        log = open(self.log_path, "ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PULSAR_CONFIG_DIR": str(self.directory)}
        self.process = subprocess.Popen(
            self.command(), cwd=self.directory, stdout=log, stderr=subprocess.STDOUT, env=env
        )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        wait_for_healthz(self.url, self.process, "pulsar", self.log_text, timeout, interval=0.1)

    def stop(self) -> None:
        stop_process(self.process)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def pulsar_concurrency(
    ini_path: Path | None = None, app_conf_path: Path | None = None
) -> dict[str, int | None]:
    """Build a PulsarApp from a configuration and report each manager's worker-thread count."""
    from pulsar.core import PulsarApp
    from pulsar.main import load_app_configuration

    conf = load_app_configuration(
        ini_path=str(ini_path) if ini_path else None,
        app_conf_path=str(app_conf_path) if app_conf_path else None,
        config_dir=str((ini_path or app_conf_path).parent),
    )  # type: ignore[union-attr]
    app = PulsarApp(**conf)
    try:
        return {
            name: len(getattr(proxy._proxied_manager, "work_threads", None) or []) or None
            for name, proxy in app.managers.items()
        }
    finally:
        app.shutdown(timeout=5)


def _serve_ini(ini: str) -> int:
    """Run the Pulsar app from ``ini`` with the PasteDeploy server it names (like ``lwr serve``)."""
    from paste.deploy import loadapp, loadserver

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    path = os.path.abspath(ini)
    app = loadapp(f"config:{path}")
    server = loadserver(f"config:{path}")
    try:
        server(app)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        shutdown = getattr(app, "shutdown", None)
        if shutdown is not None:
            try:
                shutdown()
            except Exception:  # noqa: BLE001 - best effort at exit
                pass
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "serve-ini":
        return _serve_ini(argv[1])
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--directory", required=True, type=Path)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--server", choices=["paste", "gunicorn"], default="paste")
    parser.add_argument("--max-concurrent-jobs", type=int, default=8)
    args = parser.parse_args(argv)
    server = PulsarServer(
        directory=args.directory,
        port=args.port,
        server=args.server,
        max_concurrent_jobs=args.max_concurrent_jobs,
    ).start()
    print(f"Pulsar ({args.server}) at {server.url}, pid {server.pid}, log {server.log_path}", flush=True)
    try:
        server.process.wait()  # type: ignore[union-attr]
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
