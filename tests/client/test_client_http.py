"""The HTTP transport against a scripted loopback server: retries, errors, streaming, integrity."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from pathlib import Path

import pytest
from stub_http import Reply, Seen, StubServer

from lwr import errors
from lwr.client.client import LaunchRequest, open_client
from lwr.client.errors import RemoteError, TransportError
from lwr.client.http import HttpTransport, RetryPolicy

FAST = RetryPolicy(attempts=3, backoff=0.01, cap=0.02)


def transport(server: StubServer, **kwargs: object) -> HttpTransport:
    options: dict[str, object] = {"retry": FAST, "timeout": (2.0, 5.0), **kwargs}
    return HttpTransport(server.url, **options)  # type: ignore[arg-type]


def test_idempotent_calls_are_retried_on_5xx() -> None:
    def handler(request: Seen, earlier: int) -> Reply:
        return Reply(503) if earlier < 2 else Reply.json({"status": "running"})

    with StubServer(handler) as server:
        assert transport(server).json("GET", "jobs/1/status", idempotent=True) == {"status": "running"}
        assert len(server.seen) == 3


def test_other_calls_are_sent_once() -> None:
    with StubServer(lambda request, earlier: Reply(503, b"busy")) as server:
        client = open_client(url=server.url, retry=FAST)
        with pytest.raises(TransportError, match="HTTP 503"):
            client.submit("1", LaunchRequest(command_line="true"))
        assert len(server.seen) == 1


def test_5xx_after_all_retries_is_a_transport_error() -> None:
    with StubServer(lambda request, earlier: Reply(500, b"boom")) as server:
        with pytest.raises(TransportError, match="boom"):
            transport(server).json("GET", "healthz", idempotent=True)
        assert len(server.seen) == FAST.attempts


def test_backoff_is_exponential_and_capped() -> None:
    policy = RetryPolicy(attempts=10, backoff=0.5, cap=4.0)
    delays = [policy.delay(retry) for retry in range(1, 8)]
    assert 0.4 <= delays[0] <= 0.5
    assert 0.8 <= delays[1] <= 1.0
    assert all(delay <= 4.0 for delay in delays)
    assert delays[-1] >= 3.2


def test_connection_refused_is_retried_then_a_transport_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(TransportError) as raised:
        HttpTransport(f"http://127.0.0.1:{port}", private_token="s3cret", retry=FAST).json(
            "GET", "healthz", idempotent=True
        )
    assert time.monotonic() - started < 5
    assert "s3cret" not in raised.value.message  # the token is never echoed into messages and logs


@pytest.mark.parametrize(
    ("status", "body", "error_class"),
    [
        (400, {"error": "missing parameter 'name'", "parameter": "name"}, errors.BadRequest),
        (401, {"error": "bad token"}, errors.Unauthorized),
        (404, {"error": "no job x", "job_id": "x"}, errors.NotFound),
        (405, {"error": "method"}, errors.MethodNotAllowed),
        (409, {"error": "submitted twice"}, errors.Conflict),
        (413, {"error": "too big", "limit": 10}, errors.PayloadTooLarge),
        (
            400,
            {
                "error": "upload does not match its SHA-256",
                "code": "integrity",
                "expected": "a",
                "actual": "b",
            },
            errors.IntegrityError,
        ),
        # The class comes from the code, never from words in the message:
        (400, {"error": "the checksum parameter is not hex"}, errors.BadRequest),
        (400, {"error": "bad", "code": "bad_request"}, errors.BadRequest),
        (403, {"error": "admin only", "code": "forbidden"}, errors.Forbidden),
        (507, {"error": "disk full", "code": "insufficient_storage"}, errors.InsufficientStorage),
        (400, {"error": "future", "code": "not_yet_invented"}, errors.BadRequest),  # unknown: by status
        (418, {"error": "teapot"}, RemoteError),
    ],
)
def test_error_replies_become_lwr_errors(status: int, body: dict[str, object], error_class: type) -> None:
    with StubServer(lambda request, earlier: Reply.json(body, status)) as server:
        with pytest.raises(error_class) as raised:
            transport(server).json("GET", "jobs/x/status")
        error = raised.value
        assert isinstance(error, errors.LwrError)
        assert str(body["error"]) in error.message
        assert error.details["status"] == status
        assert "code" not in error.details  # the code chose the class; it is not a detail
        for key, value in body.items():
            if key not in ("error", "code"):
                assert error.details[key] == value


def test_plain_text_errors_keep_their_text() -> None:
    with StubServer(lambda request, earlier: Reply(404, b"No route")) as server:
        with pytest.raises(errors.NotFound, match="No route"):
            transport(server).json("GET", "nowhere")


def test_token_and_manager_are_in_every_request() -> None:
    with StubServer(lambda request, earlier: Reply.json({"version": "x"})) as server:
        client = open_client(url=server.url, private_token="t0k", manager="gpu", retry=FAST)
        client.healthz()
        client.cancel("5")
    assert [request.path for request in server.seen] == [
        "/managers/gpu/healthz",
        "/managers/gpu/jobs/5/cancel",
    ]
    assert all(request.query["private_token"] == ["t0k"] for request in server.seen)


def test_upload_streams_with_length_and_digest(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    source = tmp_path / "input.dat"
    source.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()

    def handler(request: Seen, earlier: int) -> Reply:
        return Reply.json(
            {"path": "/srv/job/inputs/input.dat", "sha256": hashlib.sha256(request.body).hexdigest()}
        )

    sent: list[int] = []
    with StubServer(handler) as server:
        client = open_client(url=server.url, retry=FAST)
        assert (
            client.upload("1", "input.dat", "input", str(source), progress=sent.append)
            == "/srv/job/inputs/input.dat"
        )
    (request,) = server.seen
    assert request.headers["Content-Length"] == str(len(data))
    assert "Transfer-Encoding" not in request.headers
    assert request.headers["X-Lwr-Sha256"] == digest
    assert request.body == data
    assert request.query["name"] == ["input.dat"] and request.query["type"] == ["input"]
    assert sum(sent) == len(data)
    assert max(sent) >= 1024 * 1024  # large chunks, not 8 KiB writes


def test_empty_file_upload(tmp_path: Path) -> None:
    source = tmp_path / "empty"
    source.write_bytes(b"")
    with StubServer(lambda request, earlier: Reply.json({"path": "/srv/empty"})) as server:
        open_client(url=server.url, retry=FAST).upload("1", "empty", "input", str(source))
    assert server.seen[0].headers["Content-Length"] == "0"
    assert server.seen[0].headers["X-Lwr-Sha256"] == hashlib.sha256(b"").hexdigest()


def test_upload_rejected_for_digest_is_retried(tmp_path: Path) -> None:
    source = tmp_path / "input.dat"
    source.write_bytes(b"payload")

    def handler(request: Seen, earlier: int) -> Reply:
        if earlier == 0:
            return Reply.json({"error": "upload does not match its SHA-256", "code": "integrity"}, 400)
        return Reply.json({"path": "/srv/input.dat"})

    with StubServer(handler) as server:
        assert (
            open_client(url=server.url, retry=FAST).upload("1", "input.dat", "input", str(source))
            == "/srv/input.dat"
        )
        assert len(server.seen) == 2


def test_upload_always_corrupted_raises_integrity_error(tmp_path: Path) -> None:
    source = tmp_path / "input.dat"
    source.write_bytes(b"payload")
    with StubServer(lambda request, earlier: Reply.json({"path": "/srv/x", "sha256": "0" * 64})) as server:
        with pytest.raises(errors.IntegrityError, match="corrupted in transit 3 times"):
            open_client(url=server.url, retry=FAST).upload("1", "input.dat", "input", str(source))
        assert len(server.seen) == FAST.attempts


def test_download_verifies_and_renames_into_place(tmp_path: Path) -> None:
    data = os.urandom(2 * 1024 * 1024)
    with StubServer(lambda request, earlier: Reply.file(data)) as server:
        destination = tmp_path / "out" / "result.dat"
        digest = open_client(url=server.url, retry=FAST).download(
            "1", "result.dat", "output", str(destination)
        )
    assert destination.read_bytes() == data
    assert digest == hashlib.sha256(data).hexdigest()
    assert server.seen[0].headers.get("X-Lwr-Want-Sha256") == "1"
    assert os.listdir(destination.parent) == ["result.dat"]


def test_download_without_digest_is_not_verified(tmp_path: Path) -> None:
    with StubServer(lambda request, earlier: Reply.file(b"pulsar bytes", digest=None)) as server:
        destination = tmp_path / "result.dat"
        open_client(url=server.url, retry=FAST).download("1", "result.dat", "output", str(destination))
    assert destination.read_bytes() == b"pulsar bytes"


def test_download_mismatch_is_retried_then_raised_and_nothing_is_left(tmp_path: Path) -> None:
    destination = tmp_path / "result.dat"
    with StubServer(lambda request, earlier: Reply.file(b"corrupt", digest="f" * 64)) as server:
        with pytest.raises(errors.IntegrityError, match="does not match the server's SHA-256") as raised:
            open_client(url=server.url, retry=FAST).download("1", "result.dat", "output", str(destination))
        assert len(server.seen) == FAST.attempts
    assert raised.value.details["expected_sha256"] == "f" * 64
    assert os.listdir(tmp_path) == []


def test_download_mismatch_once_then_good(tmp_path: Path) -> None:
    good = b"good bytes"

    def handler(request: Seen, earlier: int) -> Reply:
        return (
            Reply.file(b"bad bytes!", digest=hashlib.sha256(good).hexdigest())
            if earlier == 0
            else Reply.file(good)
        )

    destination = tmp_path / "result.dat"
    with StubServer(handler) as server:
        open_client(url=server.url, retry=FAST).download("1", "result.dat", "output", str(destination))
    assert destination.read_bytes() == good


def test_truncated_download_is_retried_and_never_left_half_written(tmp_path: Path) -> None:
    destination = tmp_path / "result.dat"
    destination.write_bytes(b"previous")
    with StubServer(lambda request, earlier: Reply(200, b"partial", short_by=100)) as server:
        with pytest.raises(TransportError):
            open_client(url=server.url, retry=FAST).download("1", "result.dat", "output", str(destination))
        assert len(server.seen) == FAST.attempts
    assert destination.read_bytes() == b"previous"
    assert os.listdir(tmp_path) == ["result.dat"]


def test_read_timeout_on_a_non_idempotent_call() -> None:
    def handler(request: Seen, earlier: int) -> Reply:
        time.sleep(1.0)
        return Reply.json({})

    with StubServer(handler) as server:
        with pytest.raises(TransportError):
            transport(server, timeout=(1.0, 0.2)).json("POST", "jobs", {"job_id": "1"})
        time.sleep(1.1)
        assert len(server.seen) == 1


def test_a_call_that_never_left_is_resent_even_if_not_idempotent() -> None:
    """Setup while the server is (re)starting: the connection is refused, so nothing was sent."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    replies = StubServer(
        lambda request, earlier: Reply.json({"working_directory": "/w", "job_id": "7"}), port=port
    )
    timer = threading.Timer(0.3, replies.__enter__)
    timer.start()
    try:
        client = open_client(
            url=f"http://127.0.0.1:{port}/", retry=RetryPolicy(attempts=8, backoff=0.1, cap=0.2)
        )
        assert client.setup("7").job_id == "7"
        assert len(replies.seen) == 1
    finally:
        timer.join()
        replies.__exit__()


