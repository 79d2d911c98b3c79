"""The admin jobs API and ``lwr jobs``: list, timeline, repairs, over HTTP and AMQP, with real servers."""

from __future__ import annotations

import os
import subprocess
import sys

from mq_helpers import publish, setup_message, wait_for

from http_helpers import Http
from server import TOKEN

MANAGERS = (
    "[manager:_default_]\ntype = queued_python\nmax_concurrent_jobs = 2\n\n"
    "[manager:two]\ntype = queued_python\n"
)


def lwr_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lwr.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "")},
    )


def run_job(http: Http, job_id: str, command: str, data: bytes = b"") -> dict:
    http.setup(job_id)
    if data:
        assert http.upload(job_id, "in.txt", data).status == 200
    assert http.submit(job_id, command).status == 200
    return http.wait_complete(job_id)


def test_list_filter_page_and_timeline(make_server):
    server = make_server(app_options={"private_token": TOKEN}, job_managers_ini=MANAGERS)
    http = Http(server.url, TOKEN)
    assert Http(server.url).request("GET", "/jobs").status == 401
    assert run_job(http, "ok-1", "cat ../inputs/in.txt", b"z" * 300)["status"] == "complete"
    run_job(http, "ok-2", "true")
    run_job(http, "bad-1", "exit 4")
    two = Http(server.url + "managers/two/", TOKEN)
    run_job(two, "other-1", "true")
    http.setup("waiting-1")

    everything = http.request("GET", "/jobs").json()
    assert [(job["id"], job["manager"], job["state"]) for job in everything["jobs"]] == [
        ("ok-1", "_default_", "complete"),
        ("ok-2", "_default_", "complete"),
        ("bad-1", "_default_", "complete"),
        ("other-1", "two", "complete"),
        ("waiting-1", "_default_", "setup"),
    ]
    assert everything["next"] is None
    assert everything["jobs"][0]["final_status_delivered"] is None  # HTTP clients poll

    only_two = http.request("GET", "/jobs", {"manager": "two"}).json()["jobs"]
    assert [job["id"] for job in only_two] == ["other-1"]
    setup_only = http.request("GET", "/jobs", {"state": "setup,queued"}).json()["jobs"]
    assert [job["id"] for job in setup_only] == ["waiting-1"]
    assert http.request("GET", "/jobs", {"min_age": "1d"}).json()["jobs"] == []
    assert len(http.request("GET", "/jobs", {"max_age": "1d"}).json()["jobs"]) == 5

    first = http.request("GET", "/jobs", {"limit": "2"}).json()
    assert [job["id"] for job in first["jobs"]] == ["ok-1", "ok-2"] and first["next"]
    second = http.request("GET", "/jobs", {"limit": "2", "after": first["next"]}).json()
    assert [job["id"] for job in second["jobs"]] == ["bad-1", "other-1"]
    last = http.request("GET", "/jobs", {"limit": "2", "after": second["next"]}).json()
    assert [job["id"] for job in last["jobs"]] == ["waiting-1"] and last["next"] is None

    for params, word in (
        ({"state": "stuck"}, "unknown state"),
        ({"min_age": "soon"}, "duration"),
        ({"limit": "0"}, "limit"),
        ({"manager": "nope"}, "no manager"),
    ):
        reply = http.request("GET", "/jobs", params)
        assert reply.status in (400, 404) and word in reply.json()["error"], (params, reply)

    timeline = http.request("GET", "/jobs/ok-1/timeline").json()
    assert [event["state"] for event in timeline["events"] if "state" in event] == [
        "setup",
        "queued",
        "running",
        "complete",
    ]
    assert [event["external_id"] for event in timeline["events"] if "external_id" in event] == [
        timeline["batch_id"]
    ]
    times = [event["at"] for event in timeline["events"]]
    assert times == sorted(times)
    assert timeline["events"][1]["state"] == "queued" and timeline["events"][1]["staging_in"]["bytes"] >= 300
    assert timeline["staging"]["in"]["by"] == "client"
    assert timeline["batch_id"] and timeline["retries"] == 0
    assert http.request("GET", "/jobs/ok-1").json()["launch"]["command_line"] == "cat ../inputs/in.txt"
    assert http.request("GET", "/managers/two/jobs/other-1/timeline").json()["manager"] == "two"
    assert http.request("GET", "/jobs/other-1/timeline").status == 404
    # A job cleaned by its client leaves nothing behind.
    assert http.request("DELETE", "/jobs/ok-2").status == 200
    assert http.request("GET", "/jobs/ok-2/timeline").status == 404
    assert not list((server.directory / "files" / "persisted_data" / "jobs" / "_default_").glob("ok-2*"))


