"""Public-server mode over the message queue: files staged by lwr itself are checked before the job is queued.

Attack (issue 8, b/c): a setup message whose server-side staging brings in a tool file that is not
the server's copy (or a config file without a validator), against a real MQ-mode lwr and RabbitMQ.
The job must end failed, and the planted code must never run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "messaging"))

from mq_helpers import FilesEndpoint, StatusListener, Vhost, publish  # noqa: E402
from test_web_public_mode import CAT_PY, CAT_XML  # noqa: E402

from server import TOKEN  # noqa: E402


@pytest.fixture
def broker():
    vhost, endpoint = Vhost(), FilesEndpoint()
    listener = StatusListener(vhost.url)
    yield vhost, endpoint, listener
    listener.stop()
    endpoint.stop()
    vhost.delete()


def staged(endpoint: FilesEndpoint, source: Path, name: str, file_type: str) -> dict:
    url = f"{endpoint.url}&path={source}&file_type={file_type}"
    return {
        "name": name,
        "type": file_type,
        "action": {
            "action_type": "remote_transfer",
            "url": url,
            "source": {"path": str(source)},
            "path": str(source),
        },
    }


def test_files_staged_by_lwr_are_checked_before_the_job_is_queued(make_server, broker, tmp_path):
    vhost, endpoint, listener = broker
    (tmp_path / "tools" / "cat").mkdir(parents=True)
    (tmp_path / "tools" / "cat" / "cat.xml").write_text(CAT_XML)
    (tmp_path / "tools" / "cat" / "cat.py").write_bytes(CAT_PY)
    (tmp_path / "toolbox.xml").write_text('<toolbox tool_path="tools"><tool file="cat/cat.xml"/></toolbox>')
    server = make_server(
        "public-mq",
        app_options={
            "private_token": TOKEN,
            "tool_config_files": str(tmp_path / "toolbox.xml"),
            "message_queue_url": vhost.url,
            "remote_staging_allowed_urls": endpoint.base,
            "amqp_publish_retry_max": "2",
        },
    )
    marker = tmp_path / "pwned"
    data = tmp_path / "in.txt"
    data.write_text("over the queue\n")
    genuine, planted = tmp_path / "genuine.py", tmp_path / "planted.py"
    genuine.write_bytes(CAT_PY)
    planted.write_text(
        f"open({str(marker)!r}, 'w')\nimport shutil, sys\nshutil.copyfile(sys.argv[-2], sys.argv[-1])\n"
    )
    jobs = server.staging / "_default_"

    def submit(job_id: str, tool_file: Path) -> dict:
        directory = jobs / job_id
        command = (
            f"python3 {directory}/tool_files/cat.py {directory}/inputs/in.txt {directory}/outputs/out.txt"
        )
        publish(
            vhost.url,
            "_default_",
            "setup",
            {
                "job_id": job_id,
                "command_line": command,
                "setup_params": {"job_id": job_id, "tool_id": "cat1", "tool_version": "1.0"},
                "remote_staging": {
                    "setup": [
                        staged(endpoint, data, "in.txt", "input"),
                        staged(endpoint, tool_file, "cat.py", "tool"),
                    ]
                },
            },
        )
        return listener.wait_final(job_id)

    refused = submit("planted-1", planted)
    assert refused["status"] == "failed", refused
    assert not marker.exists()
    accepted = submit("genuine-1", genuine)
    assert accepted["status"] == "complete", (accepted, server.log_text()[-3000:])
    assert (jobs / "genuine-1" / "outputs" / "out.txt").read_text() == "over the queue\n"
    assert not marker.exists()