def test_file_digest_is_remembered_until_the_file_changes(tmp_path: Path) -> None:
    from lwr.digests import file_sha256

    path = tmp_path / "dataset.dat"
    path.write_bytes(b"first")
    assert file_sha256(str(path)) == hashlib.sha256(b"first").hexdigest()
    assert file_sha256(str(path)) == hashlib.sha256(b"first").hexdigest()
    path.write_bytes(b"second, longer")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 1_000_000))
    assert file_sha256(str(path)) == hashlib.sha256(b"second, longer").hexdigest()


def test_connections_are_pooled(tmp_path: Path) -> None:
    source = tmp_path / "in.dat"
    source.write_bytes(b"x" * 100_000)
    with StubServer(
        lambda request, earlier: Reply.json({"path": "/srv/in.dat", "status": "running"})
    ) as server:
        client = open_client(url=server.url, retry=FAST)
        for _ in range(10):
            client.status("1")
            client.upload("1", "in.dat", "input", str(source))
    assert len(server.seen) == 20
    assert len({request.peer for request in server.seen}) == 1


def test_interrupted_download_resumes_where_it_stopped(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024)
    cut = 1024 * 1024 + 5
    digest = hashlib.sha256(data).hexdigest()

    def handler(request: Seen, earlier: int) -> Reply:
        if earlier == 0:  # the connection drops after `cut` bytes
            return Reply(200, data[:cut], {"X-Lwr-Sha256": digest}, short_by=len(data) - cut)
        start = int(request.headers["Range"].removeprefix("bytes=").rstrip("-"))
        headers = {"X-Lwr-Sha256": digest, "Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}
        return Reply(206, data[start:], headers)

    destination = tmp_path / "result.dat"
    sizes: list[int] = []
    with StubServer(handler) as server:
        client = open_client(url=server.url, retry=FAST)
        assert client.download("1", "result.dat", "output", str(destination), on_size=sizes.append) == digest
    assert destination.read_bytes() == data
    ranges = [request.headers.get("Range") for request in server.seen]
    assert ranges[0] is None
    resumed_at = int(ranges[1].removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_at <= cut  # what had reached the disk (a partly read chunk is read again)
    assert sizes == [len(data)]
    assert os.listdir(tmp_path) == ["result.dat"]


def test_a_server_ignoring_range_gets_a_fresh_start(tmp_path: Path) -> None:
    data = os.urandom(2 * 1024 * 1024)

    def handler(request: Seen, earlier: int) -> Reply:
        if earlier == 0:
            return Reply(200, data[:1000], short_by=len(data) - 1000)
        return Reply(200, data)  # Pulsar: no Range support, the whole file again

    destination = tmp_path / "result.dat"
    with StubServer(handler) as server:
        open_client(url=server.url, retry=FAST).download("1", "result.dat", "output", str(destination))
    assert destination.read_bytes() == data
