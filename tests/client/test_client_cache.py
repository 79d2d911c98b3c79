"""The input cache under concurrent jobs: one upload, every job gets the right bytes."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path
from typing import Any

from targets import Target

from lwr.client.action_config import parse_action_config
from lwr.client.cache import InputCache
from lwr.client.client import open_client
from lwr.client.collect import collect_outputs
from lwr.client.staging import JobDescription, stage_and_submit

JOBS = 6


def run_job(server: Target, cache: InputCache, source: Path, output: Path, index: int) -> dict[str, Any]:
    description = JobDescription(
        command_line=f"sha256sum {source} | cut -d' ' -f1 > {output}",
        job_id=f"cache-{server.kind}-{index}-{time.monotonic_ns()}",
        inputs=[str(source)],
        outputs=[str(output)],
    )
    config = parse_action_config({})
    with open_client(url=server.url, private_token=server.token) as client:
        staged = stage_and_submit(client, description, config, cache=cache)
        status = client.wait(staged.job_id, timeout=120)
        collected = collect_outputs(client, staged.job_id, description, config, status)
        client.clean(staged.job_id)
    return {
        "status": status["status"],
        "failures": collected.failures,
        # What the server said of the run, for the assertion's message when an output is missing.
        "reply": {key: status.get(key) for key in ("returncode", "stderr", "outputs_directory_contents")},
    }


def test_concurrent_jobs_share_one_upload(server: Target, tmp_path: Path) -> None:
    source = tmp_path / "shared_input.dat"
    data = os.urandom(2 * 1024 * 1024)
    source.write_bytes(data)
    expected = hashlib.sha256(data).hexdigest()
    # One cache object per job, as separate client processes would have: only the server coordinates them.
    caches = [InputCache(poll_interval=0.05) for _ in range(JOBS)]
    results: list[dict[str, Any] | BaseException] = [RuntimeError("not run")] * JOBS
    barrier = threading.Barrier(JOBS)

    def job(index: int) -> None:
        barrier.wait()
        try:
            results[index] = run_job(server, caches[index], source, tmp_path / f"sum_{index}.txt", index)
        except BaseException as exc:  # reported below
            results[index] = exc

    threads = [threading.Thread(target=job, args=(index,)) for index in range(JOBS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)

    for index, result in enumerate(results):
        assert isinstance(result, dict), f"job {index}: {result!r}"
        assert result["status"] == "complete" and not result["failures"], result
        output = tmp_path / f"sum_{index}.txt"
        assert output.is_file(), f"job {index}: no output; the server said {result['reply']!r}"
        assert output.read_text().strip() == expected
    assert sum(cache.stats.inserted for cache in caches) == 1
    assert sum(cache.stats.reused for cache in caches) == JOBS - 1
    assert sum(cache.stats.fallbacks for cache in caches) == 0


def test_a_second_job_does_not_upload_again(server: Target, tmp_path: Path) -> None:
    source = tmp_path / "again.dat"
    source.write_bytes(b"cached once\n")
    cache = InputCache(poll_interval=0.05)
    for index in range(2):
        result = run_job(server, cache, source, tmp_path / f"again_{index}.txt", index)
        assert result["status"] == "complete"
    assert (cache.stats.inserted, cache.stats.reused, cache.stats.fallbacks) == (1, 1, 0)


def test_no_cache_on_the_server_falls_back_to_plain_uploads(lwr_server: Any, tmp_path: Path) -> None:
    source = tmp_path / "plain.dat"
    source.write_bytes(b"no cache here\n")
    cache = InputCache(poll_interval=0.05)
    target = Target("lwr", lwr_server.url, "", checks_integrity=True, staging=Path(lwr_server.staging))
    assert run_job(target, cache, source, tmp_path / "plain.txt", 0)["status"] == "complete"
    assert (tmp_path / "plain.txt").read_text().strip() == hashlib.sha256(b"no cache here\n").hexdigest()
    assert cache.stats.fallbacks == 1
