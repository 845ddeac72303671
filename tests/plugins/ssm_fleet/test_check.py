"""One check without I/O: which commands need ListCommands, the verdict, and what the check then does."""

from datetime import UTC, datetime

import pytest

from ssm_fleet.check import (
    CancelCommands,
    CheckStatus,
    DescribeCommands,
    GetOutput,
    ListInvocations,
    WaitSpec,
    commands_to_describe,
    fleet_check,
    retry_delay,
)
from ssm_fleet.invocations import InvocationResult
from ssm_fleet.status import FAILURE_STATUSES, RUNNING_STATUSES, SUCCESS_STATUSES, Status
from ssm_fleet.verdict import FailurePolicy, FailureTolerance, Outcome

from .ssm_answers import api_invocation

T0 = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
IDS = [f"i-{n:017x}" for n in range(1, 5)]


def inv(instance_id, status=Status.IN_PROGRESS, command_id="cmd-1", code=0):
    return InvocationResult(command_id, instance_id, status, status.value, None if status in RUNNING_STATUSES
                            else code, started_at=T0)  # fmt: skip


class FakeSsm:
    """Answers a check's requests from fixed SSM answers, and records them."""

    def __init__(self, listings, commands=(), outputs=None):
        self.listings, self.commands, self.outputs = (
            listings,
            {c["CommandId"]: c for c in commands},
            outputs or {},
        )
        self.requests = []

    def answer(self, request):
        self.requests.append(request)
        if isinstance(request, ListInvocations):
            return self.listings.get(request.command_id, [])
        if isinstance(request, DescribeCommands):
            return [self.commands[c] for c in request.command_ids if c in self.commands]
        if isinstance(request, GetOutput):
            return self.outputs.get(request.instance_id)
        return [c for c in request.command_ids if self.commands.get(c, {}).get("Status") == "InProgress"]

    def run(self, spec, **kwargs):
        check = fleet_check(spec, **kwargs)
        try:
            request = next(check)
            while True:
                request = check.send(self.answer(request))
        except StopIteration as done:
            return done.value


def api_command(command_id, status, target_count):
    return {"CommandId": command_id, "Status": status, "TargetCount": target_count}


def spec(*ids, tolerance="0", policy="finish", **kwargs):
    return WaitSpec(tuple(ids), FailureTolerance.parse(tolerance), FailurePolicy.parse(policy), **kwargs)


