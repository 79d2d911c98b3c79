"""Retention of ended jobs' directories and the free-disk floor, over HTTP and AMQP, with real servers."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from mq_helpers import final_of, publish, remote_input, setup_message, wait_for

from lwr.config import parse_duration, parse_free_disk

from http_helpers import Http


@pytest.fixture
def small_filesystem(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs of the test's own (the suite runs as root in CI)."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8M", "tmpfs", str(mount_point)], check=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_durations_and_floors_parse():
    assert [parse_duration(text) for text in ("0", "90", "30s", "45m", "2h", "7d", "2w", "1.5h")] == [
        0,
        90,
        30,
        2700,
        7200,
        604800,
        1209600,
        5400,
    ]
    assert parse_free_disk("10G") == (10 * 1024**3, 0.0) and parse_free_disk("5%") == (0, 5.0)
    for bad in ("soon", "-1h", "2y"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    for bad in ("lots", "120%"):
        with pytest.raises(ValueError):
            parse_free_disk(bad)


def test_retention_removes_ended_directories_over_http(make_server):
    server = make_server(app_options={"retain_complete_jobs": "1s", "retain_failed_jobs": "0"})
    http = Http(server.url)
    http.setup("done-1")
    assert http.submit("done-1", "echo kept in the record").status == 200
    assert http.wait_complete("done-1")["status"] == "complete"
    http.setup("cancelled-1")
    assert http.request("PUT", "/jobs/cancelled-1/cancel").status == 200
    http.setup("busy-1")
    assert http.submit("busy-1", "sleep 300").status == 200
    http.wait_status("busy-1", {"running"})

    directory = server.staging / "_default_" / "done-1"
    wait_for(lambda: not directory.exists(), "the complete job's directory to be removed")
    jobs = {job["id"]: job for job in http.request("GET", "/jobs").json()["jobs"]}
    assert jobs["done-1"]["directory_removed"] and jobs["done-1"]["state"] == "complete"
    assert not jobs["cancelled-1"]["directory_removed"]  # retain_failed_jobs = 0: kept
    assert (server.staging / "_default_" / "cancelled-1").is_dir()
    assert (server.staging / "_default_" / "busy-1").is_dir()
    assert http.status("done-1")["status"] == "complete"
    events = http.request("GET", "/jobs/done-1/timeline").json()["events"]
    assert events[-1]["action"] == "directory removed"
    record = (
        server.directory / "files" / "persisted_data" / "jobs" / "_default_" / "done-1.json"
    ).read_text()
    assert "echo kept" not in record  # compacted: no launch details
    assert http.request("DELETE", "/jobs/done-1").status == 200  # a late clean still works


def test_retain_job_records_forgets_ended_jobs_over_http(make_server):
    server = make_server(
        app_options={"retain_complete_jobs": "1s", "retain_failed_jobs": "0", "retain_job_records": "2s"}
    )
    http = Http(server.url)
    http.setup("forgotten-1")
    assert http.submit("forgotten-1", "true").status == 200
    assert http.wait_complete("forgotten-1")["status"] == "complete"
    http.setup("kept-1")
    assert http.request("PUT", "/jobs/kept-1/cancel").status == 200  # failed directories kept for ever

    record = server.directory / "files" / "persisted_data" / "jobs" / "_default_" / "forgotten-1.json"
    wait_for(lambda: not record.exists(), "the ended job's record to be forgotten")
    jobs = {job["id"] for job in http.request("GET", "/jobs").json()["jobs"]}
    assert "forgotten-1" not in jobs and "kept-1" in jobs
    assert not (server.staging / "_default_" / "forgotten-1").exists()
    assert http.status("kept-1")["status"] == "cancelled"


def test_retention_in_message_queue_mode(mq_server, vhost, listener, files_endpoint, tmp_path):
    server = mq_server(retain_complete_jobs="0", retain_failed_jobs="1s")
    publish(vhost.url, "_default_", "setup", setup_message("mq-ok", "true"))
    publish(
        vhost.url,
        "_default_",
        "setup",
        setup_message(
            "mq-bad", "true", remote_staging=remote_input(files_endpoint.url, tmp_path / "nothing")
        ),
    )
    assert final_of(listener, "mq-ok")["status"] == "complete"
    assert final_of(listener, "mq-bad")["status"] == "failed"
    wait_for(
        lambda: not (server.staging / "_default_" / "mq-bad").exists(), "the failed job's directory to go"
    )
    assert (server.staging / "_default_" / "mq-ok").is_dir()
    jobs = {job["id"]: job for job in Http(server.url).request("GET", "/jobs").json()["jobs"]}
    assert jobs["mq-bad"]["directory_removed"] and not jobs["mq-ok"]["directory_removed"]


def test_setup_refused_below_the_disk_floor_over_http(make_server, small_filesystem):
    server = make_server(
        app_options={"staging_directory": str(small_filesystem / "staging"), "min_free_disk": "4M"}
    )
    http = Http(server.url)
    http.setup("fits-1")
    filler = small_filesystem / "filler"
    filler.write_bytes(b"\0" * (5 * 1024 * 1024))
    refused = http.request("POST", "/jobs", {"job_id": "full-1"})
    assert refused.status == 507, refused
    body = refused.json()
    assert "min_free_disk" in body["error"] and body["job_id"] == "full-1"
    assert not (small_filesystem / "staging" / "_default_" / "full-1").exists()
    assert http.request("GET", "/jobs/full-1/status").status == 404
    # An accepted job keeps going; only new setups are refused.
    assert http.upload("fits-1", "in.txt", b"abc").status == 200
    filler.unlink()
    assert http.request("POST", "/jobs", {"job_id": "full-1"}).status == 200


def test_setup_refused_below_the_disk_floor_over_amqp(mq_server, vhost, listener, tmp_path):
    floor = shutil.disk_usage(tmp_path).free + 1024**4  # a terabyte more than there is
    server = mq_server(min_free_disk=str(floor))
    publish(vhost.url, "_default_", "setup", setup_message("mq-full", "echo never"))
    final = listener.wait_final("mq-full")
    assert final["status"] == "failed"
    assert "min_free_disk" in final["job_stderr"], final
    assert not (server.staging / "_default_" / "mq-full").exists()


def test_the_disk_floor_in_percent(tmp_path):
    from lwr.core.jobs import DiskFloor

    assert DiskFloor().shortfall(tmp_path) is None
    assert DiskFloor(percent=0.0001).shortfall(tmp_path) is None
    reason = DiskFloor(percent=100).shortfall(tmp_path)  # no filesystem is entirely free
    assert reason is not None and "min_free_disk" in reason and str(tmp_path) in reason
