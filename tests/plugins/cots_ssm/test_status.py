from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from cots_ssm.status import (
    DETAIL_EXPLANATIONS,
    FAILURE_STATUSES,
    RUNNING_STATUSES,
    SUCCESS_STATUSES,
    CommandSummary,
    FailureTolerance,
    FleetVerdict,
    InvocationResult,
    Outcome,
    Status,
    StatusDetails,
    explain,
    fleet_verdict,
    is_failure,
    is_running,
    is_success,
    parse_status,
    split_plugin_output,
    tail,
)

T0 = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)


def api_invocation(instance_id, status="Success", details=None, code=0, command_id="cmd-1", output=""):
    return {
        "CommandId": command_id,
        "InstanceId": instance_id,
        "InstanceName": f"host-{instance_id[-3:]}",
        "Status": status,
        "StatusDetails": details or status,
        "RequestedDateTime": T0,
        "CommandPlugins": [
            {
                "Name": "aws:runShellScript",
                "ResponseCode": code,
                "ResponseStartDateTime": T0,
                "ResponseFinishDateTime": T0 + timedelta(seconds=42),
                "Output": output,
            }
        ],
    }


def invocation(instance_id, status=Status.SUCCESS, details=None, code=0, command_id="cmd-1"):
    return InvocationResult.from_api(api_invocation(instance_id, status.value, details, code, command_id))


def command(command_id="cmd-1", status=Status.IN_PROGRESS, ids=(), target_count=0):
    return CommandSummary(command_id, status, status.value, target_count, tuple(ids))


IDS = [f"i-{n:017x}" for n in range(1, 4)]


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
        assert is_running(Status.CANCELLING)

    def test_api_spelling(self):
        assert parse_status("Cancelled") is Status.CANCELLED
        assert parse_status("InProgress") is Status.IN_PROGRESS

    def test_unknown_status_is_named(self):
        with pytest.raises(ValueError, match="'Exploded'"):
            parse_status("Exploded")


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
        assert f"({details.value})" in verdict.failure_summary()
        assert DETAIL_EXPLANATIONS[details] in verdict.failure_summary()


class TestInvocationResult:
    def test_from_api_reads_plugin_output_and_exit_code(self):
        item = api_invocation(
            IDS[0], "Failed", code=3, output="step 1\nstep 2\n----------ERROR-------\nboom\n"
        )
        result = InvocationResult.from_api(item)
        assert result.exit_code == 3
        assert result.stdout == "step 1\nstep 2"
        assert result.stderr == "boom\n"
        assert result.duration_seconds == 42

    def test_never_started_invocation_has_no_exit_code(self):
        item = api_invocation(IDS[0], "Cancelled", details="Terminated", code=-1)
        item["CommandPlugins"][0]["ResponseStartDateTime"] = None
        result = InvocationResult.from_api(item)
        assert result.exit_code is None
        assert "exit code" not in result.describe()

    def test_full_output_of_a_never_started_invocation_keeps_no_exit_code(self):
        result = invocation(IDS[0], Status.CANCELLED, "Terminated", code=-1)
        assert result.with_full_output({"ResponseCode": -1, "StandardErrorContent": ""}).exit_code is None

    def test_running_invocation_has_no_exit_code_yet(self):
        assert invocation(IDS[0], Status.IN_PROGRESS, code=-1).exit_code is None

    def test_full_output_replaces_the_2500_char_excerpt(self):
        result = invocation(IDS[0], Status.FAILED, code=2)
        full = result.with_full_output({"StandardErrorContent": "x" * 8000, "ResponseCode": 2})
        assert len(full.stderr) == 8000 and full.exit_code == 2

    def test_row_is_json_ready(self):
        row = invocation(IDS[0], Status.FAILED, code=2).as_row()
        assert row["status"] == "Failed" and row["exit_code"] == 2
        assert row["started_at"] == T0.isoformat()


class TestFailureTolerance:
    @pytest.mark.parametrize(
        ("value", "fleet", "allowed"),
        [(0, 120, 0), ("3", 120, 3), ("10%", 120, 12), ("10%", 9, 0), ("100%", 7, 7), ("0%", 50, 0)],
    )
    def test_allowed_failures(self, value, fleet, allowed):
        assert FailureTolerance.parse(value).allowed(fleet) == allowed

    @pytest.mark.parametrize("value", ["-1", "101%", "ten", "5.5", True, None, "%"])
    def test_invalid_values_name_the_field_and_value(self, value):
        with pytest.raises(ValueError, match=r"max_failed_instances=.*is invalid"):
            FailureTolerance.parse(value)


