from cots_ssm.fleet.model import FleetPage, Group, InstanceView, live_rows, views_from_rows
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
