"""``lwr check`` and ``run_client_tests.py``: run the representative job against a live server.

What an operator runs after installing or changing an lwr (or Pulsar) server. The job and what
it checks are in :mod:`lwr.client.check_job`; this module runs its steps, printing each with its
time and PASS or FAIL. A failed step the others depend on (reaching the server, staging, the job
finishing) stops the run; the verifications all run. The exit status is non-zero with the failed
steps named on the last line.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from lwr.client.action_config import ACTIONS
from lwr.client.check_job import CheckOptions, RepresentativeJob, StepFailed
from lwr.client.client import LwrClient, open_client
from lwr.client.files_endpoint import FilesEndpoint
from lwr.client.mq import MQ_ACTIONS, env_ssl, parse_listen, start_files_endpoint
from lwr.client.token_file import add_token_arguments, token_from_args
from lwr.errors import LwrError

__all__ = ["Check", "CheckOptions", "StepFailed", "add_arguments", "command", "main", "run_check"]


@dataclass
class StepResult:
    name: str
    ok: bool
    seconds: float
    detail: str = ""


@dataclass
class Check:
    """Runs the steps in order, printing each; stops at the first failure."""

    options: CheckOptions
    out: TextIO = sys.stdout
    results: list[StepResult] = field(default_factory=list)

    def step(self, name: str, action: Callable[[], str | None], *, fatal: bool = True) -> None:
        """Run one step; a failed ``fatal`` step raises :class:`StepFailed`, later steps need it."""
        started = time.monotonic()
        try:
            detail = action() or ""
        except Exception as exc:  # every failure of a step is reported, whatever its kind
            seconds = time.monotonic() - started
            detail = str(exc) if isinstance(exc, StepFailed) else f"{type(exc).__name__}: {exc}"
            self._print(StepResult(name, False, seconds, detail))
            if not isinstance(exc, (StepFailed, LwrError, TimeoutError)):  # a bug, not a finding
                traceback.print_exc(file=sys.stderr)
            if fatal:
                raise StepFailed(name) from exc
            return
        self._print(StepResult(name, True, time.monotonic() - started, detail))

    @property
    def failed(self) -> list[str]:
        return [result.name for result in self.results if not result.ok]

    def _print(self, result: StepResult) -> None:
        self.results.append(result)
        verdict = "PASS" if result.ok else "FAIL"
        line = f"[{len(self.results):2d}] {result.name:<38} {verdict} {result.seconds:7.2f}s"
        if result.detail:
            line += f"  {result.detail}"
        print(line, file=self.out, flush=True)


def run_check(options: CheckOptions, out: TextIO = sys.stdout) -> int:
    """Run the check; 0 if every step passed, 1 otherwise (the failed step is printed)."""
    check = Check(options, out)
    workspace = tempfile.mkdtemp(prefix="lwr-check-")
    files: FilesEndpoint | None = None
    client: LwrClient
    if options.amqp_url:
        try:
            files = start_files_endpoint(options.files_listen, options.files_url)
        except LwrError as error:
            shutil.rmtree(workspace, ignore_errors=True)
            print(f"lwr check: {error.message}", file=out, flush=True)
            return 2
        client = open_client(
            amqp_url=options.amqp_url,
            files=files,
            manager=options.manager,
            jobs_directory=options.jobs_directory,
            ssl=options.amqp_ssl,
        )
        where = f"{client.description}, files served at {files.base}"
    else:
        client = open_client(
            url=options.url,
            private_token=options.private_token,
            manager=options.manager,
            ca_certs=options.ca_certs,
        )
        where = client.description
    job = RepresentativeJob(workspace, options, files=files)
    print(
        f"lwr check against {where} (default file action: {options.default_file_action}"
        f"{', input cache on' if options.cache else ''})",
        file=out,
        flush=True,
    )
    started = time.monotonic()
    try:
        job.run(check, client)
    except StepFailed:
        pass
    finally:
        client.close()
        if files is not None:
            files.close()
        if not options.keep:
            shutil.rmtree(workspace, ignore_errors=True)
    if check.failed:
        steps = ", ".join(f"'{name}'" for name in check.failed)
        print(
            f"lwr check FAILED at step {steps} after {time.monotonic() - started:.1f}s",
            file=out,
            flush=True,
        )
        return 1
    print(
        f"lwr check PASSED: {len(check.results)} steps in {time.monotonic() - started:.1f}s",
        file=out,
        flush=True,
    )
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="server URL, e.g. http://127.0.0.1:8913/ (or --amqp-url)")
    add_token_arguments(parser)
    parser.add_argument("--manager", help="a named job manager of the server")
    parser.add_argument(
        "--default-file-action",
        "--default_file_action",
        dest="default_file_action",
        choices=[action for action in ACTIONS if action != "rewrite"],
        help="file action for paths no entry matches (default: transfer; remote_transfer with --amqp-url)",
    )
    parser.add_argument(
        "--files-endpoint",
        "--files_endpoint",
        dest="files_endpoint",
        help="URL the server fetches inputs from and posts outputs to (Galaxy's job files API), for remote_transfer",
    )
    parser.add_argument("--cache", action="store_true", help="stage inputs through the server's input cache")
    parser.add_argument("--job-id", "--job_id", dest="job_id", help="job id to use (default: a fresh one)")
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds to wait for the job (default: 300)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the job on the server and the client files")
    add_mq_arguments(parser)


def add_mq_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of message-queue mode, shared by ``lwr check`` and ``lwr submit``."""
    group = parser.add_argument_group(
        "message-queue mode",
        "talk to lwr through RabbitMQ (the Pulsar AMQP protocol) instead of HTTP; lwr "
        "fetches the inputs from, and posts the outputs to, a files endpoint this command serves",
    )
    group.add_argument(
        "--amqp-url",
        "--amqp_url",
        dest="amqp_url",
        help="broker URL, e.g. amqp://user:password@rabbit:5672/vhost; --manager names lwr's manager",
    )
    group.add_argument(
        "--jobs-directory",
        "--jobs_directory",
        dest="jobs_directory",
        help="lwr's <staging_directory>/<manager>, for absolute server paths (default: paths "
        "relative to the job's working directory)",
    )
    group.add_argument(
        "--files-listen",
        dest="files_listen",
        default="127.0.0.1:0",
        metavar="HOST:PORT",
        help="where the files endpoint listens (default 127.0.0.1 on a free port); lwr only fetches "
        "URLs its remote_staging_allowed_urls lists, e.g. http://HOST:PORT/",
    )
    group.add_argument(
        "--files-url",
        dest="files_url",
        metavar="URL",
        help="the endpoint's base URL as lwr reaches it (default http://HOST:PORT/)",
    )
    for key in ("ca_certs", "certfile", "keyfile", "cert_reqs"):
        group.add_argument(
            f"--amqp-ssl-{key.replace('_', '-')}",
            dest=f"amqp_ssl_{key}",
            help=f"TLS to the broker: {key}"
            + (" (cert_none, cert_optional, cert_required)" if key == "cert_reqs" else ""),
        )


