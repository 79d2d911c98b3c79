"""The client's files endpoint (MQ mode) reads a hostile form in bounded memory.

Attack (issue 8, c/e): whoever holds the endpoint's ``job_key`` (the remote lwr, and so any job
running there as lwr's account, which can read its own submit message) may POST a form to an
output path. The endpoint used webob's form parsing: a field without a filename was read into
memory whole, and a part's head was read line by line with no limit (a 128 MiB header line cost
the client process over a gigabyte), so a job could exhaust the memory of ``lwr submit`` /
``lwr check`` on the client's machine. Each form goes to a real endpoint in its own process,
whose peak resident memory (VmHWM) is read from /proc.
"""

from __future__ import annotations

import http.client
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from lwr.protocol.multipart import form_head, form_tail

HERE = Path(__file__).resolve().parent
MIB = 1 << 20
#: What a 128 MiB field may cost the endpoint, at most (it used to cost 258 MiB to 1 GiB).
GROWTH_LIMIT_MIB = 48


class EndpointProcess:
    def __init__(self, output: Path) -> None:
        self.output = output
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "files_endpoint_process.py"), str(output)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        assert self.url, "the endpoint process did not start"
        self.start_mib = self.peak_mib()

    def peak_mib(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
        raise AssertionError("no VmHWM")

    def post(self, parts: list[bytes], content_type: str = "multipart/form-data; boundary=BB") -> int:
        """Stream the parts as one body; the reply's status (the endpoint may answer before the end)."""
        split = urllib.parse.urlsplit(self.url)
        connection = http.client.HTTPConnection(split.hostname, split.port, timeout=300)
        try:
            connection.putrequest("POST", f"{split.path}?{split.query}&path={self.output}")
            connection.putheader("Content-Type", content_type)
            connection.putheader("Content-Length", str(sum(len(part) for part in parts)))
            connection.endheaders()
            for part in parts:
                try:
                    connection.send(part)
                except OSError:  # refused before the end of the body
                    break
            return connection.getresponse().status
        finally:
            connection.close()

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(30)


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[EndpointProcess]:
    process = EndpointProcess(tmp_path / "outputs" / "dataset_1.dat")
    yield process
    process.close()


FILE_PART = b'--BB\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nthe output\r\n'
#: (form, whether the output is written): 128 MiB where the endpoint used to keep it in memory.
ATTACKS = {
    "a large field without a filename": (
        [b'--BB\r\nContent-Disposition: form-data; name="junk"\r\n\r\n', *[b"x" * MIB] * 128, b"\r\n"]
        + [FILE_PART, b"--BB--\r\n"],
        True,
    ),
    "a part head of one long line": (
        [b"--BB\r\nX-Long: ", *[b"x" * MIB] * 128, b"\r\n\r\n--BB--\r\n"],
        False,
    ),
    "a part head of many lines": (
        [b"--BB\r\n", *[b"X: " + b"x" * 1000 + b"\r\n"] * 130_000, b"\r\n--BB--\r\n"],
        False,
    ),
    "200,000 small fields": (
        [b'--BB\r\nContent-Disposition: form-data; name="a"\r\n\r\nx\r\n'] * 200_000
        + [FILE_PART, b"--BB--\r\n"],
        False,
    ),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_hostile_forms_are_read_in_bounded_memory(endpoint: EndpointProcess, attack: str) -> None:
    parts, written = ATTACKS[attack]
    status = endpoint.post(parts)
    growth = endpoint.peak_mib() - endpoint.start_mib
    assert growth < GROWTH_LIMIT_MIB, f"{attack}: the endpoint grew by {growth} MiB"
    if written:
        assert status == 200 and endpoint.output.read_bytes() == b"the output"
    else:
        assert status == 400 and not endpoint.output.exists()


def test_forms_of_lwr_and_of_requests_still_arrive(endpoint: EndpointProcess) -> None:
    data = bytes(range(256)) * 4096 + b"\r\n--B, a prefix of the delimiter\r\n-"
    assert endpoint.post([form_head("BB", "dataset_1.dat"), data, form_tail("BB")]) == 200
    assert endpoint.output.read_bytes() == data
    reply = requests.post(
        f"{endpoint.url}&path={endpoint.output}",
        data={"note": "a field before the file"},
        files={"file": ("dataset_1.dat", b"from requests\r\n")},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    assert endpoint.output.read_bytes() == b"from requests\r\n"
    truncated = [form_head("BB", "x"), b"half of it"]
    assert endpoint.post(truncated) == 400
    assert endpoint.output.read_bytes() == b"from requests\r\n"


def current_mib(endpoint: EndpointProcess) -> int:
    for line in Path(f"/proc/{endpoint.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    raise AssertionError("no VmRSS")


def test_refusals_without_the_key_are_not_kept_without_bound(endpoint: EndpointProcess) -> None:
    """Attack (a): anyone who reaches the port is refused (wrong job_key); each refusal was kept,
    with its path, for the report, so every 100 requests with 200 KB paths held 20 MB more, for
    good. (The first requests warm up the allocator's arenas; after them memory must stay flat.)"""
    split = urllib.parse.urlsplit(endpoint.url)

    def refused(count: int) -> None:
        for attempt in range(count):
            connection = http.client.HTTPConnection(split.hostname, split.port, timeout=60)
            try:
                connection.request("GET", f"{split.path}?job_key=guess{attempt}&path=/{'x' * 200_000}")
                assert connection.getresponse().status == 403
            finally:
                connection.close()

    refused(200)
    before = current_mib(endpoint)
    refused(400)
    growth = current_mib(endpoint) - before
    assert growth < 12, f"the endpoint holds {growth} MiB more after 400 more refusals"
