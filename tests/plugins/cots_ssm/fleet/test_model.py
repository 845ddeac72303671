from datetime import UTC, datetime

from cots_ssm.fleet.model import (
    FleetPage,
    Group,
    HistoryPoint,
    InstanceView,
    deadline_line,
    live_rows,
    views_from_rows,
)
from ssm_fleet.status import Status, StatusDetails

from .fleet_rows import api_command, api_invocation, instance_id, rows


class TestViewsFromRows:
    def test_one_view_per_row_sorted_with_status_read_through_the_status_model(self):
        views = views_from_rows(reversed(rows(5, failed={2: "boom"})))
        assert [v.instance_id for v in views] == [instance_id(n) for n in range(5)]
        assert views[2].status is Status.FAILED and views[2].group is Group.FAILED
        assert views[2].exit_code == 3 and views[2].stderr_tail == "boom"
        assert views[2].explanation == "the script exited with a non-zero code"

    def test_links_come_from_the_given_maker(self):
        (view,) = views_from_rows(rows(1), links=lambda cid, iid: [("console", f"https://x/{cid}/{iid}")])
        assert view.links == (("console", f"https://x/cmd-0/{instance_id(0)}"),)


class TestFleetPage:
    def test_counts_follow_status_order_and_leave_out_zeros(self):
        page = FleetPage("d", "r", "running", True, tuple(views_from_rows(rows(6, {1: "x"}, running={4}))))
        assert page.counts() == [(Status.IN_PROGRESS, 1), (Status.SUCCESS, 4), (Status.FAILED, 1)]
        assert page.group_counts() == {Group.RUNNING: 1, Group.SUCCEEDED: 4, Group.FAILED: 1}

    def test_slowest_are_the_longest_finished_ones(self):
        page = FleetPage("d", "r", "success", False, tuple(views_from_rows(rows(10, {0: "x"}))))
        slowest = page.slowest(3)
        assert slowest[0].instance_id == instance_id(0)  # failed after 9 s
        assert [v.duration_seconds for v in slowest] == [9.0, 6.0, 5.0]

    def test_find_returns_none_for_an_unknown_instance(self):
        page = FleetPage("d", "r", "success", False, tuple(views_from_rows(rows(2))))
        assert page.find("i-nope") is None and page.find(instance_id(1)) is not None


class TestLiveRows:
    def test_rows_and_progress_read_as_the_sensor_reads_them(self):
        invocations = [
            api_invocation(0, Status.SUCCESS, StatusDetails.SUCCESS, 0, "ok"),
            api_invocation(1, Status.FAILED, StatusDetails.FAILED, 3, "out\n----------ERROR-------\nbad"),
            api_invocation(2, Status.IN_PROGRESS, StatusDetails.IN_PROGRESS),
        ]
        found, summary = live_rows([api_command(4, Status.IN_PROGRESS)], invocations)
        assert [r["status"] for r in found] == [Status.SUCCESS, Status.FAILED, Status.IN_PROGRESS]
        assert found[1]["stderr_tail"] == "bad" and found[1]["attempt"] == 1
        assert summary["outcome"] == "running"
        assert summary["progress"].startswith("2/4 hosts done")

    def test_a_finished_fleet_leaves_the_verdict_to_the_sensor(self):
        invocations = [api_invocation(0, Status.FAILED, StatusDetails.FAILED, 3)]
        _, summary = live_rows([api_command(1, Status.FAILED)], invocations)
        assert summary["outcome"] == ""


def test_instance_view_without_exit_code_while_running():
    view = InstanceView.from_row(rows(1, running={0})[0])
    assert view.exit_code is None and view.group is Group.RUNNING


class TestAtAGlance:
    def test_failed_first_then_running_then_succeeded_each_by_id(self):
        page = FleetPage(
            "d", "r", "running", True, tuple(views_from_rows(rows(5, {3: "x", 1: "y"}, running={4})))
        )
        assert [v.instance_id for v in page.failed_first()] == [instance_id(n) for n in (1, 3, 4, 0, 2)]
        assert page.first_failed().instance_id == instance_id(1)

    def test_no_failed_host_opens_nothing(self):
        assert FleetPage("d", "r", "success", False, tuple(views_from_rows(rows(3)))).first_failed() is None

    def test_an_exceeded_tolerance_is_said_while_the_run_runs_not_after(self):
        views = tuple(views_from_rows(rows(3, {0: "x"}, running={1})))
        live = FleetPage("d", "r", "running", True, views, expected=3, allowed_failures=0)
        done = FleetPage("d", "r", "failed", False, views, expected=3, allowed_failures=0)
        assert "tolerance exceeded: the run will fail once the others finish" in live.remarks()
        assert done.remarks() == ["at most 0 failed tolerated"]

    def test_a_fleet_ssm_has_not_listed_entirely_says_how_many_are_missing(self):
        page = FleetPage("d", "r", "running", True, tuple(views_from_rows(rows(2))), expected=5)
        assert page.remarks() == ["3 not listed by SSM yet"]


DEADLINE = datetime(2026, 11, 27, 5, 0, tzinfo=UTC)  # 06:00 in Paris


def line(views, *, now, history=(), live=True, expected=0):
    return deadline_line(
        deadline_at=DEADLINE,
        timezone="Europe/Paris",
        now=now,
        live=live,
        views=views,
        expected=expected,
        started_at=None,
        history=history,
    )


class TestDeadlineLine:
    """The page's estimate is the early alert's (cots_ssm.deadline.estimate_finish), fed from the page."""

    def test_a_finished_run_shows_only_its_deadline_in_local_time(self):
        assert (
            line(views_from_rows(rows(3)), now=DEADLINE, live=False)
            == "Deadline 2026-11-27 06:00 (Europe/Paris)"
        )

    def test_a_running_fleet_past_the_deadline_by_its_progress(self):
        # rows() start at 02:30 UTC; 2 of 4 finished at 04:30 UTC: the fleet needs ~4 h, ends ~06:30 UTC.
        views = views_from_rows(rows(4, running={2, 3}))
        text = line(views, now=datetime(2026, 11, 27, 4, 30, tzinfo=UTC))
        assert text == (
            "Deadline 2026-11-27 06:00 (Europe/Paris) · estimate: the fleet finishes ~07:30, "
            "past the deadline (from 2/4 host(s) finished in 2:00:00)"
        )

    def test_the_last_successful_nights_count_not_the_failed_or_skipped_ones_nor_this_run(self):
        views = views_from_rows(rows(4, running={0, 1, 2, 3}))
        history = [
            HistoryPoint("a", 3600.0, 0, "success"),
            HistoryPoint("b", 99_999.0, 1, "failed"),
            HistoryPoint("c", 3600.0, 0, "success"),
            HistoryPoint("skipped", 5.0, None, "success"),  # green, but the window skipped it: no verdict
            HistoryPoint("this", 10.0, None, "running", current=True),
        ]
        text = line(views, now=datetime(2026, 11, 27, 2, 40, tzinfo=UTC), history=history)
        assert "~04:30, on time (from the last 2 successful night(s), median 1:00:00)" in text

    def test_no_estimate_yet_says_what_it_waits_for(self):
        views = views_from_rows(rows(8, running=set(range(1, 8))))
        text = line(
            views,
            now=datetime(2026, 11, 27, 3, 0, tzinfo=UTC),
            history=[HistoryPoint("a", 60.0, 0, "success")],
        )
        assert text.endswith("no estimate yet (a quarter of the hosts finished, or two successful nights)")
