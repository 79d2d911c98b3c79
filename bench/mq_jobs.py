"""Benchmark: N trivial jobs through RabbitMQ, lwr against real Pulsar (pulsar-app), same run.

Each server gets its own RabbitMQ vhost and a ``queued_python`` manager running the same number
of jobs at once. The script publishes N ``setup`` messages (``command_line = "true"``, set up by
the message, no staging) as fast as it can and listens on ``status_update``; for every job it
records the time from its publish to its final status. It prints jobs/s (N over first publish
to last final status) and the p50/p95 latency for each server, and the ratio.

    .venv/bin/python bench/mq_jobs.py [--jobs 200] [--concurrency 8] [--rounds 3] [--only lwr|pulsar]

Both servers are started once; the rounds alternate between them (so a busy moment of a
shared machine hits both) and the medians are compared.

Needs RabbitMQ on 127.0.0.1:5672 (guest/guest) and ``rabbitmqctl`` (for the vhosts).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import kombu

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "messaging"))

from mq_helpers import Vhost, exchange, queue_name  # noqa: E402

from server import LwrServer  # noqa: E402

MANAGER = "_default_"


@dataclass
class Result:
    name: str
    jobs: int
    seconds: float
    latencies: list[float]
    failed: int

    @property
    def throughput(self) -> float:
        return self.jobs / self.seconds

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]

    def line(self) -> str:
        return (
            f"{self.name:7s} {self.jobs} jobs in {self.seconds:6.2f} s = {self.throughput:7.1f} jobs/s   "
            f"publish->final p50 {self.percentile(0.5) * 1000:7.0f} ms  p95 {self.percentile(0.95) * 1000:7.0f} ms"
            f"{f'   FAILED {self.failed}' if self.failed else ''}"
        )


def pulsar_app_yml(directory: Path, url: str, concurrency: int) -> dict[str, object]:
    """pulsar-main's app.yml: every key one Pulsar reads (``num_concurrent_jobs``, not lwr's name)."""
    return {
        "message_queue_url": url,
        "staging_directory": str(directory / "staging"),
        "persistence_directory": str(directory / "persisted_data"),
        "conda_auto_init": False,
        "conda_auto_install": False,
        "managers": {MANAGER: {"type": "queued_python", "num_concurrent_jobs": concurrency}},
    }


class PulsarMq:
    """pulsar-app's ``pulsar-main`` (webless) consuming a vhost, one queued_python manager."""

    def __init__(self, directory: Path, url: str, concurrency: int) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "app.yml").write_text(json.dumps(pulsar_app_yml(directory, url, concurrency)))
        log = open(directory / "pulsar.log", "ab")
        self.process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "pulsar-main"),
                "-c",
                str(directory),
                "--app_conf_path",
                str(directory / "app.yml"),
            ],
            cwd=directory,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def wait_consumer(url: str, timeout: float = 60) -> None:
    """Until the server consumes its setup queue."""
    key = queue_name(MANAGER, "setup")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with kombu.Connection(url) as connection:
                _name, _count, consumers = connection.channel().queue_declare(queue=key, passive=True)
                if consumers:
                    return
        except Exception:  # noqa: BLE001 - the queue may not exist yet
            pass
        time.sleep(0.2)
    raise RuntimeError("server did not start consuming")


def run_jobs(name: str, url: str, jobs: int, prefix: str) -> Result:
    """Publish ``jobs`` setups, wait for every final status."""
    sent: dict[str, float] = {}
    done: dict[str, float] = {}
    statuses: dict[str, str] = {}
    finished = threading.Event()
    ready = threading.Event()
    update_key = queue_name(MANAGER, "status_update")

    def listen() -> None:
        with kombu.Connection(url) as connection:
            q = kombu.Queue(update_key, exchange(), routing_key=update_key, durable=True)

            def on_message(body: dict, message: kombu.Message) -> None:
                job_id = body.get("job_id")
                if body.get("complete") == "true" and job_id in sent and job_id not in done:
                    done[job_id] = time.perf_counter()
                    statuses[job_id] = body.get("status", "")
                    if len(done) == jobs:
                        finished.set()
                message.ack()

            with kombu.Consumer(
                connection, queues=[q], callbacks=[on_message], accept=["json"], prefetch_count=500
            ):
                ready.set()
                while not finished.is_set():
                    try:
                        connection.drain_events(timeout=0.5)
                    except TimeoutError:
                        pass

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    ready.wait(10)
    setup_key = queue_name(MANAGER, "setup")
    with kombu.Connection(url) as connection:
        producer = kombu.Producer(connection.channel())
        kombu.Queue(setup_key, exchange(), routing_key=setup_key, durable=True)(producer.channel).declare()
        for index in range(jobs):
            job_id = f"{prefix}-{index}"
            body = {
                "job_id": job_id,
                "command_line": "true",
                "env": [],
                "remote_staging": {},
                "setup_params": {"job_id": job_id, "tool_id": "bench", "tool_version": "1.0"},
            }
            sent[job_id] = time.perf_counter()
            producer.publish(
                body, serializer="json", exchange=exchange(), routing_key=setup_key, delivery_mode=2
            )
    first = min(sent.values())
    if not finished.wait(600):
        raise RuntimeError(f"{name}: only {len(done)} of {jobs} jobs finished")
    last = max(done.values())
    latencies = [done[j] - sent[j] for j in sent]
    failed = sum(1 for status in statuses.values() if status != "complete")
    return Result(name, jobs, last - first, latencies, failed)


