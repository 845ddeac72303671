from dataclasses import replace

import pytest

from ssm_fleet.invocations import CommandSummary, InvocationResult
from ssm_fleet.render import failure_summary, progress_line, table
from ssm_fleet.status import Status, StatusDetails
from ssm_fleet.verdict import FailureTolerance, FleetVerdict, Outcome

from .ssm_answers import IDS, api_invocation, command, fleet_verdict, invocation


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
        assert progress_line(verdict) == "3/3 hosts done: 3 Success"

    def test_empty_list_right_after_send_is_not_yet(self):
        verdict = fleet_verdict([command(status=Status.PENDING, ids=IDS)], [])
        assert verdict.outcome is Outcome.RUNNING
        assert progress_line(verdict) == "0/3 hosts done; 3 not listed yet"

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
        assert progress_line(verdict) == "1/3 hosts done: 1 Failed; 1 InProgress, 1 not listed yet"

    def test_finish_policy_lets_the_others_end_then_fails(self):
        running = [invocation(IDS[0], Status.FAILED, code=1), invocation(IDS[1], Status.IN_PROGRESS, code=-1)]
        verdict = fleet_verdict([command(ids=IDS)], running)
        assert verdict.outcome is Outcome.RUNNING and verdict.exceeded
        assert "tolerance exceeded (1 failed, at most 0)" in progress_line(verdict)
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
        redrive = command("c-2", Status.SUCCESS, ids=IDS[1:2], attempt=2)
        seen = [
            invocation(IDS[0], command_id="c-1"),
            invocation(IDS[1], Status.FAILED, code=3, command_id="c-1"),
            invocation(IDS[2], command_id="c-1"),
            invocation(IDS[1], command_id="c-2", attempt=2),
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
        assert "cmd-9" in failure_summary(verdict) and "no instance matched" in failure_summary(verdict)

    def test_summary_names_instance_status_exit_code_and_stderr(self):
        item = api_invocation(
            IDS[1], "Failed", code=3, output="ok\n----------ERROR-------\nline1\nDisk full\n"
        )
        verdict = fleet_verdict(
            [command(status=Status.FAILED, ids=IDS[1:2])], [InvocationResult.from_api(item)]
        )
        summary = failure_summary(verdict)
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
        summary = failure_summary(verdict, max_hosts=5)
        assert summary.splitlines()[1].startswith(f"- {ids[39]}")
        assert "... and 35 more failed host(s)" in summary
        assert summary.count("\n- ") == 5

    def test_table_is_sorted_by_instance(self):
        verdict = fleet_verdict(
            [command(status=Status.SUCCESS, ids=IDS)], [invocation(i) for i in reversed(IDS)]
        )
        assert [row["instance_id"] for row in table(verdict)] == IDS


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
        size = len(json.dumps(table(verdict)).encode())
        assert size < 750_000, size  # rows carry their attempt
        rows = {r["instance_id"]: r for r in table(verdict)}
        assert rows[f"i-{0:017x}"]["stderr_tail"].count("\n") >= 10, "the first failures keep their tails"
        assert rows[f"i-{998:017x}"]["stderr_tail"].count("\n") == 0, "the others keep their last line"
        assert rows[f"i-{1:017x}"]["stderr_tail"] == "" and rows[f"i-{1:017x}"]["stdout_tail"]
