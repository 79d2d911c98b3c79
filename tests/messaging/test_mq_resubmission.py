"""A resubmission is not a redelivery: against a real RabbitMQ, a new setup for a job whose run
ended runs it again on a clean directory, while the broker redelivering the recorded setup
(``redelivered`` flag, same message) is still dropped."""

from __future__ import annotations

import time

from mq_helpers import count_lines, publish, publish_redelivered, setup_message


def leaves_traces(marker) -> str:
    """Lists the working directory (empty on a clean run), then leaves a file in it."""
    return f"ls; echo run >> {marker}; touch leftover"


def test_resubmission_of_an_ended_job_runs_again_on_a_clean_directory(mq_server, vhost, listener, tmp_path):
    server = mq_server()
    marker = tmp_path / "runs"
    message = setup_message("resub-1", leaves_traces(marker) + "; exit 3")
    publish(vhost.url, "_default_", "setup", message)
    first = listener.wait_final("resub-1")
    assert (first["status"], first["returncode"], first["stdout"]) == ("complete", 3, ""), first
    # Galaxy's resubmission sends the very same setup again: not a redelivery, so it runs
    publish(vhost.url, "_default_", "setup", message)
    second = listener.wait_final("resub-1")
    assert (second["status"], second["returncode"], second["stdout"]) == ("complete", 3, ""), second
    assert count_lines(marker) == 2
    assert "a new setup runs it again" in server.log_text()


def test_redelivery_of_the_recorded_setup_is_dropped_a_different_one_runs(
    mq_server, vhost, listener, tmp_path
):
    server = mq_server()
    marker = tmp_path / "runs"
    message = setup_message("redeliver-1", leaves_traces(marker))
    publish(vhost.url, "_default_", "setup", message)
    assert listener.wait_final("redeliver-1")["status"] == "complete"
    server.stop()
    publish_redelivered(vhost.url, "_default_", "setup", message)
    server.start()
    publish(vhost.url, "_default_", "status", {"job_id": "redeliver-1"})
    assert listener.wait_final("redeliver-1")["stdout"] == ""  # the status reply of the one run
    assert count_lines(marker) == 1
    assert "a redelivery of the recorded one" in server.log_text()

    # a redelivered setup that is not the recorded one (its first delivery died before being
    # recorded) is a resubmission all the same
    server.stop()
    publish_redelivered(
        vhost.url, "_default_", "setup", setup_message("redeliver-1", leaves_traces(marker) + " # 2")
    )
    server.start()
    again = listener.wait_final("redeliver-1")
    assert (again["status"], again["stdout"]) == ("complete", ""), again
    assert count_lines(marker) == 2


def test_setup_for_a_running_job_is_dropped(mq_server, vhost, listener, tmp_path):
    server = mq_server()
    marker = tmp_path / "runs"
    gate = tmp_path / "gate"
    message = setup_message("busy-1", f"echo run >> {marker}; while [ ! -e {gate} ]; do sleep 0.05; done")
    publish(vhost.url, "_default_", "setup", message)
    deadline = time.monotonic() + 30
    while count_lines(marker) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    publish(vhost.url, "_default_", "setup", message)
    while "duplicate (already submitted)" not in server.log_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    gate.touch()
    assert listener.wait_final("busy-1")["status"] == "complete"
    assert count_lines(marker) == 1
    assert "duplicate (already submitted)" in server.log_text()


def test_touch_outputs_over_mq(mq_server, vhost, listener):
    mq_server()
    publish(
        vhost.url, "_default_", "setup", setup_message("touch-mq", "ls ../outputs", touch_outputs=["x.dat"])
    )
    final = listener.wait_final("touch-mq")
    assert final["stdout"] == "x.dat\n" and "x.dat" in final["outputs_directory_contents"], final
