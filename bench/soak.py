"""Soak: Galaxy's real Pulsar client against lwr over AMQP and HTTP, with faults on a schedule.

What runs (all on this machine, started and stopped by this script):

* one lwr (``tests/server.py``'s ``LwrServer``) with three managers: ``_default_`` (queued_python,
  driven over HTTP), ``mq`` (queued_python, driven over AMQP with server-side staging) and
  ``slurm`` (queued_cli + the real Slurm, driven over HTTP); its staging directory is a tmpfs of
  its own (``--staging-mb``), its records on the ordinary disk;
* a private RabbitMQ node on its own port (so broker restarts disturb no one else's tests);
* Galaxy's job files API in miniature (GET serves inputs, POST receives outputs), which lwr's
  server-side staging talks to in AMQP mode;
* the drivers: ``pulsar.client`` (pulsar-app 0.16.0) used the way Galaxy's Pulsar runners use it:
  ``submit_job`` with a ``ClientJobDescription``, status polls (HTTP) or the status-update
  consumer with acknowledgements (AMQP), ``finish_job`` to collect outputs, ``clean``. Like
  Galaxy's runner, a status poll that meets a transport error is retried; unlike it, so is a
  submit or an output download that meets a *connection* error (lwr being restarted): Galaxy
  would fail such a job at once, which measures Galaxy, not lwr. An HTTP *error reply* is never
  retried: that is lwr refusing the job.

Faults, each on its own period (``--*-every`` seconds, 0 = never): ``kill -9`` of lwr (restarted
at once), RabbitMQ ``stop_app``/``start_app``, the staging tmpfs filled to the last byte for a
few seconds, the files endpoint answering 500s, resetting connections or stalling for a few
seconds (in turn), ``kill -9`` of slurmctld (restarted after a few seconds).

Each job's verdict:

* ``ok``: exactly one final ``complete`` status, output right, ran once;
* ``refused``: lwr said no cleanly: an HTTP error reply to setup/upload/submit, or a final
  ``failed`` whose ``failure_class`` is one a fault explains (``disk_full``, ``staging_failed``,
  ``launch_failed``), or a failed tool (non-zero exit) while the disk was full;
* ``lost``: no final status within ``--job-timeout``, a ``lost`` status, or a failure no fault
  explains; ``ran_twice``: the command ran more than once (each run appends to a log outside
  lwr's staging disk); ``wrong_output``: complete, exit 0, output not what the job wrote;
  ``duplicate_final``: more than one final status; ``out_of_order``: a non-final status after a
  final one.

Usage (as root, for the tmpfs; Slurm and rabbitmq-server must be installed)::

    python bench/soak.py --jobs 2000 --directory /tmp/soak
    nohup nice -n 10 python bench/soak.py --jobs 100000 --directory /tmp/soak-long > soak-long.log &

The last line is a one-line verdict (``SOAK PASS ...`` or ``SOAK FAIL ...``); ``--results``
writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import http.client
import http.server
import io
import json
import logging
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from pulsar.client.exceptions import PulsarClientTransportError  # noqa: E402
from pulsar.client.manager import build_client_manager  # noqa: E402
from pulsar.client.staging.down import finish_job  # noqa: E402
from pulsar.client.staging.models import ClientJobDescription, ClientOutputs, PulsarOutputs  # noqa: E402
from pulsar.client.staging.up import submit_job  # noqa: E402

from server import LwrServer, free_port  # noqa: E402  (tests/server.py)

FINAL = frozenset({"complete", "failed", "cancelled", "lost"})
#: Failure classes an injected fault explains: lwr refused or failed the job cleanly, and said why.
FAULT_CLASSES = frozenset({"disk_full", "staging_failed", "launch_failed"})
VERDICTS = (
    "ok",
    "refused",
    "lost",
    "ran_twice",
    "wrong_output",
    "duplicate_final",
    "out_of_order",
    "in_flight",
)
BAD_VERDICTS = ("lost", "ran_twice", "wrong_output", "duplicate_final", "out_of_order")

log = logging.getLogger("soak")


def patch_pulsar_client_ack_store() -> None:
    """pulsar-app 0.16.0's acknowledgement manager iterates its ``MessageQueueUUIDStore``, which
    has ``keys()`` but no ``__iter__``: iteration falls back to ``__getitem__(0)`` and the thread
    dies with a TypeError at its first round, so an unacknowledged setup is never published again
    (a setup lost in a broker restart is then lost for good). The soak measures lwr, not that
    bug: give the store the iterator its own code expects. Galaxy with amqp_acknowledge has it."""
    from pulsar.client.util import MessageQueueUUIDStore

    if not hasattr(MessageQueueUUIDStore, "__iter__"):
        MessageQueueUUIDStore.__iter__ = lambda self: iter(list(self.keys()))  # type: ignore[attr-defined]


def now() -> float:
    return time.monotonic()


# --- the ledger: what happened to every job ----------------------------------------------------------
@dataclass
class Job:
    job_id: str
    mode: str  # "http", "mq" or "slurm"
    directory: Path  # the Galaxy side: in.dat, out.dat, working/, metadata/
    expected: bytes
    started: float = 0.0
    ended: float | None = None
    statuses: list[tuple[float, str, bool]] = field(default_factory=list)
    finals: list[dict[str, Any]] = field(default_factory=list)
    refused: str | None = None
    problem: str | None = None
    verdict: str | None = None
    detail: str = ""
    #: The soak was stopped (interrupted) while this job was in flight.
    abandoned: bool = False

    @property
    def input_path(self) -> Path:
        return self.directory / "in.dat"

    @property
    def output_path(self) -> Path:
        return self.directory / "out.dat"


class Ledger:
    def __init__(self, runs_directory: Path) -> None:
        self.runs = runs_directory
        self.jobs: dict[str, Job] = {}
        self.lock = threading.Lock()
        self.fault_windows: list[tuple[str, float, float]] = []
        self.fault_counts: collections.Counter[str] = collections.Counter()

    def add(self, job: Job) -> None:
        with self.lock:
            self.jobs[job.job_id] = job

    def runs_of(self, job: Job) -> int:
        path = self.runs / job.job_id
        try:
            return len(path.read_text().split())
        except FileNotFoundError:
            return 0

    def open_fault(self, kind: str) -> int:
        """A fault begins: its window is open (until :meth:`close_fault`) for jobs judged meanwhile."""
        with self.lock:
            self.fault_windows.append((kind, now(), float("inf")))
            return len(self.fault_windows) - 1

    def close_fault(self, index: int, kind: str) -> None:
        with self.lock:
            _kind, start, _end = self.fault_windows[index]
            self.fault_windows[index] = (kind, start, now())
            self.fault_counts[kind] += 1

    def overlapped(self, job: Job, kind: str, margin: float = 2.0) -> bool:
        end = job.ended if job.ended is not None else now()
        with self.lock:
            windows = list(self.fault_windows)
        return any(k == kind and s - margin <= end and job.started <= e + margin for k, s, e in windows)

    def judge(self, job: Job) -> str:
        """Decide (once) a finished or abandoned job's verdict."""
        if job.verdict is not None:
            return job.verdict
        runs = self.runs_of(job)
        finals = job.finals
        verdict, detail = "ok", ""
        seen_final = False
        for _t, status, complete in job.statuses:
            if seen_final and not complete:
                verdict, detail = "out_of_order", f"{status} after a final status"
            seen_final = seen_final or complete
        if verdict == "ok":
            if job.abandoned and not finals:
                verdict, detail = "in_flight", "the soak was stopped before its end"
            elif job.refused is not None:
                verdict, detail = "refused", job.refused
            elif not finals:
                verdict, detail = "lost", job.problem or "no final status"
            elif len(finals) > 1:
                verdict, detail = (
                    "duplicate_final",
                    f"{len(finals)} final statuses: {[f['status'] for f in finals]}",
                )
            elif runs > 1:
                verdict, detail = "ran_twice", f"ran {runs} times"
            else:
                final = finals[0]
                status = final.get("status")
                klass = final.get("failure_class")
                reason = final.get("reason") or final.get("job_stderr") or ""
                if status == "complete":
                    returncode = final.get("returncode")
                    if job.problem:
                        verdict, detail = "lost", job.problem
                    elif returncode not in (0, "0"):
                        if self.overlapped(job, "disk_full"):
                            verdict, detail = "refused", f"tool exit {returncode} while the disk was full"
                        else:
                            verdict, detail = (
                                "lost",
                                f"exit code {returncode}: {str(final.get('stderr'))[:200]}",
                            )
                    else:
                        try:
                            output = job.output_path.read_bytes()
                        except FileNotFoundError:
                            output = None
                        if output != job.expected:
                            verdict = "wrong_output"
                            detail = f"output {output[:80] if output is not None else 'missing'!r}"
                elif status == "failed" and klass in FAULT_CLASSES:
                    verdict, detail = "refused", f"{klass}: {reason[:200]}"
                elif status == "failed" and self.overlapped(job, "disk_full"):
                    verdict, detail = "refused", f"failed ({klass}) while the disk was full: {reason[:200]}"
                else:
                    verdict, detail = "lost", f"{status} ({klass}): {reason[:300]}"
        if verdict == "refused" and runs > 1:
            verdict, detail = "ran_twice", f"refused but ran {runs} times"
        job.verdict, job.detail = verdict, detail
        if verdict in ("ok", "refused"):
            # A long soak keeps 100,000 of these: keep only what a late status needs.
            job.statuses = []
            job.finals = [{"status": final.get("status")} for final in job.finals[:1]]
        return verdict

    def late_status(self, job: Job, status: str, complete: bool) -> None:
        """A status for a job already judged: a second final, or a non-final after the final."""
        if complete:
            job.verdict, job.detail = "duplicate_final", f"a final {status} after the job was judged"
        else:
            job.verdict, job.detail = "out_of_order", f"{status} after the job was judged"


