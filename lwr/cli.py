"""The ``lwr`` command: ``lwr serve`` runs the server; client commands come from ``lwr.client.cli``."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lwr import __version__
from lwr.daemon import PidFile, SystemdNotifier, daemonize, read_pid, running_pid, stop_daemon
from lwr.daemon_handover import HandoverError, HandoverServer, Successor
from lwr.errors import ConfigError, LwrError
from lwr.web.listener import Listener, obtain_listener

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


def _is(obj: Any, module: str, name: str) -> bool:
    return getattr(obj, "__module__", None) == module and getattr(obj, "__name__", None) == name


def serve(args: argparse.Namespace) -> int:
    if args.stop_daemon:
        return stop(Path(args.pid_file or DEFAULT_PID_FILE))
    # First of all, before any job could inherit them: systemd's variables.
    notifier = SystemdNotifier()
    config = find_config(args.config)
    from paste.deploy.loadwsgi import APP, SERVER, loadcontext

    from lwr.config import (
        check_ini_syntax,
        check_server_section,
        configure_logging,
        load_app_yaml,
        load_server_settings,
    )

    pulsar_yaml = config.suffix in (".yml", ".yaml")
    app_context: Any = None
    server_context: Any = None
    app_settings: AppSettings | None = None
    server_settings: ServerSettings | None
    if pulsar_yaml:
        # A Pulsar app.yml, served by lwr's own HTTP server (no PasteDeploy involved); errors on the
        # terminal, before detaching.
        app_settings, server_settings = load_app_yaml(config)
        own_app = True
    else:
        check_ini_syntax(str(config))
        check_server_section(str(config))
        section = "app:main"
        try:
            app_context = loadcontext(APP, f"config:{config}")
            section = "server:main"
            server_context = loadcontext(SERVER, f"config:{config}")
        except LookupError as error:  # PasteDeploy: a missing [app:main] or [server:main] section
            raise ConfigError(f"{config}: {error}", file=str(config)) from None
        except ImportError as error:  # paste.app_factory or use naming code that is not installed
            raise ConfigError(
                f"{config}: [{section}] names code that cannot be imported ({error}); lwr's own is "
                + (
                    "paste.app_factory = lwr.app:app_factory"
                    if section == "app:main"
                    else "use = egg:lwr#http"
                ),
                file=str(config),
                section=section,
                expected="paste.app_factory = lwr.app:app_factory"
                if section == "app:main"
                else "egg:lwr#http",
            ) from None
        own_server = _is(server_context.object, "lwr.web.server", "server_runner")
        own_app = _is(app_context.object, "lwr.app", "app_factory")
        if args.restart and not (own_server and own_app):
            raise ConfigError(
                f"{config}: --restart needs use = egg:lwr#http in [server:main] and paste.app_factory "
                "= lwr.app:app_factory in [app:main]",
                file=str(config),
                expected="use = egg:lwr#http",
            )
        server_settings = load_server_settings(server_context.local_conf, str(config)) if own_server else None
        if own_app:
            from lwr.app import settings_of_section

            # Validated here, so a typo is reported on the terminal, not only in --daemon's log.
            app_settings = settings_of_section(app_context.global_conf, app_context.local_conf)

    pid_path = (
        Path(args.pid_file)
        if args.pid_file
        else (Path(DEFAULT_PID_FILE) if args.daemon or args.restart else None)
    )
    successor: Successor | None = None
    listener: Listener | None = None
    if args.restart:
        assert pid_path is not None
        successor = Successor.connect(pid_path)
        if successor is None and running_pid(pid_path, timeout=1):
            raise HandoverError(
                f"the lwr holding {pid_path} (pid {read_pid(pid_path)}) accepts no restart "
                "(started by an lwr without --restart support?); stop it and start again"
            )
        if successor is None:
            print(f"lwr is not running ({pid_path}); starting it", file=sys.stderr)
    if successor is not None:
        sock, pid_file = successor.offer()
        listener = Listener(sock, f"socket handed over by pid {successor.old_pid}")
    else:
        # Locked before detaching, so a second start is refused on the terminal, not in a log.
        pid_file = PidFile.acquire(pid_path) if pid_path else None  # type: ignore[assignment]
        if server_settings is not None:
            try:
                listener = obtain_listener(server_settings)  # before any job starts; a busy port fails here
            except BaseException:
                if pid_file is not None:
                    pid_file.release()  # a start that failed leaves no pid file behind
                raise
    tell = daemonize(Path(args.log_file)) if args.daemon else None
    if pid_file is not None and successor is None:
        pid_file.write_pid()
    if pulsar_yaml:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    else:
        configure_logging(str(config))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        application: Any = None
        if app_settings is not None:
            from lwr.app import run_application

            application = run_application(app_settings, start=successor is None)
            app = application.web
        else:
            app = app_context.create()
        if successor is not None:
            assert listener is not None
            listener.adopted = successor.take()
            application.start()
        log.info("lwr %s serving with %s", __version__, config)
        if server_settings is None:
            if tell is not None:
                tell(True)
            server_context.create()(app)
            return 0
        from lwr.web.server import run

        assert listener is not None
        handovers: list[HandoverServer] = []

        def ready(http: Any) -> None:
            if pid_file is not None:
                if successor is not None:
                    pid_file.write_pid()
                    pid_file.owned = True
                    successor.serving()
                if application is not None:
                    handovers.append(HandoverServer(pid_file, listener.sock, http, application))
                    handovers[0].start()
            notifier.notify(f"READY=1\nMAINPID={os.getpid()}\nSTATUS=serving")
            if tell is not None:
                tell(True)

        listener.on_ready.append(ready)
        try:
            run(app, server_settings, listener)
        finally:
            for handover in handovers:
                handover.close()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        if pid_file is None or pid_file.owned:
            notifier.notify(
                "STOPPING=1"
            )  # not after a restart: systemd would take the successor for stopping
        if tell is not None:
            tell(False)
        if pid_file is not None:
            pid_file.release()
    return 0


def stop(pid_file: Path) -> int:
    def waiting(pid: int) -> None:
        print(
            f"lwr (pid {pid}) is letting the requests in progress finish (at most drain_timeout, "
            "600 s unless set); its jobs keep running. Waiting...",
            file=sys.stderr,
            flush=True,
        )

    stopped, message = stop_daemon(pid_file, waiting=waiting)
    print(message, file=sys.stdout if stopped else sys.stderr)
    return 0 if stopped else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lwr", description="Remote job execution server for Galaxy.")
    parser.add_argument("--version", action="version", version=f"lwr {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser(
        "serve", help="run the server (PasteDeploy server.ini, or Pulsar's app.yml)"
    )
    serve_parser.add_argument(
        "-c",
        "--config",
        help="server.ini, or a Pulsar app.yml (default: ./server.ini, else ./server.ini.sample)",
    )
    mode = serve_parser.add_mutually_exclusive_group()
    mode.add_argument("--daemon", action="store_true", help="detach and run in the background")
    mode.add_argument("--stop-daemon", action="store_true", help="stop the server started with --daemon")
    serve_parser.add_argument(
        "--restart",
        action="store_true",
        help="replace the server holding --pid-file (default lwr.pid) with this one, "
        "refusing no request; starts normally if none runs",
    )
    serve_parser.add_argument(
        "--pid-file",
        help="pid file, held locked while the server runs (default with --daemon and --stop-daemon: lwr.pid)",
    )
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
