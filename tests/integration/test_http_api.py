"""Every route of the HTTP API, and every bad input, against a real lwr process."""

from __future__ import annotations

import json
import os

import pytest

import lwr
from lwr.protocol.version import PULSAR_PROTOCOL_VERSION

from http_helpers import Http
from server import TOKEN


@pytest.fixture
def http(lwr_server):
    return Http(lwr_server.url)


@pytest.fixture
def authed(token_server):
    return Http(token_server.url, TOKEN)


def assert_error(reply, status, fragment, code=None):
    assert reply.status == status, (reply.status, reply.body)
    assert reply.headers["content-type"].startswith("application/json")
    body = reply.json()
    assert fragment in body["error"], body
    if code is not None:
        assert body["code"] == code, body
    assert "Traceback" not in reply.body.decode()


# --- the job lifecycle -------------------------------------------------------------------------------
def test_full_lifecycle(http, lwr_server):
    config = http.setup("life1", tool_id="cat1", tool_version="1.0")
    job_dir = config["job_directory"]
    assert config["job_id"] == "life1"
    assert config["tool_id"] == "cat1" and config["tool_version"] == "1.0"
    for key, sub in [
        ("working_directory", "working"),
        ("inputs_directory", "inputs"),
        ("outputs_directory", "outputs"),
        ("configs_directory", "configs"),
        ("tools_directory", "tool_files"),
        ("metadata_directory", "metadata"),
    ]:
        assert config[key] == os.path.join(job_dir, sub)
        assert os.path.isdir(config[key])
    assert config["system_properties"]["separator"] == "/"
    # Galaxy's runners refuse a server whose setup reply lacks pulsar_version (they assume 0.6.0)
    assert config["pulsar_version"] == PULSAR_PROTOCOL_VERSION

    reply = http.upload("life1", "in.txt", b"hello\n")
    assert reply.status == 200
    assert reply.json()["path"] == os.path.join(config["inputs_directory"], "in.txt")
    assert http.upload("life1", "sub/dir/extra.txt", b"x", "input_extra").status == 200
    assert http.upload("life1", "cfg", b"cfg", "config").status == 200

    path = http.request("GET", "/jobs/life1/files/path", {"name": "in.txt", "type": "input"})
    assert path.json() == {"path": os.path.join(config["inputs_directory"], "in.txt")}

    env = json.dumps([{"name": "GREETING", "value": "hi there"}])
    command = (
        f"cat {config['inputs_directory']}/in.txt > {config['outputs_directory']}/out.txt; "
        'echo $GREETING; echo oops >&2; test -d "$_GALAXY_JOB_TMP_DIR" && test -d "$_GALAXY_JOB_HOME_DIR"; '
        "exit 3"
    )
    assert http.submit("life1", command, env=env).status == 200
    status = http.wait_complete("life1")
    assert status["status"] == "complete"
    assert status["complete"] == "true"
    assert status["returncode"] == 3
    assert status["pulsar_version"] == PULSAR_PROTOCOL_VERSION
    assert status["stdout"] == "hi there\n"
    assert status["stderr"] == "oops\n"
    assert "out.txt" in status["outputs_directory_contents"]
    assert "inputs/sub/dir/extra.txt" in status["job_directory_contents"]
    for key in (
        "job_stdout",
        "job_stderr",
        "working_directory",
        "metadata_directory",
        "job_directory",
        "working_directory_contents",
        "metadata_directory_contents",
        "system_properties",
    ):
        assert key in status

    download = http.request("GET", "/jobs/life1/files", {"name": "out.txt", "type": "output"})
    assert download.status == 200 and download.body == b"hello\n"
    assert download.headers["content-length"] == "6"

    ranged = http.request("GET", "/jobs/life1/files", {"name": "out.txt"}, headers={"Range": "bytes=1-3"})
    assert ranged.status == 206 and ranged.body == b"ell"
    assert ranged.headers["content-range"] == "bytes 1-3/6"
    suffix = http.request("GET", "/jobs/life1/files", {"name": "out.txt"}, headers={"Range": "bytes=-2"})
    assert suffix.status == 206 and suffix.body == b"o\n"
    beyond = http.request("GET", "/jobs/life1/files", {"name": "out.txt"}, headers={"Range": "bytes=10-"})
    assert_error(beyond, 416, "range")

    assert http.request("DELETE", "/jobs/life1").status == 200
    assert not os.path.exists(job_dir)
    assert_error(http.request("GET", "/jobs/life1/status"), 404, "no job")


