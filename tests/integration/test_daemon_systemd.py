"""Under systemd: socket activation (LISTEN_FDS) and sd_notify readiness, across a restart too."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from http_helpers import Http
from server import LwrServer, free_port, stop_process, wait_for_healthz

LWR = [sys.executable, "-m", "lwr.cli"]
# What systemd does for ExecStart: the socket as descriptor 3, LISTEN_PID naming the service's process.
ACTIVATE = (
    "import os, sys; fd = int(sys.argv[1]); os.dup2(fd, 3); os.close(fd); "
    "os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='1', LISTEN_FDNAMES='lwr'); "
    "os.execv(sys.argv[2], sys.argv[2:])"
)


def notifications(sock: socket.socket) -> list[str]:
    messages = []
    sock.setblocking(False)
    while True:
        try:
            messages.append(sock.recv(4096).decode())
        except BlockingIOError:
            return messages


def test_socket_activation_and_readiness_across_a_restart(tmp_path: Path):
    server = LwrServer(directory=tmp_path / "lwr")
    server.directory.mkdir(parents=True)
    server.write_config()  # a port of its own, which must stay unused: systemd's socket wins
    listening = socket.create_server(("127.0.0.1", free_port()))
    port = listening.getsockname()[1]
    notify_path = tmp_path / "notify"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    env = {**os.environ, "NOTIFY_SOCKET": str(notify_path), "PYTHONUNBUFFERED": "1"}
    pid_file = tmp_path / "lwr.pid"
    log = open(server.log_path, "ab")
    command = [*LWR, "serve", "-c", str(server.config_path), "--pid-file", str(pid_file)]
    fd = listening.fileno()
    first = subprocess.Popen(
        [sys.executable, "-c", ACTIVATE, str(fd), *command],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        pass_fds=(fd,),
    )
    listening.close()  # from now on only lwr holds the socket, as only systemd and lwr would
    processes = [first]
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for_healthz(url, first, "lwr", server.log_text, 30)
        assert "socket from systemd" in server.log_text()
        http = Http(url)
        http.setup("env")
        assert http.submit("env", "env").status == 200
        job_env = http.wait_complete("env")["stdout"]
        assert "LISTEN_FDS" not in job_env and "NOTIFY_SOCKET" not in job_env
        sent = "".join(notifications(notify))
        assert "READY=1" in sent and f"MAINPID={first.pid}" in sent

        # systemctl reload: ExecReload=lwr serve --restart, the successor names itself the main pid.
        second = subprocess.Popen(command + ["--restart"], stdout=log, stderr=subprocess.STDOUT, env=env)
        processes.append(second)
        first.wait(60)
        assert first.returncode == 0
        wait_for_healthz(url, second, "lwr", server.log_text, 30)
        sent = notifications(notify)
        assert any(f"MAINPID={second.pid}" in message and "READY=1" in message for message in sent), sent
        assert not any("STOPPING=1" in message for message in sent), "the old server told systemd it stops"

        second.send_signal(signal.SIGTERM)
        second.wait(60)
        assert any("STOPPING=1" in message for message in notifications(notify))
    finally:
        for process in processes:
            stop_process(process)
        log.close()
        notify.close()
