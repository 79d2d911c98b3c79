"""Digest negotiation: BLAKE3 between lwr's client and lwr's server, SHA-256 with everyone else.

Against a real lwr server process (the session's ``lwr_target``) for what lwr does, and against
the scripted stub for servers that do not advertise BLAKE3 (Pulsar, an older lwr).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from stub_http import Reply, Seen, StubServer
from targets import Target

from lwr.client.client import LaunchRequest, LwrClient, open_client
from lwr.client.http import HttpTransport, RetryPolicy
from lwr.digests import DigestCache, bytes_digest

FAST = RetryPolicy(attempts=3, backoff=0.01, cap=0.02)


def blake3_hex(data: bytes) -> str:
    return bytes_digest(data, "blake3")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def http_of(client: LwrClient) -> HttpTransport:
    return client.transport.http  # type: ignore[attr-defined,no-any-return]


class Recorder:
    """Every request and response the client's session exchanged, seen through a response hook."""

    def __init__(self, http: HttpTransport) -> None:
        self.exchanges: list[requests.Response] = []
        http.session.hooks["response"].append(self._record)

    def _record(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.exchanges.append(response)

    def to_files(self, method: str) -> list[requests.Response]:
        """The exchanges with a job's ``/files`` route (file bodies, not ``/files/path``)."""
        return [
            response
            for response in self.exchanges
            if response.request.method == method
            and urlsplit(response.request.url or "").path.endswith("/files")
        ]


@pytest.fixture
def lwr(lwr_target: Target) -> Iterator[LwrClient]:
    with open_client(url=lwr_target.url, private_token=lwr_target.token, retry=FAST) as client:
        yield client


def new_job(client: LwrClient, label: str) -> str:
    return client.setup(f"digest-{label}-{time.monotonic_ns()}").job_id


def files_url(target: Target, job_id: str) -> str:
    return f"{target.url}jobs/{job_id}/files"


def raw_upload(
    target: Target, job_id: str, name: str, data: bytes, headers: dict[str, str]
) -> requests.Response:
    return requests.post(
        files_url(target, job_id),
        params={"name": name, "type": "input", "private_token": target.token},
        data=data,
        headers=headers,
        timeout=30,
    )


def stored(client: LwrClient, job_id: str, name: str) -> Path:
    """Where the server keeps (or would keep) an input: asked of the server, so a test cannot miss it."""
    return Path(client.file_path(job_id, name, "input"))


# -- against lwr ------------------------------------------------------------------------------------


def test_lwr_advertises_its_digests_on_every_reply(lwr_target: Target) -> None:
    health = requests.get(f"{lwr_target.url}healthz", timeout=10)
    missing = requests.get(
        f"{lwr_target.url}no-such-route", params={"private_token": lwr_target.token}, timeout=10
    )
    assert health.headers["X-Lwr-Accept-Digest"] == "blake3, sha256"
    assert missing.status_code == 404 and missing.headers["X-Lwr-Accept-Digest"] == "blake3, sha256"


def test_upload_and_download_negotiate_blake3(lwr: LwrClient, lwr_target: Target, tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 5)
    source = tmp_path / "input.dat"
    source.write_bytes(data)
    recorder = Recorder(http_of(lwr))
    job_id = new_job(lwr, "blake3")  # its reply tells the client that lwr verifies BLAKE3
    assert http_of(lwr).upload_algorithm() == "blake3"

    reply = http_of(lwr).upload(f"jobs/{job_id}/files", {"name": "input.dat", "type": "input"}, str(source))
    (sent,) = recorder.to_files("POST")
    assert sent.request.headers["X-Lwr-Digest"] == f"blake3={blake3_hex(data)}"
    assert "X-Lwr-Sha256" not in sent.request.headers
    assert reply["digest"] == f"blake3={blake3_hex(data)}" and "sha256" not in reply
    assert stored(lwr, job_id, "input.dat").read_bytes() == data

    lwr.submit(job_id, LaunchRequest(command_line=f"cp {reply['path']} ../outputs/result.dat"))
    assert lwr.wait(job_id, timeout=60, interval=0.05)["status"] == "complete"
    destination = tmp_path / "back" / "result.dat"
    digest = lwr.download(job_id, "result.dat", "output", str(destination))
    (answer,) = recorder.to_files("GET")
    assert answer.request.headers["X-Lwr-Want-Digest"] == "blake3, sha256"
    assert answer.headers["X-Lwr-Digest"] == f"blake3={blake3_hex(data)}"
    assert "X-Lwr-Sha256" not in answer.headers  # no SHA-256 computed for lwr's own client
    assert digest == blake3_hex(data) and destination.read_bytes() == data
    lwr.clean(job_id)


def test_corrupted_blake3_upload_is_refused_and_nothing_stored(lwr: LwrClient, lwr_target: Target) -> None:
    job_id = new_job(lwr, "corrupt")
    data = os.urandom(200_000)
    corrupted = bytes([data[0] ^ 1]) + data[1:]
    refused = raw_upload(
        lwr_target, job_id, "input.dat", corrupted, {"X-Lwr-Digest": f"blake3={blake3_hex(data)}"}
    )
    assert refused.status_code == 400
    assert refused.json()["code"] == "integrity" and refused.json()["algorithm"] == "blake3"
    assert not stored(lwr, job_id, "input.dat").exists()
    accepted = raw_upload(
        lwr_target, job_id, "input.dat", data, {"X-Lwr-Digest": f"BLAKE3={blake3_hex(data)}"}
    )
    assert accepted.status_code == 200 and accepted.json()["digest"] == f"blake3={blake3_hex(data)}"
    assert stored(lwr, job_id, "input.dat").read_bytes() == data
    lwr.clean(job_id)


def test_old_style_sha256_upload_and_download_still_work(
    lwr: LwrClient, lwr_target: Target, tmp_path: Path
) -> None:
    job_id = new_job(lwr, "sha256")
    data = os.urandom(100_000)
    accepted = raw_upload(lwr_target, job_id, "input.dat", data, {"X-Lwr-Sha256": sha256_hex(data)})
    assert accepted.status_code == 200
    assert accepted.json()["sha256"] == sha256_hex(data)
    assert accepted.json()["digest"] == f"sha256={sha256_hex(data)}"
    refused = raw_upload(lwr_target, job_id, "other.dat", data, {"X-Lwr-Sha256": sha256_hex(b"not it")})
    assert refused.status_code == 400 and refused.json()["code"] == "integrity"
    assert not stored(lwr, job_id, "other.dat").exists()

    lwr.submit(job_id, LaunchRequest(command_line=f"cp {accepted.json()['path']} ../outputs/result.dat"))
    assert lwr.wait(job_id, timeout=60, interval=0.05)["status"] == "complete"
    query = {"name": "result.dat", "type": "output", "private_token": lwr_target.token}
    old = requests.get(
        files_url(lwr_target, job_id), params=query, headers={"X-Lwr-Want-Sha256": "1"}, timeout=30
    )
    assert old.content == data and old.headers["X-Lwr-Sha256"] == sha256_hex(data)
    assert old.headers["X-Lwr-Digest"] == f"sha256={sha256_hex(data)}"
    plain = requests.get(files_url(lwr_target, job_id), params=query, timeout=30)  # Pulsar's client
    assert "X-Lwr-Sha256" not in plain.headers and "X-Lwr-Digest" not in plain.headers
    preferred = requests.get(
        files_url(lwr_target, job_id),
        params=query,
        headers={"X-Lwr-Want-Digest": "sha256, blake3"},
        timeout=30,
    )
    assert preferred.headers["X-Lwr-Digest"] == f"sha256={sha256_hex(data)}"  # the client's order wins
    lwr.clean(job_id)


@pytest.mark.parametrize("value", ["md5=" + "0" * 32, "blake3", "blake3=not-hex", "=abcdef0123456789"])
def test_unknown_or_malformed_digest_is_refused_400_json(
    lwr: LwrClient, lwr_target: Target, value: str
) -> None:
    job_id = new_job(lwr, "unknown")
    refused = raw_upload(lwr_target, job_id, "input.dat", b"some bytes", {"X-Lwr-Digest": value})
    assert refused.status_code == 400
    assert refused.headers["Content-Type"].startswith("application/json")
    body = refused.json()
    assert body["code"] == "bad_request" and "X-Lwr-Digest" in body["error"]
    if value.startswith("md5"):
        assert body["algorithm"] == "md5" and body["supported"] == ["blake3", "sha256"]
    assert not stored(lwr, job_id, "input.dat").exists()
    lwr.clean(job_id)


def test_cache_insert_under_blake3_keeps_sha256_blobs(lwr_target: Target, tmp_path: Path) -> None:
    data = os.urandom(50_000)
    source = tmp_path / f"cached-{time.monotonic_ns()}.dat"
    source.write_bytes(data)
    with open_client(url=lwr_target.url, private_token=lwr_target.token, retry=FAST) as client:
        http = http_of(client)
        http.json("GET", "healthz")  # learn the server's digests
        assert http.upload_algorithm() == "blake3"
        assert http.json("PUT", "cache", {"ip": "127.0.0.1", "path": str(source)}) is True
        reply = http.upload("cache", {"ip": "127.0.0.1", "path": str(source)}, str(source))
    assert reply["digest"] == f"blake3={blake3_hex(data)}" and reply["sha256"] == sha256_hex(data)


# -- against servers that do not advertise BLAKE3 ---------------------------------------------------


def pulsar_like(data: bytes, advertise: str | None = None) -> StubServer:
    """A server that echoes what it is sent like Pulsar (nothing) or an older lwr (``sha256``)."""

    def handler(request: Seen, earlier: int) -> Reply:
        if request.method == "GET" and request.path.endswith("/files"):
            reply = Reply.file(data)
        elif request.method == "POST" and request.path.endswith("/files"):
            reply = Reply.json({"path": "/srv/input.dat", "sha256": sha256_hex(request.body)})
        else:
            reply = Reply.json({"job_id": "1", "working_directory": "/srv/1"})
        if advertise is not None:
            reply.headers["X-Lwr-Accept-Digest"] = advertise
        return reply

    return StubServer(handler)


@pytest.mark.parametrize("advertise", [None, "sha256", "md5, sha256"])
def test_server_not_advertising_blake3_gets_sha256(tmp_path: Path, advertise: str | None) -> None:
    data = os.urandom(1_000_000)
    source = tmp_path / "input.dat"
    source.write_bytes(data)
    with pulsar_like(data, advertise) as server:
        http = HttpTransport(server.url, retry=FAST, timeout=(2.0, 5.0))
        http.json("POST", "jobs", {"job_id": "1"})  # a reply first, as a client's setup gives
        assert http.upload_algorithm() == "sha256"
        http.upload("jobs/1/files", {"name": "input.dat", "type": "input"}, str(source))
        digest = http.download(
            "jobs/1/files", {"name": "result.dat", "type": "output"}, str(tmp_path / "r.dat")
        )
    upload, download = server.requests_to("/jobs/1/files")
    assert upload.headers["X-Lwr-Sha256"] == sha256_hex(data) and "X-Lwr-Digest" not in upload.headers
    assert download.headers["X-Lwr-Want-Sha256"] == "1"  # an older lwr still answers a digest
    assert digest == sha256_hex(data)


def test_a_server_that_stops_advertising_blake3_gets_sha256_again(tmp_path: Path) -> None:
    source = tmp_path / "input.dat"
    source.write_bytes(b"payload")
    advertised = ["blake3, sha256"]

    def handler(request: Seen, earlier: int) -> Reply:
        reply = Reply.json({"path": "/srv/input.dat", "digest": f"blake3={blake3_hex(request.body)}"})
        if advertised:
            reply.headers["X-Lwr-Accept-Digest"] = advertised.pop()
        return reply

    with StubServer(handler) as server:
        http = HttpTransport(server.url, retry=FAST, timeout=(2.0, 5.0))
        http.upload("jobs/1/files", {"name": "a"}, str(source))  # before any reply: SHA-256
        http.upload("jobs/1/files", {"name": "b"}, str(source))  # advertised: BLAKE3
        http.upload("jobs/1/files", {"name": "c"}, str(source))  # the last reply named none: SHA-256
    first, second, third = server.seen
    assert "X-Lwr-Sha256" in first.headers and "X-Lwr-Digest" not in first.headers
    assert second.headers["X-Lwr-Digest"] == f"blake3={blake3_hex(b'payload')}"
    assert "X-Lwr-Sha256" in third.headers and "X-Lwr-Digest" not in third.headers


def test_blake3_upload_the_server_did_not_verify_is_sent_again_with_sha256(tmp_path: Path) -> None:
    """An older lwr now behind an address that advertised BLAKE3 ignores X-Lwr-Digest: resend."""
    source = tmp_path / "input.dat"
    source.write_bytes(b"payload")

    def handler(request: Seen, earlier: int) -> Reply:
        reply = Reply.json({"path": "/srv/input.dat"})  # echoes no digest: it checked nothing
        reply.headers["X-Lwr-Accept-Digest"] = "blake3, sha256"
        return reply

    with StubServer(handler) as server:
        http = HttpTransport(server.url, retry=FAST, timeout=(2.0, 5.0))
        http.server_digests = ["blake3", "sha256"]
        assert http.upload("jobs/1/files", {"name": "a"}, str(source)) == {"path": "/srv/input.dat"}
    blake3_try, sha256_try = server.seen
    assert "X-Lwr-Digest" in blake3_try.headers
    assert sha256_try.headers["X-Lwr-Sha256"] == sha256_hex(b"payload")


# -- the digest cache -------------------------------------------------------------------------------


def test_digest_cache_is_keyed_by_algorithm(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"one")
    cache = DigestCache()
    assert cache.digest(path, "blake3") == blake3_hex(b"one")
    assert cache.sha256(path) == sha256_hex(b"one")
    cache.remember(path, "feed", "blake3")
    assert cache.digest(path, "blake3") == "feed" and cache.sha256(path) == sha256_hex(b"one")
    assert cache.digest(path, "blake3", remembered=False) == blake3_hex(b"one")
