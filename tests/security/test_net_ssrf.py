"""SSRF through server-side staging, performed against real HTTP servers on loopback: every URL
form that once slipped past the allow-list, directly, behind a redirect, and through a real
MQ-mode lwr; DNS rebinding; and HTTPS still verified against the name when the address is pinned."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from mq_helpers import publish
from net_helpers import Authority, RecordingServer

from lwr.errors import StagingError
from lwr.staging.allow_list import UrlPolicy, UrlRefused
from lwr.staging.transfer import PinnedHttp, Transfers

PREFIX = "/api/jobs/"


@pytest.fixture
def allowed() -> Iterator[RecordingServer]:
    server = RecordingServer("allowed")
    yield server
    server.stop()


@pytest.fixture
def secret() -> Iterator[RecordingServer]:
    server = RecordingServer("secret")
    yield server
    server.stop()


def attacks(allowed: RecordingServer, secret: RecordingServer) -> dict[str, str]:
    base = allowed.base
    return {
        "backslash": f"http://127.0.0.1:{secret.port}\\@127.0.0.1:{allowed.port}{PREFIX}1/files",
        "dot-segments": f"{base}{PREFIX}../../admin",
        "encoded-dots": f"{base}{PREFIX}%2e%2e/%2e%2e/admin",
        "mixed-case-dots": f"{base}{PREFIX}%2E%2e/.%2E/admin",
        "encoded-slash": f"{base}{PREFIX}..%2f..%2fadmin",
    }


FORMS = ["backslash", "dot-segments", "encoded-dots", "mixed-case-dots", "encoded-slash"]


def assert_no_harm(allowed: RecordingServer, secret: RecordingServer) -> None:
    assert secret.requests == [], f"the secret server was reached: {secret.requests}"
    outside = [path for path in allowed.effective_paths() if not (path + "/").startswith(PREFIX)]
    assert outside == [], f"paths outside {PREFIX} were served: {allowed.requests}"


@pytest.mark.parametrize("form", FORMS)
def test_bypass_forms_are_refused_before_any_request(form, allowed, secret, tmp_path):
    transfers = Transfers(UrlPolicy([allowed.base + PREFIX]), attempts=1)
    with pytest.raises(UrlRefused):
        transfers.download(attacks(allowed, secret)[form], tmp_path / "got")
    assert not (tmp_path / "got").exists()
    assert_no_harm(allowed, secret)


@pytest.mark.parametrize("form", FORMS)
def test_bypass_forms_behind_a_redirect_are_refused(form, allowed, secret, tmp_path):
    allowed.responses[f"{PREFIX}moved"] = (302, {"Location": attacks(allowed, secret)[form]}, b"")
    transfers = Transfers(UrlPolicy([allowed.base + PREFIX]), attempts=1)
    with pytest.raises(UrlRefused):
        transfers.download(f"{allowed.base}{PREFIX}moved", tmp_path / "got")
    assert [request["effective"] for request in allowed.requests] == [f"{PREFIX}moved"]
    assert_no_harm(allowed, secret)


def test_refused_forms_table():
    """Forms a server or proxy may read differently than the check: all refused, no request needed."""
    policy = UrlPolicy(["http://127.0.0.1:8080/api/jobs/"])
    for url in [
        "http://127.0.0.1:8080/api/jobs/..;/..;/admin",
        "http://x@127.0.0.1:8080/api/jobs/1",
        "http://127.0.0.1:8080/api/jobs/%00",
        "http://127.0.0.1:8080/api/jobs/a%5c..%5c..%5cadmin",
        "http://127.0.0.1:8080/api/jobs/1\t",
        "http://127.0.0.1:8080/api/jobs/1#x",
        "http://127.0.0.1:8080/api/jobs/\u00e9",
        "http://127.0.0.1:8080/api/jobs/%zz",
        "http://127.0.0.1:8080/API/jobs/1",
        "http://127.0.0.1:8080/api/jobsx",
        "http://127.0.0.1:8080/api/jobs/./../admin",
    ]:
        with pytest.raises(UrlRefused):
            policy.check_url(url)
    checked = policy.check_url("http://127.0.0.1:8080/api/jobs/1/files?job_key=k&path=%2Fdata%2Fx.dat")
    assert checked.target == "/api/jobs/1/files?job_key=k&path=%2Fdata%2Fx.dat"


def _pair_on_one_port() -> tuple[RecordingServer, RecordingServer]:
    """A server on 127.0.0.2 and another on 127.0.0.1 with the same port."""
    for _ in range(20):
        good = RecordingServer("good", host="127.0.0.2")
        try:
            return good, RecordingServer("evil", host="127.0.0.1", port=good.port)
        except OSError:
            good.stop()
    raise RuntimeError("no port free on both 127.0.0.1 and 127.0.0.2")


def test_dns_rebinding_connects_to_the_checked_address(tmp_path):
    """The check's lookup of the name answers 127.0.0.2; any other lookup (the system's, which an
    HTTP library makes when it connects by name) answers 127.0.0.1. The request must go to the
    address that was checked, with the name in the Host header."""
    good, evil = _pair_on_one_port()
    try:
        policy = UrlPolicy(
            [f"http://localhost:{good.port}{PREFIX}"], resolver=lambda host, port: ["127.0.0.2"]
        )
        Transfers(policy, attempts=1).download(f"http://localhost:{good.port}{PREFIX}1/x", tmp_path / "got")
        assert evil.requests == [], "the request went to the rebound address"
        assert (tmp_path / "got").read_bytes() == b"good"
        assert [request["host"] for request in good.requests] == [f"localhost:{good.port}"]
    finally:
        good.stop()
        evil.stop()


def test_https_to_a_pinned_address_verifies_the_name(tmp_path):
    """The address is pinned, yet TLS still sends the name (SNI) and checks the certificate against it."""
    authority = Authority(tmp_path)
    right = RecordingServer("right", tls=authority.server_context("localhost"))
    wrong = RecordingServer("wrong", tls=authority.server_context("other.test"))
    try:
        policy = UrlPolicy(
            [f"https://localhost:{right.port}{PREFIX}", f"https://localhost:{wrong.port}{PREFIX}"],
            resolver=lambda host, port: ["127.0.0.1"],
        )
        transfers = Transfers(policy, attempts=1, http=PinnedHttp(verify=str(authority.ca_path)))
        transfers.download(f"https://localhost:{right.port}{PREFIX}1", tmp_path / "got")
        assert (tmp_path / "got").read_bytes() == b"right"
        assert right.requests[0]["host"] == f"localhost:{right.port}"
        with pytest.raises(StagingError, match="(?i)certificate|hostname"):
            transfers.download(f"https://localhost:{wrong.port}{PREFIX}1", tmp_path / "wrong")
        assert wrong.requests == []
    finally:
        right.stop()
        wrong.stop()


@pytest.mark.parametrize("form", ["backslash", "dot-segments", "encoded-slash"])
def test_real_mq_lwr_refuses_the_bypass(form, mq_server, vhost, listener, allowed, secret, tmp_path):
    """A setup message whose input URL is a bypass form: the job fails, nothing is fetched."""
    mq_server(remote_staging_allowed_urls=allowed.base + PREFIX)
    job_id = f"ssrf-{form}"
    url = attacks(allowed, secret)[form] + "?path=/data/x.dat&file_type=input"
    publish(
        vhost.url,
        "_default_",
        "setup",
        {
            "job_id": job_id,
            "command_line": "cat ../inputs/input.dat",
            "setup_params": {"job_id": job_id, "tool_id": "t", "tool_version": "1"},
            "remote_staging": {
                "setup": [
                    {
                        "name": "input.dat",
                        "type": "input",
                        "action": {
                            "action_type": "remote_transfer",
                            "url": url,
                            "source": {"path": "/data/x.dat"},
                            "path": "/data/x.dat",
                        },
                    }
                ]
            },
        },
    )
    final = listener.wait_final(job_id)
    assert final["status"] == "failed"
    assert "refused" in final["job_stderr"]
    assert_no_harm(allowed, secret)
