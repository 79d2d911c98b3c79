"""Tenants of a shared lwr cannot see, touch or poison each other's jobs and cached inputs.

Attack (issue 8, b): a tenant holding a valid token (a compromised Galaxy sharing an lwr with
``assign_ids = uuid``) reads another's inputs through the input cache, poisons them, or finds
and acts on another tenant's jobs. Each test runs against a real lwr process.
"""

from __future__ import annotations

import hashlib
import os

import pytest

from http_helpers import Http
from server import TOKEN

ALICE, BOB = "alice-token-0123456789", "bob-token-9876543210"


@pytest.fixture
def shared(make_server, tmp_path):
    tenants = tmp_path / "tenants.ini"
    tenants.write_text(f"# the tenants of this lwr\nalice = {ALICE}\nbob = {BOB}\n")
    tenants.chmod(0o600)
    return make_server(
        "shared",
        app_options={
            "assign_ids": "uuid",
            "tenants_file": str(tenants),
            "file_cache_dir": str(tmp_path / "cache"),
        },
    )


def test_a_tenant_cannot_see_or_act_on_another_tenants_job(shared):
    alice, bob = Http(shared.url, ALICE), Http(shared.url, BOB)
    config = alice.setup("any")
    job = config["job_id"]
    assert alice.upload(job, "in.txt", b"alice's input").status == 200
    unknown = "0" * 32
    attempts = [
        ("GET", "/jobs/{}/status", {}),
        ("GET", "/jobs/{}/files", {"name": "in.txt", "type": "input"}),
        ("GET", "/jobs/{}/files/path", {"name": "in.txt", "type": "input"}),
        ("POST", "/jobs/{}/files", {"name": "planted", "type": "input"}),
        ("POST", "/jobs/{}/submit", {"command_line": "touch pwned"}),
        ("PUT", "/jobs/{}/cancel", {}),
        ("DELETE", "/jobs/{}", {}),
    ]
    for method, route, params in attempts:
        theirs = bob.request(method, route.format(job), params, body=b"x" if method == "POST" else None)
        nobodys = bob.request(method, route.format(unknown), params, body=b"x" if method == "POST" else None)
        assert theirs.status == nobodys.status == 404, (method, route, theirs.body)
        assert theirs.json()["error"].replace(job, unknown) == nobodys.json()["error"]
    status = alice.status(job)
    assert status["status"] != "cancelled"
    assert alice.submit(job, "cat ../inputs/in.txt").status == 200
    final = alice.wait_complete(job)
    assert final["stdout"] == "alice's input"
    assert os.listdir(config["inputs_directory"]) == ["in.txt"]


def test_no_reply_names_another_tenants_job(shared):
    alice, bob = Http(shared.url, ALICE), Http(shared.url, BOB)
    job = alice.setup("any")["job_id"]
    for method, path in [("GET", "/managers"), ("GET", "/healthz"), ("GET", "/cache/status?path=/x")]:
        assert job not in bob.request(method, path).body.decode()
    mine = bob.setup("any")
    assert bob.submit(mine["job_id"], "true").status == 200
    status = bob.wait_complete(mine["job_id"])
    assert status["status"] == "complete"
    assert job not in repr(status) and job not in repr(mine)


def test_a_tenant_sees_managers_names_and_types_only(make_server, tmp_path):
    """The details (batch hosts and users, the staging backlog per Galaxy host) are the admin's."""
    tenants = tmp_path / "tenants.ini"
    tenants.write_text(f"bob = {BOB}\n")
    tenants.chmod(0o600)
    server = make_server(
        "admin-and-tenant",
        app_options={"assign_ids": "uuid", "tenants_file": str(tenants), "private_token": TOKEN},
    )
    admin_reply = Http(server.url, TOKEN).request("GET", "/managers").json()
    admin = {manager["name"]: manager for manager in admin_reply["managers"]}
    tenant_reply = Http(server.url, BOB).request("GET", "/managers").json()
    assert set(tenant_reply) == {"managers"}
    assert {manager["name"] for manager in tenant_reply["managers"]} == set(admin)
    for manager in tenant_reply["managers"]:
        assert manager == {"name": manager["name"], "type": admin[manager["name"]]["type"]}
    assert any(len(manager) > 2 for manager in admin.values())