def test_forget_a_running_job_and_the_cli(make_server, tmp_path):
    server = make_server(app_options={"private_token": TOKEN})
    http = Http(server.url, TOKEN)
    run_job(http, "done-1", "echo hi")
    http.setup("stuck-1")
    assert http.submit("stuck-1", "sleep 300").status == 200
    http.wait_status("stuck-1", {"running"})
    base = ["--url", server.url, "--private-token", TOKEN]

    listed = lwr_cli("jobs", "list", *base)
    assert listed.returncode == 0, listed.stderr
    assert "done-1" in listed.stdout and "stuck-1" in listed.stdout and "running" in listed.stdout
    shown = lwr_cli("jobs", "timeline", *base, "done-1")
    assert shown.returncode == 0 and "complete" in shown.stdout and "n/a (HTTP)" in shown.stdout, shown
    refused = lwr_cli("jobs", "list", "--url", server.url, "--private-token", "wrong")
    assert refused.returncode == 1 and "token" in refused.stderr
    not_mq = lwr_cli("jobs", "redeliver", *base, "done-1")
    assert not_mq.returncode == 1 and "message queue" in not_mq.stderr
    cannot = lwr_cli("jobs", "retry-postprocessing", *base, "done-1")
    assert cannot.returncode == 1 and "did not fail" in cannot.stderr

    forgot = lwr_cli("jobs", "forget", *base, "stuck-1")
    assert forgot.returncode == 0, forgot.stderr
    assert http.request("GET", "/jobs/stuck-1/status").status == 404
    assert not (server.staging / "_default_" / "stuck-1").exists() or wait_for(
        lambda: not (server.staging / "_default_" / "stuck-1").exists(), "the directory to go"
    )
    assert [job["id"] for job in http.request("GET", "/jobs").json()["jobs"]] == ["done-1"]
    missing = lwr_cli("jobs", "show", *base, "stuck-1")
    assert missing.returncode == 1 and "no job" in missing.stderr


def test_admin_routes_in_multi_tenant_mode_need_the_token(make_server, tmp_path):
    open_server = make_server("open", app_options={"assign_ids": "uuid"})
    http = Http(open_server.url)
    reply = http.request("GET", "/jobs")
    assert reply.status == 403 and "private_token" in reply.json()["error"]
    assert http.request("GET", "/metrics").status == 403
    assert http.request("POST", "/jobs", {"job_id": "x"}).status == 200  # the job API itself is unchanged
    tenants = tmp_path / "tenants"
    tenants.write_text("galaxy-a = tenant-a-token-123\n")
    tenants.chmod(0o600)
    closed = make_server(
        "closed", app_options={"assign_ids": "uuid", "private_token": TOKEN, "tenants_file": str(tenants)}
    )
    assert Http(closed.url, TOKEN).request("GET", "/jobs").status == 200
    assert Http(closed.url).request("GET", "/jobs").status == 401
    tenant = Http(closed.url, "tenant-a-token-123")
    assert tenant.request("POST", "/jobs", {"job_id": "x"}).status == 200  # a tenant runs jobs...
    for method, path in (("GET", "/jobs"), ("GET", "/metrics"), ("GET", "/status")):
        refused = tenant.request(method, path)  # ...but sees no admin route
        assert refused.status == 403 and "admin token" in refused.json()["error"], (path, refused)