def test_status_while_running_and_cancel_kills_process_group(http, tmp_path):
    config = http.setup("cancel1")
    marker = tmp_path / "child.pid"
    command = f"sleep 300 & echo $! > {marker}; wait"
    assert http.submit("cancel1", command).status == 200
    status = http.wait_status("cancel1", {"running"})
    assert status == {
        "complete": "false",
        "status": "running",
        "job_id": "cancel1",
        "pulsar_version": PULSAR_PROTOCOL_VERSION,
        "lwr_version": lwr.__version__,
    }
    for _ in range(100):
        if marker.exists() and marker.read_text().strip():
            break
        import time

        time.sleep(0.05)
    child = int(marker.read_text())
    assert http.request("PUT", "/jobs/cancel1/cancel").status == 200
    final = http.wait_complete("cancel1", timeout=30)
    assert final["status"] == "cancelled"
    import time

    for _ in range(100):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the job's background child survived cancel")
    assert os.path.isdir(config["job_directory"])


def test_cancel_queued_job(token_server):
    http = Http(token_server.url, TOKEN)
    http.setup("blocker")
    http.setup("waiting")
    assert http.submit("blocker", "sleep 30").status == 200
    assert http.submit("waiting", "echo never").status == 200
    http.wait_status("blocker", {"running"})
    assert http.status("waiting")["status"] == "queued"
    assert http.request("PUT", "/jobs/waiting/cancel").status == 200
    assert http.status("waiting")["status"] == "cancelled"
    http.request("PUT", "/jobs/blocker/cancel")
    http.wait_complete("blocker")


def test_fifo_and_max_concurrent_jobs(token_server, tmp_path):
    """Manager 'two' runs two jobs at once, in arrival order."""
    http = Http(token_server.url + "managers/two/", TOKEN)
    log = tmp_path / "order.log"
    for index in range(5):
        http.setup(f"fifo{index}")
    for index in range(5):
        # Staggered lengths space the ends, so each later start has its own moment.
        command = f"echo start {index} >> {log}; sleep {0.3 + 0.3 * index:.1f}; echo end {index} >> {log}"
        assert http.submit(f"fifo{index}", command).status == 200
    for index in range(5):
        assert http.wait_complete(f"fifo{index}")["status"] == "complete"
    events = log.read_text().split("\n")
    starts = [line for line in events if line.startswith("start")]
    assert sorted(starts[:2]) == ["start 0", "start 1"]
    assert starts[2:] == ["start 2", "start 3", "start 4"]
    running = peak = 0
    for line in events:
        if line.startswith("start"):
            running += 1
            peak = max(peak, running)
        elif line.startswith("end"):
            running -= 1
    assert peak == 2


def test_healthz_and_managers(http):
    health = http.request("GET", "/healthz")
    assert health.status == 200 and "version" in health.json()
    managers = http.request("GET", "/managers").json()["managers"]
    assert managers[0]["name"] == "_default_" and managers[0]["type"] == "queued_python"


# --- authentication --------------------------------------------------------------------------------
def test_token_required_and_checked(token_server):
    anonymous = Http(token_server.url)
    assert_error(anonymous.request("POST", "/jobs", {"job_id": "t1"}), 401, "token")
    wrong = Http(token_server.url, "not-the-token")
    assert_error(wrong.request("GET", "/jobs/t1/status"), 401, "token")
    assert anonymous.request("GET", "/healthz").status == 200
    header = anonymous.request("POST", "/jobs", {"job_id": "t1"}, headers={"X-Lwr-Token": TOKEN})
    assert header.status == 200
    bearer = anonymous.request("GET", "/jobs/t1/status", headers={"Authorization": f"Bearer {TOKEN}"})
    assert bearer.status == 200