class TestFleetVerdict:
    def test_all_succeeded(self):
        verdict = fleet_verdict([command(status=Status.SUCCESS, ids=IDS)], [invocation(i) for i in IDS])
        assert verdict.outcome is Outcome.SUCCEEDED
        assert verdict.progress_line() == "3/3 done: 3 Success"

    def test_empty_list_right_after_send_is_not_yet(self):
        verdict = fleet_verdict([command(status=Status.PENDING, ids=IDS)], [])
        assert verdict.outcome is Outcome.RUNNING
        assert verdict.progress_line() == "0/3 done; 3 not listed yet"

    def test_tag_target_before_ssm_resolved_it_is_not_yet(self):
        assert fleet_verdict([command(status=Status.PENDING)], []).outcome is Outcome.RUNNING

    def test_partial_list_is_not_yet(self):
        verdict = fleet_verdict([command(status=Status.IN_PROGRESS, ids=IDS)], [invocation(IDS[0])])
        assert verdict.outcome is Outcome.RUNNING

    def test_cancel_policy_fails_as_soon_as_tolerance_is_exceeded_while_others_run(self):
        invocations = [
            invocation(IDS[0], Status.FAILED, code=1),
            invocation(IDS[1], Status.IN_PROGRESS, code=-1),
        ]
        verdict = fleet_verdict([command(ids=IDS)], invocations, policy="cancel")
        assert verdict.outcome is Outcome.FAILED
        assert verdict.progress_line() == "1/3 done: 1 Failed; 1 InProgress, 1 not listed yet"

    def test_finish_policy_lets_the_others_end_then_fails(self):
        running = [invocation(IDS[0], Status.FAILED, code=1), invocation(IDS[1], Status.IN_PROGRESS, code=-1)]
        verdict = fleet_verdict([command(ids=IDS)], running)
        assert verdict.outcome is Outcome.RUNNING and verdict.exceeded
        assert "tolerance exceeded (1 failed, at most 0)" in verdict.progress_line()
        done = [invocation(IDS[0], Status.FAILED, code=1), invocation(IDS[1]), invocation(IDS[2])]
        final = fleet_verdict([command(status=Status.FAILED, ids=IDS)], done)
        assert final.outcome is Outcome.FAILED and not final.exceeded

    def test_unknown_policy_is_refused_naming_it(self):
        with pytest.raises(ValueError, match="failure_policy='stop'"):
            fleet_verdict([command(ids=IDS)], [], policy="stop")

    def test_percentage_waits_for_the_target_count_of_a_tag_command(self):
        ids = [f"i-{n:017x}" for n in range(100, 120)]
        # A tag command right after sending: SSM has listed 2 of its instances, 1 failed.
        tag_command = command("c-tag", target_count=0)
        seen = [
            invocation(ids[0], Status.FAILED, code=1, command_id="c-tag"),
            invocation(ids[1], command_id="c-tag"),
        ]
        early = fleet_verdict([tag_command], seen, "10%", policy="cancel")
        assert early.outcome is Outcome.RUNNING and not early.exceeded, "10% of 2 listed is not 10% of 20"
        known = command("c-tag", target_count=20)
        assert fleet_verdict([known], seen, "10%", policy="cancel").outcome is Outcome.RUNNING
        seen += [invocation(i, Status.FAILED, code=2, command_id="c-tag") for i in ids[2:4]]
        assert fleet_verdict([known], seen, "10%", policy="cancel").outcome is Outcome.FAILED

    def test_a_later_command_speaks_for_an_instance_of_an_earlier_one(self):
        first = command("c-1", Status.FAILED, ids=IDS)
        redrive = command("c-2", Status.SUCCESS, ids=IDS[1:2])
        seen = [
            invocation(IDS[0], command_id="c-1"),
            invocation(IDS[1], Status.FAILED, code=3, command_id="c-1"),
            invocation(IDS[2], command_id="c-1"),
            invocation(IDS[1], command_id="c-2"),
        ]
        verdict = fleet_verdict([first, redrive], seen)
        assert verdict.outcome is Outcome.SUCCEEDED and verdict.expected == 3
        assert {i.instance_id: i.command_id for i in verdict.invocations}[IDS[1]] == "c-2"
        assert fleet_verdict([first, redrive], seen[:3]).outcome is Outcome.RUNNING, "redrive not listed yet"

    def test_failure_within_tolerance_waits_then_succeeds(self):
        invocations = [invocation(IDS[0], Status.FAILED, code=1), invocation(IDS[1]), invocation(IDS[2])]
        assert fleet_verdict([command(ids=IDS)], invocations[:2], "1").outcome is Outcome.RUNNING
        done = fleet_verdict([command(status=Status.FAILED, ids=IDS)], invocations, "1")
        assert done.outcome is Outcome.SUCCEEDED and len(done.failed) == 1

    def test_duplicate_listing_is_counted_once(self):
        invocations = [invocation(IDS[0]), invocation(IDS[0])]
        verdict = fleet_verdict([command(status=Status.SUCCESS, ids=IDS[:1])], invocations)
        assert verdict.outcome is Outcome.SUCCEEDED and len(verdict.invocations) == 1

    def test_several_commands_add_up(self):
        ids = [f"i-{n:017x}" for n in range(120)]
        commands = [command(f"cmd-{n}", Status.SUCCESS, ids[n * 50 : n * 50 + 50]) for n in range(3)]
        invocations = [invocation(i, command_id=f"cmd-{n // 50}") for n, i in enumerate(ids)]
        invocations[97] = invocation(ids[97], Status.FAILED, code=4, command_id="cmd-1")
        verdict = fleet_verdict(commands, invocations)
        assert verdict.expected == 120
        assert verdict.outcome is Outcome.FAILED
        assert [i.instance_id for i in verdict.failed] == [ids[97]]

    def test_command_with_no_instance_in_tag_fails_with_the_reason(self):
        empty = CommandSummary("cmd-9", Status.FAILED, StatusDetails.NO_INSTANCES_IN_TAG.value)
        verdict = fleet_verdict([empty], [])
        assert verdict.outcome is Outcome.FAILED
        assert "cmd-9" in verdict.failure_summary() and "no instance matched" in verdict.failure_summary()

    def test_summary_names_instance_status_exit_code_and_stderr(self):
        item = api_invocation(
            IDS[1], "Failed", code=3, output="ok\n----------ERROR-------\nline1\nDisk full\n"
        )
        verdict = fleet_verdict(
            [command(status=Status.FAILED, ids=IDS[1:2])], [InvocationResult.from_api(item)]
        )
        summary = verdict.failure_summary()
        assert f"{IDS[1]} (host-{IDS[1][-3:]}): Failed (Failed), exit code 3" in summary
        assert "stderr| Disk full" in summary

    def test_summary_lists_ran_and_failed_first_and_caps_the_list(self):
        ids = [f"i-{n:017x}" for n in range(40)]
        never_started = [api_invocation(i, "Cancelled", "Terminated", code=-1) for i in ids[:39]]
        for item in never_started:
            item["CommandPlugins"][0]["ResponseStartDateTime"] = None
        invocations = [InvocationResult.from_api(item) for item in never_started]
        ran = InvocationResult.from_api(api_invocation(ids[39], "Failed", code=9))
        verdict = fleet_verdict([command(status=Status.FAILED, ids=ids)], [*invocations, ran])
        summary = verdict.failure_summary(max_instances=5)
        assert summary.splitlines()[1].startswith(f"- {ids[39]}")
        assert "... and 35 more failed instance(s)" in summary
        assert summary.count("\n- ") == 5

    def test_table_is_sorted_by_instance(self):
        verdict = fleet_verdict(
            [command(status=Status.SUCCESS, ids=IDS)], [invocation(i) for i in reversed(IDS)]
        )
        assert [row["instance_id"] for row in verdict.table()] == IDS


