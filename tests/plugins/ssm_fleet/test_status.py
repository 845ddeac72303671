import pytest

from ssm_fleet.render import failure_summary
from ssm_fleet.status import (
    DETAIL_EXPLANATIONS,
    FAILURE_STATUSES,
    RUNNING_STATUSES,
    SUCCESS_STATUSES,
    Status,
    StatusDetails,
    explain,
    parse_status,
    read_status,
)
from ssm_fleet.verdict import Outcome

from .ssm_answers import IDS, command, fleet_verdict, invocation


class TestStatusSets:
    def test_every_status_is_in_exactly_one_set(self):
        for status in Status:
            memberships = [status in s for s in (RUNNING_STATUSES, SUCCESS_STATUSES, FAILURE_STATUSES)]
            assert memberships.count(True) == 1, status

    @pytest.mark.parametrize("status", sorted(RUNNING_STATUSES))
    def test_a_host_in_a_running_status_keeps_the_fleet_waiting(self, status):
        verdict = fleet_verdict(
            [command(ids=IDS[:2])], [invocation(IDS[0]), invocation(IDS[1], status, code=-1)]
        )
        assert verdict.outcome is Outcome.RUNNING
        assert [i.instance_id for i in verdict.running] == [IDS[1]] and verdict.failed == ()

    @pytest.mark.parametrize("status", sorted(FAILURE_STATUSES))
    def test_a_host_in_a_failure_status_fails_the_fleet_naming_it(self, status):
        ended = command(status=Status.FAILED, ids=IDS[:2])
        verdict = fleet_verdict([ended], [invocation(IDS[0]), invocation(IDS[1], status, code=-1)])
        assert verdict.outcome is Outcome.FAILED
        assert [i.instance_id for i in verdict.failed] == [IDS[1]]
        assert f"{IDS[1]} (host-002): {status.value}" in failure_summary(verdict)

    @pytest.mark.parametrize("status", sorted(SUCCESS_STATUSES))
    def test_every_host_in_a_success_status_succeeds_the_fleet(self, status):
        ended = command(status=Status.SUCCESS, ids=IDS[:2])
        verdict = fleet_verdict([ended], [invocation(IDS[0], status), invocation(IDS[1], status)])
        assert verdict.outcome is Outcome.SUCCEEDED and verdict.failed == () and verdict.running == ()

    def test_cancelling_is_still_running_not_a_failure_yet(self):
        """Cancelling waits; the same host once Cancelled fails the fleet."""
        cancelling = fleet_verdict([command(ids=IDS[:1])], [invocation(IDS[0], Status.CANCELLING, code=-1)])
        assert cancelling.outcome is Outcome.RUNNING and cancelling.failed == ()
        ended = command(status=Status.CANCELLED, ids=IDS[:1])
        cancelled = fleet_verdict([ended], [invocation(IDS[0], Status.CANCELLED, code=-1)])
        assert cancelled.outcome is Outcome.FAILED
        assert [i.instance_id for i in cancelled.failed] == [IDS[0]]

    def test_api_spelling(self):
        assert parse_status("Cancelled") is Status.CANCELLED
        assert parse_status("InProgress") is Status.IN_PROGRESS

    def test_unknown_status_is_named(self):
        with pytest.raises(ValueError, match="'Exploded'"):
            parse_status("Exploded")

    def test_a_status_ssm_adds_tomorrow_reads_as_unknown_not_a_crash(self):
        assert read_status("Exploded") is Status.UNKNOWN
        assert read_status(None) is Status.UNKNOWN


class TestStatusDetails:
    @pytest.mark.parametrize("details", list(StatusDetails))
    def test_every_detail_is_explained(self, details):
        assert details in DETAIL_EXPLANATIONS
        assert explain(details.value) == DETAIL_EXPLANATIONS[details]

    def test_unknown_detail_is_kept_as_is(self):
        assert explain("Something New") == "Something New"

    @pytest.mark.parametrize(
        ("status", "details"),
        [
            (Status.TIMED_OUT, StatusDetails.DELIVERY_TIMED_OUT),
            (Status.TIMED_OUT, StatusDetails.EXECUTION_TIMED_OUT),
            (Status.FAILED, StatusDetails.UNDELIVERABLE),
            (Status.CANCELLED, StatusDetails.TERMINATED),
            (Status.FAILED, StatusDetails.INVALID_PLATFORM),
            (Status.FAILED, StatusDetails.ACCESS_DENIED),
            (Status.CANCELLED, StatusDetails.CANCELLED),
        ],
    )
    def test_failure_details_fail_the_fleet_and_are_described(self, status, details):
        result = invocation(IDS[0], status, details.value, code=-1)
        verdict = fleet_verdict([command(status=Status.FAILED, ids=IDS[:1])], [result])
        assert verdict.outcome is Outcome.FAILED
        assert f"({details.value})" in failure_summary(verdict)
        assert DETAIL_EXPLANATIONS[details] in failure_summary(verdict)
