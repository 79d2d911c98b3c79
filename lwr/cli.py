"""The ``lwr`` command: ``lwr serve`` runs the server; client commands come from ``lwr.client.cli``."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import signal
import sys
import time
from pathlib import Path

from lwr import __version__
from lwr.errors import ConfigError, LwrError

log = logging.getLogger(__name__)

DEFAULT_CONFIG = "server.ini"


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
        return stop_daemon(Path(args.pid_file))
    config = find_config(args.config)
    from paste.deploy import loadapp, loadserver

    from lwr.config import check_server_section, configure_logging

    check_server_section(str(config))

    if args.daemon:
        running = read_pid(Path(args.pid_file))
        if running and pid_alive(running):
            print(f"lwr is already running (pid {running}, {args.pid_file})", file=sys.stderr)
            return 1
        daemonize(Path(args.log_file))
        write_pid(Path(args.pid_file))
    configure_logging(str(config))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        app = loadapp(f"config:{config}")
        server = loadserver(f"config:{config}")
    except LookupError as error:  # PasteDeploy: a missing [app:main] or [server:main] section
        raise ConfigError(f"{config}: {error}", file=str(config)) from None
    log.info("lwr %s serving with %s", __version__, config)
    try:
        server(app)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        if args.daemon:
            try:
                os.unlink(args.pid_file)
            except FileNotFoundError:
                pass
    return 0


def daemonize(log_file: Path) -> None:
    """Detach (double fork, new session) with stdout/stderr appended to ``log_file``."""
    if os.fork():
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    out = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)


def write_pid(pid_file: Path) -> None:
    from lwr.core.atomic import write_bytes_atomically

    pid_file.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomically(pid_file, f"{os.getpid()}\n".encode(), durable=False)


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except OSError as error:
        return error.errno == errno.EPERM


def stop_daemon(pid_file: Path, timeout: float = 30.0) -> int:
    pid = read_pid(pid_file)
    if pid is None or not pid_alive(pid):
        print(f"lwr is not running (no live pid in {pid_file})", file=sys.stderr)
        return 1
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if pid_alive(pid):
        print(f"lwr (pid {pid}) did not stop within {timeout:.0f} s", file=sys.stderr)
        return 1
    print(f"lwr (pid {pid}) stopped")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lwr", description="Remote job execution server for Galaxy.")
    parser.add_argument("--version", action="version", version=f"lwr {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="run the server (PasteDeploy server.ini)")
    serve_parser.add_argument("-c", "--config", help="server.ini (default: ./server.ini, else ./server.ini.sample)")
    mode = serve_parser.add_mutually_exclusive_group()
    mode.add_argument("--daemon", action="store_true", help="detach and run in the background")
    mode.add_argument("--stop-daemon", action="store_true", help="stop the server started with --daemon")
    serve_parser.add_argument("--pid-file", default="lwr.pid", help="pid file for --daemon (default lwr.pid)")
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