def mq_options_error(args: argparse.Namespace, command: str) -> str | None:
    """Why the connection options of ``args`` do not work together, or None."""
    if getattr(args, "amqp_url", None):
        action = getattr(args, "default_file_action", None)
        if action is not None and action not in MQ_ACTIONS:
            return (
                f"lwr {command}: --default-file-action {action} needs lwr's HTTP API; with --amqp-url use "
                f"{' or '.join(MQ_ACTIONS)}"
            )
        if getattr(args, "files_endpoint", None):
            return f"lwr {command}: with --amqp-url the files endpoint is served by this command; use --files-url"
        if getattr(args, "cache", False):
            return f"lwr {command}: the input cache needs lwr's HTTP API; drop --cache with --amqp-url"
        try:
            parse_listen(args.files_listen)
        except ValueError as error:
            return f"lwr {command}: {error}"
        return None
    if not getattr(args, "url", None):
        return f"lwr {command}: give --url (HTTP) or --amqp-url (message queue)"
    return None


def options_from_args(args: argparse.Namespace) -> CheckOptions:
    default_action = args.default_file_action or ("remote_transfer" if args.amqp_url else "transfer")
    return CheckOptions(
        url=args.url or "",
        private_token=token_from_args(args),
        ca_certs=args.ca_certs,
        manager=args.manager,
        default_file_action=default_action,
        files_endpoint=args.files_endpoint,
        cache=args.cache,
        job_id=args.job_id,
        timeout=args.timeout,
        keep=args.keep,
        amqp_url=args.amqp_url,
        jobs_directory=args.jobs_directory,
        files_listen=args.files_listen,
        files_url=args.files_url,
        amqp_ssl=env_ssl(args),
    )


def command(args: argparse.Namespace) -> int:
    """``lwr check``."""
    error = mq_options_error(args, "check")
    if error:
        print(error, file=sys.stderr)
        return 2
    return run_check(options_from_args(args))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="run_client_tests.py", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return command(parser.parse_args(argv))
