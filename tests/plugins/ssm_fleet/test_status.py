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
    is_failure,
    is_running,
    is_success,
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
    def test_running_statuses(self, status):
        assert is_running(status) and not is_success(status) and not is_failure(status)

    @pytest.mark.parametrize("status", sorted(FAILURE_STATUSES))
    def test_failure_statuses(self, status):
        assert is_failure(status) and not is_running(status)

    def test_cancelling_is_still_running_not_a_failure_yet(self):
        assert is_running(Status.CANCELLING) and not is_failure(Status.CANCELLING)
        verdict = fleet_verdict([command(ids=IDS[:1])], [invocation(IDS[0], Status.CANCELLING, code=-1)])
        assert verdict.outcome is Outcome.RUNNING and verdict.failed == ()

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
