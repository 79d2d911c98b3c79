"""GET /status in a real headless browser (Debian's chromium through chromedriver and selenium)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from mq_helpers import wait_for
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from http_helpers import Http
from server import TOKEN

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def test_status_page_shows_a_running_job_and_links_to_its_timeline(make_server, browser):
    server = make_server(app_options={"private_token": TOKEN})
    http = Http(server.url, TOKEN)
    http.setup("busy-1", tool_id="cat1")
    assert http.submit("busy-1", "sleep 300").status == 200
    http.wait_status("busy-1", {"running"})
    http.setup("broken-1")
    assert http.request("PUT", "/jobs/broken-1/cancel").status == 200

    browser.get(server.url + "status")
    assert "401" in browser.page_source or "token" in browser.page_source  # no token, no page
    browser.get(f"{server.url}status?private_token={TOKEN}")
    assert browser.title == "lwr status"
    managers = browser.find_element(By.ID, "managers").text
    assert "_default_" in managers and "queued_python" in managers
    active = browser.find_element(By.ID, "active")
    assert "busy-1" in active.text and "running" in active.text and "cat1" in active.text
    failures = browser.find_element(By.ID, "failures").text
    assert "broken-1" in failures and "cancelled before launch" in failures
    disk = browser.find_element(By.ID, "disk").text
    assert str(server.staging) in disk and "free" in disk

    active.find_element(By.LINK_TEXT, "busy-1").click()
    assert browser.title == "lwr job busy-1"
    timeline = browser.find_element(By.ID, "timeline").text
    for state in ("setup", "queued", "running"):
        assert state in timeline, timeline
    assert "batch id" in timeline
    browser.find_element(By.ID, "back").click()
    assert browser.title == "lwr status"


def test_status_page_in_message_queue_mode_shows_the_outbox(mq_server, browser):
    server = mq_server()

    def connected() -> bool:
        browser.get(server.url + "status")
        return browser.find_element(By.ID, "outbox").text.split("\n")[1].startswith("connected")

    wait_for(connected, "the status page to show the broker connected")
    assert "pending updates" in browser.find_element(By.ID, "outbox").text
    assert Http(server.url).request("GET", "/status/jobs/_default_/nope").status == 404
