"""lwr in message-queue mode against a real RabbitMQ, with real lwr processes.

Each test has its own vhost, so queues never collide; one test restarts RabbitMQ itself.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import kombu
import pytest
from mq_helpers import (
    FilesEndpoint,
    StatusListener,
    count_lines,
    exchange,
    publish,
    publish_redelivered,
    queue_name,
    rabbitmqctl,
    remote_input,
    setup_message,
)

from lwr.protocol.version import PULSAR_PROTOCOL_VERSION

HERE = Path(__file__).resolve().parent


def queue_depth(url: str, name: str) -> int:
    with kombu.Connection(url) as connection:
        key = queue_name("_default_", name)
        _name, count, _consumers = connection.channel().queue_declare(queue=key, passive=True)
        return int(count)


@pytest.mark.parametrize("acknowledge", [False, True], ids=["plain", "acknowledgements"])
def test_full_job_through_the_real_pulsar_client(mq_server, vhost, files_endpoint, tmp_path, acknowledge):
    """Galaxy's Pulsar client in MQ mode (pulsar-check's own job): lwr stages inputs and outputs itself.
    With acknowledgements on both sides, lwr's status updates are answered by the real client."""
    server = mq_server(**({"amqp_acknowledge": "true"} if acknowledge else {}))
    extra = [str(tmp_path / "client-acks")] if acknowledge else []
    result = subprocess.run(
        [
            sys.executable,
            str(HERE / "pulsar_mq_check.py"),
            vhost.url,
            str(server.staging / "_default_"),
            files_endpoint.url,
            "mq-check-1",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:] + server.log_text()
    methods = {method for method, _path in files_endpoint.requests}
    assert methods == {"GET", "POST"}, "inputs fetched and outputs posted by lwr"
    if acknowledge:
        awaiting = server.directory / "files" / "persisted_data" / "messaging" / "outbox" / "awaiting_ack"
        _wait_for(
            lambda: not list(awaiting.glob("*.json")),
            timeout=10,
            what="every status update to be acknowledged by the client",
        )


def test_disallowed_urls_fail_the_job_and_are_never_requested(mq_server, vhost, listener, tmp_path):
    forbidden = FilesEndpoint()
    try:
        server = mq_server()
        source = tmp_path / "input.dat"
        source.write_text("secret")
        publish(
            vhost.url,
            "_default_",
            "setup",
            setup_message(
                "refused-1", "cat ../inputs/input.dat", remote_staging=remote_input(forbidden.url, source)
            ),
        )
        final = listener.wait_final("refused-1")
        assert final["status"] == "failed"
        assert "not allowed by remote_staging_allowed_urls" in final["job_stderr"]
        # An allowed endpoint redirecting to a forbidden one: the redirect target is refused too.
        allowed = FilesEndpoint()
        try:
            server.stop()
            server.app_options["remote_staging_allowed_urls"] = allowed.base
            server.start()
            allowed.redirects[str(source)] = f"{forbidden.url}&path={source}"
            publish(
                vhost.url,
                "_default_",
                "setup",
                setup_message(
                    "refused-2", "cat ../inputs/input.dat", remote_staging=remote_input(allowed.url, source)
                ),
            )
            final = listener.wait_final("refused-2")
            assert final["status"] == "failed"
            assert "not allowed" in final["job_stderr"]
            assert len(allowed.requests) >= 1
        finally:
            allowed.stop()
        assert forbidden.requests == [], "no request may reach a URL that is not allowed"
    finally:
        forbidden.stop()


def test_malformed_messages_are_rejected_and_the_consumer_carries_on(mq_server, vhost, listener, tmp_path):
    server = mq_server()
    marker = tmp_path / "ran"
    bad = [
        dict(raw=b"this is not json"),
        dict(raw=b"[1, 2, 3]"),
        dict(raw=b"\x80\x81\x82", content_type="application/octet-stream"),
        dict(body={"command_line": "true"}),  # no job_id
        dict(body={"job_id": {"a": 1}, "command_line": "true"}),  # wrong type
        dict(body={"job_id": "../escape", "command_line": "true"}),  # unsafe id
        dict(body={"job_id": "typed-1", "command_line": 12}),  # wrong type
        dict(body={"job_id": "typed-2", "command_line": "true", "env": "A=1"}),
        dict(raw=b'{"job_id": "huge", "command_line": "' + b"x" * (9 * 1024 * 1024) + b'"}'),
    ]
    for message in bad:
        publish(
            vhost.url,
            "_default_",
            "setup",
            message.get("body"),
            raw=message.get("raw"),
            content_type=str(message.get("content_type", "application/json")),
        )
    publish(vhost.url, "_default_", "kill", None, raw=b"{not json")
    publish(vhost.url, "_default_", "status", {"no": "job id"})
    publish(vhost.url, "_default_", "setup", setup_message("good-1", f"echo ok >> {marker}"))
    final = listener.wait_final("good-1")
    assert final["status"] == "complete" and final["returncode"] == 0
    # without it Galaxy falls back to legacy output discovery for every job
    assert final["pulsar_version"] == PULSAR_PROTOCOL_VERSION
    assert count_lines(marker) == 1
    log = server.log_text()
    assert log.count("rejecting malformed message") == len(bad) + 2, log
    assert server.process.poll() is None
    assert queue_depth(vhost.url, "setup") == 0, "rejected messages are not requeued"
    assert not any(u.get("job_id") in ("typed-1", "typed-2", "huge") for u in listener.all)


def test_status_request_for_unknown_job_is_answered_lost(mq_server, vhost, listener):
    mq_server()
    publish(vhost.url, "_default_", "status", {"job_id": "never-seen", "request": "status"})
    final = listener.wait_final("never-seen")
    assert final["status"] == "lost"
    assert final["failure_class"] == "job_lost" and final["runner_state"] == "unknown_error"


def test_kill_message_cancels_a_running_job(mq_server, vhost, listener, tmp_path):
    mq_server()
    publish(vhost.url, "_default_", "setup", setup_message("kill-1", "sleep 30"))
    _wait_status(listener, "kill-1", "running")
    publish(vhost.url, "_default_", "kill", {"job_id": "kill-1"})
    assert listener.wait_final("kill-1")["status"] == "cancelled"


def _wait_status(listener: StatusListener, job_id: str, status: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(u.get("status") == status for u in listener.for_job(job_id)):
            return
        time.sleep(0.05)
    raise AssertionError(f"{job_id} never reported {status}: {listener.for_job(job_id)}")


def _wait_for(predicate, timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_kill9_right_after_setup_and_redelivery_run_the_job_once(mq_server, vhost, listener, tmp_path):
    """Killed as soon as the setup is recorded (acked or not): after restart, and after a
    duplicate setup, the command has run exactly once."""
    server = mq_server()
    marker = tmp_path / "runs"
    message = setup_message("once-1", f"echo run >> {marker}; sleep 1")
    publish(vhost.url, "_default_", "setup", message)
    record = server.directory / "files" / "persisted_data" / "jobs" / "_default_" / "once-1.json"
    _wait_for(record.exists, what="the job record")
    server.kill9()
    server.start()
    assert listener.wait_final("once-1")["status"] == "complete"
    server.stop()
    publish_redelivered(vhost.url, "_default_", "setup", message)  # as the broker does after a crash
    server.start()
    publish(vhost.url, "_default_", "status", {"job_id": "once-1"})
    _wait_for(
        lambda: len([u for u in listener.for_job("once-1") if u.get("complete") == "true"]) >= 2,
        what="the status reply",
    )
    assert count_lines(marker) == 1
    assert "duplicate" in server.log_text()


def test_kill9_during_input_download_resumes_and_runs_once(
    mq_server, vhost, listener, files_endpoint, tmp_path
):
    server = mq_server()
    source = tmp_path / "input.dat"
    source.write_text("payload\n")
    marker = tmp_path / "runs"
    files_endpoint.hold.add(str(source))
    publish(
        vhost.url,
        "_default_",
        "setup",
        setup_message(
            "pre-1",
            f"cat ../inputs/input.dat >> {marker}",
            remote_staging=remote_input(files_endpoint.url, source),
        ),
    )
    _wait_for(
        lambda: any(str(source.name) in path for _m, path in files_endpoint.requests),
        what="the input download to start",
    )
    server.kill9()
    files_endpoint.release()
    server.start()
    final = listener.wait_final("pre-1")
    assert final["status"] == "complete", final
    assert marker.read_text() == "payload\n", "the job ran once, with the whole input"


def test_kill9_while_running_runs_once_and_reports(mq_server, vhost, listener, tmp_path):
    server = mq_server()
    marker = tmp_path / "runs"
    publish(
        vhost.url, "_default_", "setup", setup_message("run-1", f"echo run >> {marker}; sleep 2; echo done")
    )
    _wait_for(lambda: count_lines(marker) == 1, what="the job to start")
    server.kill9()
    server.start()
    final = listener.wait_final("run-1")
    assert final["status"] == "complete" and final["stdout"].strip() == "done", final
    assert count_lines(marker) == 1


def test_acknowledgement_protocol_both_ways(mq_server, vhost, tmp_path):
    """Setups asking for acknowledgement are answered on ``setup_ack``, duplicates by uuid dropped;
    status updates carry a uuid and leave the outbox once answered."""
    acking = StatusListener(vhost.url, ack_queue="status_update_ack")
    try:
        server = mq_server(amqp_acknowledge="true")
        marker = tmp_path / "runs"
        ack_uuid = str(uuid.uuid4())
        message = {
            **setup_message("ack-1", f"echo run >> {marker}"),
            "acknowledge_uuid": ack_uuid,
            "acknowledge_queue": "setup_ack",
        }
        answers: list[dict] = []
        with kombu.Connection(vhost.url) as connection:
            key = queue_name("_default_", "setup_ack")
            ack_queue = kombu.Queue(key, exchange(), routing_key=key, durable=True)
            ack_queue(connection.channel()).declare()
            publish(vhost.url, "_default_", "setup", message)
            final = acking.wait_final("ack-1")
            publish(vhost.url, "_default_", "setup", {**message, "force_noack": True})  # a republish
            with kombu.Consumer(
                connection,
                queues=[ack_queue],
                accept=["json"],
                callbacks=[lambda body, msg: (answers.append(body), msg.ack())],
            ):
                _deadline = time.monotonic() + 10
                while len(answers) < 2 and time.monotonic() < _deadline:
                    try:
                        connection.drain_events(timeout=0.5)
                    except TimeoutError:
                        pass
        assert final["status"] == "complete"
        assert answers == [{"acknowledge_uuid_response": ack_uuid}] * 2
        assert all("acknowledge_uuid" in update for update in acking.for_job("ack-1"))
        awaiting = server.directory / "files" / "persisted_data" / "messaging" / "outbox" / "awaiting_ack"
        _wait_for(lambda: not list(awaiting.glob("*.json")), what="acknowledged updates to leave the outbox")
        time.sleep(0.5)
        assert count_lines(marker) == 1
    finally:
        acking.stop()


@pytest.mark.slow
def test_rabbitmq_restart_while_a_job_runs(mq_server, vhost, listener, tmp_path):
    """The broker goes away mid-job: the job completes, its final status arrives (duplicates counted)."""
    server = mq_server()
    marker = tmp_path / "runs"
    publish(vhost.url, "_default_", "setup", setup_message("restart-1", f"echo run >> {marker}; sleep 3"))
    _wait_status(listener, "restart-1", "running")
    rabbitmqctl("stop_app", timeout=120)
    try:
        time.sleep(4)  # the job ends while the broker is down: its final status waits in the outbox
        outbox = server.directory / "files" / "persisted_data" / "messaging" / "outbox" / "pending"
        assert list(outbox.glob("*.json")), "the final status waits in the durable outbox"
    finally:
        rabbitmqctl("start_app", timeout=120)
    final = listener.wait_final("restart-1", timeout=90)
    assert final["status"] == "complete"
    time.sleep(1)
    finals = [u for u in listener.for_job("restart-1") if u.get("complete") == "true"]
    print(f"final status updates received for restart-1: {len(finals)} (duplicates: {len(finals) - 1})")
    assert count_lines(marker) == 1
    assert "broker unavailable" in server.log_text()
    # The consumer reconnected too: a job submitted after the restart runs.
    publish(vhost.url, "_default_", "setup", setup_message("restart-2", f"echo run >> {marker}"))
    assert listener.wait_final("restart-2", timeout=60)["status"] == "complete"
    assert count_lines(marker) == 2


def test_kill9_during_output_upload_resumes_delivery(mq_server, vhost, listener, files_endpoint, tmp_path):
    """Killed while posting outputs back (postprocessing): after restart the outputs are delivered
    and only then is the final status published; the job does not run again."""
    server = mq_server()
    marker = tmp_path / "runs"
    client_output = tmp_path / "client" / "dataset_1.dat"
    files_endpoint.hold.add(str(client_output))
    staging = {
        "action_mapper": {"default_action": "remote_transfer", "files_endpoint": files_endpoint.url},
        "client_outputs": {
            "working_directory": str(tmp_path / "client" / "w"),
            "output_files": [str(client_output)],
        },
    }
    publish(
        vhost.url,
        "_default_",
        "setup",
        setup_message(
            "post-1", f"echo run >> {marker}; echo result > ../outputs/dataset_1.dat", remote_staging=staging
        ),
    )
    _wait_for(lambda: any(method == "POST" for method, _path in files_endpoint.requests), what="the upload")
    server.kill9()
    assert not [u for u in listener.for_job("post-1") if u.get("complete") == "true"]
    files_endpoint.release()
    server.start()
    final = listener.wait_final("post-1")
    assert final["status"] == "complete"
    assert client_output.read_text() == "result\n"
    assert count_lines(marker) == 1


def test_lwr_message_queue_client_helper_with_http_disabled(mq_server, vhost):
    """``enable_http = false``: /healthz still answers, the job API is 404, jobs come through the queue."""
    import urllib.error
    import urllib.request

    from lwr.messaging.client import MessageQueueClient

    server = mq_server(
        enable_http="false",
        job_managers_ini="[manager:_default_]\ntype = queued_python\n\n"
        "[manager:two]\ntype = queued_python\nmax_concurrent_jobs = 2\n",
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(urllib.request.Request(server.url + "jobs?job_id=1", method="POST"), timeout=5)
    assert refused.value.code == 404
    client = MessageQueueClient(
        vhost.url, manager="two"
    )  # queues pulsar_two__setup, pulsar_two__status_update
    client.submit("helper-1", "echo hello from mq", tool_id="check")
    final = client.wait_for_final("helper-1", timeout=60)
    assert final["status"] == "complete" and final["stdout"] == "hello from mq\n"
    assert (server.staging / "two" / "helper-1").is_dir()
    client.request_status("nobody")
    assert client.wait_for_final("nobody", timeout=30)["status"] == "lost"
