"""Ten thousand in flight: lwr's memory, status latency and restart time with many jobs at once.

One lwr (``tests/server.py``'s ``LwrServer``), one ``queued_python`` manager running ``--running``
jobs at once; ``--jobs`` cheap jobs (``sleep``) are set up and submitted over HTTP, so ``--running``
run and the rest wait queued. Then it measures, against the issue's targets:

* the server process's RSS (target < 200 MiB with 10,000 queued and 1,000 running);
* status latency p50/p99 while ``--rate`` status requests/s arrive for ``--seconds`` (target p99
  < 10 ms at 500/s);
* a ``kill -9`` and restart: seconds until it answers again, its records recovered (target
  < 10 s for 10,000 records).

At the end the running jobs are cancelled and the server stopped. Usage::

    python bench/inflight.py --jobs 11000 --running 1000
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent.parent / "tests"))

from server import LwrServer  # noqa: E402  (tests/server.py)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Client:
    """One keep-alive connection per thread."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.local = threading.local()

    def request(self, method: str, path: str, params: dict[str, str] | None = None) -> tuple[int, bytes]:
        connection = getattr(self.local, "connection", None)
        if connection is None:
            connection = self.local.connection = http.client.HTTPConnection(
                "127.0.0.1", self.port, timeout=60
            )
        url = path + ("?" + urlencode(params) if params else "")
        try:
            connection.request(method, url)
            response = connection.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            self.local.connection = None
            raise


def submit_all(client: Client, count: int, threads: int) -> float:
    started = time.monotonic()

    def one(index: int) -> None:
        job_id = f"inflight-{index:06d}"
        status, body = client.request("POST", "/jobs", {"job_id": job_id})
        assert status == 200, body
        status, body = client.request("POST", f"/jobs/{job_id}/submit", {"command_line": "sleep 3600"})
        assert status == 200, body

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(count)))
    return time.monotonic() - started


def status_load(client: Client, count: int, rate: float, seconds: float) -> list[float]:
    """``rate`` status requests per second (open loop) for ``seconds``; their latencies."""
    latencies: list[float] = []
    lock = threading.Lock()
    total = int(rate * seconds)
    start = time.monotonic()

    def one(index: int) -> None:
        due = start + index / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        job_id = f"inflight-{(index * 7919) % count:06d}"
        began = time.monotonic()
        status, _body = client.request("GET", f"/jobs/{job_id}/status")
        elapsed = time.monotonic() - began
        assert status == 200
        with lock:
            latencies.append(elapsed)

    with ThreadPoolExecutor(32) as pool:
        list(pool.map(one, range(total)))
    return latencies


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=11000)
    parser.add_argument("--running", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--directory", type=Path)
    args = parser.parse_args(argv)
    directory = args.directory or Path(tempfile.mkdtemp(prefix="lwr-inflight-"))
    ini = f"[manager:_default_]\ntype = queued_python\nmax_concurrent_jobs = {args.running}\n"
    server = LwrServer(
        directory=directory,
        job_managers_ini=ini,
        server_options={"threadpool_workers": "32", "request_queue_size": "256"},
    ).start()
    client = Client(server.port)
    try:
        seconds = submit_all(client, args.jobs, args.threads)
        assert server.process is not None
        time.sleep(5)  # let the dispatcher start its slots
        rss = rss_mib(server.process.pid)
        print(
            f"submitted {args.jobs} jobs in {seconds:.1f} s ({args.jobs / seconds:.0f} jobs/s); "
            f"{args.running} run, the rest queued",
            flush=True,
        )
        print(f"server RSS {rss:.0f} MiB (target < 200 MiB)", flush=True)
        latencies = status_load(client, args.jobs, args.rate, args.seconds)
        p50, p99 = percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000
        print(
            f"status at {args.rate:.0f}/s for {args.seconds:.0f} s: {len(latencies)} requests, "
            f"p50 {p50:.1f} ms, p99 {p99:.1f} ms (target p99 < 10 ms), mean {statistics.mean(latencies) * 1000:.1f} ms",
            flush=True,
        )
        server.kill9()
        began = time.monotonic()
        server.start(wait=False)
        server.wait_ready(timeout=300)
        recovered = time.monotonic() - began
        status, _body = client.request("GET", f"/jobs/inflight-{args.jobs - 1:06d}/status")
        print(
            f"kill -9 and restart with {args.jobs} records: answering after {recovered:.1f} s "
            f"(target < 10 s); last job's status {status}",
            flush=True,
        )
        print(f"server RSS after the restart {rss_mib(server.process.pid):.0f} MiB", flush=True)
    finally:
        # The running jobs outlive lwr by design: cancel them before stopping it.
        def cancel(index: int) -> None:
            try:
                client.request("PUT", f"/jobs/inflight-{index:06d}/cancel")
            except (OSError, http.client.HTTPException):
                pass

        with ThreadPoolExecutor(args.threads) as pool:
            list(pool.map(cancel, range(args.jobs)))
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
