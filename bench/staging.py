"""File staging throughput: one big file up and down, lwr vs real Pulsar vs a plain-HTTP floor.

Prints figures; it is not a test (it checks only that the bytes arrived whole).

For each server (lwr via ``tests/server.py``'s ``LwrServer``, Pulsar via
``bench/pulsar_server.py``; lwr on its own ``egg:lwr#http``, Pulsar on Paste's ``egg:Paste#http``,
16 threads each unless told otherwise, both started here on free loopback ports) and each repeat:

* ``pulsar.client`` path (what Galaxy does): ``client.setup()``, ``client.put_file(path, "input",
  action_type="transfer")`` (upload), a job that hard-links the staged input into the outputs
  directory, then ``client.fetch_output(..., action_type="transfer", output_type="output")``
  (download). Note: pulsar-app 0.16.0's default client transport (urllib) uploads an mmap that
  http.client sends in 8 KiB blocks and downloads with ``response.read(1024)``, so this path
  is partly bound by the *client's* CPU; the same client is used for both servers.
* ``raw`` path: the very same Pulsar-protocol endpoints (``POST``/``GET /jobs/<id>/files``)
  driven by ``http.client`` with 1 MiB blocks, to show what each *server* can do when the
  client is not the bottleneck: the upload streams the file from (page-cached) disk, the
  download discards what it receives (checking the length and the first MiB), so neither
  figure includes the client writing 1 GiB to its own disk.

The floor is a minimal streaming HTTP server in this file (``http.server`` in its own
process; PUT ``readinto`` 1 MiB -> disk, GET from disk with ``socket.sendfile``) driven by the
same raw client.

Every figure also comes with the server's CPU seconds (user+sys, process and children) per
GiB, which is far less sensitive than MB/s to the other load on a shared 2-core machine.

Each server's RSS (process plus children) is sampled every 10 ms in a thread; the report
gives its peak and its growth over the RSS just before the upload started.

Usage::

    .venv/bin/python bench/staging.py                    # 1 GiB, 3 repeats after a warm-up pass
    .venv/bin/python bench/staging.py --size 256M --repeat 3
    .venv/bin/python bench/staging.py --servers lwr lwr-waitress pulsar pulsar-gunicorn
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

BLOCK = 1 << 20
MIB = 1 << 20


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


# --- the floor: a minimal streaming HTTP server ---------------------------------------------------
class FloorHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    directory = "."

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass

    def _path(self) -> str:
        name = os.path.basename(urllib.parse.urlparse(self.path).path) or "file"
        return os.path.join(self.directory, name)

    def do_PUT(self) -> None:  # noqa: N802 - stdlib naming
        remaining = int(self.headers.get("Content-Length", "0"))
        buffer = bytearray(BLOCK)
        view = memoryview(buffer)
        with open(self._path(), "wb") as out:
            while remaining > 0:
                count = self.rfile.readinto(view[: min(BLOCK, remaining)])
                if not count:
                    break
                out.write(view[:count])
                remaining -= count
        body = b'{"ok": true}'
        self.send_response(201 if remaining == 0 else 400)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        path = self._path()
        try:
            handle = open(path, "rb")
        except FileNotFoundError:
            self.send_error(404)
            return
        with handle:
            size = os.fstat(handle.fileno()).st_size
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            self.wfile.flush()
            self.connection.sendfile(handle)


def serve_floor(port: int, directory: str) -> None:
    FloorHandler.directory = directory
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), FloorHandler)
    server.serve_forever()


@dataclass
class FloorServer:
    directory: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> FloorServer:
        from pulsar_server import free_port

        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--floor-server", str(self.port), str(self.directory)]
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("floor server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


# --- measurement helpers --------------------------------------------------------------------------
def client_cpu() -> float:
    """CPU seconds of this (client) process, all threads (the RSS sampler's share is small)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class RssSampler:
    """Samples the RSS of a process and its children every ``interval`` seconds, in a thread."""

    def __init__(self, pid: int, interval: float = 0.01) -> None:
        import psutil

        self.process = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self.baseline = self.rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        import psutil

        total = self.process.memory_info().rss
        for child in self.process.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.rss())
            except Exception:  # noqa: BLE001 - a vanished child between listing and reading
                pass
            self._stop.wait(self.interval)

    def cpu(self) -> float:
        import psutil

        times = self.process.cpu_times()
        total = times.user + times.system
        for child in self.process.children(recursive=True):
            try:
                child_times = child.cpu_times()
                total += child_times.user + child_times.system
            except psutil.Error:
                pass
        return total

    def __enter__(self) -> RssSampler:
        self.client_before = client_cpu()
        self.cpu_before = self.cpu()
        self.baseline = self.rss()
        self.peak = self.baseline
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())
        self.cpu_seconds = self.cpu() - self.cpu_before
        self.client_seconds = client_cpu() - self.client_before

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


