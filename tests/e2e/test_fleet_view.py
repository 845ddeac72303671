"""The fleet page in the Airflow UI, driven in headless Chromium (Debian's, through Playwright).

A logged-in user reaches the page from the run's "Fleet" tab, sees one cell per instance coloured
by status and the failed one already open with its stderr, opens another; a running run's counts
change on the page without a reload; host output never runs in the browser; anonymous requests
are refused.
"""

from __future__ import annotations

import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import Error as PlaywrightError

from cots_ssm.fleet.urls import fleet_path

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not shutil.which("chromium"), reason="Debian's chromium is not installed (make system-tools)"
    ),
]
DAG = "cots_nightly_batch"
ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "build" / "e2e-screenshots"
XSS = "<script>alert(1)</script><img src=x onerror=alert(2)>"


@pytest.fixture
def page(api, browser, log_in):
    """A page of a logged-in admin (the session cookie is what the fleet page accepts)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    dialogs: list[str] = []
    tab.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    tab.dialogs = dialogs
    log_in(tab)
    yield tab
    context.close()


def goto(tab, url: str) -> None:
    for attempt in range(3):  # the login redirect may still abort the first navigation
        try:
            tab.goto(url, wait_until="networkidle")
            return
        except PlaywrightError:
            if attempt == 2:
                raise
            time.sleep(1)


def fleet_url(api, run_id: str, query: str = "") -> str:
    return api.base + fleet_path(DAG, run_id) + query


@pytest.fixture(scope="module")
def failed_run(api, emulator):
    """A finished run of 120 instances, one of which failed (exit 3, a message on stderr)."""
    fleet = emulator.add_instances(120, tags={"Role": "fleetview"})
    bad = sorted(fleet)[57]
    run_id = api.trigger(
        {
            "target_tags": {"Role": ["fleetview"]},
            "script_arguments": ["--duration", "1", "--fail-on", bad],
            "poll_interval_seconds": 10,
        }
    )
    run = api.wait_for_run(run_id, timeout=300)
    assert run["state"] == "failed"
    return run_id, bad


def test_fleet_tab_shows_119_success_1_failed_and_the_failed_stderr(api, page, failed_run):
    run_id, bad = failed_run
    goto(page, f"{api.base}/dags/{DAG}/runs/{urllib.request.quote(run_id, safe='')}")
    page.get_by_role("tab", name="Fleet").or_(page.get_by_role("link", name="Fleet")).first.click()
    frame = page.frame_locator("iframe").first
    frame.locator("#grid a").first.wait_for(timeout=30_000)
    assert frame.locator("#grid a.st-success").count() == 119
    assert frame.locator("#grid a.st-failed").count() == 1
    # A failed run opens with its first failed host: no click needed to read why it failed.
    assert bad in frame.locator("#detail h2").inner_text()
    assert f"instance {bad} is configured to fail" in frame.locator("#stderr").inner_text()
    assert "exit code" in frame.locator("#detail").inner_text().lower()
    page.screenshot(path=str(SHOTS / "fleet-tab.png"))
    frame.locator("#grid a.st-success").first.click()
    frame.locator("#detail .st-success").wait_for(timeout=15_000)
    assert bad not in frame.locator("#detail h2").inner_text()
    page.screenshot(path=str(SHOTS / "fleet-succeeded-instance.png"))


def test_the_fleet_tab_follows_the_airflow_uis_dark_mode(api, page, failed_run):
    """The UI's colour mode (stored as ``theme``, a ``dark`` class on its page) reaches the iframe."""
    run_id, _ = failed_run
    run_page = f"{api.base}/dags/{DAG}/runs/{urllib.request.quote(run_id, safe='')}"
    goto(page, run_page)
    page.evaluate("localStorage.setItem('theme', 'dark')")  # what the UI's colour-mode switch stores
    goto(page, run_page)
    assert "dark" in (page.locator("html").get_attribute("class") or "")
    page.get_by_role("tab", name="Fleet").or_(page.get_by_role("link", name="Fleet")).first.click()
    frame = page.frame_locator("iframe").first
    frame.locator("#grid a").first.wait_for(timeout=30_000)
    assert frame.locator("html").get_attribute("data-theme") == "dark"
    background = frame.locator("body").evaluate("b => getComputedStyle(b).backgroundColor")
    assert background not in ("rgb(255, 255, 255)", "rgba(0, 0, 0, 0)"), background
    page.screenshot(path=str(SHOTS / "fleet-tab-dark.png"))
    page.evaluate("localStorage.setItem('theme', 'light')")


def test_running_run_counts_change_without_reload(api, aws, page):
    slow = aws.instance_ids[0]
    aws.control.extra_duration(slow, 25)
    run_id = api.trigger({"script_arguments": ["--duration", "1"], "poll_interval_seconds": 10})
    api.wait_for(
        api.run_path(run_id), lambda r: r["state"] == "running", time.monotonic() + 60, "the run to start"
    )
    goto(page, fleet_url(api, run_id))
    page.evaluate("window.__notReloaded = true")
    assert page.locator("body[data-live]").count() == 1
    page.locator("#counts span[data-status='InProgress']").wait_for(timeout=90_000)
    page.locator("#counts span[data-status='Success']").wait_for(timeout=90_000)
    before = page.locator("#counts").inner_text()
    page.wait_for_function(
        "() => !document.querySelector(\"#counts span[data-status='InProgress']\")", timeout=120_000
    )
    after = page.locator("#counts").inner_text()
    assert before != after and "3 Success" in after
    assert page.evaluate("window.__notReloaded") is True
    api.wait_for_run(run_id)


def test_host_output_with_markup_runs_nothing(api, page):
    run_id = api.trigger(
        {"script_arguments": ["--duration", "1", "--keywords", XSS], "poll_interval_seconds": 10}
    )
    api.wait_for_run(run_id)
    rows = api.xcom(run_id, "wait", "results")
    host = rows[0]["instance_id"]
    assert XSS in rows[0]["stdout_tail"]
    goto(page, fleet_url(api, run_id, f"?instance={host}"))
    assert XSS in page.locator("#stdout").inner_text()
    assert page.locator("img[src=x]").count() == 0
    time.sleep(1)
    assert page.dialogs == []


def test_anonymous_requests_are_refused(api, failed_run, browser):
    run_id, _ = failed_run
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(fleet_url(api, run_id), timeout=30)
    assert refused.value.code == 401
    anonymous = browser.new_page()
    answer = anonymous.goto(fleet_url(api, run_id))
    assert answer is not None and answer.status == 401
    assert anonymous.locator("#grid").count() == 0
    anonymous.close()


def test_sensor_fleet_link_leads_to_the_page(api, failed_run):
    run_id, _ = failed_run
    status, links = api.call("GET", f"{api.run_path(run_id)}/taskInstances/wait/links")
    assert status == 200, links
    assert links["extra_links"]["Fleet"].endswith(fleet_path(DAG, run_id))


def test_fleet_page_on_its_own_for_the_readme(api, page, failed_run):
    """Last in the module: by then the history chart shows the runs of the tests above."""
    run_id, bad = failed_run
    page.set_viewport_size({"width": 1100, "height": 1000})
    goto(page, fleet_url(api, run_id))
    assert page.locator("#grid a").count() == 120
    page.screenshot(path=str(SHOTS / "fleet-page.png"), full_page=False)
    page.emulate_media(color_scheme="dark")
    page.screenshot(path=str(SHOTS / "fleet-page-dark.png"), full_page=False)