class TestCommandsToDescribe:
    @pytest.mark.parametrize("running", sorted(RUNNING_STATUSES))
    def test_a_command_with_an_invocation_still_running_speaks_through_its_invocations(self, running):
        found = [inv(IDS[0], Status.SUCCESS), inv(IDS[1], running)]
        assert commands_to_describe(["cmd-1"], found) == []

    @pytest.mark.parametrize("ended", sorted(SUCCESS_STATUSES | FAILURE_STATUSES))
    def test_once_nothing_runs_every_command_is_described(self, ended):
        found = [inv(IDS[0], ended), inv(IDS[1], Status.SUCCESS), inv(IDS[2], ended, command_id="cmd-2")]
        assert commands_to_describe(["cmd-1", "cmd-2"], found) == ["cmd-1", "cmd-2"]

    def test_a_first_check_that_lists_nothing_describes_every_command(self):
        assert commands_to_describe(["cmd-1", "cmd-2"], []) == ["cmd-1", "cmd-2"]

    @pytest.mark.parametrize("policy", list(FailurePolicy))
    def test_a_command_that_ended_while_others_run_is_not_described(self, policy):
        found = [inv(IDS[0], Status.SUCCESS), inv(IDS[1], Status.FAILED), inv(IDS[2], command_id="cmd-2")]
        assert commands_to_describe(["cmd-1", "cmd-2"], found, 5, policy) == []

    def test_under_finish_a_command_with_nothing_listed_waits_while_others_run(self):
        assert commands_to_describe(["cmd-1", "cmd-2"], [inv(IDS[0], command_id="cmd-2")]) == []

    def test_under_cancel_a_command_with_nothing_listed_is_described_it_may_have_failed(self):
        found = [inv(IDS[0], command_id="cmd-2")]
        assert commands_to_describe(["cmd-1", "cmd-2"], found, 0, "cancel") == ["cmd-1"]

    def test_a_count_tolerance_needs_no_target_count(self):
        found = [inv(IDS[0], Status.FAILED), inv(IDS[1])]
        assert commands_to_describe(["cmd-1"], found, 0, FailurePolicy.CANCEL) == []

    def test_a_percentage_under_finish_waits_without_target_counts(self):
        found = [inv(IDS[0], Status.FAILED), inv(IDS[1])]
        assert commands_to_describe(["cmd-1"], found, "10%", FailurePolicy.FINISH) == []

    def test_a_percentage_under_cancel_reads_every_target_count_once_the_listed_ones_exceed_it(self):
        found = [inv(IDS[0], Status.FAILED), inv(IDS[1]), inv(IDS[2], command_id="cmd-2")]
        assert commands_to_describe(["cmd-1", "cmd-2"], found, "10%", "cancel") == ["cmd-1", "cmd-2"]

    def test_a_percentage_under_cancel_within_what_the_listed_ones_allow_needs_nothing(self):
        found = [inv(IDS[0], Status.FAILED), inv(IDS[1]), inv(IDS[2]), inv(IDS[3])]
        assert commands_to_describe(["cmd-1"], found, "25%", "cancel") == []

    def test_a_failure_superseded_by_a_later_attempt_does_not_count(self):
        found = [inv(IDS[0], Status.FAILED, "cmd-1"), inv(IDS[0], Status.IN_PROGRESS, "cmd-2")]
        found.append(inv(IDS[1], command_id="cmd-2"))
        assert commands_to_describe(["cmd-1", "cmd-2"], found, "10%", "cancel") == []


class TestFleetCheck:
    def test_running_commands_known_only_by_invocations_are_running(self):
        ssm = FakeSsm({"cmd-1": [api_invocation(IDS[0]), api_invocation(IDS[1], "InProgress", code=-1)]})
        result = ssm.run(spec("cmd-1"))
        assert result.status is CheckStatus.RUNNING and result.verdict.expected == 2
        assert ssm.requests == [ListInvocations("cmd-1")], "one page, no ListCommands while a host runs"

    def test_an_ended_list_shorter_than_the_target_count_is_not_yet(self):
        ssm = FakeSsm({"cmd-1": [api_invocation(IDS[0])]}, [api_command("cmd-1", "InProgress", 3)])
        result = ssm.run(spec("cmd-1"))
        assert result.status is CheckStatus.RUNNING and result.verdict.expected == 3

    def test_a_complete_failed_fleet_reads_the_failed_hosts_output_then_fails(self):
        listing = [api_invocation(IDS[0]), api_invocation(IDS[1], "Failed", code=4)]
        full = {IDS[1]: {"StandardErrorContent": "disk full\n" * 300, "ResponseCode": 4}}
        ssm = FakeSsm({"cmd-1": listing}, [api_command("cmd-1", "Failed", 2)], full)
        result = ssm.run(spec("cmd-1", attempt=2))
        assert result.status is CheckStatus.FAILED and [i.exit_code for i in result.verdict.failed] == [4]
        assert GetOutput("cmd-1", IDS[1]) in ssm.requests
        payload = result.payload(spec("cmd-1", attempt=2))
        assert payload["attempt"] == 2 and payload["verdict"]["attempt"] == 2
        assert "disk full" in payload["failure_summary"]

    def test_cancel_policy_cancels_the_running_hosts_and_fails_at_once(self):
        listing = [api_invocation(IDS[0], "Failed", code=1), api_invocation(IDS[1], "InProgress", code=-1)]
        ssm = FakeSsm({"cmd-1": listing}, [api_command("cmd-1", "InProgress", 2)])
        result = ssm.run(spec("cmd-1", policy="cancel"))
        assert result.status is CheckStatus.FAILED and result.cancelled == ("cmd-1",)
        assert any(isinstance(r, CancelCommands) for r in ssm.requests)

    def test_a_percentage_is_not_judged_on_a_partial_count(self):
        listing = [api_invocation(IDS[0], "Failed", code=1), api_invocation(IDS[1], "InProgress", code=-1)]
        assert FakeSsm({"cmd-1": listing}).run(spec("cmd-1", tolerance="10%", policy="cancel")).status is (
            CheckStatus.RUNNING
        )
        of_20 = FakeSsm({"cmd-1": listing}, [api_command("cmd-1", "InProgress", 20)])
        assert of_20.run(spec("cmd-1", tolerance="10%", policy="cancel")).status is CheckStatus.RUNNING
        of_2 = FakeSsm({"cmd-1": listing}, [api_command("cmd-1", "InProgress", 2)])
        assert of_2.run(spec("cmd-1", tolerance="10%", policy="cancel")).status is CheckStatus.FAILED


