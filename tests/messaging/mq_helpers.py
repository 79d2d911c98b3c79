"""Helpers for the message-queue tests: a private RabbitMQ vhost, a Galaxy job files endpoint,
and a raw AMQP publisher/listener speaking the Pulsar protocol."""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import kombu

BROKER = "amqp://guest:guest@127.0.0.1:5672"


def rabbitmqctl(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=timeout, check=True)


class Vhost:
    """A RabbitMQ virtual host of its own, so runs and tests never share queues."""

    def __init__(self) -> None:
        self.name = f"lwr-test-{uuid.uuid4().hex[:10]}"
        rabbitmqctl("add_vhost", self.name)
        rabbitmqctl("set_permissions", "-p", self.name, "guest", ".*", ".*", ".*")
        self.url = f"{BROKER}/{self.name}"

    def delete(self) -> None:
        try:
            rabbitmqctl("delete_vhost", self.name)
        except (subprocess.SubprocessError, OSError):
            pass


def exchange() -> kombu.Exchange:
    return kombu.Exchange("pulsar", "direct", durable=True)


def queue_name(manager: str, name: str) -> str:
    return f"pulsar__{name}" if manager == "_default_" else f"pulsar_{manager}__{name}"


def publish(
    url: str,
    manager: str,
    name: str,
    body: Any,
    raw: bytes | None = None,
    content_type: str = "application/json",
) -> None:
    """Publish ``body`` (as JSON) or ``raw`` bytes to lwr's ``name`` queue of ``manager``."""
    key = queue_name(manager, name)
    with kombu.Connection(url) as connection:
        channel = connection.channel()
        kombu.Queue(key, exchange(), routing_key=key, durable=True)(channel).declare()
        producer = kombu.Producer(channel)
        if raw is not None:
            producer.publish(
                raw,
                exchange=exchange(),
                routing_key=key,
                content_type=content_type,
                content_encoding="binary",
                delivery_mode=2,
            )
        else:
            producer.publish(body, exchange=exchange(), routing_key=key, serializer="json", delivery_mode=2)


