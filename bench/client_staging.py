"""lwr's own client moving one big file up and down, against a plain HTTP PUT/GET floor.

Prints figures; it is not a test (it checks only that the bytes arrived whole).

In one run, on loopback, with the same source file:

* **floor**: a plain HTTP PUT and GET of the file to the minimal streaming server of
  ``bench/staging.py`` (``http.client`` with 1 MiB blocks, no checksum);
* **raw lwr**: the same plain PUT/GET client against lwr's ``/jobs/<id>/files`` routes, no
  checksum (what lwr's server costs);
* **lwr client**: ``lwr.client`` against lwr with integrity on: the upload is hashed and sent
  with its digest (the server verifies before renaming into place), the download asks for the
  digest and verifies it while streaming. The digest is the one the client negotiated (BLAKE3
  with a current lwr, ``lwr/protocol/digest.py``), printed on its row;
* **lwr client, SHA-256** (``--also-sha256``): the same with a client that has only SHA-256 (as
  against an older lwr), for the comparison in the same run.

The lwr client runs in a child process of its own, which reports its peak RSS
(``ru_maxrss``), so the figure is the client's alone.

Usage::

    .venv/bin/python bench/client_staging.py               # 1 GiB, 2 repeats
    .venv/bin/python bench/client_staging.py --size 256M --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))


def _cpu(process: Any) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def client_worker(
    url: str, source: str, destination: str, digest_choice: str = "auto", server_pid: str = "0"
) -> dict[str, float]:
    """In a child process: one job's upload and download through lwr's client; timings, CPU, peak RSS.

    CPU seconds (the client's and the lwr server's process, all threads) are what a loaded machine
    distorts least: wall-clock ratios swing with whatever else runs, the work done does not.
    """
    import psutil

    from lwr.client.client import LaunchRequest, open_client

    me, server = psutil.Process(), psutil.Process(int(server_pid) or os.getpid())

    with open_client(url=url) as client:
        http = client.transport.http  # type: ignore[attr-defined]
        if digest_choice == "sha256":  # a client with SHA-256 only: what an older lwr gets
            import lwr.client.http

            lwr.client.http.ALGORITHMS = ("sha256",)  # type: ignore[misc]
        job = client.setup(f"bench-client-{os.getpid()}-{time.monotonic_ns()}")
        algorithm = http.upload_algorithm()
        cpu = _cpu(me), _cpu(server)
        started = time.perf_counter()
        remote = client.upload(job.job_id, "big.dat", "input", source)
        up = time.perf_counter() - started
        up_cpu = _cpu(me) - cpu[0], _cpu(server) - cpu[1]
        client.submit(job.job_id, LaunchRequest(command_line=f"ln {remote} ../outputs/big.dat"))
        if client.wait(job.job_id, timeout=600, interval=0.05)["status"] != "complete":
            raise RuntimeError("link job failed")
        cpu = _cpu(me), _cpu(server)
        started = time.perf_counter()
        digest = client.download(job.job_id, "big.dat", "output", destination)
        down = time.perf_counter() - started
        down_cpu = _cpu(me) - cpu[0], _cpu(server) - cpu[1]
        client.clean(job.job_id)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {  # type: ignore[return-value]
        "up_s": up,
        "down_s": down,
        "peak_rss_mib": peak_kib / 1024,
        "digest": digest,
        "algorithm": algorithm,
        "up_cpu_client": up_cpu[0],
        "up_cpu_server": up_cpu[1],
        "down_cpu_client": down_cpu[0],
        "down_cpu_server": down_cpu[1],
    }


def run_client(
    url: str, source: Path, destination: Path, digest_choice: str = "auto", server_pid: int = 0
) -> dict[str, float]:
    result = subprocess.run(
        [
            sys.executable,
            __file__,
            "--worker",
            url,
            str(source),
            str(destination),
            digest_choice,
            str(server_pid),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_raw_lwr(server: object, source: Path, destination: Path) -> tuple[float, float]:
    from staging import raw_download, raw_upload

    from lwr.client.client import LaunchRequest, open_client

    url: str = server.url  # type: ignore[attr-defined]
    with open_client(url=url) as client:
        job = client.setup(f"bench-raw-{time.monotonic_ns()}")
        query = urllib.parse.urlencode({"name": "big.dat", "type": "input"})
        up = raw_upload(f"{url}jobs/{job.job_id}/files?{query}", source)
        remote = job.remote_path("input", "big.dat")
        client.submit(job.job_id, LaunchRequest(command_line=f"ln {remote} ../outputs/big.dat"))
        client.wait(job.job_id, timeout=600, interval=0.05)
        query = urllib.parse.urlencode({"name": "big.dat", "type": "output"})
        down = raw_download(f"{url}jobs/{job.job_id}/files?{query}", destination)
        client.clean(job.job_id)
    return up, down


def run_floor(floor: object, source: Path, destination: Path) -> tuple[float, float]:
    from staging import raw_download, raw_upload

    url: str = floor.url  # type: ignore[attr-defined]
    up = raw_upload(url + "big.dat", source, method="PUT")
    down = raw_download(url + "big.dat", destination)
    (Path(floor.directory) / "big.dat").unlink()  # type: ignore[attr-defined]
    return up, down


def sha256_rate(megabytes: int = 256, algorithm: str = "sha256") -> float:
    from lwr.digests import new_hash

    block = os.urandom(1 << 20)
    digest = new_hash(algorithm)
    started = time.perf_counter()
    for _ in range(megabytes):
        digest.update(block)
    return megabytes * (1 << 20) / 1e6 / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--worker":
        print(json.dumps(client_worker(*argv[1:6])))
        return 0
    from staging import FloorServer, make_source, parse_size, same_bytes

    from server import LwrServer

    parser = argparse.ArgumentParser(description="lwr's client vs plain HTTP PUT/GET, with checksums on")
    parser.add_argument(
        "--size", type=parse_size, default=1 << 30, help="file size, e.g. 1G, 256M (default 1G)"
    )
    parser.add_argument("--repeat", type=int, default=2, help="runs of each measurement (default 2)")
    parser.add_argument(
        "--also-sha256", action="store_true", help="also run lwr's client limited to SHA-256, for comparison"
    )
    args = parser.parse_args(argv)
    clients = ["client", "client_sha256"] if args.also_sha256 else ["client"]

    work = Path(tempfile.mkdtemp(prefix="lwr-bench-client-"))
    source = work / "source.dat"
    make_source(source, args.size)
    lwr = LwrServer(directory=work / "lwr").start()
    floor = FloorServer(work / "floor").start()
    rows: dict[str, dict[str, list[float]]] = {
        name: {"up": [], "down": []} for name in ("floor", "raw", *clients)
    }
    peaks: list[float] = []
    negotiated: dict[str, str] = {}
    cpu: dict[str, dict[str, list[float]]] = {name: {} for name in clients}
    try:
        for _ in range(args.repeat):
            for name in ("floor", "raw", *clients):
                destination = work / f"{name}.dat"
                if name == "floor":
                    up, down = run_floor(floor, source, destination)
                elif name == "raw":
                    up, down = run_raw_lwr(lwr, source, destination)
                else:
                    choice = "sha256" if name == "client_sha256" else "auto"
                    figures = run_client(lwr.url, source, destination, choice, lwr.process.pid)
                    up, down = figures["up_s"], figures["down_s"]
                    negotiated[name] = str(figures["algorithm"])
                    for key, value in figures.items():
                        if "_cpu_" in key:
                            cpu[name].setdefault(key, []).append(float(value))
                    peaks.append(figures["peak_rss_mib"])
                if not same_bytes(source, destination):
                    raise RuntimeError(f"{name}: downloaded bytes differ from the source")
                destination.unlink()
                rows[name]["up"].append(up)
                rows[name]["down"].append(down)
    finally:
        lwr.stop()
        floor.stop()
        subprocess.run(["rm", "-rf", str(work)], check=False)

    size_mb = args.size / 1e6
    best = {name: {d: min(times) for d, times in row.items()} for name, row in rows.items()}
    print(f"{args.size / (1 << 20):.0f} MiB, best of {args.repeat}, loopback, {os.cpu_count()} CPUs")
    print(f"{'path':<40} {'up MB/s':>9} {'down MB/s':>10} {'up vs floor':>12} {'down vs floor':>14}")
    titles = {"blake3": "BLAKE3", "sha256": "SHA-256"}
    labels = {"floor": "plain PUT/GET, floor server", "raw": "plain PUT/GET, lwr server"}
    for name in clients:
        algorithm = titles.get(negotiated[name], negotiated[name])
        labels[name] = f"lwr client + lwr server, {algorithm}" + (
            " (forced)" if name == "client_sha256" else ""
        )
    for name, label in labels.items():
        up, down = best[name]["up"], best[name]["down"]
        print(
            f"{label:<40} {size_mb / up:9.0f} {size_mb / down:10.0f} "
            f"{best['floor']['up'] / up:11.0%} {best['floor']['down'] / down:13.0%}"
        )
    gib = args.size / (1 << 30)
    print("CPU seconds per GiB (best run), client + lwr server process:")
    for name in clients:
        best_cpu = {key: min(values) / gib for key, values in cpu[name].items()}
        print(
            f"  {labels[name]:<42} up {best_cpu['up_cpu_client']:.2f} + {best_cpu['up_cpu_server']:.2f}"
            f"   down {best_cpu['down_cpu_client']:.2f} + {best_cpu['down_cpu_server']:.2f}"
        )
    print(f"lwr client peak RSS: {max(peaks):.0f} MiB (median {statistics.median(peaks):.0f} MiB)")
    print(
        f"SHA-256 on one core of this CPU: {sha256_rate():.0f} MB/s, the ceiling of a SHA-256-checked transfer"
    )
    print(f"BLAKE3 on one core of this CPU: {sha256_rate(algorithm='blake3'):.0f} MB/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
