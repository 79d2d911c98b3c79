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
from lwr.client.client import LwrClient
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
    client = LwrClient(options.url, private_token=options.private_token, manager=options.manager)
    job = RepresentativeJob(workspace, options)
    print(
        f"lwr check against {client.http.base_url} (default file action: {options.default_file_action}"
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
    parser.add_argument("--url", required=True, help="server URL, e.g. http://127.0.0.1:8913/")
    parser.add_argument(
        "--private-token", "--private_token", dest="private_token", help="the server's private token"
    )
    parser.add_argument("--manager", help="a named job manager of the server")
    parser.add_argument(
        "--default-file-action",
        "--default_file_action",
        dest="default_file_action",
        default="transfer",
        choices=[action for action in ACTIONS if action != "rewrite"],
        help="file action for paths no entry matches (default: transfer)",
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


def options_from_args(args: argparse.Namespace) -> CheckOptions:
    return CheckOptions(
        url=args.url,
        private_token=args.private_token,
        manager=args.manager,
        default_file_action=args.default_file_action,
        files_endpoint=args.files_endpoint,
        cache=args.cache,
        job_id=args.job_id,
        timeout=args.timeout,
        keep=args.keep,
    )


def command(args: argparse.Namespace) -> int:
    """``lwr check``."""
    return run_check(options_from_args(args))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="run_client_tests.py", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run_check(options_from_args(parser.parse_args(argv)))
