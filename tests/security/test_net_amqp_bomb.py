"""Hostile AMQP messages against a real MQ-mode lwr on the real RabbitMQ: a decompression bomb
(453 bytes that kombu once inflated to a gigabyte before any check) and JSON nested too deeply
to decode. lwr's memory stays bounded, the message is rejected once (never redelivered) and the
next job runs, also after a restart."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import zlib
from pathlib import Path

import kombu
from mq_helpers import exchange, publish, queue_name

from lwr.messaging.deliveries import LIMIT

#: What the bomb inflates to; lwr's peak memory may not grow by a fraction of it.
BOMB_SIZE = 256 * 1024 * 1024
ALLOWED_GROWTH = 48 * 1024 * 1024


def peak_rss(pid: int) -> int:
    """The process's high-water mark of resident memory (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/PID/status")


def bomb(size: int) -> bytes:
    compressor = zlib.compressobj(9)
    parts = [compressor.compress(b'{"job_id": "bomb-1", "command_line": "')]
    block = b" " * (16 * 1024 * 1024)
    for _ in range(size // len(block)):
        parts.append(compressor.compress(block))
    parts.append(compressor.compress(b'"}'))
    parts.append(compressor.flush())
    return b"".join(parts)


def publish_raw(url: str, name: str, body: bytes, headers: dict[str, str] | None = None) -> None:
    key = queue_name("_default_", name)
    with kombu.Connection(url) as connection:
        channel = connection.channel()
        kombu.Queue(key, exchange(), routing_key=key, durable=True)(channel).declare()
        kombu.Producer(channel).publish(
            body,
            exchange=exchange(),
            routing_key=key,
            content_type="application/json",
            content_encoding="binary",
            headers=headers or {},
            delivery_mode=2,
        )


def queue_depth(url: str, name: str) -> int:
    with kombu.Connection(url) as connection:
        _name, count, _consumers = connection.channel().queue_declare(
            queue=queue_name("_default_", name), passive=True
        )
        return int(count)


def run_good_job(url: str, listener, job_id: str, marker: Path) -> None:
    publish(
        url,
        "_default_",
        "setup",
        {
            "job_id": job_id,
            "command_line": f"echo ok >> {marker}",
            "setup_params": {"job_id": job_id, "tool_id": "t", "tool_version": "1"},
        },
    )
    assert listener.wait_final(job_id)["status"] == "complete"


def test_decompression_bomb_is_refused_unopened(mq_server, vhost, listener, tmp_path):
    payload = bomb(BOMB_SIZE)
    assert len(payload) < BOMB_SIZE // 500
    server = mq_server()
    marker = tmp_path / "ran"
    run_good_job(vhost.url, listener, "before-1", marker)  # the consumer is up and warm
    before = peak_rss(server.process.pid)
    publish_raw(vhost.url, "setup", payload, headers={"compression": "application/x-gzip"})
    run_good_job(vhost.url, listener, "after-1", marker)
    growth = peak_rss(server.process.pid) - before
    assert growth < ALLOWED_GROWTH, (
        f"lwr's peak memory grew by {growth >> 20} MiB for a {len(payload)}-byte message"
    )
    assert server.process.poll() is None
    log = server.log_text()
    assert "refused unopened" in log, log[-3000:]
    assert queue_depth(vhost.url, "setup") == 0, "the bomb is rejected, not requeued"
    server.stop()
    server.start()
    run_good_job(vhost.url, listener, "restarted-1", marker)
    assert server.log_text().count("refused unopened") == 1, "the bomb came back after a restart"
    assert not any(update.get("job_id") == "bomb-1" for update in listener.all)
    assert len(marker.read_text().splitlines()) == 3


def test_json_nested_too_deeply_is_rejected_once_each(mq_server, vhost, listener, tmp_path):
    server = mq_server()
    publish_raw(vhost.url, "setup", b"[" * 200_000)
    publish_raw(vhost.url, "status", b'{"job_id": ' * 100_000)
    marker = tmp_path / "ran"
    run_good_job(vhost.url, listener, "after-deep", marker)
    log = server.log_text()
    assert log.count("nested too deeply") == 2, log[-3000:]
    assert "reconnecting" not in log, "one message must not make the consumer start over"
    assert queue_depth(vhost.url, "setup") == 0 and queue_depth(vhost.url, "status") == 0


def test_a_message_that_kills_lwr_each_time_is_refused_after_the_limit(vhost, tmp_path):
    """The broker redelivers a message that was being handled when lwr died. A message that kills
    lwr every time is refused after a bounded number of redeliveries, not forever."""
    publish(vhost.url, "_default_", "setup", {"job_id": "poison", "crash": True})
    log_path = tmp_path / "consumer.log"
    command = [
        sys.executable,
        str(Path(__file__).with_name("crashing_consumer.py")),
        vhost.url,
        str(tmp_path / "persisted"),
    ]
    crashes = 0
    with open(log_path, "ab") as log:
        for _ in range(LIMIT + 3):
            process = subprocess.Popen(command, stdout=log, stderr=log, env={**os.environ})
            try:
                deadline = time.monotonic() + 60
                while process.poll() is None and "refused as poison" not in log_path.read_text():
                    assert time.monotonic() < deadline, log_path.read_text()[-3000:]
                    time.sleep(0.1)
                if process.returncode == 3:
                    crashes += 1
                    continue
                publish(vhost.url, "_default_", "setup", {"job_id": "done"})
                assert process.wait(60) == 0, log_path.read_text()[-3000:]
                break
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait(10)
    assert crashes == LIMIT + 1, log_path.read_text()[-3000:]
    assert queue_depth(vhost.url, "setup") == 0
    assert list((tmp_path / "persisted" / "redeliveries").iterdir()) == [], "settled messages are forgotten"


CLIENT = """
import resource, sys
from lwr.messaging.client import MessageQueueClient
final = MessageQueueClient(sys.argv[1]).wait_for_final("client-1", timeout=60, poll=1000)
print(final["status"], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def test_lwr_mq_client_refuses_a_bomb_on_the_status_queue(vhost):
    """lwr's own MQ client (lwr submit/check --amqp-url) reads status updates: a bomb there too."""
    key = queue_name("_default_", "status_update")
    with kombu.Connection(vhost.url) as connection:
        kombu.Queue(key, exchange(), routing_key=key, durable=True)(connection.channel()).declare()
    publish_raw(vhost.url, "status_update", bomb(BOMB_SIZE), headers={"compression": "application/x-gzip"})
    publish(
        vhost.url,
        "_default_",
        "status_update",
        {"job_id": "client-1", "complete": "true", "status": "complete"},
    )
    baseline = subprocess.run(
        [
            sys.executable,
            "-c",
            "import resource, lwr.messaging.client; "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result = subprocess.run(
        [sys.executable, "-c", CLIENT, vhost.url], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    status, peak = result.stdout.split()
    assert status == "complete"
    growth = int(peak) - int(baseline.stdout)
    assert growth < ALLOWED_GROWTH, f"the client's peak memory grew by {growth >> 20} MiB"
    assert queue_depth(vhost.url, "status_update") == 0


def test_messages_waiting_behind_a_stuck_one_survive_restarts(vhost, tmp_path):
    """Only handling counts: a message that waited (decoded, queued for its job's worker) across
    more restarts than the limit is still handled; the one that hung the worker each time is refused."""
    publish(vhost.url, "_default_", "setup", {"job_id": "done", "block": True})
    publish(vhost.url, "_default_", "setup", {"job_id": "done"})
    log_path = tmp_path / "consumer.log"
    command = [
        sys.executable,
        str(Path(__file__).with_name("crashing_consumer.py")),
        vhost.url,
        str(tmp_path / "persisted"),
    ]
    with open(log_path, "ab") as log:
        for run in range(1, LIMIT + 3):
            process = subprocess.Popen(command, stdout=log, stderr=log, env={**os.environ})
            try:
                deadline = time.monotonic() + 60
                while process.poll() is None and log_path.read_text().count("blocking") < run:
                    assert time.monotonic() < deadline, log_path.read_text()[-3000:]
                    time.sleep(0.1)
                if process.poll() is not None:
                    break
                process.kill()  # lwr killed while the stuck message holds the worker
                process.wait(10)
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait(10)
    text = log_path.read_text()
    assert process.returncode == 0, text[-3000:]
    assert run == LIMIT + 2, (
        "the stuck message hangs the first delivery and LIMIT redeliveries, then is refused"
    )
    assert text.count("refused as poison") == 1, text[-3000:]
    assert queue_depth(vhost.url, "setup") == 0
