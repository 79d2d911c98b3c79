"""Start-up: configuration errors stop lwr with a clear message; run.sh starts and stops a daemon."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from server import ROOT, LwrServer, free_port

LWR = [sys.executable, "-m", "lwr.cli"]


def start_failure(tmp_path: Path, app_options: dict[str, str], managers: str | None = None) -> str:
    server = LwrServer(directory=tmp_path, app_options=app_options, job_managers_ini=managers)
    server.directory.mkdir(parents=True, exist_ok=True)
    server.write_config()
    result = subprocess.run(
        [*LWR, "serve", "-c", str(server.config_path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr


def test_misspelled_app_key(tmp_path):
    message = start_failure(tmp_path, {"staging_dirctory": "x"})
    assert "server.ini" in message and "[app:main]" in message and "staging_dirctory" in message
    assert "staging_directory" in message  # the list of what is expected


def test_wrong_value_type(tmp_path):
    message = start_failure(tmp_path, {"assign_ids": "sequential"})
    assert "assign_ids" in message and "expected galaxy or uuid" in message


@pytest.mark.parametrize(
    "managers, fragments",
    [
        ("[manager:a]\ntype = queued_pyton\n", ["job_managers.ini", "[manager:a]", "type", "queued_python"]),
        (
            "[manager:a]\ntype = queued_python\nmax_concurent_jobs = 2\n",
            ["[manager:a]", "max_concurent_jobs", "max_concurrent_jobs"],
        ),
        (
            "[manager:a]\ntype = queued_python\nmax_concurrent_jobs = lots\n",
            ["max_concurrent_jobs", "positive integer"],
        ),
        ("[a]\ntype = queued_python\n", ["[a]", "[manager:NAME]"]),
        ("[manager:a]\nmax_concurrent_jobs = 2\n", ["missing key 'type'"]),
    ],
)
def test_job_managers_errors(tmp_path, managers, fragments):
    message = start_failure(tmp_path, {}, managers)
    for fragment in fragments:
        assert fragment in message, message


def test_star_means_all_cores(make_server):
    server = make_server(
        job_managers_ini="[manager:_default_]\ntype = queued_python\nmax_concurrent_jobs = *\n"
    )
    import json

    with urllib.request.urlopen(server.url + "managers") as response:
        described = json.load(response)["managers"][0]
    assert described["max_concurrent_jobs"] == os.cpu_count()


def test_run_sh_daemon_uses_sample_defaults(tmp_path):
    """A fresh copy of the project directory (no server.ini) starts with run.sh --daemon and stops."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("run.sh", "server.ini.sample"):
        shutil.copy(ROOT / name, project / name)
    port = free_port()
    sample = (project / "server.ini.sample").read_text().replace("port = 8913", f"port = {port}")
    (project / "server.ini.sample").write_text(sample)
    (project / "local_env.sh").write_text(
        f"export LWR_VENV={Path(sys.executable).parent.parent}\nexport LWR_TEST_MARKER=sourced\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
    started = subprocess.run(
        ["bash", "run.sh", "--daemon"], cwd=project, capture_output=True, text=True, timeout=60, env=env
    )
    assert started.returncode == 0, started.stderr
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
                    assert response.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, (project / "lwr.log").read_text()
                time.sleep(0.1)
        assert (project / "lwr.pid").exists()
        assert (project / "files" / "staging").is_dir()
        # the generated token's advice names the file to create, not the sample to edit
        advice = f"set private_token in {project}/server.ini (copy server.ini.sample to server.ini first)"
        assert advice in (project / "lwr.log").read_text()
        again = subprocess.run(
            ["bash", "run.sh", "--daemon"], cwd=project, capture_output=True, text=True, timeout=60, env=env
        )
        assert again.returncode == 1 and "already running" in again.stderr
    finally:
        stopped = subprocess.run(
            ["bash", "run.sh", "--stop-daemon"],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
    assert stopped.returncode == 0, stopped.stderr
    assert not (project / "lwr.pid").exists()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)


def test_ssl_pem_with_paste_server_is_a_config_error(tmp_path):
    server = LwrServer(directory=tmp_path, server_options={"use": "egg:Paste#http", "ssl_pem": "x.pem"})
    server.directory.mkdir(parents=True, exist_ok=True)
    server.write_config()
    result = subprocess.run(
        [*LWR, "serve", "-c", str(server.config_path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and "egg:lwr#http" in result.stderr and "ssl_pem" in result.stderr


def test_lwr_server_keys_are_checked(tmp_path):
    for options, fragments in [
        ({"ssl_pem": "missing.pem"}, ["ssl_pem", "missing.pem", "not found"]),
        ({"header_timout": "5"}, ["header_timout", "header_timeout"]),
        ({"max_request_line": "big"}, ["max_request_line", "a size"]),
    ]:
        server = LwrServer(directory=tmp_path, server_options=options)
        server.directory.mkdir(parents=True, exist_ok=True)
        server.write_config()
        result = subprocess.run(
            [*LWR, "serve", "-c", str(server.config_path)], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr and "[server:main]" in result.stderr
        for fragment in fragments:
            assert fragment in result.stderr, result.stderr


def serve_raw(tmp_path: Path, edit) -> subprocess.CompletedProcess[str]:
    """``lwr serve`` on a server.ini written by LwrServer, then changed by ``edit(text)``."""
    server = LwrServer(directory=tmp_path)
    server.directory.mkdir(parents=True, exist_ok=True)
    server.write_config()
    server.config_path.write_text(edit(server.config_path.read_text()))
    return subprocess.run(
        [*LWR, "serve", "-c", str(server.config_path)], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    "lines, fragments",
    [
        # server.ini.sample's own example: PasteDeploy reads % as the start of %(here)s.
        ("min_free_disk = 5%", ["[app:main]", "min_free_disk", "5%%"]),
        ("message_queue_url = amqp://lwr:pa%40ss@127.0.0.1:5672/lwr", ["message_queue_url", "%%40"]),
        (
            "staging_directory = files/staging\nstaging_directory = elsewhere",
            ["[app:main]", "'staging_directory' is given twice", "line"],
        ),
        ("message_queue_url = http://127.0.0.1:15672/", ["message_queue_url", "amqp://"]),
    ],
)
def test_ini_values_paste_deploy_chokes_on_are_named(tmp_path, lines, fragments):
    result = serve_raw(tmp_path, lambda text: text + lines + "\n")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "server.ini" in result.stderr
    assert "pa%40ss" not in result.stderr  # the broker password stays out of the message
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def test_a_key_before_any_section_is_named(tmp_path):
    result = serve_raw(tmp_path, lambda text: "port = 8913\n" + text)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "line 1" in result.stderr and "port = 8913" in result.stderr


def test_a_port_out_of_range_is_refused_not_wrapped(tmp_path):
    """port = 99999 listened on 34463 (99999 - 65536) without a word."""
    result = serve_raw(tmp_path, lambda text: re.sub(r"(?m)^port = \d+$", "port = 99999", text))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "[server:main]" in result.stderr and "port" in result.stderr and "65535" in result.stderr


def test_a_percentage_written_as_the_sample_says_is_a_percentage(make_server):
    """``min_free_disk = 100%%``: a floor no filesystem meets, so a new job is refused with 507."""
    server = make_server(app_options={"min_free_disk": "100%%"})
    request = urllib.request.Request(server.url + "jobs?job_id=full-1", method="POST", data=b"")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 507
    assert "min_free_disk" in json.loads(refused.value.read())["error"]


@pytest.mark.parametrize(
    "options",
    [
        {"job_managers_config": "job_managrs.ini"},
        {"tenants_file": "tenants.ini", "assign_ids": "uuid"},
        {"tool_config_files": "toolbox.xml"},
    ],
)
def test_a_missing_file_names_the_server_ini_key_that_names_it(tmp_path, options):
    """Not only the missing file's path: the admin is told which key of server.ini to fix."""
    key = next(iter(options))
    message = start_failure(tmp_path, {"private_token": "a-long-enough-token", **options})
    assert "server.ini: [app:main]" in message and key in message and "no such file" in message
    assert options[key] in message


def _start_daemon(server: LwrServer) -> subprocess.CompletedProcess[str]:
    """``lwr serve --daemon`` on the server's config, from its directory (where lwr.pid goes)."""
    server.write_config()
    return subprocess.run(
        [*LWR, "serve", "-c", str(server.config_path), "--daemon"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=server.directory,
    )


def test_a_config_error_with_daemon_is_told_on_the_terminal_and_leaves_no_pid_file(tmp_path):
    """./run.sh --daemon with a typo said only 'the server did not start; see lwr.log' (exit 1)."""
    server = LwrServer(directory=tmp_path, app_options={"staging_dirctory": "x"})
    server.directory.mkdir(parents=True, exist_ok=True)
    result = _start_daemon(server)
    assert result.returncode == 2, result.stderr
    assert "staging_dirctory" in result.stderr and "[app:main]" in result.stderr
    assert not (tmp_path / "lwr.pid").exists()


def test_a_busy_port_leaves_no_pid_file(make_server, tmp_path):
    """The start that fails on a port in use must not leave an empty lwr.pid behind."""
    running = make_server()
    second = tmp_path / "second"
    second.mkdir()
    server = LwrServer(directory=second, server_options={"port": str(running.port)})
    result = _start_daemon(server)
    assert result.returncode == 2 and f"127.0.0.1:{running.port}" in result.stderr, result.stderr
    assert not (second / "lwr.pid").exists()


def test_switching_the_sample_to_waitress_names_the_keys_waitress_refuses(tmp_path):
    """server.ini.sample offers egg:waitress#main; its threadpool_workers line made waitress raise
    a traceback, after lwr had already recovered its jobs."""
    server = LwrServer(directory=tmp_path, server_options={"use": "egg:waitress#main"})
    server.directory.mkdir(parents=True, exist_ok=True)
    server.write_config()
    result = subprocess.run(
        [*LWR, "serve", "-c", str(server.config_path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "[server:main] threadpool_workers" in result.stderr and "threads" in result.stderr
    assert "lwr started" not in result.stderr  # refused before any job was touched


@pytest.mark.parametrize(
    "old, new, fragments",
    [
        (
            "paste.app_factory = lwr.app:app_factory",
            "paste.app_factory = lwrr.app:app_factory",
            ["[app:main]", "lwrr"],
        ),
        ("use = egg:lwr#http", "use = egg:lwr_http#main", ["[server:main]", "egg:lwr#http"]),
        # Pulsar's own server.ini points at its app.yml
        (
            "paste.app_factory = lwr.app:app_factory",
            "paste.app_factory = lwr.app:app_factory\napp_config = app.yml",
            ["app_config", "lwr serve -c app.yml"],
        ),
    ],
)
def test_code_paste_deploy_cannot_import_or_pulsars_app_config_are_named(tmp_path, old, new, fragments):
    result = serve_raw(tmp_path, lambda text: text.replace(old, new))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


@pytest.mark.parametrize("value", ["s3cret%token-long", "s3cret-token-long ; mine"])
def test_a_refused_private_token_is_not_repeated_in_the_message(tmp_path, value):
    result = serve_raw(
        tmp_path, lambda text: text.replace("allow_unauthenticated = true", f"private_token = {value}")
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "private_token" in result.stderr and "s3cret" not in result.stderr, result.stderr


@pytest.mark.parametrize(
    "managers, fragment",
    [
        ("[manager:s]\ntype = queued_cli\njob_plugin = Slurm\nnative_specification = --wrap=x\n", "--wrap"),
        ("[manager:c]\ntype = queued_condor\nsubmit_executable = /bin/sh\n", "executable"),
    ],
)
def test_a_managers_own_check_names_job_managers_ini(tmp_path, managers, fragment):
    """Checked when the manager is built, these named [manager:x] but not the file."""
    message = start_failure(tmp_path, {}, managers)
    assert f"{tmp_path / 'job_managers.ini'}: [manager:" in message and fragment in message, message


def test_a_server_ini_saved_in_latin1_is_named_not_a_traceback(tmp_path):
    """An editor that saved a comment in Latin-1: PasteDeploy's UnicodeDecodeError traceback."""
    server = LwrServer(directory=tmp_path)
    server.directory.mkdir(parents=True, exist_ok=True)
    server.write_config()
    server.config_path.write_bytes(b"# \xe9quipe bio-info\n" + server.config_path.read_bytes())
    result = subprocess.run(
        [*LWR, "serve", "-c", str(server.config_path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "server.ini: cannot read" in result.stderr and "utf-8" in result.stderr
