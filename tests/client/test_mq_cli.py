"""``lwr check --amqp-url`` and ``lwr submit --amqp-url`` against a real lwr over a real RabbitMQ.

Each test has its own vhost. The commands run as subprocesses (``python -m lwr.cli``), serving
their files on a fixed loopback port that the server's ``remote_staging_allowed_urls`` lists.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import kombu
import pytest
import requests

from lwr.client.files_endpoint import FilesEndpoint

from server import ROOT, LwrServer, free_port

BROKER = "amqp://guest:guest@127.0.0.1:5672"


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=60, check=True)


@pytest.fixture
def vhost_url() -> Iterator[str]:
    name = f"lwr-test-cli-{uuid.uuid4().hex[:10]}"
    rabbitmqctl("add_vhost", name)
    rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    yield f"{BROKER}/{name}"
    try:
        rabbitmqctl("delete_vhost", name)
    except (subprocess.SubprocessError, OSError):
        pass


@pytest.fixture
def files_port() -> int:
    return free_port()


@pytest.fixture
def mq_lwr(make_server: Callable[..., LwrServer], vhost_url: str, files_port: int) -> LwrServer:
    """An lwr consuming the vhost (managers ``_default_`` and ``mq``), allowed to reach ``files_port``."""
    return make_server(
        app_options={
            "message_queue_url": vhost_url,
            "remote_staging_allowed_urls": f"http://127.0.0.1:{files_port}/",
            "amqp_heartbeat": "10",
        },
        job_managers_ini="[manager:_default_]\ntype = queued_python\n\n[manager:mq]\ntype = queued_python\n",
    )


def lwr(*args: str, cwd: Path | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lwr.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd or ROOT,
    )


def explain(result: subprocess.CompletedProcess[str], server: LwrServer | None = None) -> str:
    return f"rc={result.returncode}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}" + (
        f"\n--- server log ---\n{server.log_text()[-4000:]}" if server else ""
    )


@pytest.mark.parametrize("layout", ["relative", "jobs-directory"])
def test_check_over_the_queue_passes(mq_lwr: LwrServer, vhost_url: str, files_port: int, layout: str) -> None:
    """Every step of the representative job, lwr fetching the inputs and posting the outputs itself.
    With ``--jobs-directory`` (and a named manager) the server paths are absolute, as Galaxy's are."""
    extra = (
        ["--manager", "mq", "--jobs-directory", str(mq_lwr.staging / "mq")]
        if layout == "jobs-directory"
        else []
    )
    result = lwr(
        "check",
        "--amqp-url",
        vhost_url,
        "--files-listen",
        f"127.0.0.1:{files_port}",
        "--timeout",
        "120",
        *extra,
    )
    assert result.returncode == 0, explain(result, mq_lwr)
    lines = result.stdout.splitlines()
    steps = [line for line in lines if line.startswith("[")]
    assert steps and all(" PASS " in line for line in steps), explain(result)
    assert "lwr check PASSED" in lines[-1]
    assert any("lwr answers on the queue" in line for line in steps)
    endpoint = next(line for line in steps if "files endpoint: only the job's files" in line)
    assert "none refused" in endpoint and "0 inputs fetched" not in endpoint
    if layout == "jobs-directory":
        assert any(str(mq_lwr.staging / "mq") in line for line in steps if "unstructured files" in line), (
            explain(result)
        )


def test_submit_over_the_queue_propagates_the_exit_code(
    mq_lwr: LwrServer, vhost_url: str, files_port: int, tmp_path: Path
) -> None:
    connection = ["--amqp-url", vhost_url, "--files-listen", f"127.0.0.1:{files_port}", "--timeout", "120"]
    simple = lwr("submit", *connection, "--", "echo", "hi")
    assert simple.returncode == 0, explain(simple, mq_lwr)
    assert simple.stdout == "hi\n"
    assert "job complete" in simple.stderr

    work = tmp_path / "client"  # not tmp_path: the server's directory there is called lwr
    work.mkdir()
    (work / "in.txt").write_text("some input\n")
    failing = lwr(
        "submit",
        *connection,
        "-q",
        "-i",
        "in.txt",
        "-o",
        "out.txt",
        "--",
        "tr a-z A-Z < in.txt > out.txt; echo to stdout; echo to stderr >&2; exit 7",
        cwd=work,
    )
    assert failing.returncode == 7, explain(failing, mq_lwr)
    assert failing.stdout == "to stdout\n"
    assert "to stderr" in failing.stderr
    assert (work / "out.txt").read_text() == "SOME INPUT\n", "the output was posted back by lwr"