def raw_upload(url: str, path: Path, method: str = "POST") -> float:
    parts = urllib.parse.urlsplit(url)
    size = path.stat().st_size
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=600, blocksize=BLOCK)
    started = time.perf_counter()
    with open(path, "rb") as body:
        connection.request(
            method,
            parts.path + ("?" + parts.query if parts.query else ""),
            body=body,
            headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"},
        )
        response = connection.getresponse()
        reply = response.read()
    elapsed = time.perf_counter() - started
    connection.close()
    if response.status >= 300:
        raise RuntimeError(f"upload to {url} failed: {response.status} {reply[:500]!r}")
    return elapsed


def raw_download(
    url: str, destination: Path | None, expect_size: int | None = None, expect_head: bytes | None = None
) -> float:
    """GET ``url`` in 1 MiB blocks into ``destination``, or, if ``None``, discard the bytes (checking
    the length and the first bytes), so the figure is the server's and not the client's disk."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=600)
    buffer = bytearray(BLOCK)
    view = memoryview(buffer)
    started = time.perf_counter()
    connection.request("GET", parts.path + ("?" + parts.query if parts.query else ""))
    response = connection.getresponse()
    if response.status != 200:
        raise RuntimeError(f"download from {url} failed: {response.status} {response.read()[:500]!r}")
    if destination is not None:
        with open(destination, "wb") as out:
            while True:
                count = response.readinto(view)
                if not count:
                    break
                out.write(view[:count])
    else:
        received = 0
        head = b""
        while True:
            count = response.readinto(view)
            if not count:
                break
            if len(head) < MIB:
                head += bytes(view[: min(count, MIB - len(head))])
            received += count
        if expect_size is not None and received != expect_size:
            raise RuntimeError(f"download from {url}: {received} bytes, expected {expect_size}")
        if expect_head is not None and head != expect_head[: len(head)]:
            raise RuntimeError(f"download from {url}: bytes differ from the source")
    elapsed = time.perf_counter() - started
    connection.close()
    return elapsed


def make_source(path: Path, size: int) -> None:
    block = os.urandom(BLOCK)
    with open(path, "wb") as out:
        remaining = size
        while remaining > 0:
            out.write(block[: min(BLOCK, remaining)])
            remaining -= BLOCK


def source_head(path: Path) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(MIB)


def same_bytes(a: Path, b: Path) -> bool:
    """Size plus first, middle and last MiB (a full compare of 1 GiB twice per run is slow)."""
    size = a.stat().st_size
    if b.stat().st_size != size:
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        for offset in (0, max(0, size // 2 - MIB // 2), max(0, size - MIB)):
            fa.seek(offset)
            fb.seek(offset)
            if fa.read(MIB) != fb.read(MIB):
                return False
    return True


def drop_file(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


@dataclass
class Measure:
    server: str
    path: str  # "client" or "raw"
    up_s: list[float] = field(default_factory=list)
    down_s: list[float] = field(default_factory=list)
    up_rss_growth: list[int] = field(default_factory=list)
    up_rss_peak: list[int] = field(default_factory=list)
    down_rss_growth: list[int] = field(default_factory=list)
    down_rss_peak: list[int] = field(default_factory=list)
    up_cpu: list[float] = field(default_factory=list)
    down_cpu: list[float] = field(default_factory=list)
    up_client_cpu: list[float] = field(default_factory=list)
    down_client_cpu: list[float] = field(default_factory=list)

    def record(self, direction: str, seconds: float, rss: RssSampler) -> None:
        getattr(self, f"{direction}_s").append(seconds)
        getattr(self, f"{direction}_rss_growth").append(rss.growth)
        getattr(self, f"{direction}_rss_peak").append(rss.peak)
        getattr(self, f"{direction}_cpu").append(rss.cpu_seconds)
        getattr(self, f"{direction}_client_cpu").append(rss.client_seconds)


class ServerUnderTest:
    def __init__(self, name: str, server: object, pid: int, workdir: Path) -> None:
        from pulsar.client.manager import build_client_manager

        self.name = name
        self.server = server
        self.url: str = server.url  # type: ignore[attr-defined]
        self.pid = pid
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.manager = build_client_manager()
        self.count = 0

    def _client(self) -> tuple[object, dict[str, object]]:
        self.count += 1
        job_id = f"stage{os.getpid()}x{self.count}"
        client = self.manager.get_client({"url": self.url, "default_file_action": "transfer"}, job_id)
        setup = client.setup("bench_stage", "1.0")
        if isinstance(setup, dict) and setup.get("job_id"):
            client.job_id = setup["job_id"]
        return client, setup

    def _link_input_to_output(self, client: object, setup: dict[str, object], name: str) -> None:
        inputs = setup.get("inputs_directory")
        outputs = setup.get("outputs_directory")
        if not inputs or not outputs:
            job_directory = setup["job_directory"]
            inputs, outputs = f"{job_directory}/inputs", f"{job_directory}/outputs"
        client.launch(f"mkdir -p '{outputs}' && ln '{inputs}/{name}' '{outputs}/{name}'")  # type: ignore[attr-defined]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            status = client.get_status()  # type: ignore[attr-defined]
            if status in ("complete", "failed", "cancelled", "lost"):
                if status != "complete":
                    raise RuntimeError(f"{self.name}: link job ended {status}: {client.full_status()}")  # type: ignore[attr-defined]
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name}: link job did not finish")

    def run_client_path(self, source: Path, result: Measure) -> None:
        client, setup = self._client()
        name = "big.dat"
        with RssSampler(self.pid) as rss:
            started = time.perf_counter()
            client.put_file(str(source), "input", name=name, action_type="transfer")  # type: ignore[attr-defined]
            elapsed = time.perf_counter() - started
        result.record("up", elapsed, rss)
        self._link_input_to_output(client, setup, name)
        destination = self.workdir / "downloaded.dat"
        drop_file(destination)
        with RssSampler(self.pid) as rss:
            started = time.perf_counter()
            client.fetch_output(
                path=str(destination),
                name=name,
                working_directory=str(self.workdir),  # type: ignore[attr-defined]
                action_type="transfer",
                output_type="output",
            )
            elapsed = time.perf_counter() - started
        result.record("down", elapsed, rss)
        if not same_bytes(source, destination):
            raise RuntimeError(f"{self.name}: downloaded bytes differ from the source")
        drop_file(destination)
        client.clean()  # type: ignore[attr-defined]

    def run_raw_path(self, source: Path, result: Measure) -> None:
        client, setup = self._client()
        name = "big.dat"
        job_id = client.job_id  # type: ignore[attr-defined]
        query = urllib.parse.urlencode({"name": name, "type": "input"})
        with RssSampler(self.pid) as rss:
            elapsed = raw_upload(f"{self.url}jobs/{job_id}/files?{query}", source)
        result.record("up", elapsed, rss)
        self._link_input_to_output(client, setup, name)
        query = urllib.parse.urlencode({"name": name, "type": "output"})
        with RssSampler(self.pid) as rss:
            elapsed = raw_download(
                f"{self.url}jobs/{job_id}/files?{query}", None, source.stat().st_size, source_head(source)
            )
        result.record("down", elapsed, rss)
        client.clean()  # type: ignore[attr-defined]


def run_floor(floor: FloorServer, source: Path, workdir: Path, result: Measure) -> None:
    with RssSampler(floor.pid) as rss:
        elapsed = raw_upload(floor.url + "big.dat", source, method="PUT")
    result.record("up", elapsed, rss)
    with RssSampler(floor.pid) as rss:
        elapsed = raw_download(floor.url + "big.dat", None, source.stat().st_size, source_head(source))
    result.record("down", elapsed, rss)
    drop_file(floor.directory / "big.dat")


def mbps(size: int, seconds: float) -> float:
    return size / 1e6 / seconds


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--floor-server":
        serve_floor(int(argv[1]), argv[2])
        return 0
    parser = argparse.ArgumentParser(description="lwr vs Pulsar file staging throughput and server RSS")
    parser.add_argument(
        "--size", type=parse_size, default=1 << 30, help="file size, e.g. 1G, 256M (default 1G)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement (default 3)")
    parser.add_argument(
        "--no-warmup", dest="warmup", action="store_false", help="skip the untimed first pass"
    )
    parser.add_argument(
        "--servers",
        nargs="+",
        default=["lwr", "pulsar"],
        choices=["lwr", "lwr-waitress", "pulsar", "pulsar-gunicorn"],
        help="servers to measure, interleaved (default: lwr pulsar); the floor always runs",
    )
    parser.add_argument(
        "--paths",
        nargs="+",
        choices=["client", "raw"],
        default=["client", "raw"],
        help="which client paths to measure (default: both)",
    )
    parser.add_argument("--dir", type=Path, help="work directory (default: a new temporary directory)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the servers started below are stopped, not orphaned.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    from jobs import start_server  # bench/jobs.py

    base = Path(tempfile.mkdtemp(prefix="lwr-bench-staging-", dir=args.dir))
    started_servers: list[object] = []
    suts: list[ServerUnderTest] = []
    try:
        source = base / "source.dat"
        make_source(source, args.size)
        floor = FloorServer(base / "floor").start()
        started_servers.append(floor)
        for kind in args.servers:
            server, pid = start_server(kind, base / f"{kind}-server")
            started_servers.append(server)
            suts.append(ServerUnderTest(kind, server, pid, base / f"{kind}-client"))
        print(
            f"# staging benchmark: {args.size} bytes ({args.size / MIB:.0f} MiB), repeat {args.repeat}; "
            f"MB/s = 10^6 bytes/s; servers {' '.join(args.servers)}; work dir {base}",
            flush=True,
        )

        gib = args.size / (1 << 30)
        if args.warmup:
            # One untimed pass of everything first: on this VM the first GiB written into
            # never-touched memory costs several times more kernel time than later ones.
            scratch: dict[str, Measure] = {}
            run_floor(floor, source, base, Measure("floor", "raw"))
            for sut in suts:
                for path in args.paths:
                    m = scratch.setdefault(sut.name + path, Measure(sut.name, path))
                    (sut.run_client_path if path == "client" else sut.run_raw_path)(source, m)
            print("# warm-up pass done (untimed)", flush=True)
        results: dict[tuple[str, str], Measure] = {}
        floor_result = results.setdefault(("floor", "raw"), Measure("floor", "raw"))
        for repeat in range(1, args.repeat + 1):
            run_floor(floor, source, base, floor_result)
            print(
                f"  floor    raw    run {repeat}: up {mbps(args.size, floor_result.up_s[-1]):7.1f} MB/s "
                f"(server CPU {floor_result.up_cpu[-1] / gib:5.2f} s/GiB)  "
                f"down {mbps(args.size, floor_result.down_s[-1]):7.1f} MB/s "
                f"(server CPU {floor_result.down_cpu[-1] / gib:5.2f} s/GiB)",
                flush=True,
            )
            # Interleaved, so background load hits both servers alike, and the order rotates every run:
            # the first client download after the floor's run is slower (measured: whichever server
            # goes first loses ~2x on the client-path download), so no server may always go first.
            shift = (repeat - 1) % len(suts)
            order = suts[shift:] + suts[:shift]
            for path in args.paths:
                for sut in order:
                    measure = results.setdefault((sut.name, path), Measure(sut.name, path))
                    if path == "client":
                        sut.run_client_path(source, measure)
                    else:
                        sut.run_raw_path(source, measure)
                    print(
                        f"  {sut.name:<8} {path:<6} run {repeat}: up {mbps(args.size, measure.up_s[-1]):7.1f} MB/s "
                        f"(server CPU {measure.up_cpu[-1] / gib:5.2f} s/GiB, RSS +{measure.up_rss_growth[-1] / MIB:5.1f}"
                        f" MiB, peak {measure.up_rss_peak[-1] / MIB:5.1f} MiB)  "
                        f"down {mbps(args.size, measure.down_s[-1]):7.1f} MB/s "
                        f"(server CPU {measure.down_cpu[-1] / gib:5.2f} s/GiB, RSS +{measure.down_rss_growth[-1] / MIB:5.1f}"
                        f" MiB, peak {measure.down_rss_peak[-1] / MIB:5.1f} MiB); client CPU s/GiB up "
                        f"{measure.up_client_cpu[-1] / gib:4.2f} down {measure.down_client_cpu[-1] / gib:4.2f}",
                        flush=True,
                    )

        print(
            "\n# best of runs (fastest) [median]; server CPU (user+sys, process and children) s/GiB: lowest "
            "[median]; RSS: worst (largest) of runs"
        )
        print(
            f"{'server':<8} {'path':<6} {'up MB/s':>17} {'down MB/s':>17} {'up CPU s/GiB':>14} {'down CPU s/GiB':>15}"
            f" {'up RSS growth':>14} {'peak RSS':>10}"
        )
        best: dict[tuple[str, str], tuple[float, float]] = {}
        for key, m in results.items():
            up, down = mbps(args.size, min(m.up_s)), mbps(args.size, min(m.down_s))
            up_med, down_med = (
                mbps(args.size, statistics.median(m.up_s)),
                mbps(args.size, statistics.median(m.down_s)),
            )
            best[key] = (up, down)
            peak = max(m.up_rss_peak + m.down_rss_peak)
            print(
                f"{m.server:<8} {m.path:<6} {up:>7.1f} [{up_med:>7.1f}] {down:>7.1f} [{down_med:>7.1f}] "
                f"{min(m.up_cpu) / gib:>5.2f} [{statistics.median(m.up_cpu) / gib:>5.2f}] "
                f"{min(m.down_cpu) / gib:>6.2f} [{statistics.median(m.down_cpu) / gib:>5.2f}] "
                f"{max(m.up_rss_growth) / MIB:>10.1f} MiB {peak / MIB:>6.1f} MiB"
            )
        print("\n# ratios (best runs)")
        floor_up, floor_down = best[("floor", "raw")]
        lwrs = [kind for kind in args.servers if kind.startswith("lwr")]
        pulsars = [kind for kind in args.servers if kind.startswith("pulsar")]
        for path in args.paths:
            for lwr_kind in lwrs:
                for pulsar_kind in pulsars:
                    (lu, ld), (pu, pd) = best[(lwr_kind, path)], best[(pulsar_kind, path)]
                    lm, pm = results[(lwr_kind, path)], results[(pulsar_kind, path)]
                    print(
                        f"{path:<6} {lwr_kind}/{pulsar_kind}: up x{lu / pu:5.2f}  down x{ld / pd:5.2f}   "
                        f"[targets >= 3x: up {'MET' if lu / pu >= 3 else 'NOT MET'}, "
                        f"down {'MET' if ld / pd >= 3 else 'NOT MET'}]; server CPU per GiB (median, lower is "
                        f"better): up x{statistics.median(lm.up_cpu) / statistics.median(pm.up_cpu):5.2f} "
                        f"down x{statistics.median(lm.down_cpu) / statistics.median(pm.down_cpu):5.2f}"
                    )
            for name in args.servers:
                u, d = best[(name, path)]
                print(f"{path:<6} {name}/floor: up x{u / floor_up:5.2f}  down x{d / floor_down:5.2f}")
        for path in args.paths:
            for name in lwrs:
                growth = max(results[(name, path)].up_rss_growth)
                print(
                    f"{name} RSS growth during upload ({path}): {growth / MIB:.1f} MiB -> "
                    f"{'MET' if growth < 64 * MIB else 'NOT MET'} (< 64 MiB)"
                )
        if args.json:
            args.json.write_text(
                json.dumps({"size": args.size, "results": [m.__dict__ for m in results.values()]}, indent=2)
            )
    finally:
        for server in started_servers:
            server.stop()  # type: ignore[attr-defined]
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
