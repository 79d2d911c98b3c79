"""``lwr check``: one representative job end to end against a live lwr or Pulsar server.

What an operator runs after installing or changing a server. The job exercises every kind of
file the protocol moves: an input dataset and its extra files, a config file (rewritten, and
naming an unstructured index staged with ``depth`` and a shared path that is only rewritten),
tool files, working and metadata directory files, outputs from the outputs, working and
metadata directories, the version file, the environment, the exit code, stdout and stderr.
Each step prints its time and PASS or FAIL; the first failure stops the run, and the exit
status is non-zero with the failed step named.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from lwr.client.action_config import ACTIONS, ActionConfig, parse_action_config
from lwr.client.cache import InputCache
from lwr.client.client import LwrClient
from lwr.client.collect import collect_outputs
from lwr.client.staging import JobDescription, StagedJob, stage_and_submit
from lwr.errors import LwrError

EXIT_CODE = 3
STDOUT_TEXT = "lwr check: tool stdout"
STDERR_TEXT = "lwr check: tool stderr"
ENV_VALUE = "value with spaces & 'quotes'"

#: The tool: reads its config file, checks every staged file, writes every kind of output.
TOOL_SCRIPT = (
    r"""
import json, os, sys
here = os.path.dirname(os.path.abspath(__file__))
config = json.load(open(sys.argv[1]))
report = {"cwd": os.getcwd()}
def read(path):
    with open(path) as handle:
        return handle.read()
report["input"] = read(config["input"])
report["extra"] = read(config["extra"])
report["metadata_input"] = read(config["metadata_input"])
report["workdir_input"] = read("workdir_input.txt")
report["helper"] = read(os.path.join(here, "lib", "helper.txt"))
index = config["index"]
report["index_path"] = index
report["index"] = read(index)
report["index_siblings"] = sorted(os.listdir(os.path.dirname(index)))
report["index_cousins"] = sorted(os.listdir(os.path.join(os.path.dirname(os.path.dirname(index)), "seq")))
report["shared_path"] = config["shared"]
report["env"] = os.environ.get("LWR_CHECK_ENV")
report["tmp_dir"] = os.path.isdir(os.environ.get("_GALAXY_JOB_TMP_DIR", "/nonexistent-tmp"))
report["home_dir"] = os.path.isdir(os.environ.get("_GALAXY_JOB_HOME_DIR", "/nonexistent-home"))
output = config["output"]
with open(output, "w") as handle:
    handle.write(report["input"] + "|" + report["extra"])
extras = os.path.splitext(output)[0] + "_files"
os.makedirs(extras)
with open(os.path.join(extras, "extra_output.txt"), "w") as handle:
    handle.write("EXTRA OUTPUT")
with open(sys.argv[2], "w") as handle:
    handle.write(report["env"] or "")
with open(sys.argv[3], "w") as handle:
    handle.write("1.2.3")
with open("workdir_output.txt", "w") as handle:
    handle.write("WORKDIR OUTPUT")
metadata = os.path.dirname(config["metadata_input"])
with open(os.path.join(metadata, "metadata_results"), "w") as handle:
    handle.write(report["metadata_input"].upper())
with open("check_report.json", "w") as handle:
    json.dump(report, handle)