def test_a_manager_nobody_consumes_fails_with_a_clear_message(
    mq_lwr: LwrServer, vhost_url: str, files_port: int
) -> None:
    check = lwr("check", "--amqp-url", vhost_url, "--manager", "nobody", "--timeout", "3")
    assert check.returncode == 1, explain(check)
    assert "[ 1] lwr answers on the queue (status probe) FAIL" in check.stdout
    assert "is an lwr (or Pulsar) consuming manager 'nobody'" in check.stdout
    assert check.stdout.splitlines()[-1].startswith(
        "lwr check FAILED at step 'lwr answers on the queue (status probe)'"
    )

    submit = lwr(
        "submit", "--amqp-url", vhost_url, "--manager", "nobody", "--timeout", "3", "--", "echo", "hi"
    )
    assert submit.returncode == 1, explain(submit)
    assert "consuming manager 'nobody'" in submit.stderr
    with kombu.Connection(vhost_url) as broker:  # nothing left to run whenever someone consumes 'nobody'
        channel = broker.channel()
        try:
            _name, waiting, _consumers = channel.queue_declare(queue="pulsar_nobody__setup", passive=True)
        except Exception:  # noqa: BLE001 - amqp's NotFound: never declared, so nothing in it
            waiting = 0
        assert waiting == 0


def test_a_files_endpoint_lwr_may_not_reach_fails_the_job_step(mq_lwr: LwrServer, vhost_url: str) -> None:
    other_port = free_port()
    result = lwr(
        "check", "--amqp-url", vhost_url, "--files-listen", f"127.0.0.1:{other_port}", "--timeout", "60"
    )
    assert result.returncode == 1, explain(result)
    assert "job finishes" in result.stdout.splitlines()[-1]
    assert "not allowed by remote_staging_allowed_urls" in result.stdout
    assert f"must list http://127.0.0.1:{other_port}/" in result.stdout


def test_files_endpoint_serves_only_the_jobs_files(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    source = tmp_path / "input.dat"
    source.write_text("input")
    output = tmp_path / "out" / "dataset_1.dat"
    with FilesEndpoint() as files:
        files.register(
            {
                "setup": [
                    {
                        "name": "input.dat",
                        "type": "input",
                        "action": {"action_type": "remote_transfer", "source": {"path": str(source)}},
                    }
                ],
                "client_outputs": {"output_files": [str(output)], "working_directory": None},
            }
        )
        url = files.url("1")
        assert requests.get(f"{url}&path={source}", timeout=10).text == "input"
        resumed = requests.get(f"{url}&path={source}", headers={"Range": "bytes=2-"}, timeout=10)
        assert (resumed.status_code, resumed.text) == (206, "put")
        assert requests.get(f"{url}&path={secret}", timeout=10).status_code == 403
        assert (
            requests.get(f"{url}&path={tmp_path}/../{tmp_path.name}/secret.txt", timeout=10).status_code
            == 403
        )
        wrong_key = url.replace(files.job_key, "guess")
        assert requests.get(f"{wrong_key}&path={source}", timeout=10).status_code == 403

        posted = requests.post(
            f"{url}&path={output}", files={"file": ("x", b"out\r\n--not-a-boundary")}, timeout=10
        )
        assert posted.status_code == 200 and output.read_bytes() == b"out\r\n--not-a-boundary"
        extra = output.parent / "dataset_1_files" / "sub" / "extra.txt"
        assert requests.post(f"{url}&path={extra}", data=b"raw body", timeout=10).status_code == 200
        assert extra.read_bytes() == b"raw body"
        for target in (
            secret,
            tmp_path / "out" / "other.dat",
            output.parent / "dataset_1_files" / ".." / "x",
        ):
            assert (
                requests.post(f"{url}&path={target}", files={"file": b"evil"}, timeout=10).status_code == 403
            )
        assert secret.read_text() == "secret"
        assert len(files.refused) == 6