def test_the_cache_is_per_tenant_and_keyed_on_content(shared, tmp_path):
    alice, bob = Http(shared.url, ALICE), Http(shared.url, BOB)
    entry = {"ip": "10.0.0.1", "path": "/galaxy/datasets/1.dat"}
    # Bob cannot insert without a claim, least of all for Alice's name.
    assert bob.request("POST", "/cache", entry, body=b"poison").status == 409
    assert alice.request("PUT", "/cache", entry).json() is True
    assert bob.request("POST", "/cache", entry, body=b"poison").status == 409
    # Bob's own claim for the same ip and path is his own entry.
    assert bob.request("PUT", "/cache", entry).json() is True
    assert bob.request("POST", "/cache", entry, body=b"poison").status == 200
    assert alice.request("GET", "/cache/status", entry).json()["ready"] is False
    inserted = alice.request("POST", "/cache", entry, body=b"genuine")
    assert inserted.status == 200 and inserted.json()["sha256"] == hashlib.sha256(b"genuine").hexdigest()
    # Once ready it cannot be replaced, not even by its own tenant.
    assert alice.request("PUT", "/cache", entry).json() is False
    assert alice.request("POST", "/cache", entry, body=b"replaced").status == 409
    token = alice.request("GET", "/cache/status", entry).json()["token"]
    for who, expected in ((alice, b"genuine"), (bob, b"poison")):
        job = who.setup("any")["job_id"]
        assert (
            who.request(
                "POST", f"/jobs/{job}/files", {"name": "d.dat", "type": "input", "cache_token": token}
            ).status
            == 200
        )
        path = who.request("GET", f"/jobs/{job}/files/path", {"name": "d.dat", "type": "input"}).json()[
            "path"
        ]
        with open(path, "rb") as handle:
            assert handle.read() == expected
    # The same bytes under another name are stored once.
    other = {"ip": "10.0.0.2", "path": "/elsewhere/copy.dat"}
    assert alice.request("PUT", "/cache", other).json() is True
    assert alice.request("POST", "/cache", other, body=b"genuine").status == 200
    assert sorted(os.listdir(tmp_path / "cache" / "blobs")) == sorted(
        hashlib.sha256(data).hexdigest() for data in (b"genuine", b"poison")
    )


def test_single_token_cache_refuses_inserts_without_a_claim(make_server, tmp_path):
    server = make_server("cache", app_options={"private_token": TOKEN, "file_cache_dir": str(tmp_path / "c")})
    http = Http(server.url, TOKEN)
    entry = {"ip": "10.0.0.1", "path": "/data/x"}
    reply = http.request("POST", "/cache", entry, body=b"unclaimed")
    assert reply.status == 409 and "claim" in reply.json()["error"]
    assert http.request("GET", "/cache/status", entry).json()["ready"] is False


def test_tenants_need_uuid_ids(make_server, tmp_path):
    tenants = tmp_path / "tenants.ini"
    tenants.write_text(f"alice = {ALICE}\n")
    tenants.chmod(0o600)
    with pytest.raises(RuntimeError):
        make_server("galaxy-ids", app_options={"tenants_file": str(tenants)})


def test_a_tenants_file_others_can_read_stops_lwr(make_server, tmp_path):
    tenants = tmp_path / "tenants.ini"
    tenants.write_text(f"alice = {ALICE}\n")
    tenants.chmod(0o644)
    with pytest.raises(RuntimeError, match="chmod 600"):
        make_server("readable", app_options={"assign_ids": "uuid", "tenants_file": str(tenants)})
