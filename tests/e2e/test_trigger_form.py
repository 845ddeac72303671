"""The trigger form in the Airflow UI, driven in headless Chromium (Debian's, through Playwright).

The form is built from the DAG's Params: a valid run starts from its defaults alone, and an
instance id carrying a shell command is refused before any run exists, so nothing is sent.
"""

from __future__ import annotations

import shutil
import time
import urllib.parse

import pytest
from playwright.sync_api import Error as PlaywrightError

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not shutil.which("chromium"), reason="Debian's chromium is not installed (make system-tools)"
    ),
]
DAG = "cots_nightly_batch"


@pytest.fixture
def form(api, browser, log_in):
    """The DAG page of a logged-in admin, with the trigger form open."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    log_in(page)
    for attempt in range(3):  # the login redirect may still abort the first navigation
        try:
            page.goto(f"{api.base}/dags/{DAG}", wait_until="networkidle")
            break
        except PlaywrightError:
            if attempt == 2:
                raise
            time.sleep(1)
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Instance ids").first.wait_for()
    yield page, dialog
    page.close()


def run_ids(api) -> set[str]:
    status, answer = api.call("GET", f"/api/v2/dags/{DAG}/dagRuns")
    assert status == 200, answer
    return {run["dag_run_id"] for run in answer["dag_runs"]}


def test_form_refuses_a_shell_command_in_instance_ids(api, aws, form):
    page, dialog = form
    before = run_ids(api)
    dialog.locator("textarea").first.fill("i-0abc; touch pwned")
    dialog.get_by_role("button", name="Trigger").click()
    page.get_by_text("Failed to Trigger Dag").wait_for(timeout=15_000)
    time.sleep(2)
    assert run_ids(api) == before
    assert aws.control.counters().get("SendCommand", {}).get("calls", 0) == 0


def test_form_defaults_alone_run_the_batch(api, aws, form):
    page, dialog = form
    before = run_ids(api)
    dialog.get_by_role("button", name="Trigger").click()
    deadline = time.monotonic() + 30
    while not (new := run_ids(api) - before) and time.monotonic() < deadline:
        time.sleep(1)
    (run_id,) = new
    path = f"/api/v2/dags/{DAG}/dagRuns/{urllib.parse.quote(run_id, safe='')}"
    finished = api.wait_for(
        path, lambda r: r["state"] in ("success", "failed"), time.monotonic() + 240, "the run"
    )
    assert finished["state"] == "success"
    assert aws.control.counters()["SendCommand"]["accepted"] == 1
