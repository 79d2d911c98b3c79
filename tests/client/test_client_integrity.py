"""Corruption in transit: a proxy flips a byte of a file body between the client and the server.

lwr's server checks the upload's SHA-256 before renaming it into place and sends the digest
with downloads, so lwr's client detects a flipped byte either way, retries, and reports a clear
:class:`~lwr.errors.IntegrityError` if it keeps happening. Pulsar sends no digests; there the
tests are skipped (and one shows what that costs).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from corrupting_proxy import MARKER, CorruptingProxy
from targets import Target

from lwr import errors
from lwr.client.client import LaunchRequest, LwrClient, open_client
from lwr.client.http import RetryPolicy
from lwr.digests import bytes_digest

FAST = RetryPolicy(attempts=3, backoff=0.01, cap=0.05)
ALWAYS = 10**9


def payload(tmp_path: Path, name: str = "input.dat") -> tuple[Path, bytes]:
    data = os.urandom(300_000) + MARKER + os.urandom(300_000)
    path = tmp_path / name
    path.write_bytes(data)
    return path, data


def proxied(server: Target, proxy: CorruptingProxy) -> LwrClient:
    return open_client(url=proxy.url, private_token=server.token, retry=FAST)


def direct(server: Target) -> LwrClient:
    return open_client(url=server.url, private_token=server.token, retry=FAST)


def port_of(server: Target) -> int:
    return int(urlsplit(server.url).port or 80)


@pytest.fixture
def server(lwr_target: Target) -> Target:
    """Only lwr sends digests (and Content-Length on downloads): detection is tested against it, and
    ``test_without_digests_corruption_goes_unnoticed`` shows what happens against Pulsar."""
    return lwr_target


def server_copy(client: LwrClient, job_id: str, remote_input: str, tmp_path: Path) -> bytes:
    """What the server holds under ``remote_input``, fetched by a job (over a clean connection)."""
    client.submit(job_id, LaunchRequest(command_line=f"cp {remote_input} ../outputs/copy.dat"))
    assert client.wait(job_id, timeout=60)["status"] == "complete"
    client.download(job_id, "copy.dat", "output", str(tmp_path / "copy.dat"))
    return (tmp_path / "copy.dat").read_bytes()


def test_upload_corrupted_once_is_retried_and_stored_intact(server: Target, tmp_path: Path) -> None:
    source, data = payload(tmp_path)
    with (
        CorruptingProxy(port_of(server), up=1) as proxy,
        proxied(server, proxy) as client,
        direct(server) as clean,
    ):
        job = clean.setup(f"flip-up-once-{time.monotonic_ns()}")
        remote = client.upload(job.job_id, "input.dat", "input", str(source))
        assert proxy.flipped["up"] == 1
        assert server_copy(clean, job.job_id, remote, tmp_path) == data
        clean.clean(job.job_id)


def test_upload_always_corrupted_is_an_integrity_error(server: Target, tmp_path: Path) -> None:
    source, _ = payload(tmp_path)
    with (
        CorruptingProxy(port_of(server), up=ALWAYS) as proxy,
        proxied(server, proxy) as client,
        direct(server) as clean,
    ):
        job = clean.setup(f"flip-up-always-{time.monotonic_ns()}")
        with pytest.raises(errors.IntegrityError, match="corrupted in transit 3 times"):
            client.upload(job.job_id, "input.dat", "input", str(source))
        assert proxy.flipped["up"] == FAST.attempts
        clean.clean(job.job_id)


def output_job(clean: LwrClient, source: Path) -> str:
    job = clean.setup(f"flip-down-{time.monotonic_ns()}")
    remote = clean.upload(job.job_id, "input.dat", "input", str(source))
    clean.submit(job.job_id, LaunchRequest(command_line=f"cp {remote} ../outputs/result.dat"))
    assert clean.wait(job.job_id, timeout=60)["status"] == "complete"
    return job.job_id


def test_download_corrupted_once_is_retried(server: Target, tmp_path: Path) -> None:
    source, data = payload(tmp_path)
    with direct(server) as clean:
        job_id = output_job(clean, source)
        with CorruptingProxy(port_of(server), down=1) as proxy, proxied(server, proxy) as client:
            destination = tmp_path / "back" / "result.dat"
            digest = client.download(job_id, "result.dat", "output", str(destination))
            assert proxy.flipped["down"] == 1
        assert destination.read_bytes() == data
        assert digest == bytes_digest(data, "blake3")  # lwr and its client agree on BLAKE3
        clean.clean(job_id)


def test_download_always_corrupted_is_an_integrity_error_and_writes_nothing(
    server: Target, tmp_path: Path
) -> None:
    source, _ = payload(tmp_path)
    with direct(server) as clean:
        job_id = output_job(clean, source)
        back = tmp_path / "back"
        with CorruptingProxy(port_of(server), down=ALWAYS) as proxy, proxied(server, proxy) as client:
            with pytest.raises(errors.IntegrityError, match="was not written"):
                client.download(job_id, "result.dat", "output", str(back / "result.dat"))
            assert proxy.flipped["down"] == FAST.attempts
        assert list(back.iterdir()) == []
        clean.clean(job_id)


def test_without_digests_corruption_goes_unnoticed(pulsar_target: Target, tmp_path: Path) -> None:
    """Why the digests matter: against Pulsar the same flipped byte is silently stored."""
    server = pulsar_target
    source, data = payload(tmp_path)
    with (
        CorruptingProxy(port_of(server), up=1) as proxy,
        proxied(server, proxy) as client,
        direct(server) as clean,
    ):
        job = clean.setup(f"flip-pulsar-{time.monotonic_ns()}")
        remote = client.upload(job.job_id, "input.dat", "input", str(source))
        stored = server_copy(clean, job.job_id, remote, tmp_path)
        assert proxy.flipped["up"] == 1
        assert stored != data and len(stored) == len(data)
        clean.clean(job.job_id)


def test_download_cut_off_mid_body_is_resumed(server: Target, tmp_path: Path) -> None:
    """lwr sends Content-Length and serves the rest of the file (Range) after a cut."""
    source, data = payload(tmp_path)
    with direct(server) as clean:
        job_id = output_job(clean, source)
        with CorruptingProxy(port_of(server), down=1, cut=True) as proxy, proxied(server, proxy) as client:
            destination = tmp_path / "back" / "result.dat"
            client.download(job_id, "result.dat", "output", str(destination))
            assert proxy.flipped["down"] == 1
            asked_for_the_rest = b"Range: bytes=" in bytes(proxy.sent)
        assert destination.read_bytes() == data
        assert asked_for_the_rest
        clean.clean(job_id)
