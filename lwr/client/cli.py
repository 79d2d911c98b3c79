"""Client commands of ``lwr``: ``check``, ``submit``, ``status``, ``cancel``, ``clean``.

:func:`register` adds them to the ``lwr`` command's subparsers; each sets ``func`` to a function
taking the parsed arguments and returning the exit status. The server's URL and token may also
come from ``LWR_URL`` and ``LWR_PRIVATE_TOKEN``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import sys
import uuid
from collections.abc import Callable
from typing import Any

from lwr.client import actions, check
from lwr.client.action_config import ACTIONS, ActionConfig, load_action_config
from lwr.client.cache import InputCache
from lwr.client.client import LwrClient, open_client
from lwr.client.collect import collect_outputs
from lwr.client.files_endpoint import FilesEndpoint
from lwr.client.http import Progress
from lwr.client.mq import PROBE_TIMEOUT, env_ssl, start_files_endpoint
from lwr.client.staging import JobDescription, StagingObserver, stage_and_submit
from lwr.client.token_file import add_token_arguments, token_from_args
from lwr.errors import LwrError

#: Transfers at least this big get a progress bar.
PROGRESS_THRESHOLD = 4 * 1024 * 1024


def register(subparsers: Any) -> None:
    """Add the client subcommands to an ``argparse`` subparsers object."""
    from lwr.client import jobs_cli

    jobs_cli.register(subparsers)
    check_parser = subparsers.add_parser("check", help="run one representative job against a server")
    check.add_arguments(check_parser)
    check_parser.set_defaults(func=check.command)

    submit = subparsers.add_parser(
        "submit",
        help="run a command on a server with its files staged",
        description="Stage the inputs, run COMMAND in the job's working directory on the server, "
        "bring the outputs back and exit with the command's exit code.",
    )
    _connection_arguments(submit, mq=True)
    submit.add_argument(
        "--input", "-i", action="append", default=[], metavar="FILE", help="a file the command reads"
    )
    submit.add_argument(
        "--output", "-o", action="append", default=[], metavar="FILE", help="a file the command writes"
    )
    submit.add_argument(
        "--env", "-e", action="append", default=[], metavar="NAME=VALUE", help="set in the job"
    )
    submit.add_argument("--job-id", help="job id (default: a fresh one; the server may assign its own)")
    submit.add_argument("--default-file-action", choices=ACTIONS, help="action for unmatched paths")
    submit.add_argument("--file-action-config", metavar="FILE", help="file action config (YAML or JSON)")
    submit.add_argument("--cache", action="store_true", help="stage inputs through the server's input cache")
    submit.add_argument("--timeout", type=float, default=24 * 3600.0, help="seconds to wait for the job")
    submit.add_argument("--keep", action="store_true", help="leave the job directory on the server")
    submit.add_argument("--quiet", "-q", action="store_true", help="no status changes or progress bars")
    submit.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARG ...]")
    check.add_mq_arguments(submit)
    submit.set_defaults(func=submit_command)

    for name, function, text in (
        ("status", status_command, "print a job's status (JSON)"),
        ("cancel", cancel_command, "cancel a job"),
        ("clean", clean_command, "remove a job's directory on the server"),
    ):
        parser = subparsers.add_parser(name, help=text)
        _connection_arguments(parser)
        parser.add_argument("job_id", metavar="JOB")
        parser.set_defaults(func=function)


def _connection_arguments(parser: argparse.ArgumentParser, mq: bool = False) -> None:
    """``--url`` (required unless ``LWR_URL`` is set, or with ``mq``, ``--amqp-url`` is given)."""
    parser.add_argument(
        "--url",
        default=os.environ.get("LWR_URL"),
        required="LWR_URL" not in os.environ and not mq,
        help="server URL" + (" (or --amqp-url)" if mq else ""),
    )
    add_token_arguments(parser, environment=True)
    parser.add_argument("--manager", help="a named job manager of the server")


def _client(args: argparse.Namespace) -> LwrClient:
    return open_client(
        url=args.url,
        private_token=token_from_args(args),
        manager=args.manager,
        ca_certs=getattr(args, "ca_certs", None),
    )


def status_command(args: argparse.Namespace) -> int:
    with _client(args) as client:
        print(json.dumps(client.status(args.job_id), indent=2, sort_keys=True))
    return 0


def cancel_command(args: argparse.Namespace) -> int:
    with _client(args) as client:
        client.cancel(args.job_id)
    print(f"cancelled {args.job_id}")
    return 0


def clean_command(args: argparse.Namespace) -> int:
    with _client(args) as client:
        client.clean(args.job_id)
    print(f"cleaned {args.job_id}")
    return 0


class TerminalObserver(StagingObserver):
    """Progress bars (tqdm, on stderr) for transfers over :data:`PROGRESS_THRESHOLD`."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self._bars: dict[str, Any] = {}

    def transfer_started(self, direction: str, path: str, size: int) -> Progress | None:
        if self.quiet or (0 <= size < PROGRESS_THRESHOLD):
            return None
        from tqdm import tqdm

        bar = tqdm(
            total=size if size >= 0 else None,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=f"{'up' if direction == 'up' else 'down'} {os.path.basename(path)}",
            file=sys.stderr,
            leave=False,
        )
        self._bars[path] = bar
        return bar.update

    def transfer_finished(self, direction: str, path: str) -> None:
        bar = self._bars.pop(path, None)
        if bar is not None:
            bar.close()


