"""lwr's directories and files are its own alone, unless a manager hands them to a job user.

Performed for real: a server (started with the test's ordinary umask, 022) keeps its staging and
persistence directories where any local user could reach them, and runs a job whose environment
carries a secret; another local user (rjtest) then tries to list the staging directory and read
the job script, the outputs and the job's record. With a queued_external_drmaa manager the path
to the job directories is traverse-only (0711): job users can pass, nobody can list.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

from .conftest import run_as
from .test_local_submit_users import SGE_ENV
from http_helpers import Http
from server import TOKEN

SECRET = "job-secret-value"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_staging_and_records_are_private_to_lwr(make_server, service_dir: Path) -> None:
    staging, persisted = service_dir / "files" / "staging", service_dir / "files" / "persisted"
    server = make_server(
        app_options={
            "private_token": TOKEN,
            "staging_directory": str(staging),
            "persistence_directory": str(persisted),
        }
    )
    http = Http(server.url, TOKEN)
    config = http.setup("private")
    assert http.upload("private", "in.txt", b"input\n").status == 200
    env = json.dumps([{"name": "SECRET", "value": SECRET}])
    assert (
        http.submit(
            "private", "echo $SECRET > ../outputs/out.dat; mkdir made; echo x > made/file", env=env
        ).status
        == 200
    )
    assert http.wait_complete("private")["status"] == "complete"
    job = Path(config["job_directory"])
    everything = [staging, staging / "_default_", persisted, *persisted.rglob("*"), job, *job.rglob("*")]
    open_to_others = {
        str(path): oct(mode(path)) for path in everything if not path.is_symlink() and mode(path) & 0o077
    }
    assert open_to_others == {}, "lwr's files are open to other users"
    assert SECRET in (job / "lwr" / "job.sh").read_text()
    for argv in (
        ["ls", str(staging)],
        ["ls", str(staging / "_default_")],
        ["cat", str(job / "lwr" / "job.sh")],
        ["cat", str(job / "outputs" / "out.dat")],
        ["cat", str(job / "inputs" / "in.txt")],
        ["sh", "-c", f"cat {persisted}/*/*/*.json"],
    ):
        result = run_as("rjtest", argv, timeout=30)
        assert result.returncode != 0 and SECRET not in result.stdout and "private" not in result.stdout, argv


def test_staging_is_traverse_only_for_a_manager_that_hands_directories_over(
    make_server, service_dir: Path, monkeypatch
) -> None:
    for name, value in SGE_ENV.items():
        monkeypatch.setenv(name, value)
    staging = service_dir / "files" / "staging"
    server = make_server(
        app_options={"staging_directory": str(staging)},
        job_managers_ini=(
            "[manager:_default_]\ntype = queued_python\n\n[manager:as_user]\ntype = queued_external_drmaa\n"
        ),
    )
    assert server.process is not None and server.process.poll() is None
    assert mode(service_dir / "files") == mode(staging) == mode(staging / "as_user") == 0o711
    assert mode(staging / "_default_") == 0o700
    Http(server.url).setup("listed")
    assert run_as("rjtest", ["ls", str(staging / "_default_")], timeout=30).returncode != 0
    assert run_as("rjtest", ["ls", str(staging)], timeout=30).returncode != 0
