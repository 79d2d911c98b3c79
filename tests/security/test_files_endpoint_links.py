"""The client's files endpoint (MQ mode) against a job that plants links: a registered input or
output replaced by a symlink is refused, never followed; refusals are JSON with a code."""

from __future__ import annotations

import os
import socket
import urllib.parse
from pathlib import Path

import requests

from lwr.client.files_endpoint import FilesEndpoint


def staging(source: Path, output: Path) -> dict:
    return {
        "setup": [
            {
                "name": source.name,
                "type": "input",
                "action": {"action_type": "remote_transfer", "source": {"path": str(source)}},
            }
        ],
        "client_outputs": {"output_files": [str(output)], "working_directory": None},
    }


def test_a_registered_input_swapped_for_a_symlink_is_not_followed(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    source = tmp_path / "input.dat"
    source.write_text("input")
    output = tmp_path / "out" / "dataset_1.dat"
    with FilesEndpoint() as files:
        files.register(staging(source, output))
        url = files.url("1")
        source.unlink()
        source.symlink_to(secret)
        reply = requests.get(f"{url}&path={source}", timeout=10)
        assert reply.status_code in (403, 404) and b"secret" not in reply.content
        assert reply.json()["code"] in ("forbidden", "not_found")


def test_a_symlink_under_an_output_directory_receives_nothing(tmp_path: Path) -> None:
    """Extra files (``dataset_1_files/...``) are confined by where they really are; the named
    outputs themselves are the client's own paths, written where the client's names resolve."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    source = tmp_path / "input.dat"
    source.write_text("input")
    output = tmp_path / "out" / "dataset_1.dat"
    with FilesEndpoint() as files:
        files.register(staging(source, output))
        url = files.url("1")
        extras = output.parent / "dataset_1_files"
        extras.mkdir(parents=True)
        os.symlink(elsewhere, extras / "sub")
        reply = requests.post(f"{url}&path={extras / 'sub' / 'x.txt'}", data=b"evil", timeout=10)
        assert reply.status_code == 403 and reply.json()["code"] == "forbidden"
        assert list(elsewhere.iterdir()) == []


def test_refusals_are_json_with_codes(tmp_path: Path) -> None:
    source = tmp_path / "input.dat"
    source.write_text("input")
    output = tmp_path / "out" / "dataset_1.dat"
    with FilesEndpoint() as files:
        files.register(staging(source, output))
        url = files.url("1")
        beyond = requests.get(f"{url}&path={source}", headers={"Range": "bytes=99-"}, timeout=10)
        assert beyond.status_code == 416 and beyond.json()["code"] == "range_not_satisfiable"
        assert beyond.headers["Content-Range"] == "bytes */5"
        wrong_key = requests.get(f"{url.replace(files.job_key, 'guess')}&path={source}", timeout=10)
        assert wrong_key.status_code == 403 and wrong_key.json()["code"] == "forbidden"
        no_key = requests.get(f"{files.base}api/jobs/1/files?path={source}", timeout=10)
        assert no_key.status_code == 403 and no_key.json()["code"] == "forbidden"
        deleted = requests.delete(f"{url}&path={source}", timeout=10)
        assert deleted.status_code == 405 and deleted.json()["code"] == "method_not_allowed"
        assert source.read_text() == "input"


def test_ranges_resume_from_an_offset_or_take_the_tail(tmp_path: Path) -> None:
    source = tmp_path / "input.dat"
    source.write_bytes(b"0123456789")
    output = tmp_path / "out" / "dataset_1.dat"
    with FilesEndpoint() as files:
        files.register(staging(source, output))
        url = files.url("1")
        tail = requests.get(f"{url}&path={source}", headers={"Range": "bytes=-3"}, timeout=10)
        assert tail.status_code == 206 and tail.content == b"789"
        assert tail.headers["Content-Range"] == "bytes 7-9/10"
        resumed = requests.get(f"{url}&path={source}", headers={"Range": "bytes=4-"}, timeout=10)
        assert resumed.status_code == 206 and resumed.content == b"456789"


def test_an_upload_cut_short_leaves_no_output(tmp_path: Path) -> None:
    """A client that dies mid-upload (fewer bytes than its Content-Length, then EOF) must not
    leave a truncated dataset where Galaxy would read it: the write is a temporary file renamed
    into place only once the whole body arrived."""
    source = tmp_path / "input.dat"
    source.write_text("input")
    output = tmp_path / "out" / "dataset_1.dat"
    output.parent.mkdir()
    with FilesEndpoint() as files:
        files.register(staging(source, output))
        url = files.url("1")
        target = urllib.parse.urlsplit(f"{url}&path={output}")
        with socket.create_connection((target.hostname, target.port), timeout=10) as connection:
            connection.sendall(
                f"POST {target.path}?{target.query} HTTP/1.1\r\nHost: x\r\n"
                "Content-Type: application/octet-stream\r\nContent-Length: 1000\r\n\r\n".encode()
                + b"only part of it"
            )
            connection.shutdown(socket.SHUT_WR)
            reply = connection.recv(65536)
        # The server tells the client (400, JSON with a code) or, had it seen the peer vanish, closes.
        assert reply == b"" or reply.startswith(b"HTTP/1.1 400"), reply[:200]
        if reply:
            assert b'"code": "bad_request"' in reply or b'"code":"bad_request"' in reply, reply
        assert not output.exists()
        assert [path.name for path in output.parent.iterdir()] == []
