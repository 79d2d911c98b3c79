"""Tokens and tenants (lwr/auth.py): who a token names, and the files that hold tokens."""

from __future__ import annotations

import os
import stat

import pytest

from lwr.auth import DEFAULT_TENANT, Credentials, generated_token, load_credentials, load_tenants
from lwr.config import load_app_settings
from lwr.errors import ConfigError, Unauthorized


def test_each_token_names_its_tenant_and_nothing_else_passes():
    credentials = Credentials(tokens=((b"token-of-default", DEFAULT_TENANT), (b"token-of-alice", "alice")))
    assert credentials.identify("token-of-default") == DEFAULT_TENANT
    assert credentials.identify("token-of-alice") == "alice"
    for sent in (None, "", "token-of-alic", "token-of-alice ", "TOKEN-OF-ALICE", "\udcff"):
        with pytest.raises(Unauthorized):
            credentials.identify(sent)


def test_open_mode_is_one_tenant():
    assert Credentials(open=True).identify(None) == DEFAULT_TENANT


def test_the_generated_token_is_private_and_stable(tmp_path):
    path = tmp_path / "persisted" / "private_token"
    token, made = generated_token(path)
    assert made and len(token) >= 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert generated_token(path) == (token, False)


def write_tenants(tmp_path, text: str, mode: int = 0o600):
    path = tmp_path / "tenants.ini"
    path.write_text(text)
    os.chmod(path, mode)
    return path


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("alice = short\n", "placeholder or shorter"),
        ("alice\n", "NAME = TOKEN"),
        ("al ice = a-long-token-1\n", "NAME = TOKEN"),
        ("default = a-long-token-1\n", "reserved"),
        ("alice = a-long-token-1\nbob = a-long-token-1\n", "twice"),
        ("alice = a-long-token-1\nalice = a-long-token-2\n", "twice"),
        ("# nobody\n", "no tenant"),
    ],
)
def test_bad_tenants_files_are_refused(tmp_path, text, fragment):
    with pytest.raises(ConfigError, match=fragment):
        load_tenants(write_tenants(tmp_path, text))


def test_a_tenant_may_not_share_the_private_token(tmp_path):
    tenants = write_tenants(tmp_path, "alice = the-private-token\n")
    settings = load_app_settings(
        {"private_token": "the-private-token", "tenants_file": str(tenants), "assign_ids": "uuid"},
        str(tmp_path / "server.ini"),
    )
    with pytest.raises(ConfigError, match="token of its own"):
        load_credentials(settings)


def test_tenants_and_the_admin_token(tmp_path):
    tenants = write_tenants(tmp_path, "# tenants\nalice = alice-token-123\n\nbob = bob-token-1234\n")
    settings = load_app_settings(
        {"private_token": "admin-token-1", "tenants_file": str(tenants), "assign_ids": "uuid"},
        str(tmp_path / "server.ini"),
    )
    credentials = load_credentials(settings)
    assert [
        credentials.identify(token) for token in ("admin-token-1", "alice-token-123", "bob-token-1234")
    ] == [DEFAULT_TENANT, "alice", "bob"]
    assert credentials.token_file is None


@pytest.mark.parametrize(
    "options, fragment",
    [
        ({"allow_unauthenticated": "true", "private_token": "a-long-token"}, "contradicts"),
        ({"tenants_file": "tenants.ini"}, "needs assign_ids = uuid"),
    ],
)
def test_contradictory_settings(tmp_path, options, fragment):
    with pytest.raises(ConfigError, match=fragment):
        load_app_settings(options, str(tmp_path / "server.ini"))


def test_a_tenants_file_that_is_not_utf8_is_named_without_its_tokens(tmp_path):
    path = tmp_path / "tenants.ini"
    path.write_bytes(b"\xe9quipe = a-token-of-the-team\n")
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="cannot read the tenants_file") as caught:
        load_tenants(path)
    assert "a-token-of-the-team" not in caught.value.message