class StatusListener:
    """Collects every ``status_update`` of a manager (declares the queue first, so none is missed)."""

    def __init__(self, url: str, manager: str = "_default_", ack_queue: str | None = None) -> None:
        self.url = url
        self.key = queue_name(manager, "status_update")
        self.manager = manager
        self.ack_queue = ack_queue
        self.updates: queue.Queue[dict[str, Any]] = queue.Queue()
        self.all: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "status listener did not connect"

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with kombu.Connection(self.url, heartbeat=10) as connection:
                    channel = connection.channel()
                    q = kombu.Queue(self.key, exchange(), routing_key=self.key, durable=True)
                    producer = kombu.Producer(connection.channel())

                    def on_message(
                        body: Any, message: kombu.Message, producer: kombu.Producer = producer
                    ) -> None:
                        self.all.append(body)
                        self.updates.put(body)
                        if self.ack_queue and "acknowledge_uuid" in body:
                            key = queue_name(self.manager, body["acknowledge_queue"])
                            producer.publish(
                                {"acknowledge_uuid_response": body["acknowledge_uuid"]},
                                exchange=exchange(),
                                routing_key=key,
                                serializer="json",
                                declare=[kombu.Queue(key, exchange(), routing_key=key, durable=True)],
                            )
                        message.ack()

                    with kombu.Consumer(channel, queues=[q], callbacks=[on_message], accept=["json"]):
                        self._ready.set()
                        while not self._stop.is_set():
                            try:
                                connection.drain_events(timeout=0.5)
                            except TimeoutError:
                                pass
                            connection.heartbeat_check()
            except Exception:  # noqa: BLE001 - reconnect across broker restarts
                time.sleep(0.5)

    def wait_final(self, job_id: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                body = self.updates.get(timeout=0.2)
            except queue.Empty:
                continue
            if body.get("job_id") == job_id and body.get("complete") == "true":
                return body
        raise AssertionError(f"no final status for {job_id} within {timeout} s; got {self.all}")

    def for_job(self, job_id: str) -> list[dict[str, Any]]:
        return [body for body in self.all if body.get("job_id") == job_id]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


class FilesEndpoint:
    """Galaxy's job files API in miniature: ``GET ?path=`` serves a file, ``POST ?path=`` (multipart
    field ``file``) writes one. Every request is recorded; requests for paths in ``hold`` wait
    until ``release()``."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.hold: set[str] = set()
        #: GETs of these paths answer 302 to the given URL.
        self.redirects: dict[str, str] = {}
        self._released = threading.Event()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _path(self) -> str:
                endpoint.requests.append((self.command, self.path))
                return parse_qs(urlsplit(self.path).query).get("path", [""])[0]

            def do_GET(self) -> None:  # noqa: N802
                path = self._path()
                if path in endpoint.hold:
                    endpoint._released.wait(60)
                if path in endpoint.redirects:
                    self.send_response(302)
                    self.send_header("Location", endpoint.redirects[path])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if not path or not os.path.isfile(path):
                    self.send_error(404)
                    return
                data = Path(path).read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:  # noqa: N802
                path = self._path()
                if path in endpoint.hold:
                    endpoint._released.wait(60)
                length = int(self.headers.get("Content-Length", "0"))
                data = self.rfile.read(length)
                boundary = self.headers.get_content_type() and self.headers.get_param("boundary")
                content = _multipart_file(data, str(boundary))
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                Path(path).write_bytes(content)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}/"
        self.url = f"{self.base}api/jobs/1/files?job_key=k3y"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def release(self) -> None:
        self._released.set()

    def stop(self) -> None:
        self._released.set()
        self.server.shutdown()


def _multipart_file(data: bytes, boundary: str) -> bytes:
    delimiter = b"--" + boundary.encode()
    for part in data.split(delimiter):
        head, _, body = part.partition(b"\r\n\r\n")
        if b'name="file"' in head:
            return body[:-2] if body.endswith(b"\r\n") else body
    raise ValueError("no file field in the multipart body")


def count_lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def json_lines(items: Iterator[Any]) -> str:
    return "\n".join(json.dumps(item) for item in items)


def which(name: str) -> bool:
    return shutil.which(name) is not None


def publish_redelivered(url: str, manager: str, name: str, body: Any) -> None:
    """Publish ``body``, then take it and give it back unacknowledged, as a consumer that crashed
    would: the broker requeues it flagged ``redelivered`` (call with no lwr consuming the queue)."""
    publish(url, manager, name, body)
    key = queue_name(manager, name)
    with kombu.Connection(url) as connection:
        channel = connection.channel()
        bound = kombu.Queue(key, exchange(), routing_key=key, durable=True)(channel)
        message = None
        for _ in range(100):
            message = bound.get(no_ack=False)
            if message is not None:
                break
            time.sleep(0.05)
        assert message is not None, "the published message never reached its queue"
        assert not message.delivery_info.get("redelivered")
    # closing the connection without acknowledging requeues it, flagged redelivered


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    """Poll ``condition`` until it returns something true; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def setup_message(job_id: str, command: str, **extra: object) -> dict:
    """A Pulsar ``setup`` message body for a trivial tool."""
    return {
        "job_id": job_id,
        "command_line": command,
        "setup_params": {"job_id": job_id, "tool_id": "t", "tool_version": "1"},
        **extra,
    }


def remote_input(endpoint_url: str, source: Path, name: str = "input.dat") -> dict:
    """The ``remote_staging`` part of a setup that has lwr fetch ``source`` from a files endpoint."""
    url = f"{endpoint_url}&path={source}&file_type=input"
    return {
        "setup": [
            {
                "name": name,
                "type": "input",
                "action": {
                    "action_type": "remote_transfer",
                    "url": url,
                    "source": {"path": str(source)},
                    "path": str(source),
                },
            }
        ]
    }


def final_of(listener: StatusListener, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
    """The final status of ``job_id``, however many other jobs' updates came first."""

    def final() -> dict[str, Any] | None:
        updates = [u for u in listener.for_job(job_id) if u.get("complete") == "true"]
        return updates[-1] if updates else None

    return wait_for(final, f"the final status of {job_id}", timeout)
