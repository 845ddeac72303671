import re

from cots_ssm.fleet.model import FleetPage, HistoryPoint, views_from_rows
from cots_ssm.fleet.render import PageOptions, esc, history_svg, render_login_shell, render_page, safe_url
from ssm_fleet.status import Status

from .fleet_rows import XSS, instance_id, rows


def page_of(count, failed=None, running=frozenset(), live=False, history=(), **verdict):
    views = tuple(
        views_from_rows(
            rows(count, failed, running), links=lambda c, i: [("SSM Run Command", f"https://c/{c}")]
        )
    )
    return FleetPage(
        "cots_nightly_batch",
        "manual__2026-11-27T02:30:00+00:00",
        "running" if live else "failed" if failed else "success",
        live,
        views,
        history=history,
        **verdict,
    )


def cells(html):
    return re.findall(r'<a class="(st-[a-z_]+)[^"]*" href="\?instance=', html)


def grid_ids(html):
    return re.findall(r'data-i="([^"]+)"', html)


def table_ids(html):
    return re.findall(r'<tr class="st-[a-z_]+"><td><a href="\?instance=([^"#]+)#detail">', html)


def detail_of(html):
    return html.split('<section id="detail">')[1].split("</section>")[0] if 'id="detail"' in html else ""


class TestRenderPage:
    def test_one_cell_per_instance_coloured_by_status(self):
        html = render_page(page_of(120, failed={7: "boom"}))
        found = cells(html)
        assert len(found) == 120
        assert found.count("st-success") == 119 and found.count("st-failed") == 1

    def test_open_instance_shows_details_in_words_exit_code_tails_and_links(self):
        html = render_page(
            page_of(3, failed={1: "line 1\nerror: disk full"}), PageOptions(instance=instance_id(1))
        )
        detail = html.split('<section id="detail">')[1].split("</section>")[0]
        assert "the script exited with a non-zero code" in detail
        assert "Exit code: 3" in detail and "error: disk full" in detail
        assert 'href="https://c/cmd-0"' in detail and "SUMMARY instance=" in detail

    def test_host_output_is_escaped_everywhere(self):
        page = page_of(2, failed={0: XSS})
        html = render_page(page, PageOptions(instance=instance_id(0), text=XSS, nonce="n1"))
        assert "<script>alert" not in html and "<img" not in html
        assert esc(XSS) in html
        assert html.count("<script") == 1 and '<script nonce="n1">' in html  # only the page's own

    def test_a_live_page_has_only_its_own_nonced_script(self):
        html = render_page(page_of(3, running={1}, live=True), PageOptions(nonce="abc"))
        assert html.count("<script") == 1 and '<script nonce="abc">' in html
        assert "<body data-live>" in html

    def test_table_filters_by_status_and_text(self):
        page = page_of(10, failed={3: "x", 5: "y"})
        html = render_page(page, PageOptions(status=Status.FAILED.value))
        assert "2 of 10 match" in html and table_ids(html) == [instance_id(3), instance_id(5)]
        assert table_ids(render_page(page, PageOptions(text=instance_id(5)))) == [instance_id(5)]
        assert 'id="matched"' not in render_page(page)  # unfiltered: the counts above say it

    def test_a_thousand_instances_stay_under_500_kb(self):
        failed = {n: "error line\n" * 20 for n in range(0, 1000, 40)}
        html = render_page(page_of(1000, failed=failed), PageOptions(instance=instance_id(0)))
        assert len(cells(html)) == 1000
        assert len(html.encode()) < 500_000

    def test_unknown_instance_is_named_escaped(self):
        html = render_page(page_of(1), PageOptions(instance="<b>x"))
        assert "No instance &lt;b&gt;x in this run." in html


class TestAtAGlance:
    def test_counts_are_said_once(self):
        html = render_page(page_of(3, failed={2: "boom"}, expected=3, allowed_failures=0))
        counts = html.split('<section id="counts">')[1].split("</section>")[0]
        assert re.findall(r'data-status="([^"]+)">(\d+) ', counts) == [("Failed", "1"), ("Success", "2")]
        assert "of 3 hosts" in counts
        body = html.split("</style>")[1]
        for said in ("1 Failed", "2 Success", "3 hosts", "3/3", "0 running", "2 succeeded"):
            assert body.count(said) <= 1, said

    def test_a_failed_run_opens_with_the_first_failed_host(self):
        html = render_page(page_of(120, failed={57: "error: disk full", 90: "other"}))
        detail = detail_of(html)
        assert instance_id(57) in detail and "error: disk full" in detail and "Exit code: 3" in detail
        assert 'class="st-failed sel"' in html

    def test_an_asked_for_host_is_opened_instead(self):
        html = render_page(page_of(10, failed={3: "x"}), PageOptions(instance=instance_id(6)))
        assert instance_id(6) in detail_of(html) and instance_id(3) not in detail_of(html)

    def test_a_run_without_failure_opens_no_host(self):
        assert detail_of(render_page(page_of(10, running={2}, live=True))) == ""

    def test_failed_hosts_come_first_then_running_then_succeeded(self):
        html = render_page(page_of(6, failed={4: "x"}, running={1}, live=True))
        order = [instance_id(n) for n in (4, 1, 0, 2, 3, 5)]
        assert grid_ids(html) == order and table_ids(html) == order

    def test_what_the_counts_do_not_say_is_said_beside_them(self):
        page = page_of(
            4, failed={0: "x"}, running={1}, live=True, expected=6, allowed_failures=0, gone=("i-gone",)
        )
        counts = render_page(page).split('<section id="counts">')[1].split("</section>")[0]
        assert "of 6 hosts" in counts and "2 not listed by SSM yet" in counts
        assert "1 gone from the fleet, not counted (i-gone)" in counts
        assert "tolerance exceeded: the run will fail once the others finish" in counts

    def test_light_and_dark_follow_the_system_and_airflow_colour_mode(self):
        html = render_page(page_of(2), PageOptions(nonce="n"))
        assert "@media (prefers-color-scheme:dark){:root:not([data-theme=light])" in html
        assert ":root[data-theme=dark]{" in html
        script = html.split('<script nonce="n">')[1]
        assert "window.parent.document" in script and "localStorage.getItem('theme')" in script


class TestHistorySvg:
    def test_one_bar_per_run_and_this_run_outlined(self):
        points = [HistoryPoint(f"r{n}", 60.0 + n, n % 3, "success", current=n == 29) for n in range(30)]
        svg = history_svg(points)
        assert svg.count("<title>") == 30
        assert svg.count('class="cur"') == 1 and svg.count('class="bar"') == 29
        assert svg.count('class="fail"') == sum(1 for n in range(30) if n % 3)

    def test_run_ids_are_escaped(self):
        svg = history_svg([HistoryPoint(XSS, None, None)])
        assert "<script>" not in svg and "&lt;script&gt;" in svg

    def test_no_runs(self):
        assert "No earlier runs" in history_svg([])


def test_safe_url_refuses_other_schemes():
    assert safe_url("javascript:alert(1)") == "#" and safe_url("//evil") == "#"
    assert safe_url("https://console.aws.amazon.com/x") == "https://console.aws.amazon.com/x"


def test_login_shell_holds_no_run_data_and_escapes_its_message():
    html = render_login_shell("n", XSS)
    assert "<img" not in html and "data-shell" in html