# --- bad input ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name", ["../escape", "a/../../escape", "/etc/passwd", "bad\x00name", "", "..", "a/.."]
)
def test_upload_names_confined(http, name):
    http.setup("conf1")
    assert_error(http.upload("conf1", name, b"x"), 400, "name")


def test_symlink_escape_refused(http, tmp_path):
    config = http.setup("sym1")
    os.symlink(str(tmp_path), os.path.join(config["inputs_directory"], "link"))
    assert_error(http.upload("sym1", "link/evil", b"x"), 400, "outside")
    os.symlink("/etc/passwd", os.path.join(config["working_directory"], "passwd"))
    assert_error(
        http.request("GET", "/jobs/sym1/files", {"name": "passwd", "type": "output_workdir"}), 400, "outside"
    )


def test_bad_requests(http):
    http.setup("bad1")
    assert_error(http.request("POST", "/jobs"), 400, "job_id", code="bad_request")
    assert_error(http.request("POST", "/jobs", {"job_id": "../x"}), 400, "job_id")
    assert_error(http.request("POST", "/jobs", {"job_id": "a b"}), 400, "job_id")
    assert_error(
        http.request("POST", "/jobs/bad1/files", {"name": "x"}, body=b"1")
        if False
        else http.request("POST", "/jobs/bad1/files", {"type": "input"}, body=b"1"),
        400,
        "name",
    )
    assert_error(
        http.request("POST", "/jobs/bad1/files", {"name": "x", "type": "nonsense"}, body=b"1"),
        400,
        "unknown file type",
    )
    assert_error(http.submit("bad1", "true", env="{not json"), 400, "env")
    assert_error(http.submit("bad1", "true", env=json.dumps([{"name": "1BAD", "value": "x"}])), 400, "env")
    assert_error(http.submit("bad1", "true", params="[1]"), 400, "params")
    assert_error(http.request("POST", "/jobs/bad1/submit"), 400, "command_line")
    assert_error(http.request("GET", "/jobs/bad1/files", {"name": "x", "type": "input"}), 400, "output type")


def test_unknown_job_manager_output_and_route(http):
    assert_error(http.request("GET", "/jobs/nope/status"), 404, "no job", code="not_found")
    assert_error(http.request("PUT", "/jobs/nope/cancel"), 404, "no job")
    assert_error(http.request("DELETE", "/jobs/nope"), 404, "no job")
    assert_error(http.request("POST", "/managers/ghost/jobs", {"job_id": "x"}), 404, "no manager")
    assert_error(http.request("GET", "/no/such/route"), 404, "no route")
    assert_error(http.request("DELETE", "/healthz"), 405, "not allowed", code="method_not_allowed")
    http.setup("out1")
    http.submit("out1", "true")
    http.wait_complete("out1")
    assert_error(
        http.request("GET", "/jobs/out1/files", {"name": "missing.dat", "type": "output"}),
        404,
        "no such output",
    )


def test_submit_twice_is_conflict_and_runs_once(http, tmp_path):
    counter = tmp_path / "count"
    http.setup("twice")
    assert http.submit("twice", f"echo run >> {counter}").status == 200
    assert_error(http.submit("twice", f"echo run >> {counter}"), 409, "already submitted")
    http.wait_complete("twice")
    assert counter.read_text() == "run\n"
    assert_error(http.upload("twice", "late.txt", b"x"), 409, "already submitted")


def test_long_galaxy_command_line_in_the_query_string(http, tmp_path):
    """Galaxy's Pulsar client sends the whole submit in the query string: 100 KB of command line
    (a tool with many inputs) must run, as it does on Pulsar."""
    http.setup("long1")
    out = tmp_path / "long.out"
    command = f"echo {'x' * 100_000} | wc -c > {out}"
    assert http.submit("long1", command).status == 200
    assert http.wait_complete("long1")["returncode"] == 0
    assert out.read_text().strip() == "100001"


def test_upload_over_limit_is_413(authed):
    """Refused from the Content-Length alone, before the body is read."""
    import socket

    authed.setup("big1")
    with socket.create_connection((authed.host, authed.port)) as sock:
        sock.sendall(
            f"POST /jobs/big1/files?name=big&type=input&private_token={TOKEN} HTTP/1.1\r\n"
            f"Host: x\r\nContent-Length: {65 * 1024 * 1024}\r\n\r\n".encode()
            + b"x" * 1024
        )
        sock.settimeout(10)
        head = b""
        while chunk := sock.recv(65536):
            head += chunk
        head = head.decode()
    assert head.startswith("HTTP/1.") and " 413 " in head.split("\r\n")[0], head
    assert "over the limit" in head


