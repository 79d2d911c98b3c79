"""The ``lwr`` command: ``lwr serve`` runs the server; client commands come from ``lwr.client.cli``."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from lwr import __version__
from lwr.daemon import PidFile, daemonize, stop_daemon
from lwr.errors import ConfigError, LwrError

if TYPE_CHECKING:
    from lwr.config import AppSettings, ServerSettings

log = logging.getLogger(__name__)

DEFAULT_CONFIG = "server.ini"
DEFAULT_PID_FILE = "lwr.pid"


def find_config(path: str | None) -> Path:
    """``-c`` if given; else ./server.ini; else ./server.ini.sample so a fresh clone starts."""
    if path:
        candidate = Path(path)
        if not candidate.is_file():
            raise ConfigError(f"{candidate}: configuration file not found", file=str(candidate))
        return candidate.resolve()
    for name in (DEFAULT_CONFIG, DEFAULT_CONFIG + ".sample"):
        if Path(name).is_file():
            return Path(name).resolve()
    raise ConfigError("no server.ini or server.ini.sample in the current directory; pass -c FILE")


def serve(args: argparse.Namespace) -> int:
    if args.stop_daemon:
        return stop(Path(args.pid_file or DEFAULT_PID_FILE))
    config = find_config(args.config)
    from paste.deploy import loadapp, loadserver

    from lwr.config import check_server_section, configure_logging, load_app_yaml

    pulsar_yaml = config.suffix in (".yml", ".yaml")
    if pulsar_yaml:
        yaml_settings = load_app_yaml(config)  # errors on the terminal, before detaching
    else:
        check_server_section(str(config))

    pid_path = Path(args.pid_file) if args.pid_file else (Path(DEFAULT_PID_FILE) if args.daemon else None)
    # Locked before detaching, so a second start is refused on the terminal, not in a log.
    pid_file = PidFile.acquire(pid_path) if pid_path else None
    if args.daemon:
        daemonize(Path(args.log_file))
    if pid_file is not None:
        pid_file.write_pid()
    if pulsar_yaml:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    else:
        configure_logging(str(config))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        if pulsar_yaml:
            serve_app_yaml(config, *yaml_settings)
            return 0
        try:
            app = loadapp(f"config:{config}")
            server = loadserver(f"config:{config}")
        except LookupError as error:  # PasteDeploy: a missing [app:main] or [server:main] section
            raise ConfigError(f"{config}: {error}", file=str(config)) from None
        log.info("lwr %s serving with %s", __version__, config)
        server(app)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        if pid_file is not None:
            pid_file.release()
    return 0


def serve_app_yaml(config: Path, settings: AppSettings, server_settings: ServerSettings) -> None:
    """A Pulsar app.yml, served by lwr's own HTTP server (no PasteDeploy involved)."""
    from lwr.app import LwrApplication
    from lwr.web.server import run

    application = LwrApplication(settings)
    log.info("lwr %s serving Pulsar configuration %s", __version__, config)
    try:
        run(application.web, server_settings)
    finally:
        application.shutdown()


def stop(pid_file: Path) -> int:
    stopped, message = stop_daemon(pid_file)
    print(message, file=sys.stdout if stopped else sys.stderr)
    return 0 if stopped else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lwr", description="Remote job execution server for Galaxy.")
    parser.add_argument("--version", action="version", version=f"lwr {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="run the server (PasteDeploy server.ini, or Pulsar's app.yml)")
    serve_parser.add_argument("-c", "--config", help="server.ini, or a Pulsar app.yml (default: ./server.ini, else "
                              "./server.ini.sample)")
    mode = serve_parser.add_mutually_exclusive_group()
    mode.add_argument("--daemon", action="store_true", help="detach and run in the background")
    mode.add_argument("--stop-daemon", action="store_true", help="stop the server started with --daemon")
    serve_parser.add_argument("--pid-file", help="pid file, held locked while the server runs (default with "
                              "--daemon and --stop-daemon: lwr.pid)")
    serve_parser.add_argument("--log-file", default="lwr.log", help="log file for --daemon (default lwr.log)")
    serve_parser.set_defaults(func=serve)
    try:
        from lwr.client.cli import register
    except ImportError:
        pass
    else:
        register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as error:
        print(f"lwr: configuration error: {error.message}", file=sys.stderr)
        return 2
    except LwrError as error:
        print(f"lwr: {error.message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