class Target:
    """One server under test: its vhost and how to stop it."""

    def __init__(self, name: str, vhost: Vhost, stop: Callable[[], None]) -> None:
        self.name = name
        self.vhost = vhost
        self._stop = stop

    def round(self, jobs: int) -> Result:
        return run_jobs(self.name, self.vhost.url, jobs, f"{self.name}-{uuid.uuid4().hex[:6]}")

    def stop(self) -> None:
        try:
            self._stop()
        finally:
            self.vhost.delete()


def start_lwr(root: Path, concurrency: int, persistence: str | None = None) -> Target:
    vhost = Vhost()
    options = {"message_queue_url": vhost.url}
    if persistence:
        options["persistence_directory"] = str(Path(persistence) / uuid.uuid4().hex)
    server = LwrServer(
        directory=root / "lwr",
        app_options=options,
        job_managers_ini=f"[manager:{MANAGER}]\ntype = queued_python\nmax_concurrent_jobs = {concurrency}\n",
    )
    server.start()
    target = Target("lwr", vhost, server.stop)
    wait_consumer(vhost.url)
    run_jobs("warmup", vhost.url, 5, "warm")
    return target


def start_pulsar(root: Path, concurrency: int) -> Target:
    vhost = Vhost()
    pulsar = PulsarMq(root / "pulsar", vhost.url, concurrency)
    target = Target("pulsar", vhost, pulsar.stop)
    wait_consumer(vhost.url)
    run_jobs("warmup", vhost.url, 5, "warm")
    return target


def median_line(name: str, results: list[Result]) -> str:
    throughput = statistics.median(r.throughput for r in results)
    p50 = statistics.median(r.percentile(0.5) for r in results)
    p95 = statistics.median(r.percentile(0.95) for r in results)
    return (
        f"{name:7s} median of {len(results)} rounds: {throughput:7.1f} jobs/s   p50 {p50 * 1000:7.0f} ms  "
        f"p95 {p95 * 1000:7.0f} ms"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds against each server")
    parser.add_argument("--only", choices=["lwr", "pulsar"])
    parser.add_argument("--keep", action="store_true", help="keep the servers' directories (logs)")
    parser.add_argument(
        "--lwr-persistence",
        metavar="DIR",
        help="lwr's persistence_directory under DIR (e.g. a tmpfs, to see the cost of fsync)",
    )
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="lwr-mq-bench."))
    targets: list[Target] = []
    results: dict[str, list[Result]] = {}
    try:
        if args.only != "pulsar":
            targets.append(start_lwr(root, args.concurrency, args.lwr_persistence))
        if args.only != "lwr":
            targets.append(start_pulsar(root, args.concurrency))
        for _ in range(args.rounds):
            for target in targets:
                result = target.round(args.jobs)
                results.setdefault(target.name, []).append(result)
                print(result.line(), flush=True)
    finally:
        for target in targets:
            target.stop()
        if args.keep:
            print(f"server directories kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    for name, rounds in results.items():
        print(median_line(name, rounds))
    if len(results) == 2:
        lwr = statistics.median(r.throughput for r in results["lwr"])
        pulsar = statistics.median(r.throughput for r in results["pulsar"])
        lwr_p50 = statistics.median(r.percentile(0.5) for r in results["lwr"])
        pulsar_p50 = statistics.median(r.percentile(0.5) for r in results["pulsar"])
        print(
            f"throughput ratio lwr/pulsar: {lwr / pulsar:.2f}x   p50 latency ratio pulsar/lwr: "
            f"{pulsar_p50 / lwr_p50:.2f}x   (N={args.jobs}, concurrency={args.concurrency}, {os.cpu_count()} CPUs)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