class TestTimeoutRule:
    def test_a_fleet_that_finished_in_the_last_interval_ends_with_its_verdict_not_a_timeout(self):
        listing = [api_invocation(IDS[0]), api_invocation(IDS[1])]
        ssm = FakeSsm({"cmd-1": listing}, [api_command("cmd-1", "Success", 2)])
        result = ssm.run(spec("cmd-1"), timed_out=True)
        assert result.status is CheckStatus.SUCCEEDED and result.cancelled == ()

    def test_past_the_deadline_a_fleet_still_running_is_read_then_cancelled_then_timed_out(self):
        listing = [api_invocation(IDS[0]), api_invocation(IDS[1], "InProgress", code=-1)]
        ssm = FakeSsm({"cmd-1": listing}, [api_command("cmd-1", "InProgress", 2)])
        result = ssm.run(spec("cmd-1"), timed_out=True)
        assert result.status is CheckStatus.TIMEOUT and result.cancelled == ("cmd-1",)
        assert isinstance(ssm.requests[0], ListInvocations), "the last read comes first"
        assert result.verdict.outcome is Outcome.RUNNING

    def test_a_timeout_names_each_host_not_finished_with_a_status_ssm_added(self):
        listing = [api_invocation(IDS[0]), api_invocation(IDS[1], "Paused", code=-1)]
        ssm = FakeSsm({"cmd-1": listing}, [api_command("cmd-1", "Success", 2)])
        result = ssm.run(spec("cmd-1"), timed_out=True)
        assert result.status is CheckStatus.TIMEOUT
        summary = result.payload(spec("cmd-1"))["failure_summary"]
        assert summary.splitlines()[0] == "1 of 2 host(s) had not finished"
        assert IDS[1] in summary and "'Paused'" in summary and IDS[0] not in summary

    def test_without_cancel_on_timeout_nothing_is_cancelled(self):
        listing = [api_invocation(IDS[0], "InProgress", code=-1)]
        ssm = FakeSsm({"cmd-1": listing}, [api_command("cmd-1", "InProgress", 1)])
        result = ssm.run(spec("cmd-1", cancel_on_timeout=False), timed_out=True)
        assert result.status is CheckStatus.TIMEOUT and result.cancelled == ()


class TestRetryDelay:
    @pytest.mark.parametrize(("errors", "delay"), [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0)])
    def test_transient_errors_back_off(self, errors, delay):
        assert retry_delay(True, errors, 5) == delay

    def test_the_last_allowed_error_gives_up_and_so_does_any_other_error(self):
        assert retry_delay(True, 5, 5) is None
        assert retry_delay(False, 1, 5) is None