def submit_command(args: argparse.Namespace) -> int:
    """``lwr submit``: stage, run, show status changes, collect, exit with the job's exit code."""
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        print("lwr submit: no command given (lwr submit [OPTIONS] -- COMMAND ...)", file=sys.stderr)
        return 2
    inputs = [os.path.abspath(path) for path in args.input]
    outputs = [os.path.abspath(path) for path in args.output]
    command_line = build_command_line(command, args.input + args.output)
    env = {}
    for item in args.env:
        name, separator, value = item.partition("=")
        if not separator:
            print(f"lwr submit: --env {item!r} is not NAME=VALUE", file=sys.stderr)
            return 2
        env[name] = value
    error = check.mq_options_error(args, "submit")
    if error:
        print(error, file=sys.stderr)
        return 2
    default_action = args.default_file_action
    if default_action is None and args.amqp_url and not args.file_action_config:
        default_action = "remote_transfer"  # lwr moves the files: nothing reaches lwr but the broker
    action_config = load_action_config(args.file_action_config, default_action=default_action)
    description = JobDescription(
        command_line=command_line,
        job_id=args.job_id or f"lwr-submit-{uuid.uuid4().hex[:12]}",
        inputs=[path for path in inputs if not os.path.isdir(path)],
        input_extra_directories=[path for path in inputs if os.path.isdir(path)],  # staged whole
        outputs=outputs,
        env=env,
    )
    observer = TerminalObserver(quiet=args.quiet)

    def say(message: str) -> None:
        if not args.quiet:
            print(f"lwr: {message}", file=sys.stderr, flush=True)

    files: FilesEndpoint | None = None
    client: LwrClient
    if args.amqp_url:
        files = start_files_endpoint(args.files_listen, args.files_url)  # ConfigError: exit status 2
        action_config = dataclasses.replace(action_config, files_endpoint=files.url(description.job_id))
        client = open_client(
            amqp_url=args.amqp_url,
            files=files,
            manager=args.manager,
            jobs_directory=args.jobs_directory,
            ssl=env_ssl(args),
        )
    else:
        client = _client(args)
    try:
        return _run_job(args, client, description, action_config, observer, say, files)
    finally:
        client.close()
        if files is not None:
            files.close()


def _run_job(
    args: argparse.Namespace,
    client: LwrClient,
    description: JobDescription,
    action_config: ActionConfig,
    observer: TerminalObserver,
    say: Callable[[str], None],
    files: FilesEndpoint | None,
) -> int:
    """Stage, wait, collect, clean (HTTP only: MQ has no clean); the exit status of ``lwr submit``."""
    if client.capabilities.queued:
        # Publish nothing unless an lwr consumes the manager: a setup nobody takes would wait in
        # the queue and run whenever one does.
        client.healthz(timeout=min(PROBE_TIMEOUT, args.timeout))
    staged = stage_and_submit(
        client, description, action_config, cache=InputCache() if args.cache else None, observer=observer
    )
    say(f"job {staged.job_id} submitted" + (f" (files served at {files.base})" if files else ""))
    try:
        status = client.wait(staged.job_id, timeout=args.timeout, on_status=lambda state: say(f"job {state}"))
    except KeyboardInterrupt:
        say(f"interrupted: cancelling job {staged.job_id}")
        client.cancel(staged.job_id)
        return 130
    except TimeoutError as exc:
        print(f"lwr submit: {exc}; the job was not cancelled", file=sys.stderr)
        return 1
    collected = collect_outputs(client, staged.job_id, description, action_config, status, observer=observer)
    # The tool's streams; a server that did not separate them from the job script's has them there.
    _echo(status.get("stdout") or status.get("job_stdout") or "", sys.stdout)
    _echo(status.get("stderr") or status.get("job_stderr") or "", sys.stderr)
    for name, error in collected.failures:
        print(f"lwr: could not bring back {name}: {error}", file=sys.stderr)
    missing = [path for path in description.outputs if not os.path.exists(path)]
    for path in missing:
        print(f"lwr: output {path} was not produced", file=sys.stderr)
    if files is not None and files.refused:
        for method, path, reason in files.refused:
            print(f"lwr: refused {method} {path} from the server: {reason}", file=sys.stderr)
        if files.refused_count > len(files.refused):
            print(f"lwr: and {files.refused_count - len(files.refused)} more refused", file=sys.stderr)
    if not args.keep and files is None:
        try:
            client.clean(staged.job_id)
        except LwrError as exc:
            say(f"could not clean job {staged.job_id}: {exc.message}")
    return exit_status(status, failed_collection=bool(collected.failures))


def build_command_line(command: list[str], staged_paths: list[str]) -> str:
    """The command as one shell line, with each staged file named by its absolute path.

    One argument is taken as a shell command line as it is (``'sort < in.txt > out.txt'``);
    several are quoted and joined. A file given as ``--input in.txt`` and written ``in.txt`` in
    the command becomes its absolute path, which staging then rewrites to the server's path.
    """
    line = command[0] if len(command) == 1 else shlex.join(command)
    relative = {path: os.path.abspath(path) for path in staged_paths if not os.path.isabs(path)}
    return actions.rewrite_text(line, relative)


def exit_status(status: dict[str, Any], *, failed_collection: bool = False) -> int:
    """The job's exit code; 1 when it has none (failed, cancelled, lost) or outputs did not come back."""
    code = status.get("returncode")
    try:
        value = int(code) if code is not None else None
    except (TypeError, ValueError):
        value = None
    if value is None or value < 0 or status.get("status") != "complete":
        return 1 if value in (None, 0) or value < 0 else value
    if value == 0 and failed_collection:
        return 1
    return value


def _echo(text: Any, stream: Any) -> None:
    if text:
        stream.write(str(text))
        if not str(text).endswith("\n"):
            stream.write("\n")
        stream.flush()
