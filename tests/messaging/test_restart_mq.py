"""A restart in message-queue mode: the old server stops consuming before the new one starts, setups published
across the restart all run exactly once and every final status is announced."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

from mq_helpers import count_lines, publish

from server import LwrServer, wait_for_healthz

LWR = [sys.executable, "-m", "lwr.cli"]


def test_restart_while_setups_arrive_runs_each_job_once(vhost, listener, files_endpoint, tmp_path):
    base = LwrServer(
        directory=tmp_path / "lwr",
        app_options={
            "message_queue_url": vhost.url,
            "remote_staging_allowed_urls": files_endpoint.base,
            "amqp_heartbeat": "10",
            "amqp_publish_retry_max": "2",
        },
        job_managers_ini="[manager:_default_]\ntype = queued_python\nmax_concurrent_jobs = 2\n",
    )
    base.directory.mkdir(parents=True)
    base.write_config()
    pid_file = tmp_path / "lwr.pid"
    marker = tmp_path / "runs"
    log = open(base.log_path, "ab")
    command = [*LWR, "serve", "-c", str(base.config_path), "--pid-file", str(pid_file)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    processes = [subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=base.directory)]
    jobs = [f"mq{index}" for index in range(30)]
    try:
        wait_for_healthz(base.url, processes[0], "lwr", base.log_text, 30)

        def publish_all() -> None:
            for job in jobs:
                publish(
                    vhost.url,
                    "_default_",
                    "setup",
                    {
                        "job_id": job,
                        "command_line": f"echo {job} >> {marker}; sleep 0.2",
                        "setup_params": {"job_id": job, "tool_id": "t", "tool_version": "1"},
                    },
                )
                time.sleep(0.05)

        publisher = threading.Thread(target=publish_all)
        publisher.start()
        time.sleep(0.5)
        processes.append(
            subprocess.Popen(
                command + ["--restart"], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=base.directory
            )
        )
        processes[0].wait(120)
        assert processes[0].returncode == 0
        publisher.join(60)
        deadline = time.monotonic() + 120
        while True:
            finals = {update["job_id"]: update for update in listener.all if update.get("complete") == "true"}
            if set(jobs) <= set(finals) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert set(jobs) <= set(finals), sorted(set(jobs) - set(finals))
        assert all(finals[job]["status"] == "complete" for job in jobs)
        assert count_lines(marker) == len(jobs)
        assert sorted(marker.read_text().split()) == sorted(jobs), "a job ran twice or not at all"
        text = base.log_text()
        assert "jobs released to pid" in text and "Traceback" not in text
        # The old server stopped consuming before the new one started to.
        released = text.index("jobs released to pid")
        assert text.rindex("consuming ", 0, released) < released < text.rindex("consuming ")
        assert processes[1].poll() is None
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait(10)
        log.close()
