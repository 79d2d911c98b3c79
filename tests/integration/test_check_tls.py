"""``lwr check`` and ``lwr jobs`` against an lwr serving TLS with a certificate of its own, as an
admin runs them after enabling ``ssl_pem``: the CA is named with ``--ca-certs``, and an
untrusted certificate fails at once with that advice instead of three retries."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request

import pytest

from server import TOKEN

LWR = [sys.executable, "-m", "lwr.cli"]


@pytest.fixture
def tls_server(make_server, tmp_path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert)]
        + ["-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )
    pem = tmp_path / "server.pem"
    pem.write_bytes(cert.read_bytes() + key.read_bytes())
    server = make_server(
        "tls", app_options={"private_token": TOKEN}, server_options={"ssl_pem": str(pem)}, wait=False
    )
    url = server.url.replace("http://", "https://")
    import ssl

    context = ssl.create_default_context(cafile=str(cert))
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(url + "healthz", timeout=1, context=context):
                break
        except OSError:
            assert time.monotonic() < deadline, server.log_text()
            time.sleep(0.1)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    return url, cert, token_file


def lwr(*args: str) -> subprocess.CompletedProcess[str]:
    # REQUESTS_CA_BUNDLE as many sites set it system-wide: requests lets it override a session's CA.
    env = {**os.environ, "REQUESTS_CA_BUNDLE": "/etc/ssl/certs/ca-certificates.crt"}
    return subprocess.run([*LWR, *args], capture_output=True, text=True, timeout=120, env=env)


def test_check_over_tls_trusts_the_ca_named_by_ca_certs(tls_server):
    url, cert, token_file = tls_server
    result = lwr("check", "--url", url, "--private-token-file", str(token_file), "--ca-certs", str(cert))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "lwr check PASSED" in result.stdout


def test_an_untrusted_certificate_fails_at_once_saying_what_to_do(tls_server):
    url, _cert, token_file = tls_server
    started = time.monotonic()
    result = lwr("check", "--url", url, "--private-token-file", str(token_file))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "--ca-certs" in result.stdout and "retry" not in result.stderr, result.stdout + result.stderr
    assert time.monotonic() - started < 20


def test_jobs_list_takes_the_token_file_and_the_ca(tls_server):
    url, cert, token_file = tls_server
    result = lwr(
        "jobs", "list", "--url", url, "--private-token-file", str(token_file), "--ca-certs", str(cert)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("JOB")