def test_interrupted_upload_leaves_nothing(http):
    import socket

    config = http.setup("cut1")
    with socket.create_connection((http.host, http.port)) as sock:
        sock.sendall(
            b"POST /jobs/cut1/files?name=half.dat&type=input HTTP/1.1\r\nHost: x\r\n"
            b"Content-Length: 1000000\r\n\r\n" + b"y" * 1000
        )
    import time

    time.sleep(0.5)
    inputs = os.listdir(config["inputs_directory"])
    assert "half.dat" not in inputs
    assert not [name for name in inputs if name.endswith(".upload")], inputs


def test_sha256_header_is_verified(http):
    import hashlib

    http.setup("sum1")
    data = b"checked bytes"
    good = http.request(
        "POST",
        "/jobs/sum1/files",
        {"name": "a", "type": "input"},
        body=data,
        headers={"X-Lwr-Sha256": hashlib.sha256(data).hexdigest()},
    )
    assert good.status == 200 and good.json()["sha256"] == hashlib.sha256(data).hexdigest()
    bad = http.request(
        "POST",
        "/jobs/sum1/files",
        {"name": "b", "type": "input"},
        body=data,
        headers={"X-Lwr-Sha256": "0" * 64},
    )
    assert_error(bad, 400, "SHA-256", code="integrity")
    assert not os.path.exists(os.path.join(http.setup("sum1")["inputs_directory"], "b"))


def test_assign_ids_uuid(make_server):
    server = make_server("uuid", app_options={"assign_ids": "uuid"})
    http = Http(server.url)
    first = http.setup("42")["job_id"]
    second = http.setup("42")["job_id"]
    assert first != second and len(first) == 32
    assert http.submit(first, "true").status == 200
    assert http.wait_complete(first)["status"] == "complete"


def test_cache_routes(make_server, tmp_path):
    server = make_server("cache", app_options={"file_cache_dir": str(tmp_path / "cache")})
    http = Http(server.url)
    params = {"ip": "10.0.0.1", "path": "/data/x.dat"}
    assert http.request("GET", "/cache/status", params).json()["ready"] is False
    assert http.request("PUT", "/cache", params).json() is True
    assert http.request("PUT", "/cache", params).json() is False
    assert http.request("POST", "/cache", params, body=b"cached!").status == 200
    status = http.request("GET", "/cache/status", params).json()
    assert status["ready"] is True
    config = http.setup("c1")
    reply = http.request(
        "POST", "/jobs/c1/files", {"name": "x.dat", "type": "input", "cache_token": status["token"]}
    )
    assert reply.status == 200
    with open(os.path.join(config["inputs_directory"], "x.dat"), "rb") as handle:
        assert handle.read() == b"cached!"


def test_galaxy_style_redirected_streams_are_reported(http):
    """Galaxy's command line sends the tool's streams to metadata/tool_stdout itself."""
    http.setup("redir")
    assert (
        http.submit(
            "redir", "echo to-meta > ../metadata/tool_stdout; echo err-meta 2> ../metadata/tool_stderr >&2"
        ).status
        == 200
    )
    status = http.wait_complete("redir")
    assert status["stdout"] == "to-meta\n" and status["stderr"] == "err-meta\n"


def test_cache_ip_defaults_to_the_connection_address(make_server, tmp_path):
    server = make_server("cache-ip", app_options={"file_cache_dir": str(tmp_path / "cache")})
    http = Http(server.url)
    assert http.request("PUT", "/cache", {"path": "/d/f"}).json() is True
    assert http.request("POST", "/cache", {"path": "/d/f"}, body=b"z").status == 200
    assert http.request("GET", "/cache/status", {"path": "/d/f"}).json()["ready"] is True
    assert http.request("GET", "/cache/status", {"ip": "10.9.9.9", "path": "/d/f"}).json()["ready"] is False
