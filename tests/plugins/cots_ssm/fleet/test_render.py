import re

from cots_ssm.fleet.model import FleetPage, HistoryPoint, views_from_rows
from cots_ssm.fleet.render import PageOptions, esc, history_svg, render_login_shell, render_page, safe_url
from ssm_fleet.status import Status

from .fleet_rows import XSS, instance_id, rows


def page_of(count, failed=None, running=frozenset(), live=False, history=()):
    views = tuple(
        views_from_rows(
            rows(count, failed, running), links=lambda c, i: [("SSM Run Command", f"https://c/{c}")]
        )
    )
    return FleetPage(
        "cots_nightly_batch", "manual__2026-11-27T02:30:00+00:00", "success", live, views, history=history
    )


def cells(html):
    return re.findall(r'<a class="(st-[a-z_]+)[^"]*" href="\?instance=', html)


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
        assert html.count("<script") == 0  # a finished page has no script at all

    def test_a_live_page_has_only_its_own_nonced_script(self):
        html = render_page(page_of(3, running={1}, live=True), PageOptions(nonce="abc"))
        assert html.count("<script") == 1 and '<script nonce="abc">' in html
        assert "<body data-live>" in html

    def test_table_filters_by_status_and_text(self):
        page = page_of(10, failed={3: "x", 5: "y"})
        html = render_page(page, PageOptions(status=Status.FAILED.value))
        assert "Table (2 of 10)" in html
        assert "Table (1 of 10)" in render_page(page, PageOptions(text=instance_id(5)))

    def test_a_thousand_instances_stay_under_500_kb(self):
        failed = {n: "error line\n" * 20 for n in range(0, 1000, 40)}
        html = render_page(page_of(1000, failed=failed), PageOptions(instance=instance_id(0)))
        assert len(cells(html)) == 1000
        assert len(html.encode()) < 500_000

    def test_unknown_instance_is_named_escaped(self):
        html = render_page(page_of(1), PageOptions(instance="<b>x"))
        assert "No instance &lt;b&gt;x in this run." in html


class TestHistorySvg:
    def test_one_bar_per_run_and_this_run_outlined(self):
        points = [HistoryPoint(f"r{n}", 60.0 + n, n % 3, "success", current=n == 29) for n in range(30)]
        svg = history_svg(points)
        assert svg.count("<title>") == 30
        assert svg.count('stroke="#111"') == 1
        assert svg.count('fill="#dc2626"/>') == sum(1 for n in range(30) if n % 3)

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
