"""Helpers for the network attack tests: recording HTTP(S) servers on loopback, a throw-away CA,
and the message-queue fixtures (a private vhost, an MQ-mode lwr)."""

from __future__ import annotations

import datetime
import ipaddress
import posixpath
import socket
import ssl
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "messaging"))

import mq_fixtures  # noqa: E402
from mq_helpers import Vhost  # noqa: E402

vhost, listener = mq_fixtures.vhost, mq_fixtures.listener


class RecordingServer:
    """An HTTP server that records every request: method, raw target, the path a decoding and
    normalising server (most of them) would serve, and the Host header. ``responses`` maps an
    effective path to (status, headers, body); anything else is 200 with the server's name."""

    def __init__(
        self, name: str, host: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None
    ) -> None:
        self.name = name
        self.requests: list[dict[str, str]] = []
        self.responses: dict[str, tuple[int, dict[str, str], bytes]] = {}
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                effective = posixpath.normpath(unquote(self.path.split("?", 1)[0]))
                recorder.requests.append(
                    {
                        "method": self.command,
                        "target": self.path,
                        "effective": effective,
                        "host": str(self.headers.get("Host")),
                    }
                )
                status, headers, body = recorder.responses.get(effective, (200, {}, recorder.name.encode()))
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = _answer  # noqa: N815
            do_POST = _answer  # noqa: N815

        self.server = ThreadingHTTPServer((host, port), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.host = host
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    def effective_paths(self) -> list[str]:
        return [request["effective"] for request in self.requests]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Authority:
    """A throw-away certificate authority issuing server certificates for given names."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lwr test CA")])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.ca_path = directory / "ca.pem"
        self.ca_path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, dns_name: str) -> tuple[Path, Path]:
        """(certificate, key) files of a server certificate for ``dns_name`` only."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        san: list[x509.GeneralName] = [x509.DNSName(dns_name)]
        try:
            san = [x509.IPAddress(ipaddress.ip_address(dns_name))]
        except ValueError:
            pass
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_name)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        cert_path = self.directory / f"{dns_name}.pem"
        key_path = self.directory / f"{dns_name}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return cert_path, key_path

    def server_context(self, dns_name: str) -> ssl.SSLContext:
        cert_path, key_path = self.issue(dns_name)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_path, key_path)
        return context


class TlsProxy:
    """A TLS listener on loopback that forwards the decrypted stream to a plain TCP service
    (RabbitMQ on 5672): a TLS broker whose certificate the test chooses."""

    def __init__(self, context: ssl.SSLContext, upstream: tuple[str, int] = ("127.0.0.1", 5672)) -> None:
        self.context = context
        self.upstream = upstream
        self.forwarded = 0
        self.handshake_errors: list[str] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _address = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            client.settimeout(10)
            tls = self.context.wrap_socket(client, server_side=True)
        except (OSError, ssl.SSLError) as error:
            self.handshake_errors.append(f"{type(error).__name__}: {error}")
            client.close()
            return
        tls.settimeout(None)
        self.forwarded += 1
        upstream = socket.create_connection(self.upstream)

        def pipe(source: socket.socket, sink: socket.socket) -> None:
            try:
                while data := source.recv(65536):
                    sink.sendall(data)
            except OSError:
                pass
            finally:
                for sock in (source, sink):
                    try:
                        sock.close()
                    except OSError:
                        pass

        threading.Thread(target=pipe, args=(tls, upstream), daemon=True).start()
        pipe(upstream, tls)

    def stop(self) -> None:
        self._stop.set()
        self._listener.close()


# --- message-queue fixtures: vhost and listener are the MQ tests' own; this lwr has no files endpoint --
@pytest.fixture
def mq_server(make_server: Callable[..., object], vhost: Vhost) -> Callable[..., object]:
    """``mq_server(**app_options)``: an lwr consuming the test's vhost."""

    def make(name: str = "lwr", job_managers_ini: str | None = None, **app_options: str) -> object:
        options = {
            "message_queue_url": vhost.url,
            "amqp_heartbeat": "10",
            "amqp_publish_retry_max": "2",
            **app_options,
        }
        return make_server(name, app_options=options, job_managers_ini=job_managers_ini)

    return make