print("STDOUT_TEXT")
print("STDERR_TEXT", file=sys.stderr)
sys.exit(EXIT_CODE)
""".replace("STDOUT_TEXT", STDOUT_TEXT)
    .replace("STDERR_TEXT", STDERR_TEXT)
    .replace("EXIT_CODE", str(EXIT_CODE))
)


class StepFailed(Exception):
    """A check step found something wrong; the message says what."""


@dataclass
class CheckOptions:
    url: str
    private_token: str | None = None
    manager: str | None = None
    default_file_action: str = "transfer"
    files_endpoint: str | None = None
    cache: bool = False
    job_id: str | None = None
    timeout: float = 300.0
    keep: bool = False


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
    job = _Job(workspace, options)
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


class _Job:
    """The representative job: its files on the client side, and what each step expects."""

    def __init__(self, workspace: str, options: CheckOptions) -> None:
        self.options = options
        self.root = workspace
        self.staged: StagedJob | None = None
        self.status: dict[str, Any] = {}
        self.cache = InputCache() if options.cache else None
        self.report: dict[str, Any] = {}

    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    def write(self, relative: str, contents: str) -> str:
        path = self.path(relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(contents)
        return path

    # -- the client side of the job ----------------------------------------------------------------

    def prepare(self) -> str:
        self.script = self.write("tool/script.py", TOOL_SCRIPT)
        self.write("tool/lib/helper.txt", "HELPER")
        self.input = self.write("data/dataset_10.dat", "INPUT CONTENTS")
        self.extra = self.write("data/dataset_10_files/sub/extra.txt", "EXTRA CONTENTS")
        self.index = self.write("indices/bwa/genome.fa", "ACGT")
        self.write("indices/bwa/genome.fa.fai", "genome\t4")
        self.write("indices/seq/genome.2bit", "2BIT")
        self.shared = self.path("shared", "refs", "ref.txt")
        self.working = self.path("job", "working")
        self.metadata = self.path("job", "metadata")
        self.write("job/working/workdir_input.txt", "WORKDIR INPUT")
        self.metadata_input = self.write("job/metadata/metadata_input.txt", "metadata input")
        self.output = self.path("data", "dataset_20.dat")
        self.env_output = self.path("data", "dataset_21.dat")
        self.workdir_output = self.path("data", "dataset_22.dat")
        self.report_output = self.path("data", "report.json")
        self.version = self.path("data", "GALAXY_VERSION")
        config = {
            "input": self.input,
            "extra": self.extra,
            "metadata_input": self.metadata_input,
            "index": self.index,
            "shared": self.shared,
            "output": self.output,
        }
        self.config_file = self.write("job/configs/check_config.json", json.dumps(config, indent=1))
        return f"client files in {self.root}"

    def action_config(self) -> ActionConfig:
        unstructured = self.options.default_file_action
        if unstructured in ("none", "rewrite"):
            unstructured = "transfer"
        return parse_action_config(
            {
                "default_action": self.options.default_file_action,
                "files_endpoint": self.options.files_endpoint,
                "paths": [
                    {
                        "path": self.path("indices"),
                        "path_types": "unstructured",
                        "depth": 2,
                        "action": unstructured,
                    },
                    {
                        "path": self.path("shared"),
                        "path_types": "unstructured",
                        "action": "rewrite",
                        "source_directory": self.path("shared"),
                        "destination_directory": self.path("shared2"),
                    },
                ],
            }
        )

    def description(self) -> JobDescription:
        arguments = [self.script, self.config_file, self.env_output, self.version]
        command = "python3 " + " ".join(shlex.quote(argument) for argument in arguments)
        command += " > ../metadata/tool_stdout 2> ../metadata/tool_stderr"
        return JobDescription(
            command_line=command,
            job_id=self.options.job_id or f"lwr-check-{uuid.uuid4().hex[:12]}",
            tool_id="lwr_check",
            tool_version="1.0",
            inputs=[self.input],
            input_extra_directories=[self.path("data", "dataset_10_files")],
            config_files=[self.config_file],
            tool_directory=self.path("tool"),
            tool_files=["lib/helper.txt"],
            working_directory=self.working,
            metadata_directory=self.metadata,
            outputs=[self.output, self.env_output, self.workdir_output, self.report_output],
            working_directory_outputs=[
                ("workdir_output.txt", self.workdir_output),
                ("check_report.json", self.report_output),
            ],
            version_file=self.version,
            env={"LWR_CHECK_ENV": ENV_VALUE},
        )

    # -- the steps -----------------------------------------------------------------------------------

    def run(self, check: Check, client: LwrClient) -> None:
        check.step("server reachable (/healthz)", lambda: _version(client.healthz()))
        check.step("prepare client files", self.prepare)
        config = self.action_config()
        description = self.description()
        check.step("setup, stage inputs and submit", lambda: self._submit(client, description, config))
        assert self.staged is not None
        job_id = self.staged.job_id
        try:
            check.step("job finishes", lambda: self._wait(client, job_id))
            check.step(
                "exit code",
                self._exit_code,
                fatal=False,
            )
            check.step("tool stdout and stderr", self._streams, fatal=False)
            check.step("collect outputs", lambda: self._collect(client, description, config), fatal=False)
            check.step(
                "output from the outputs directory",
                lambda: self._file(self.output, "INPUT CONTENTS|EXTRA CONTENTS"),
                fatal=False,
            )
            check.step(
                "output extra files",
                lambda: self._file(self.path("data", "dataset_20_files", "extra_output.txt"), "EXTRA OUTPUT"),
                fatal=False,
            )
            check.step(
                "output from the working directory",
                lambda: self._file(self.workdir_output, "WORKDIR OUTPUT"),
                fatal=False,
            )
            check.step(
                "output from the metadata directory",
                lambda: self._file(os.path.join(self.metadata, "metadata_results"), "METADATA INPUT"),
                fatal=False,
            )
            check.step("version file", lambda: self._file(self.version, "1.2.3"), fatal=False)
            check.step("environment", lambda: self._file(self.env_output, ENV_VALUE), fatal=False)
            check.step("inputs, extra files, tool files", self._inputs_seen, fatal=False)
            check.step(
                "unstructured files staged with depth", lambda: self._unstructured(job_id), fatal=False
            )
            check.step("unstructured path rewritten", self._rewritten, fatal=False)
            check.step("job temporary and home directories", self._tmp_home, fatal=False)
            if self.cache is not None:
                check.step(
                    "input cache reused by a second job", lambda: self._cache_reuse(client), fatal=False
                )
        except StepFailed:
            if not self.options.keep:
                try:
                    check.step("clean the job", lambda: client.clean(job_id))
                except StepFailed:
                    pass
            raise
        if not self.options.keep:
            check.step("clean the job", lambda: client.clean(job_id))

    def _submit(self, client: LwrClient, description: JobDescription, config: ActionConfig) -> str:
        self.staged = stage_and_submit(client, description, config, cache=self.cache)
        moved = sum(1 for staged in self.staged.files if staged.action in ("transfer", "copy", "message"))
        return f"job {self.staged.job_id}, {moved} files staged"

    def _wait(self, client: LwrClient, job_id: str) -> str:
        states: list[str] = []
        self.status = client.wait(job_id, timeout=self.options.timeout, on_status=states.append)
        if self.status.get("status") != "complete":
            raise StepFailed(
                f"final status {self.status.get('status')!r}; job stderr: "
                f"{str(self.status.get('job_stderr'))[:500]!r}"
            )
        return " -> ".join(states)

    def _exit_code(self) -> str:
        code = self.status.get("returncode")
        if code != EXIT_CODE:
            stderr = str(self.status.get("stderr") or self.status.get("job_stderr") or "").strip()
            raise StepFailed(f"returncode {code!r}, expected {EXIT_CODE}; stderr: {stderr[-300:]!r}")
        return ""

    def _streams(self) -> str:
        stdout = str(self.status.get("stdout") or "").strip()
        stderr = str(self.status.get("stderr") or "").strip()
        if stdout != STDOUT_TEXT:
            raise StepFailed(f"stdout {stdout!r}, expected {STDOUT_TEXT!r}")
        if stderr != STDERR_TEXT:
            raise StepFailed(f"stderr {stderr!r}, expected {STDERR_TEXT!r}")
        return ""

    def _collect(self, client: LwrClient, description: JobDescription, config: ActionConfig) -> str:
        assert self.staged is not None
        collected = collect_outputs(client, self.staged.job_id, description, config, self.status)
        if not collected.ok:
            raise StepFailed("; ".join(f"{name}: {error}" for name, error in collected.failures))
        try:
            with open(self.report_output, encoding="utf-8") as handle:
                self.report = json.load(handle)
        except (OSError, ValueError) as exc:
            raise StepFailed(
                f"the job's report {self.report_output} is missing or unreadable: {exc}"
            ) from exc
        return f"{len(collected.fetched)} files"

    def _file(self, path: str, expected: str) -> str:
        if not os.path.exists(path):
            raise StepFailed(f"{path} was not brought back")
        with open(path, encoding="utf-8") as handle:
            contents = handle.read()
        if contents != expected:
            raise StepFailed(f"{os.path.basename(path)} contains {contents[:200]!r}, expected {expected!r}")
        return ""

    def _inputs_seen(self) -> str:
        expected = {
            "input": "INPUT CONTENTS",
            "extra": "EXTRA CONTENTS",
            "metadata_input": "metadata input",
            "workdir_input": "WORKDIR INPUT",
            "helper": "HELPER",
        }
        for key, value in expected.items():
            _expect(key, self.report.get(key), value)
        return ""

    def _unstructured(self, job_id: str) -> str:
        index_path = str(self.report.get("index_path"))
        _expect("index", self.report.get("index"), "ACGT")
        _expect("index siblings", self.report.get("index_siblings"), ["genome.fa", "genome.fa.fai"])
        _expect("index cousins", self.report.get("index_cousins"), ["genome.2bit"])
        if self.options.default_file_action != "none" and "/unstructured/" not in index_path:
            raise StepFailed(
                f"index path {index_path!r} was not rewritten into the job's unstructured directory"
            )
        return index_path

    def _rewritten(self) -> str:
        return _expect("shared path", self.report.get("shared_path"), self.path("shared2", "refs", "ref.txt"))

    def _tmp_home(self) -> str:
        _expect("_GALAXY_JOB_TMP_DIR exists", self.report.get("tmp_dir"), True)
        _expect("_GALAXY_JOB_HOME_DIR exists", self.report.get("home_dir"), True)
        return ""

    def _cache_reuse(self, client: LwrClient) -> str:
        assert self.cache is not None
        before = self.cache.stats.inserted
        second = client.setup(f"{self.staged.job_id if self.staged else 'x'}-cache")
        try:
            self.cache.stage(client, second.job_id, self.input, os.path.basename(self.input), "input")
        finally:
            client.clean(second.job_id)
        stats = self.cache.stats
        if stats.inserted != before or stats.fallbacks:
            raise StepFailed(
                f"the input was uploaded again (inserted {stats.inserted}, fallbacks {stats.fallbacks})"
            )
        return f"inserted {stats.inserted}, reused {stats.reused}"


def _version(reply: dict[str, Any]) -> str:
    return f"version {reply.get('version', '?')}"


def _expect(what: str, actual: Any, expected: Any) -> str:
    if actual != expected:
        raise StepFailed(f"{what}: got {actual!r}, expected {expected!r}")
    return ""


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
