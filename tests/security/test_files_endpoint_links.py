"""The client's files endpoint (MQ mode) against a job that plants links: a registered input or
output replaced by a symlink is refused, never followed; refusals are JSON with a code."""

from __future__ import annotations

import os
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
