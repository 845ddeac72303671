"""The pure rule of a check at the AWS-call floor: which commands need ListCommands, and the verdict."""

from datetime import UTC, datetime

import pytest

from cots_ssm.status import (
    FAILURE_STATUSES,
    RUNNING_STATUSES,
    SUCCESS_STATUSES,
    CommandSummary,
    FailurePolicy,
    InvocationResult,
    Outcome,
    Status,
    check_verdict,
    commands_to_describe,
    with_attempts,
)

T0 = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
IDS = [f"i-{n:017x}" for n in range(1, 5)]


def inv(instance_id, status=Status.IN_PROGRESS, command_id="cmd-1", code=0):
    return InvocationResult(command_id, instance_id, status, status.value, None if status in RUNNING_STATUSES
                            else code, started_at=T0)  # fmt: skip


def described(command_id, status, target_count):
    return {command_id: CommandSummary(command_id, status, status.value, target_count)}


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


class TestCheckVerdict:
    def test_running_commands_known_only_by_invocations_are_running(self):
        verdict = check_verdict(["cmd-1"], [inv(IDS[0], Status.SUCCESS), inv(IDS[1])], {})
        assert verdict.outcome is Outcome.RUNNING and verdict.expected == 2

    def test_an_ended_list_shorter_than_the_target_count_is_not_yet(self):
        found = [inv(IDS[0], Status.SUCCESS)]
        verdict = check_verdict(["cmd-1"], found, described("cmd-1", Status.IN_PROGRESS, 3))
        assert verdict.outcome is Outcome.RUNNING and verdict.expected == 3

    def test_a_complete_ended_list_decides(self):
        found = [inv(IDS[0], Status.SUCCESS), inv(IDS[1], Status.FAILED, code=4)]
        verdict = check_verdict(["cmd-1"], found, described("cmd-1", Status.FAILED, 2))
        assert verdict.outcome is Outcome.FAILED and [i.exit_code for i in verdict.failed] == [4]

    def test_cancel_policy_fails_at_once_with_a_count_tolerance(self):
        found = [inv(IDS[0], Status.FAILED, code=1), inv(IDS[1])]
        verdict = check_verdict(["cmd-1"], found, {}, 0, "cancel")
        assert verdict.outcome is Outcome.FAILED and len(verdict.running) == 1

    def test_a_percentage_is_not_judged_on_a_partial_count(self):
        found = [inv(IDS[0], Status.FAILED, code=1), inv(IDS[1])]
        assert check_verdict(["cmd-1"], found, {}, "10%", "cancel").outcome is Outcome.RUNNING
        verdict = check_verdict(["cmd-1"], found, described("cmd-1", Status.IN_PROGRESS, 20), "10%", "cancel")
        assert verdict.outcome is Outcome.RUNNING, "1 of 20 is within 10%"
        verdict = check_verdict(["cmd-1"], found, described("cmd-1", Status.IN_PROGRESS, 2), "10%", "cancel")
        assert verdict.outcome is Outcome.FAILED


def test_with_attempts_marks_each_row_with_its_command_attempt():
    rows = [{"command_id": "cmd-1"}, {"command_id": "cmd-2"}]
    assert [r["attempt"] for r in with_attempts(rows, {"cmd-2": 2})] == [1, 2]
