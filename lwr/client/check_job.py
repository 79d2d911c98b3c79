"""The representative job of ``lwr check``: its files on the client side and what each step expects.

The job exercises every kind of file the protocol moves: an input dataset and its extra files, a
config file (rewritten, and naming an unstructured index staged with ``depth`` and a shared path
that is only rewritten), tool files, working and metadata directory files, outputs from the
outputs, working and metadata directories, the version file, the environment, the exit code,
stdout and stderr, and the job's temporary and home directories. :mod:`lwr.client.check` runs
its steps and reports them.
"""

from __future__ import annotations

import json
import os
import shlex
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from lwr.client.action_config import ActionConfig, parse_action_config
from lwr.client.cache import InputCache
from lwr.client.client import LwrClient
from lwr.client.collect import collect_outputs
from lwr.client.files_endpoint import FilesEndpoint
from lwr.client.mq import PROBE_TIMEOUT
from lwr.client.staging import JobDescription, StagedJob, stage_and_submit

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
    #: The CA file trusting an https:// server's certificate (unset: the system's CAs).
    ca_certs: str | None = None
    manager: str | None = None
    default_file_action: str = "transfer"
    files_endpoint: str | None = None
    cache: bool = False
    job_id: str | None = None
    timeout: float = 300.0
    keep: bool = False
    #: Message-queue mode (see :mod:`lwr.client.mq`): the broker, and where the files endpoint listens.
    amqp_url: str | None = None
    jobs_directory: str | None = None
    files_listen: str = "127.0.0.1:0"
    files_url: str | None = None
    amqp_ssl: dict[str, Any] | None = None


class StepRunner(Protocol):
    """Runs one named step; a failed ``fatal`` step raises :class:`StepFailed`."""

    def step(self, name: str, action: Callable[[], str | None], *, fatal: bool = True) -> None: ...


class RepresentativeJob:
    """The representative job: its files on the client side, and what each step expects."""

    def __init__(self, workspace: str, options: CheckOptions, files: FilesEndpoint | None = None) -> None:
        self.options = options
        #: Message-queue mode: the endpoint lwr fetches inputs from and posts outputs to.
        self.files = files
        self.root = workspace
        self.staged: StagedJob | None = None
        self.status: dict[str, Any] = {}
        self.cache = InputCache() if options.cache else None
        self.report: dict[str, Any] = {}
        self.job_id = options.job_id or f"lwr-check-{uuid.uuid4().hex[:12]}"

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
        files_endpoint = self.options.files_endpoint
        if self.files is not None:
            files_endpoint = self.files.url(self.job_id)
        return parse_action_config(
            {
                "default_action": self.options.default_file_action,
                "files_endpoint": files_endpoint,
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
            job_id=self.job_id,
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

    def run(self, check: StepRunner, client: LwrClient) -> None:
        mq = client.capabilities.server_side_staging
        if client.capabilities.queued:
            probe_timeout = min(PROBE_TIMEOUT, self.options.timeout)
            check.step("lwr answers on the queue (status probe)", lambda: _probe(client, probe_timeout))
        else:
            check.step("server reachable (/healthz)", lambda: _version(client.healthz()))
        check.step("prepare client files", self.prepare)
        config = self.action_config()
        description = self.description()
        check.step(
            "publish setup (lwr stages inputs)" if mq else "setup, stage inputs and submit",
            lambda: self._submit(client, description, config),
        )
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
            check.step(
                "outputs posted back by lwr" if mq else "collect outputs",
                lambda: self._collect(client, description, config),
                fatal=False,
            )
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
            if self.files is not None:
                check.step("files endpoint: only the job's files", self._files_endpoint, fatal=False)
            if self.cache is not None:
                check.step(
                    "input cache reused by a second job", lambda: self._cache_reuse(client), fatal=False
                )
        except StepFailed:
            if not self.options.keep and not mq:
                try:
                    check.step("clean the job", lambda: client.clean(job_id))
                except StepFailed:
                    pass
            raise
        # The message-queue protocol has no clean: lwr keeps the job directory (see docs/messaging.md).
        if not self.options.keep and not mq:
            check.step("clean the job", lambda: client.clean(job_id))

    def _submit(self, client: LwrClient, description: JobDescription, config: ActionConfig) -> str:
        self.staged = stage_and_submit(client, description, config, cache=self.cache)
        moved = sum(
            1
            for staged in self.staged.files
            if staged.action in ("transfer", "copy", "message", "remote_transfer", "remote_copy")
        )
        return f"job {self.staged.job_id}, {moved} files staged"

    def _wait(self, client: LwrClient, job_id: str) -> str:
        states: list[str] = []
        self.status = client.wait(job_id, timeout=self.options.timeout, on_status=states.append)
        if self.status.get("status") != "complete":
            stderr = str(self.status.get("job_stderr") or self.status.get("reason") or "")
            hint = ""
            if self.files is not None and "remote_staging_allowed_urls" in stderr:
                hint = (
                    f" (lwr's remote_staging_allowed_urls must list {self.files.base}; pick a listed port "
                    "with --files-listen, or the address lwr reaches with --files-url)"
                )
            raise StepFailed(
                f"final status {self.status.get('status')!r}; job stderr: {stderr[:500]!r}{hint}"
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
        if self.files is not None:
            return f"{self.files.count('POST')} files posted to the files endpoint"
        return f"{len(collected.fetched)} files"

    def _files_endpoint(self) -> str:
        assert self.files is not None and self.staged is not None
        fetched = self.files.count("GET")
        expected = sum(1 for staged in self.staged.files if staged.action == "remote_transfer")
        if self.files.refused:
            method, path, reason = self.files.refused[0]
            raise StepFailed(f"{self.files.refused_count} requests refused, e.g. {method} {path}: {reason}")
        if fetched < expected:
            raise StepFailed(f"lwr fetched {fetched} of the {expected} remote_transfer inputs")
        return f"{fetched} inputs fetched, {self.files.count('POST')} outputs posted, none refused"

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


def _probe(client: LwrClient, timeout: float) -> str:
    reply = client.healthz(timeout=timeout)
    return f"answered {reply.get('status')!r} for an unknown job in {reply.get('seconds')} s"


def _version(reply: dict[str, Any]) -> str:
    return f"version {reply.get('version', '?')}"


def _expect(what: str, actual: Any, expected: Any) -> str:
    if actual != expected:
        raise StepFailed(f"{what}: got {actual!r}, expected {expected!r}")
    return ""
