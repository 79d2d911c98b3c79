"""Job throughput and latency: lwr vs real Pulsar, driven by the real Pulsar client.

Prints figures; it is not a test and asserts nothing but correct job output.

Each job is the full Galaxy-style life cycle through ``pulsar.client`` (as pulsar-app's own
``pulsar/client/test/check.py`` drives it):

1. ``submit_job`` (``pulsar.client.staging.up``) with a ``ClientJobDescription``: setup, one
   small input file and one config file staged with action ``transfer``, then launch;
2. ``get_status`` polled every 50 ms until the job is final, then ``full_status``;
3. ``finish_job`` (``pulsar.client.staging.down``): the output is downloaded (``transfer``);
4. ``clean``.

Latency is submit start -> output downloaded (the clean after it is not in the latency, but
is in the wall time that jobs/s is computed from). Both servers are started by this script
on free loopback ports, in the same run, each with ONE ``queued_python`` manager running 8
jobs at once (lwr's ``max_concurrent_jobs = 8``, Pulsar's ``num_concurrent_jobs: 8``); lwr via ``tests/server.py``'s ``LwrServer``, Pulsar via
``bench/pulsar_server.py``. lwr is served by its own HTTP server (``egg:lwr#http``, its default),
Pulsar by Paste's ``egg:Paste#http``, both with 16 worker threads; ``pulsar-gunicorn`` serves Pulsar
the way pulsar-app 0.16.0's ``pulsar-serve`` does, ``lwr-waitress`` serves lwr with waitress.

Usage::

    .venv/bin/python bench/jobs.py                       # N=100, concurrency 1 and 8, 2 repeats
    .venv/bin/python bench/jobs.py -n 200 --concurrency 1 8 16 --repeat 3
    .venv/bin/python bench/jobs.py --servers lwr --keep   # lwr only, keep server directories
    .venv/bin/python bench/jobs.py --servers lwr lwr-waitress pulsar pulsar-gunicorn --request-queue-size 128
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

import psutil  # noqa: E402
from pulsar.client.manager import build_client_manager  # noqa: E402
from pulsar.client.staging.down import finish_job  # noqa: E402
from pulsar.client.staging.models import ClientJobDescription, ClientOutputs, PulsarOutputs  # noqa: E402
from pulsar.client.staging.up import submit_job  # noqa: E402
from pulsar_server import PulsarServer  # noqa: E402

from server import LwrServer  # noqa: E402

MAX_CONCURRENT_JOBS = 8
POLL_INTERVAL = 0.05
FINAL_STATES = {"complete", "failed", "cancelled", "lost"}
INPUT_CONTENTS = b"lwr benchmark input\n" * 8
CONFIG_CONTENTS = b"# config file\nkey = value\n"
JOB_MANAGERS_INI = f"[manager:_default_]\ntype = queued_python\nmax_concurrent_jobs = {MAX_CONCURRENT_JOBS}\n"


class MockTool:
    """What ClientJobDescription wants of a Galaxy tool: an id, a version and a directory."""

    def __init__(self, tool_dir: str) -> None:
        self.id = "bench_cat"
        self.version = "1.0"
        self.tool_dir = tool_dir


SERVER_KINDS = ["lwr", "lwr-waitress", "pulsar", "pulsar-gunicorn"]


def start_server(kind: str, directory: Path, request_queue_size: int | None = None) -> tuple[object, int]:
    """Start one server of ``kind`` (see SERVER_KINDS); return it and the pid to account CPU/RSS to.

    ``request_queue_size`` sets Paste's listen backlog (Paste's own default is 5); it does not
    apply to waitress (backlog 1024) or gunicorn (2048).
    """
    if kind in ("lwr", "lwr-waitress"):
        cls = WaitressLwrServer if kind == "lwr-waitress" else LwrServer
        options = (
            {"request_queue_size": str(request_queue_size)} if request_queue_size and kind == "lwr" else {}
        )
        lwr = cls(directory=directory, job_managers_ini=JOB_MANAGERS_INI, server_options=options).start()
        return lwr, lwr.process.pid  # type: ignore[union-attr]
    if kind in ("pulsar", "pulsar-gunicorn"):
        pulsar = PulsarServer(
            directory=directory,
            max_concurrent_jobs=MAX_CONCURRENT_JOBS,
            server="gunicorn" if kind == "pulsar-gunicorn" else "paste",
            request_queue_size=request_queue_size,
        ).start()
        return pulsar, pulsar.pid
    raise ValueError(kind)


class WaitressLwrServer(LwrServer):
    """LwrServer served by waitress (``egg:waitress#main``) instead of Paste's httpserver."""

    def write_config(self) -> None:
        super().write_config()
        text = self.config_path.read_text()
        text = text.replace("use = egg:lwr#http", "use = egg:waitress#main").replace(
            "threadpool_workers = 16", "threads = 16"
        )
        self.config_path.write_text(text)


@dataclass
class RunResult:
    server: str
    concurrency: int
    jobs: int
    wall: float
    latencies: list[float]
    phases: dict[str, float]
    cpu: dict[str, float]
    requests: dict[str, tuple[float, float]]

    @property
    def jobs_per_s(self) -> float:
        return self.jobs / self.wall

    def pct(self, q: float) -> float:
        data = sorted(self.latencies)
        if not data:
            return float("nan")
        # nearest-rank percentile
        rank = max(1, min(len(data), int(round(q / 100.0 * len(data) + 0.5))))
        return data[rank - 1]


def server_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds of the server process (all threads, and any helper children alive now) and
    of its reaped children (the job scripts), for CPU-per-job figures."""
    process = psutil.Process(pid)
    own = process.cpu_times()
    total = own.user + own.system
    reaped = own.children_user + own.children_system
    for child in process.children(recursive=True):
        try:
            times = child.cpu_times()
        except psutil.Error:
            continue
        if child.name() in ("bash", "sh", "cat", "sleep"):
            continue  # a job script still running: its time is counted once it is reaped
        # a long-lived helper (gunicorn's worker): its own time is the server's, its reaped
        # children (the job scripts it ran) are the jobs'
        total += times.user + times.system
        reaped += times.children_user + times.children_system
    return total, reaped


def client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Bench:
    def __init__(self, url: str, name: str, workdir: Path, pid: int) -> None:
        self.url = url
        self.pid = pid
        self.name = name
        self.workdir = workdir
        self.manager = build_client_manager()
        self.counter = 0
        self.lock = threading.Lock()
        self.phases: dict[str, list[float]] = {}
        self.requests: dict[str, list[float]] = {}

    def _next_id(self) -> str:
        with self.lock:
            self.counter += 1
            return f"bench{os.getpid()}x{self.counter}"

    def one_job(self) -> float:
        """Run one job end to end; return its latency (submit start -> output downloaded)."""
        job_id = self._next_id()
        local = self.workdir / job_id
        tool_dir = local / "tool"
        working = local / "working"
        metadata = local / "metadata"
        for directory in (tool_dir, working, metadata):
            directory.mkdir(parents=True)
        input_path = local / "dataset_1.dat"
        input_path.write_bytes(INPUT_CONTENTS)
        config_path = working / "config.txt"
        config_path.write_bytes(CONFIG_CONTENTS)
        output_path = local / "dataset_2.dat"

        client = self.manager.get_client({"url": self.url, "default_file_action": "transfer"}, job_id)
        raw_execute = client._raw_execute

        def timed_execute(command: str, *args: object, **kwargs: object) -> object:
            began = time.perf_counter()
            try:
                return raw_execute(command, *args, **kwargs)
            finally:
                with self.lock:
                    self.requests.setdefault(command, []).append(time.perf_counter() - began)

        client._raw_execute = timed_execute  # type: ignore[method-assign]
        command_line = f"cat '{input_path}' '{config_path}' > '{output_path}'"
        client_outputs = ClientOutputs(
            working_directory=str(working), metadata_directory=str(metadata), output_files=[str(output_path)]
        )
        description = ClientJobDescription(
            command_line=command_line,
            tool=MockTool(str(tool_dir)),
            config_files=[str(config_path)],
            input_files=[str(input_path)],
            client_outputs=client_outputs,
            working_directory=str(working),
            metadata_directory=str(metadata),
        )
        original_launch = client.launch

        def checked_launch(command_line: str, *args: object, **kwargs: object) -> object:
            # The client must have rewritten every local path to the server's staged copy; a
            # command still naming the client's files would "work" on loopback without staging.
            if str(local) in command_line:
                raise RuntimeError(f"{self.name}: command line not rewritten: {command_line}")
            return original_launch(command_line, *args, **kwargs)

        client.launch = checked_launch  # type: ignore[method-assign]
        started = time.perf_counter()
        returned_id = submit_job(client, description)
        if returned_id:
            client.job_id = returned_id
        submitted = time.perf_counter()
        deadline = time.monotonic() + 300
        while True:
            status = client.get_status()
            if status in FINAL_STATES:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: job {job_id} not final after 300 s (status {status})")
            time.sleep(POLL_INTERVAL)
        final_seen = time.perf_counter()
        full = client.full_status()
        if status != "complete":
            raise RuntimeError(f"{self.name}: job {job_id} ended {status}: {json.dumps(full)[:2000]}")
        failures = finish_job(
            client=client,
            cleanup_job="never",
            job_completed_normally=True,
            client_outputs=client_outputs,
            pulsar_outputs=PulsarOutputs.from_status_response(full),
        )
        downloaded = time.perf_counter()
        latency = downloaded - started
        if failures:
            raise RuntimeError(f"{self.name}: job {job_id} output collection failed: {failures}")
        client.clean()
        cleaned = time.perf_counter()
        with self.lock:
            for phase, value in (
                ("submit", submitted - started),
                ("wait", final_seen - submitted),
                ("finish", downloaded - final_seen),
                ("clean", cleaned - downloaded),
            ):
                self.phases.setdefault(phase, []).append(value)
        if output_path.read_bytes() != INPUT_CONTENTS + CONFIG_CONTENTS:
            raise RuntimeError(
                f"{self.name}: job {job_id} output is wrong: {output_path.read_bytes()[:200]!r}"
            )
        shutil.rmtree(local, ignore_errors=True)
        return latency

    def run(self, n: int, concurrency: int) -> RunResult:
        latencies: list[float] = []
        self.phases = {}
        self.requests = {}
        server_before = server_cpu(self.pid)
        client_before = client_cpu()
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=f"{self.name}-client") as pool:
            for latency in pool.map(lambda _: self.one_job(), range(n)):
                latencies.append(latency)
        wall = time.perf_counter() - started
        server_after = server_cpu(self.pid)
        cpu = {
            "server": server_after[0] - server_before[0],
            "jobs": server_after[1] - server_before[1],
            "client": client_cpu() - client_before,
        }
        phases = {phase: statistics.median(values) for phase, values in self.phases.items()}
        requests = {
            command: (statistics.median(values), len(values) / n) for command, values in self.requests.items()
        }
        return RunResult(self.name, concurrency, n, wall, latencies, phases, cpu, requests)


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f}"


def print_result(result: RunResult, repeat: int) -> None:
    print(
        f"  {result.server:<8} c={result.concurrency:<3} run {repeat}: {result.jobs_per_s:7.2f} jobs/s  "
        f"p50 {fmt_ms(result.pct(50))} ms  p95 {fmt_ms(result.pct(95))} ms  p99 {fmt_ms(result.pct(99))} ms  "
        f"(wall {result.wall:.1f} s; median ms submit {result.phases['submit'] * 1000:.1f} "
        f"wait {result.phases['wait'] * 1000:.1f} finish {result.phases['finish'] * 1000:.1f} "
        f"clean {result.phases['clean'] * 1000:.1f}; CPU ms/job server {result.cpu['server'] / result.jobs * 1000:.1f} "
        f"job scripts {result.cpu['jobs'] / result.jobs * 1000:.1f} client {result.cpu['client'] / result.jobs * 1000:.1f})",
        flush=True,
    )
    print(
        "           per request: "
        + ", ".join(
            f"{command} {median * 1000:.1f} ms x{per_job:.1f}"
            for command, (median, per_job) in sorted(result.requests.items())
        ),
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="lwr vs Pulsar job throughput/latency through pulsar.client")
    parser.add_argument("-n", "--jobs", type=int, default=100, help="jobs per configuration (default 100)")
    parser.add_argument(
        "--concurrency",
        type=int,
        nargs="+",
        default=[1, 8],
        help="client threads, one job at a time each (default: 1 8)",
    )
    parser.add_argument("--repeat", type=int, default=2, help="runs of each configuration (default 2)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed jobs per server first (default 3)")
    parser.add_argument(
        "--servers",
        nargs="+",
        choices=SERVER_KINDS,
        default=["lwr", "pulsar"],
        help="servers to run, interleaved (default: lwr pulsar). lwr uses its own egg:lwr#http, "
        "pulsar Paste's egg:Paste#http (16 threads each); lwr-waitress uses waitress (16 threads); pulsar-gunicorn "
        "is pulsar-app's own pulsar-serve setup (gunicorn, 1 worker, 4 gthreads)",
    )
    parser.add_argument(
        "--request-queue-size",
        type=int,
        default=128,
        help="listen backlog of BOTH servers (default 128, lwr's own default; Paste's is 5)",
    )
    parser.add_argument(
        "--client-dir",
        type=Path,
        default=Path("/dev/shm") if os.access("/dev/shm", os.W_OK) else None,
        help="where the client's per-job files go (default /dev/shm, a tmpfs, so the client's own "
        "file churn does not load the servers' ext4 inode allocator; servers stay on disk)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directories")
    parser.add_argument("--json", type=Path, help="also write all results to this JSON file")
    args = parser.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the servers started below are stopped, not orphaned.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    base = Path(tempfile.mkdtemp(prefix="lwr-bench-jobs-"))
    client_base = Path(tempfile.mkdtemp(prefix="lwr-bench-jobs-client-", dir=args.client_dir))
    servers: dict[str, object] = {}
    benches: dict[str, Bench] = {}
    try:
        for kind in args.servers:
            server, pid = start_server(kind, base / f"{kind}-server", args.request_queue_size)
            servers[kind] = server
            benches[kind] = Bench(server.url, kind, client_base / f"{kind}-client", pid)  # type: ignore[attr-defined]
        print(f"# listen backlog (request_queue_size) of both servers: {args.request_queue_size}")
        print(f"# servers' directories under {base}; client files under {client_base}")
        print(
            f"# jobs benchmark: N={args.jobs}, concurrency {args.concurrency}, repeat {args.repeat}, "
            f"poll {POLL_INTERVAL * 1000:.0f} ms, queued_python max_concurrent_jobs={MAX_CONCURRENT_JOBS} on both"
        )
        for name, server in servers.items():
            print(f"# {name}: {server.url} (pid {benches[name].pid})")  # type: ignore[attr-defined]
        for bench in benches.values():
            for _ in range(args.warmup):
                bench.one_job()
        results: dict[tuple[str, int], list[RunResult]] = {}
        for concurrency in args.concurrency:
            for repeat in range(1, args.repeat + 1):
                for name, bench in benches.items():  # interleaved, so load noise hits both
                    result = bench.run(args.jobs, concurrency)
                    results.setdefault((name, concurrency), []).append(result)
                    print_result(result, repeat)

        print("\n# best run of each configuration (highest jobs/s); median over runs in brackets")
        header = f"{'server':<8} {'conc':>4} {'jobs/s':>16} {'p50 ms':>18} {'p95 ms':>18} {'p99 ms':>18}"
        print(header)
        best: dict[tuple[str, int], RunResult] = {}
        for (name, concurrency), runs in results.items():
            top = max(runs, key=lambda r: r.jobs_per_s)
            best[(name, concurrency)] = top
            med_rate = statistics.median(r.jobs_per_s for r in runs)
            med = {q: statistics.median(r.pct(q) for r in runs) for q in (50, 95, 99)}
            print(
                f"{name:<8} {concurrency:>4} {top.jobs_per_s:>7.2f} [{med_rate:>6.2f}] "
                f"{top.pct(50) * 1000:>8.1f} [{med[50] * 1000:>7.1f}] "
                f"{top.pct(95) * 1000:>8.1f} [{med[95] * 1000:>7.1f}] "
                f"{top.pct(99) * 1000:>8.1f} [{med[99] * 1000:>7.1f}]"
            )
        lwrs = [kind for kind in args.servers if kind.startswith("lwr")]
        pulsars = [kind for kind in args.servers if kind.startswith("pulsar")]
        for lwr_kind in lwrs:
            for pulsar_kind in pulsars:
                print(
                    f"\n# {lwr_kind} / {pulsar_kind} (best runs): jobs/s ratio (higher is better), "
                    "latency ratio (lower is better)"
                )
                for concurrency in args.concurrency:
                    lwr_r, pul_r = best[(lwr_kind, concurrency)], best[(pulsar_kind, concurrency)]
                    print(
                        f"c={concurrency:<3} jobs/s x{lwr_r.jobs_per_s / pul_r.jobs_per_s:5.2f}   "
                        f"p50 x{lwr_r.pct(50) / pul_r.pct(50):5.3f}   p95 x{lwr_r.pct(95) / pul_r.pct(95):5.3f}   "
                        f"p99 x{lwr_r.pct(99) / pul_r.pct(99):5.3f}"
                    )
                for concurrency in args.concurrency:
                    lwr_runs, pul_runs = results[(lwr_kind, concurrency)], results[(pulsar_kind, concurrency)]
                    rate = statistics.median(r.jobs_per_s for r in lwr_runs) / statistics.median(
                        r.jobs_per_s for r in pul_runs
                    )
                    p50 = statistics.median(r.pct(50) for r in lwr_runs) / statistics.median(
                        r.pct(50) for r in pul_runs
                    )
                    print(f"c={concurrency:<3} (medians of runs) jobs/s x{rate:5.2f}   p50 x{p50:5.3f}")
                if 8 in args.concurrency:
                    ratio = best[(lwr_kind, 8)].jobs_per_s / best[(pulsar_kind, 8)].jobs_per_s
                    print(f"target jobs/s >= 3x at c=8: x{ratio:.2f} -> {'MET' if ratio >= 3 else 'NOT MET'}")
                if 1 in args.concurrency:
                    ratio = best[(lwr_kind, 1)].pct(50) / best[(pulsar_kind, 1)].pct(50)
                    print(
                        f"target p50 <= 1/3 at c=1: x{ratio:.3f} -> {'MET' if ratio <= 1 / 3 else 'NOT MET'}"
                    )
        if args.json:
            args.json.write_text(
                json.dumps(
                    [
                        {
                            "server": r.server,
                            "concurrency": r.concurrency,
                            "jobs": r.jobs,
                            "wall": r.wall,
                            "jobs_per_s": r.jobs_per_s,
                            "p50": r.pct(50),
                            "p95": r.pct(95),
                            "p99": r.pct(99),
                            "median_phases": r.phases,
                            "cpu_seconds": r.cpu,
                            "median_request_seconds": {c: m for c, (m, _) in r.requests.items()},
                        }
                        for runs in results.values()
                        for r in runs
                    ],
                    indent=2,
                )
            )
    finally:
        for server in servers.values():
            server.stop()  # type: ignore[attr-defined]
        if args.keep:
            print(f"# kept {base} and {client_base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
            shutil.rmtree(client_base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