# --- the environment ----------------------------------------------------------------------------------
def run(
    argv: list[str], timeout: float = 120, check: bool = True, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=check, **kwargs)


class PrivateBroker:
    """A RabbitMQ node of this soak's own (own port, own database), restartable at will."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.dist_port = free_port()
        self.node = f"lwrsoak{os.getpid()}@localhost"
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_CONFIG_FILE": str(self.directory / "rabbitmq.conf"),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.directory / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.directory / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.directory / "enabled_plugins"),
        }

    def start(self) -> None:
        for sub in ("mnesia", "log"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        (self.directory / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.port}\nloopback_users = none\n"
        )
        (self.directory / "enabled_plugins").write_text("[].\n")
        if os.geteuid() == 0:
            os.chmod(self.directory, 0o755)
            run(["chown", "-R", "rabbitmq:rabbitmq", str(self.directory)])
        run(["rabbitmq-server", "-detached"], env=self.env())
        deadline = now() + 120
        while True:  # until the node has registered, await_startup fails at once
            try:
                self.ctl("await_startup", timeout=120)
                return
            except subprocess.CalledProcessError:
                if now() > deadline:
                    raise
                time.sleep(1)

    def ctl(self, *args: str, timeout: float = 60) -> None:
        run(["rabbitmqctl", "-n", self.node, *args], env=self.env(), timeout=timeout)

    def restart_app(self, down: float) -> None:
        self.ctl("stop_app")
        time.sleep(down)
        self.ctl("start_app", timeout=120)

    def stop(self) -> None:
        try:
            self.ctl("stop", timeout=60)
        except (subprocess.SubprocessError, OSError) as error:
            log.warning("stopping the private broker: %s", error)


class StagingDisk:
    """lwr's staging directory on a tmpfs of its own, so filling it harms nothing else."""

    def __init__(self, path: Path, size_mb: int) -> None:
        self.path = path
        self.size_mb = size_mb
        self.filler = path / ".soak-filler"

    def mount(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        run(["mount", "-t", "tmpfs", "-o", f"size={self.size_mb}m,mode=0755", "tmpfs", str(self.path)])

    def fill(self) -> None:
        """Take every free byte (a few blocks may be freed and re-taken by lwr meanwhile)."""
        stats = os.statvfs(self.path)
        free = stats.f_bavail * stats.f_frsize
        try:
            fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        except OSError:
            return  # already full (lwr filled it): full it is
        try:
            try:
                os.posix_fallocate(fd, 0, max(free, 1))
            except OSError:
                pass
            block = b"\0" * 65536
            try:
                while True:  # unbuffered: nothing is left to flush (and fail) at close
                    os.write(fd, block)
            except OSError:
                pass
        finally:
            os.close(fd)

    def empty(self) -> None:
        self.filler.unlink(missing_ok=True)

    def unmount(self) -> None:
        run(["umount", "-l", str(self.path)], check=False)


class Slurmctld:
    PID = Path("/run/slurm/slurmctld.pid")

    @staticmethod
    def available() -> bool:
        try:
            return "UP" in run(["scontrol", "ping"], timeout=20, check=False).stdout
        except (OSError, subprocess.SubprocessError):
            return False

    #: slurmctld's drain reason when a restarted controller handed out a batch id a node still runs.
    DUPLICATE_JOBID = "Duplicate jobid"

    def __init__(self) -> None:
        #: Nodes this soak, acting as the on-call administrator, resumed after a duplicate-id drain.
        self.resumed: list[str] = []

    def kill_and_restart(self, down: float, stop: threading.Event, watch: float = 120.0) -> None:
        pid = int(self.PID.read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
        time.sleep(down)
        run(["/usr/sbin/slurmctld"])
        deadline = now() + 60
        while now() < deadline and not self.available():
            time.sleep(0.5)
        self.resume_duplicate_id_drains(watch, stop)

    def resume_duplicate_id_drains(self, watch: float, stop: threading.Event) -> None:
        """A controller killed -9 loses its last seconds of state and may reuse a batch id that a
        node still runs; Slurm then drains that node ("Duplicate jobid") and nothing runs there
        until an administrator resumes it. Do what the administrator does, and count it: lwr is
        judged on the jobs, not on a node left drained by the fault."""
        deadline = now() + watch
        while now() < deadline:
            listed = run(["sinfo", "-h", "-R", "-o", "%E|%N"], check=False, timeout=30).stdout
            for line in listed.splitlines():
                reason, _, nodes = line.partition("|")
                if self.DUPLICATE_JOBID in reason and nodes:
                    run(["scontrol", "update", f"NodeName={nodes}", "State=RESUME"], check=False, timeout=30)
                    self.resumed.append(nodes)
                    print(f"operator: resumed {nodes} (drained: {reason.strip()})", flush=True)
            if stop.wait(2.0):
                return  # the soak is ending: its teardown must not wait out the watch


class FilesEndpoint:
    """Galaxy's job files API in miniature, with fault modes: ok, error (500), reset, stall."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.mode = "ok"
        self.requests = collections.Counter[str]()
        self.resume = threading.Event()
        self.resume.set()
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _path(self) -> Path | None:
                query = parse_qs(urlsplit(self.path).query)
                path = Path(query.get("path", [""])[0])
                return path if str(path).startswith(str(endpoint.root)) else None

            def _fault(self) -> bool:
                mode = endpoint.mode
                endpoint.requests[f"{self.command} {mode}"] += 1
                if mode == "stall":
                    endpoint.resume.wait(120)
                    return False
                if mode == "error":
                    self._reply(500, b'{"err_msg": "soak: injected failure"}')
                    return True
                if mode == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                    self.close_connection = True
                    return True
                return False

            def _reply(self, code: int, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802
                if self._fault():
                    return
                path = self._path()
                if path is None or not path.is_file():
                    self._reply(404, b"{}")
                    return
                self._reply(200, path.read_bytes())

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", "0"))
                data = self.rfile.read(length)
                if self._fault():
                    return
                path = self._path()
                if path is None:
                    self._reply(403, b"{}")
                    return
                content = _multipart_file(data, str(self.headers.get_param("boundary")))
                temporary = path.with_name(path.name + ".part")
                temporary.write_bytes(content)
                os.replace(temporary, path)
                self._reply(200, b"{}")

        class Server(http.server.ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # the reset and stall faults break connections on purpose

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, job_id: str) -> str:
        return f"{self.base}api/jobs/{job_id}/files?job_key=soak"

    def set_mode(self, mode: str) -> None:
        if mode == "stall":
            self.resume.clear()
        self.mode = mode
        if mode != "stall":
            self.resume.set()

    def stop(self) -> None:
        self.resume.set()
        self.server.shutdown()


def _multipart_file(data: bytes, boundary: str) -> bytes:
    for part in data.split(b"--" + boundary.encode()):
        head, _, body = part.partition(b"\r\n\r\n")
        if b'name="file"' in head:
            return body[:-2] if body.endswith(b"\r\n") else body
    return data


# --- faults ---------------------------------------------------------------------------------------------
class Faults:
    """Runs each fault kind on its own period, in its own thread; records every window."""

    def __init__(self, soak: Soak, periods: dict[str, float]) -> None:
        self.soak = soak
        self.periods = {kind: period for kind, period in periods.items() if period > 0}
        self.stop = threading.Event()
        self.endpoint_modes = ["error", "reset", "stall"]
        self.threads: list[threading.Thread] = []
        self.errors: list[str] = []

    def start(self) -> None:
        for index, (kind, period) in enumerate(sorted(self.periods.items())):
            thread = threading.Thread(
                target=self._loop, args=(kind, period, index), name=f"fault-{kind}", daemon=True
            )
            thread.start()
            self.threads.append(thread)

    def _loop(self, kind: str, period: float, index: int) -> None:
        # Staggered first occurrence, then every period with a little jitter.
        delay = min(period, 3.0 + 4.0 * index)
        while not self.stop.wait(delay):
            label = {"disk": "disk_full", "kill_lwr": "kill_lwr"}.get(kind, kind)
            window = self.soak.ledger.open_fault(label)
            try:
                label = getattr(self, f"_{kind}")()
            except Exception as error:  # noqa: BLE001 - a fault that failed is reported, the soak goes on
                self.errors.append(f"{kind}: {type(error).__name__}: {error}")
                log.exception("fault %s failed", kind)
            self.soak.ledger.close_fault(window, label)
            delay = period * random.uniform(0.8, 1.2)

    def _kill_lwr(self) -> str:
        self.soak.restart_lwr()
        return "kill_lwr"

    def _broker(self) -> str:
        self.soak.broker.restart_app(down=1.0)
        return "broker_restart"

    def _disk(self) -> str:
        try:
            self.soak.disk.fill()
            time.sleep(3.0)
        finally:
            self.soak.disk.empty()  # whatever happened, the disk must not stay full
        return "disk_full"

    def _endpoint(self) -> str:
        mode = self.endpoint_modes[0]
        self.endpoint_modes.append(self.endpoint_modes.pop(0))
        self.soak.endpoint.set_mode(mode)
        time.sleep(4.0 if mode != "stall" else 8.0)
        self.soak.endpoint.set_mode("ok")
        return f"endpoint_{mode}"

    def _slurmctld(self) -> str:
        self.soak.slurmctld.kill_and_restart(down=3.0, stop=self.stop)
        return "kill_slurmctld"


# --- drivers ----------------------------------------------------------------------------------------------
class MockTool:
    def __init__(self, tool_dir: str) -> None:
        self.id = "soak_cat"
        self.version = "1.0"
        self.tool_dir = tool_dir


def transport_error_kind(error: BaseException) -> str:
    """``connection`` (lwr down or restarting: retry), ``reply`` (lwr answered with an error) or ``other``."""
    if isinstance(error, PulsarClientTransportError):
        return "reply" if error.transport_code else "connection"
    if isinstance(error, (ConnectionError, TimeoutError, socket.timeout, http.client.HTTPException)):
        return "connection"  # refused, reset, or a reply cut short (lwr killed while answering)
    return "other"


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.directory: Path = args.directory.resolve()
        self.galaxy = self.directory / "galaxy"
        self.runs = self.directory / "runs"
        self.ledger = Ledger(self.runs)
        # The broker runs as the rabbitmq user, which cannot enter a private directory such as
        # pytest's /tmp/pytest-of-root: its files live in a directory of their own.
        self.broker = PrivateBroker(Path(tempfile.mkdtemp(prefix="lwr-soak-broker-")))
        self.disk = StagingDisk(self.directory / "staging", args.staging_mb)
        self.endpoint = FilesEndpoint(self.galaxy)
        self.slurmctld = Slurmctld()
        self.use_slurm = args.slurm_share > 0 and Slurmctld.available()
        self.lwr_lock = threading.Lock()
        self.lwr: LwrServer | None = None
        self.restarts = 0
        #: Abort: every loop ends (Ctrl-C). ``no_new_jobs``: jobs in flight still finish (``--duration``).
        self.stop = threading.Event()
        self.no_new_jobs = threading.Event()
        self.next_index = 0
        self.index_lock = threading.Lock()
        self.mq_slots = threading.BoundedSemaphore(args.mq_in_flight)
        self.mq_waiting: dict[str, Job] = {}
        self.finish_queue: collections.deque[Job] = collections.deque()
        self.finish_ready = threading.Condition()
        self.mq_manager: Any = None
        self.started = now()

    # --- the server ---------------------------------------------------------------------------------
    def managers_ini(self) -> str:
        text = (
            f"[manager:_default_]\ntype = queued_python\nmax_concurrent_jobs = {self.args.concurrency}\n\n"
            f"[manager:mq]\ntype = queued_python\nmax_concurrent_jobs = {self.args.concurrency}\n"
        )
        if self.use_slurm:
            text += (
                "\n[manager:slurm]\ntype = queued_cli\njob_plugin = Slurm\nmin_polling_interval = 1\n"
                "exit_code_grace = 5\n"
            )
        return text

    def start_lwr(self) -> None:
        self.lwr = LwrServer(
            directory=self.directory / "lwr",
            app_options={
                "staging_directory": str(self.disk.path),
                "message_queue_url": self.broker.url,
                "amqp_acknowledge": "true",
                "amqp_heartbeat": "10",
                "amqp_publish_retry_max": "2",
                "remote_staging_allowed_urls": self.endpoint.base,
                "retain_complete_jobs": f"{self.args.retention:.0f}",
                "retain_failed_jobs": f"{self.args.retention:.0f}",
            },
            job_managers_ini=self.managers_ini(),
        )
        self.lwr.start()

    def restart_lwr(self) -> None:
        with self.lwr_lock:
            assert self.lwr is not None
            self.lwr.kill9()
            self.restarts += 1
            self.lwr.start(wait=False)
        self.lwr.wait_ready(timeout=120)

    # --- job descriptions ------------------------------------------------------------------------------
    def new_job(self, mode: str) -> Job | None:
        with self.index_lock:
            if self.next_index >= self.args.jobs or self.stop.is_set() or self.no_new_jobs.is_set():
                return None
            index = self.next_index
            self.next_index += 1
        job_id = f"{mode}-{index:07d}"
        directory = self.galaxy / job_id
        (directory / "working").mkdir(parents=True, exist_ok=True)
        (directory / "metadata").mkdir(exist_ok=True)
        expected = (f"input of {job_id} " * random.randint(1, 40) + "\n").encode()
        job = Job(job_id, mode, directory, expected, started=now())
        job.input_path.write_bytes(expected)
        job.output_path.write_bytes(b"")  # Galaxy creates its output datasets empty before the job
        self.ledger.add(job)
        return job

    def description(self, job: Job) -> tuple[Any, Any]:

        sleep = random.choice(("0", "0.1", "0.3", "0.7"))
        command = (
            f"echo run >> {self.runs / job.job_id}; sleep {sleep}; cat {job.input_path} > {job.output_path}"
        )
        outputs = ClientOutputs(
            working_directory=str(job.directory / "working"),
            metadata_directory=str(job.directory / "metadata"),
            output_files=[str(job.output_path)],
        )
        description = ClientJobDescription(
            command_line=command,
            tool=MockTool(str(job.directory)),
            input_files=[str(job.input_path)],
            client_outputs=outputs,
            working_directory=str(job.directory / "working"),
            metadata_directory=str(job.directory / "metadata"),
        )
        return description, outputs

    # --- HTTP: submit, poll, collect, clean ------------------------------------------------------------
    def retrying(
        self,
        job: Job,
        step: str,
        action: Callable[[], Any],
        accept: Callable[[BaseException], bool] = lambda error: False,
    ) -> Any:
        """Run ``action``; retry it while lwr is unreachable (up to ``--job-timeout``)."""
        deadline = now() + self.args.job_timeout
        while True:
            try:
                return action()
            except Exception as error:  # noqa: BLE001 - classified below
                if accept(error):
                    return None
                kind = transport_error_kind(error)
                if kind == "connection" and now() < deadline and not self.stop.is_set():
                    time.sleep(0.5)
                    continue
                raise

    def http_worker(self, mode: str) -> None:

        with contextlib.redirect_stdout(io.StringIO()):  # pulsar-app 0.16.0 prints its kwargs here
            manager = build_client_manager()
        target = "slurm" if mode == "slurm" else "_default_"
        while not self.stop.is_set():
            job = self.new_job(mode)
            if job is None:
                return
            try:
                self.http_job(manager, target, job)
            except Exception as error:  # noqa: BLE001 - a driver bug must show, not pass for lwr's loss
                log.exception("driver error on %s", job.job_id)
                job.problem = f"DRIVER ERROR {type(error).__name__}: {error}"[:300]
            job.ended = now()
            self.ledger.judge(job)
            if job.verdict in ("ok", "refused"):
                shutil.rmtree(job.directory, ignore_errors=True)

    def submit_once(self, job: Job, client: Any, description: Any) -> None:
        """``submit_job``, again after a connection error only if lwr did not take the job: the
        reply to a submit lwr accepted can be lost in a kill -9, and a second ``submit_job`` would
        set the (by then maybe finished) job up afresh and run it again, as a resubmission does."""
        deadline = now() + self.args.job_timeout
        while True:
            try:
                submit_job(client, description)
                return
            except Exception as error:  # noqa: BLE001 - classified below
                if getattr(error, "transport_code", None) == 409:
                    return  # already submitted
                if transport_error_kind(error) != "connection" or now() > deadline or self.stop.is_set():
                    raise
            while True:  # lwr is restarting: once it answers, does it have the job?
                time.sleep(0.5)
                try:
                    status = client.raw_check_complete()
                except Exception as error:  # noqa: BLE001
                    if getattr(error, "transport_code", None) == 404:
                        break  # never set up: submit again
                    if now() > deadline or self.stop.is_set():
                        raise
                    continue
                if status.get("status") != "preprocessing":
                    return  # accepted (queued, running or already ended): poll it
                break  # only set up: submitting again is safe

    def http_job(self, manager: Any, target: str, job: Job) -> None:
        """One job as Galaxy's Pulsar runner drives it: submit, poll, collect outputs, clean."""

        assert self.lwr is not None
        client = manager.get_client(
            {"url": self.lwr.url, "manager": target, "default_file_action": "transfer"}, job.job_id
        )
        description, outputs = self.description(job)
        try:
            self.submit_once(job, client, description)
        except Exception as error:  # noqa: BLE001
            text = f"submit: {type(error).__name__}: {error}"[:300]
            if transport_error_kind(error) == "reply":
                job.refused = text  # lwr answered with an error: Galaxy fails the job, knowing why
                time.sleep(1.0)  # and a Galaxy handler would not resubmit at once
            else:
                job.problem = text  # unreachable for the whole timeout, or a client-side failure
            return
        final = self.poll_until_final(job, client)
        if final is None:
            return
        if final.get("status") == "complete":

            def collect() -> None:
                failed = finish_job(
                    client=client,
                    cleanup_job="never",
                    job_completed_normally=True,
                    client_outputs=outputs,
                    pulsar_outputs=PulsarOutputs.from_status_response(final),
                )
                if failed:
                    raise failed[0] if isinstance(failed[0], Exception) else RuntimeError(str(failed))

            try:
                self.retrying(job, "collect", collect)
            except Exception as error:  # noqa: BLE001
                job.problem = f"collecting outputs failed: {type(error).__name__}: {error}"[:300]
            # One more look: a final status must stay final (and the same).
            try:
                again = self.retrying(job, "status", client.raw_check_complete)
                job.statuses.append((now(), str(again.get("status")), again.get("complete") == "true"))
                if again.get("status") != final.get("status"):
                    job.problem = f"final status changed from {final.get('status')} to {again.get('status')}"
            except Exception as error:  # noqa: BLE001
                job.problem = job.problem or f"status after the end failed: {error}"
        try:
            self.retrying(
                job, "clean", client.clean, accept=lambda error: getattr(error, "transport_code", None) == 404
            )
        except Exception as error:  # noqa: BLE001
            log.warning("clean of %s failed: %s", job.job_id, error)

    def poll_until_final(self, job: Job, client: Any) -> dict[str, Any] | None:
        # Slurm's one node is shared with other users' jobs: a Slurm job may wait its turn.
        timeout = self.args.job_timeout * (3 if job.mode == "slurm" else 1)
        deadline = now() + timeout
        interval = 0.2
        while now() < deadline and not self.stop.is_set():
            try:
                status = client.raw_check_complete()
            except Exception as error:  # noqa: BLE001
                if transport_error_kind(error) == "reply":
                    job.problem = f"status poll answered {error}"[:300]
                    return None
                time.sleep(0.5)
                continue
            complete = status.get("complete") == "true"
            job.statuses.append((now(), str(status.get("status")), complete))
            if complete:
                job.finals.append(status)
                return status
            time.sleep(interval)
            interval = min(interval * 1.5, 1.0)
        if self.stop.is_set():
            job.abandoned = True
            return None
        job.problem = f"still {job.statuses[-1][1] if job.statuses else 'unknown'} after {timeout} s"
        return None

    # --- AMQP: publish, hear status updates, check what lwr delivered -----------------------------------
    def start_mq_client(self) -> None:
        if not self.args.no_client_patch:
            patch_pulsar_client_ack_store()

        self.mq_manager = build_client_manager(
            amqp_url=self.broker.url,
            manager="mq",
            amqp_acknowledge=True,
            persistence_directory=str(self.directory / "galaxy-acks"),
            amqp_heartbeat=10,
            amqp_publish_retry=True,
            amqp_publish_retry_max_retries=120,
            amqp_publish_retry_interval_start=0.5,
            amqp_publish_retry_interval_step=0.5,
            amqp_publish_retry_interval_max=2,
        )
        self.mq_manager.ensure_has_status_update_callback(self.on_status_update)
        self.mq_manager.ensure_has_ack_consumers()

    def on_status_update(self, body: dict[str, Any]) -> None:
        job = self.ledger.jobs.get(str(body.get("job_id")))
        if job is None:
            return
        complete = body.get("complete") == "true"
        if job.verdict is not None:
            self.ledger.late_status(job, str(body.get("status")), complete)
            return
        job.statuses.append((now(), str(body.get("status")), complete))
        if complete:
            job.finals.append(body)
            if len(job.finals) == 1:
                with self.finish_ready:
                    self.finish_queue.append(job)
                    self.finish_ready.notify()

    def mq_submitter(self) -> None:

        while not self.stop.is_set() and not self.no_new_jobs.is_set():
            if not self.mq_slots.acquire(timeout=1):
                continue
            job = self.new_job("mq")
            if job is None:
                self.mq_slots.release()
                return
            client = self.mq_manager.get_client(
                {
                    "jobs_directory": str(self.disk.path / "mq"),
                    "files_endpoint": self.endpoint.url(job.job_id),
                    "default_file_action": "remote_transfer",
                },
                job.job_id,
            )
            description, _outputs = self.description(job)
            job.started = now()
            with self.ledger.lock:
                self.mq_waiting[job.job_id] = job
            try:
                submit_job(client, description)
            except Exception as error:  # noqa: BLE001 - the broker refused for longer than the retries
                log.exception("publishing %s failed", job.job_id)
                job.problem = f"publish failed: {type(error).__name__}: {error}"[:300]
                self._mq_done(job)

    def mq_finisher(self) -> None:

        while True:
            with self.finish_ready:
                while not self.finish_queue:
                    if self.stop.is_set() and not self.mq_waiting:
                        return
                    self.finish_ready.wait(1)
                job = self.finish_queue.popleft()
            final = job.finals[0]
            client = self.mq_manager.get_client(
                {
                    "jobs_directory": str(self.disk.path / "mq"),
                    "files_endpoint": self.endpoint.url(job.job_id),
                    "default_file_action": "remote_transfer",
                },
                job.job_id,
            )
            _description, outputs = self.description(job)
            try:
                finish_job(
                    client=client,
                    cleanup_job="always",
                    job_completed_normally=final.get("status") == "complete",
                    client_outputs=outputs,
                    pulsar_outputs=PulsarOutputs.from_status_response(final),
                )
            except Exception as error:  # noqa: BLE001 - what Galaxy would log; the verdict reads the files
                log.debug("finish_job of %s: %s", job.job_id, error)
            # Late duplicates would arrive within a few seconds; judge after a short settle.
            threading.Timer(self.args.settle, self._mq_done, args=(job,)).start()

    def _mq_done(self, job: Job) -> None:
        with self.ledger.lock:
            waiting = self.mq_waiting.pop(job.job_id, None)
        if waiting is None:
            return
        job.ended = job.ended or now()
        self.ledger.judge(job)
        if job.verdict in ("ok", "refused"):
            shutil.rmtree(job.directory, ignore_errors=True)
        self.mq_slots.release()

    def mq_reaper(self) -> None:
        """Free the in-flight slot of a job that had no final status within ``--job-timeout`` (judged at the end)."""
        while True:
            time.sleep(2)
            cutoff = now() - self.args.job_timeout
            with self.ledger.lock:
                late = [job for job in self.mq_waiting.values() if job.started < cutoff and not job.finals]
            for job in late:
                job.problem = f"no final status within {self.args.job_timeout} s"
                self._mq_done(job)
            if self.stop.is_set():  # the run ended (or was interrupted: what waits is in flight)
                return

    # --- the run -------------------------------------------------------------------------------------------
    def progress(self) -> str:
        with self.ledger.lock:
            jobs = list(self.ledger.jobs.values())
            faults = dict(self.ledger.fault_counts)
        verdicts = collections.Counter(job.verdict for job in jobs if job.verdict)
        elapsed = now() - self.started
        done = sum(verdicts.values())
        rate = done / elapsed if elapsed else 0.0
        return (
            f"[{elapsed:7.0f} s] started {len(jobs)} judged {done} ({rate:.1f} jobs/s) "
            + " ".join(f"{v}={verdicts.get(v, 0)}" for v in VERDICTS)
            + f" | faults {sum(faults.values())}: "
            + " ".join(f"{k}={n}" for k, n in sorted(faults.items()))
        )

    def run(self) -> dict[str, Any]:
        args = self.args
        if self.directory.exists():
            self.cleanup_mount_if_any()
            shutil.rmtree(self.directory)
        self.galaxy.mkdir(parents=True)
        self.runs.mkdir()
        logging.getLogger("pulsar").setLevel(logging.ERROR)
        print(
            f"soak: {args.jobs} jobs, shares http/mq/slurm = {args.http_share}/{args.mq_share}/"
            f"{args.slurm_share if self.use_slurm else 0}, directory {self.directory}",
            flush=True,
        )
        self.disk.mount()
        self.broker.start()
        self.start_lwr()
        self.start_mq_client()
        faults = Faults(
            self,
            {
                "kill_lwr": args.kill_every,
                "broker": args.broker_every,
                "disk": args.disk_every,
                "endpoint": args.endpoint_every,
                "slurmctld": args.slurmctld_every if self.use_slurm else 0,
            },
        )
        total_share = args.http_share + args.mq_share + (args.slurm_share if self.use_slurm else 0)
        producers: list[threading.Thread] = []
        helpers: list[threading.Thread] = []

        def spawn(
            into: list[threading.Thread], target: Callable[..., None], count: int, *target_args: Any
        ) -> None:
            for _ in range(count):
                thread = threading.Thread(target=target, args=target_args, daemon=True)
                thread.start()
                into.append(thread)

        # Jobs are taken from one counter by closed loops; HTTP threads in proportion to the shares
        # (the MQ share is paced by its in-flight limit).
        http_workers = max(1, round(args.workers * args.http_share / (total_share - args.mq_share or 1)))
        spawn(producers, self.http_worker, http_workers if args.http_share else 0, "http")
        if self.use_slurm:
            spawn(producers, self.http_worker, max(1, args.workers - http_workers), "slurm")
        if args.mq_share:
            spawn(producers, self.mq_submitter, 2)
            spawn(helpers, self.mq_finisher, 2)
            spawn(helpers, self.mq_reaper, 1)
        faults.start()
        last = now()
        try:
            while any(thread.is_alive() for thread in producers) or self.mq_waiting:
                time.sleep(1)
                if args.duration and now() - self.started > args.duration:
                    self.no_new_jobs.set()
                if now() - last >= args.progress_every:
                    last = now()
                    line = self.progress()
                    print(line, flush=True)
                    if args.results:
                        args.results.with_suffix(".progress").write_text(line + "\n")
        except KeyboardInterrupt:
            # Stop submitting; give the jobs in flight a minute to end, then stop for good.
            print("interrupted: no new jobs; waiting up to 60 s for the jobs in flight", flush=True)
            self.no_new_jobs.set()
            faults.stop.set()
            deadline = now() + 60
            try:
                while now() < deadline and (any(t.is_alive() for t in producers) or self.mq_waiting):
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
            self.stop.set()
            with self.ledger.lock:
                for job in self.mq_waiting.values():
                    job.abandoned = True
        faults.stop.set()
        for thread in faults.threads:
            thread.join(180)
        self.stop.set()
        with self.finish_ready:
            self.finish_ready.notify_all()
        for thread in producers + helpers:
            thread.join(args.job_timeout + 30)
        return self.report(faults)

    def cleanup_mount_if_any(self) -> None:
        if os.path.ismount(self.directory / "staging"):
            StagingDisk(self.directory / "staging", 1).unmount()

    def cancel_own_slurm_jobs(self) -> None:
        """Slurm is shared with other users: leave none of this soak's jobs behind (a slurmctld
        killed while a job ended can keep it RUNNING, holding the node, long after it is gone)."""
        if not self.use_slurm:
            return
        listed = run(["squeue", "-h", "-o", "%i %j"], check=False, timeout=60).stdout.split("\n")
        ours = {f"lwr_{job_id}" for job_id, job in self.ledger.jobs.items() if job.mode == "slurm"}
        ids = [line.split()[0] for line in listed if len(line.split()) == 2 and line.split()[1] in ours]
        if ids:
            run(["scancel", *ids], check=False, timeout=60)
            print(f"cancelled {len(ids)} Slurm jobs of this soak left in the queue", flush=True)

    def teardown(self) -> None:
        try:
            self.cancel_own_slurm_jobs()
        except (OSError, subprocess.SubprocessError) as error:
            log.warning("cancelling this soak's Slurm jobs: %s", error)
        if self.mq_manager is not None:
            try:
                self.mq_manager.shutdown()
            except Exception:  # noqa: BLE001
                pass
        if self.lwr is not None:
            self.lwr.stop()
        self.endpoint.stop()
        self.broker.stop()
        shutil.rmtree(self.broker.directory, ignore_errors=True)
        self.disk.unmount()

    def server_log_lines(self, job_ids: set[str]) -> dict[str, list[str]]:
        """lwr's log lines that name each of ``job_ids`` (for the root cause of a problem job)."""
        found: dict[str, list[str]] = collections.defaultdict(list)
        if not job_ids or self.lwr is None or not self.lwr.log_path.exists():
            return found
        with open(self.lwr.log_path, errors="replace") as handle:
            for line in handle:
                for job_id in job_ids:
                    if job_id in line and len(found[job_id]) < 2000:
                        found[job_id].append(line.rstrip()[:300])
        return found

    def slurm_views(self, job_ids: list[str]) -> dict[str, list[str]]:
        """What Slurm itself says of each problem job (its queue entry, then its accounting), read
        before the teardown cancels what is left: the root cause of a job stuck in the queue."""
        views: dict[str, list[str]] = {}
        for job_id in job_ids:
            lines: list[str] = []
            for argv in (
                ["squeue", "-h", "--states=all", "-o", "%i|%T|%r|%S", "-n", f"lwr_{job_id}"],
                ["sacct", "-n", "-X", "-P", "-o", "JobID,State,ExitCode,Reason", "--name", f"lwr_{job_id}"],
            ):
                try:
                    result = run(argv, check=False, timeout=60)
                    lines.append(f"{argv[0]}: {(result.stdout + result.stderr).strip()[:400]}")
                except (OSError, subprocess.SubprocessError) as error:
                    lines.append(f"{argv[0]}: {error}")
            views[job_id] = lines
        return views

    def report(self, faults: Faults) -> dict[str, Any]:
        jobs = list(self.ledger.jobs.values())
        for job in jobs:
            self.ledger.judge(job)
        by_mode: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        for job in jobs:
            by_mode[job.mode][str(job.verdict)] += 1
        totals = collections.Counter(str(job.verdict) for job in jobs)
        problems = [job for job in jobs if job.verdict in BAD_VERDICTS]
        refusals = collections.Counter(job.detail[:90] for job in jobs if job.verdict == "refused")
        elapsed = now() - self.started
        server_lines = self.server_log_lines({job.job_id for job in problems[:50]})
        slurm_views = self.slurm_views([job.job_id for job in problems[:50] if job.mode == "slurm"])
        result = {
            "jobs": len(jobs),
            "seconds": round(elapsed, 1),
            "jobs_per_second": round(len(jobs) / elapsed, 2),
            "verdicts": {v: totals.get(v, 0) for v in VERDICTS},
            "by_mode": {mode: dict(counter) for mode, counter in by_mode.items()},
            "faults": dict(self.ledger.fault_counts),
            "fault_errors": faults.errors,
            "lwr_restarts": self.restarts,
            "slurm_nodes_resumed": len(self.slurmctld.resumed),
            "refusals": dict(refusals.most_common(10)),
            "problems": [
                {
                    "job_id": job.job_id,
                    "mode": job.mode,
                    "verdict": job.verdict,
                    "detail": job.detail,
                    "statuses": [s for _t, s, _c in job.statuses][-8:],
                    "lwr_log": _head_and_tail(server_lines.get(job.job_id, []), 6),
                    **({"slurm": slurm_views.get(job.job_id, [])} if job.mode == "slurm" else {}),
                }
                for job in problems[:50]
            ],
            "endpoint_requests": dict(self.endpoint.requests),
            "stopped_early": self.no_new_jobs.is_set() and self.next_index < self.args.jobs,
        }
        print(self.progress(), flush=True)
        print(
            f"faults: {dict(self.ledger.fault_counts)}; lwr restarted {self.restarts} times; "
            f"Slurm nodes resumed after a duplicate-id drain: {len(self.slurmctld.resumed)}; "
            f"fault errors: {faults.errors[:5]}",
            flush=True,
        )
        for mode, counter in sorted(by_mode.items()):
            print(f"  {mode:6s} " + " ".join(f"{v}={counter.get(v, 0)}" for v in VERDICTS), flush=True)
        if refusals:
            print(f"  refusals: {dict(refusals.most_common(6))}", flush=True)
        for problem in result["problems"][:20]:
            print(f"  PROBLEM {problem}", flush=True)
        return result


def _head_and_tail(lines: list[str], count: int) -> list[str]:
    """The first and last ``count`` lines (a job's log is told by how it started and ended)."""
    if len(lines) <= 2 * count:
        return lines
    return [*lines[:count], f"... {len(lines) - 2 * count} lines ...", *lines[-count:]]


def verdict_line(result: dict[str, Any], expected_faults: list[str]) -> str:
    verdicts = result["verdicts"]
    bad = sum(verdicts[v] for v in BAD_VERDICTS)
    missing = [kind for kind in expected_faults if not any(k.startswith(kind) for k in result["faults"])]
    ok = bad == 0 and not missing and not result["fault_errors"]
    counts = " ".join(f"{v}={verdicts[v]}" for v in VERDICTS)
    faults = sum(result["faults"].values())
    extra = f" missing faults: {missing}" if missing else ""
    extra += " (stopped before --jobs)" if result.get("stopped_early") else ""
    extra += f" fault errors: {len(result['fault_errors'])}" if result["fault_errors"] else ""
    return (
        f"SOAK {'PASS' if ok else 'FAIL'} {result['jobs']} jobs in {result['seconds']:.0f} s: {counts}; "
        f"{faults} faults, lwr restarted {result['lwr_restarts']} times{extra}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--directory", type=Path, default=Path("/tmp/lwr-soak"))
    parser.add_argument("--duration", type=float, default=0, help="stop submitting after this many seconds")
    parser.add_argument("--workers", type=int, default=12, help="HTTP client threads (HTTP and Slurm jobs)")
    parser.add_argument("--mq-in-flight", type=int, default=32, help="AMQP jobs in flight at once")
    parser.add_argument(
        "--concurrency", type=int, default=8, help="max_concurrent_jobs of lwr's local managers"
    )
    parser.add_argument("--http-share", type=float, default=45)
    parser.add_argument("--mq-share", type=float, default=50)
    parser.add_argument("--slurm-share", type=float, default=5)
    parser.add_argument("--staging-mb", type=int, default=256)
    parser.add_argument(
        "--retention",
        type=float,
        default=120,
        help="lwr's retain_complete_jobs and retain_failed_jobs, seconds",
    )
    parser.add_argument("--job-timeout", type=float, default=300)
    parser.add_argument(
        "--settle", type=float, default=3.0, help="seconds to wait for late duplicate statuses"
    )
    parser.add_argument("--kill-every", type=float, default=15)
    parser.add_argument("--broker-every", type=float, default=60)
    parser.add_argument("--disk-every", type=float, default=120)
    parser.add_argument("--endpoint-every", type=float, default=45)
    parser.add_argument("--slurmctld-every", type=float, default=300)
    parser.add_argument("--progress-every", type=float, default=30)
    parser.add_argument("--results", type=Path)
    parser.add_argument(
        "--no-client-patch",
        action="store_true",
        help="leave pulsar-app's broken acknowledgement manager as it is",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # SIGTERM: stop and tear down (broker, tmpfs, lwr) like Ctrl-C

    signal.signal(signal.SIGTERM, interrupt)
    soak = Soak(args)
    expected = [
        kind
        for kind, period in (
            ("kill_lwr", args.kill_every),
            ("broker_restart", args.broker_every),
            ("disk_full", args.disk_every),
            ("endpoint", args.endpoint_every),
            ("kill_slurmctld", args.slurmctld_every if soak.use_slurm else 0),
        )
        if period > 0
    ]
    try:
        result = soak.run()
    finally:
        soak.teardown()
    if args.results:
        args.results.write_text(json.dumps(result, indent=2) + "\n")
    line = verdict_line(result, expected)
    print(line, flush=True)
    return 0 if line.startswith("SOAK PASS") else 1


if __name__ == "__main__":
    sys.exit(main())