class TestHelpers:
    def test_tail_keeps_the_last_lines(self):
        assert tail("a\nb\nc\n", lines=2) == "b\nc"
        assert tail(None) == ""

    def test_split_without_error_marker(self):
        assert split_plugin_output("only stdout") == ("only stdout", "")


class TestBoundedTable:
    def test_1000_instances_with_long_output_stay_well_under_1_mb(self):
        import json

        noisy = "line of batch output that goes on and on " * 3 + "\n"
        invocations = []
        for n in range(1000):
            failed = n % 2 == 0
            invocations.append(
                replace(
                    invocation(
                        f"i-{n:017x}", Status.FAILED if failed else Status.SUCCESS, code=1 if failed else 0
                    ),
                    instance_name=f"cots-host-{n:04d}.corp.example.com",
                    stdout=noisy * 400,
                    stderr=noisy * 200,
                    stdout_url=f"s3://cots-batch-output/nightly/cmd-1/i-{n:017x}/awsrunShellScript/0.awsrunShellScript/stdout",
                )
            )
        verdict = FleetVerdict(Outcome.FAILED, 1000, 0, tuple(invocations))
        size = len(json.dumps(verdict.table()).encode())
        assert size < 700_000, size
        rows = {r["instance_id"]: r for r in verdict.table()}
        assert rows[f"i-{0:017x}"]["stderr_tail"].count("\n") >= 10, "the first failures keep their tails"
        assert rows[f"i-{998:017x}"]["stderr_tail"].count("\n") == 0, "the others keep their last line"
        assert rows[f"i-{1:017x}"]["stderr_tail"] == "" and rows[f"i-{1:017x}"]["stdout_tail"]
