"""[server:main] of egg:lwr#http: every key is typed in lwr.config and documented in server.ini.sample."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lwr.config import SERVER_KEYS, ServerSettings, load_server_settings
from lwr.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def sample_server_keys() -> dict[str, str]:
    text = (ROOT / "server.ini.sample").read_text()
    section = text.split("[server:main]", 1)[1].split("\n[app:main]", 1)[0]
    return {
        match.group(1): match.group(2)
        for line in section.splitlines()
        if (match := re.match(r"^#?([a-z_]+) = ?(.*)$", line))
    }


def test_every_server_key_is_documented_and_every_documented_key_is_real():
    assert set(sample_server_keys()) == set(SERVER_KEYS)


def test_sample_values_load(tmp_path):
    (tmp_path / "server.pem").write_text("")
    settings = load_server_settings(sample_server_keys(), str(tmp_path / "server.ini"))
    assert (
        settings.port == 8913
        and settings.max_request_line == 256 * 1024
        and settings.max_header_size == 65536
    )
    assert settings.ssl_pem == str(tmp_path / "server.pem")


def test_defaults_are_bounded():
    settings = ServerSettings()
    assert settings.header_timeout < settings.idle_timeout < settings.body_timeout < settings.drain_timeout


@pytest.mark.parametrize(
    "key, value, fragment",
    [
        ("header_timeout", "0", "positive"),
        ("max_connections", "-1", "positive integer"),
        ("max_request_line", "lots", "size"),
        ("socket_timeout", "5", "unknown key 'socket_timeout'"),
        ("header_timout", "5", "did you mean 'header_timeout'"),
    ],
)
def test_bad_values_name_file_section_and_key(tmp_path, key, value, fragment):
    with pytest.raises(ConfigError) as raised:
        load_server_settings({key: value}, str(tmp_path / "server.ini"))
    message = raised.value.message
    assert "server.ini" in message and "[server:main]" in message and key in message and fragment in message


def test_systemd_samples_use_real_options():
    from lwr.cli import build_parser

    service = (ROOT / "lwr.service.sample").read_text()
    for key in ("ExecStart", "ExecReload"):
        line = next(line for line in service.splitlines() if line.startswith(key + "="))
        argv = line.split("=", 1)[1].split()[1:]
        args = build_parser().parse_args(argv)
        assert args.command == "serve" and args.pid_file == "/run/lwr/lwr.pid"
    assert "Type=notify" in service and "NotifyAccess=all" in service and "KillMode=process" in service
    assert "ListenStream=" in (ROOT / "lwr.socket.sample").read_text()