def test_redeliver_and_retry_postprocessing_over_amqp(
    mq_server, vhost, listener, files_endpoint, refusing_endpoint, tmp_path
):
    server = mq_server(remote_staging_allowed_urls=f"{files_endpoint.base},{refusing_endpoint.base}")
    http = Http(server.url)
    publish(vhost.url, "_default_", "setup", setup_message("mq-1", "echo hello"))
    assert listener.wait_final("mq-1")["status"] == "complete"
    timeline = wait_for(
        lambda: (t := http.request("GET", "/jobs/mq-1/timeline").json())["final_status_delivered"] and t,
        "the final status to be delivered",
    )
    assert [event.get("state") for event in timeline["events"]][-1] == "complete"

    finals_before = len([u for u in listener.for_job("mq-1") if u.get("complete") == "true"])
    assert http.request("POST", "/jobs/mq-1/redeliver").json()["redelivered"] == "complete"
    wait_for(
        lambda: len([u for u in listener.for_job("mq-1") if u.get("complete") == "true"]) > finals_before,
        "the final status announced again",
    )
    actions = [e.get("action") for e in http.request("GET", "/jobs/mq-1/timeline").json()["events"]]
    assert "final status announced again" in actions

    # Output delivery fails (the client's endpoint refuses it); the admin retries once it accepts.
    client_output = tmp_path / "client" / "dataset_1.dat"
    staging = {
        "action_mapper": {"default_action": "remote_transfer", "files_endpoint": refusing_endpoint.url},
        "client_outputs": {
            "working_directory": str(tmp_path / "client" / "w"),
            "output_files": [str(client_output)],
        },
    }
    publish(
        vhost.url,
        "_default_",
        "setup",
        setup_message("post-1", "echo result > ../outputs/dataset_1.dat", remote_staging=staging),
    )
    failed = listener.wait_final("post-1")
    assert failed["status"] == "failed" and "staging outputs failed" in failed["job_stderr"], failed
    listed = http.request("GET", "/jobs", {"state": "failed"}).json()["jobs"]
    assert [job["id"] for job in listed] == ["post-1"]
    refusing_endpoint.accept = True
    retried = http.request("POST", "/jobs/post-1/retry_postprocessing")
    assert retried.status == 200 and retried.json()["retries"] == 1, retried
    wait_for(
        lambda: [u for u in listener.for_job("post-1") if u.get("status") == "complete"],
        "a complete status after the retry",
    )
    assert len(refusing_endpoint.received) == 1 and b"result" in refusing_endpoint.received[0]
    timeline = http.request("GET", "/jobs/post-1/timeline").json()
    states = [event.get("state") for event in timeline["events"] if event.get("state")]
    assert states[-3:] == ["failed", "postprocessing", "complete"] and timeline["retries"] == 1
    assert timeline["staging"]["out"]["bytes"] == len("result\n")
    assert (
        "HTTP 400" in [e for e in timeline["events"] if e.get("state") == "failed"][0]["staging_out"]["error"]
    )
    again = http.request("POST", "/jobs/post-1/retry_postprocessing")
    assert again.status == 409


def test_admin_routes_answer_with_the_http_job_api_disabled(mq_server, vhost, listener):
    server = mq_server(enable_http="false")
    http = Http(server.url)
    publish(vhost.url, "_default_", "setup", setup_message("mq-only-1", "true"))
    assert listener.wait_final("mq-only-1")["status"] == "complete"
    assert [job["id"] for job in http.request("GET", "/jobs").json()["jobs"]] == ["mq-only-1"]
    assert http.request("GET", "/jobs/mq-only-1/timeline").status == 200
    assert http.request("GET", "/metrics").status == 200 and http.request("GET", "/status").status == 200
    refused = http.request("POST", "/jobs", {"job_id": "over-http"})
    assert refused.status == 404 and "disabled" in refused.json()["error"]
    assert http.request("GET", "/jobs/mq-only-1/status").status == 404
    assert http.request("GET", "/healthz").json()["http_jobs"] == "disabled"


def test_the_timeline_survives_kill9_and_restart(make_server):
    server = make_server()
    http = Http(server.url)
    run_job(http, "durable-1", "echo one")
    http.setup("durable-2")
    assert http.submit("durable-2", "sleep 2; echo two").status == 200
    http.wait_status("durable-2", {"running"})
    server.kill9()
    server.start()
    assert http.wait_complete("durable-2")["status"] == "complete"
    for job_id in ("durable-1", "durable-2"):
        events = http.request("GET", f"/jobs/{job_id}/timeline").json()["events"]
        states = [event["state"] for event in events if "state" in event]
        assert states[0] == "setup" and states[-1] == "complete" and "queued" in states, (job_id, events)


def test_a_mistyped_state_is_answered_with_the_states_there_are(make_server):
    server = make_server(app_options={"private_token": TOKEN})
    listed = lwr_cli("jobs", "list", "--url", server.url, "--private-token", TOKEN, "--state", "faild")
    assert listed.returncode == 1
    assert "unknown state 'faild'" in listed.stderr and "failed" in listed.stderr.split("'faild'", 1)[1]
