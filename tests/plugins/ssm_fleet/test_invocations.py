from ssm_fleet.invocations import CommandSummary, InvocationResult, split_plugin_output
from ssm_fleet.render import as_row, describe, tail
from ssm_fleet.status import Status

from .ssm_answers import IDS, T0, api_invocation, comment, invocation


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
        assert "exit code" not in describe(result)

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
        row = as_row(invocation(IDS[0], Status.FAILED, code=2))
        assert row["status"] == "Failed" and row["exit_code"] == 2
        assert row["started_at"] == T0.isoformat()

    def test_the_attempt_and_chunk_come_from_the_run_token_the_comment_carries(self):
        result = InvocationResult.from_api(api_invocation(IDS[0], attempt=3, chunk=2))
        assert (result.attempt, result.chunk) == (3, 2)
        assert InvocationResult.from_api(api_invocation(IDS[0])).attempt == 1, "no token: attempt 1"


class TestRobustReading:
    def test_an_unknown_status_is_reported_as_such_and_counts_as_running(self):
        result = InvocationResult.from_api(api_invocation(IDS[0], "Exploded", code=-1))
        assert result.status is Status.UNKNOWN and not result.finished
        assert "'Exploded'" in result.status_details and "'Exploded'" in describe(result)

    def test_an_answer_without_plugins_or_codes_reads_as_empty_values(self):
        result = InvocationResult.from_api({"CommandId": "c", "InstanceId": IDS[0], "Status": "Failed"})
        assert (result.exit_code, result.stdout, result.stderr, result.status_details) == (
            None,
            "",
            "",
            "Failed",
        )

    def test_the_failed_step_of_a_multi_step_document_speaks_not_the_last_one(self):
        item = api_invocation(IDS[0], "Failed", code=1)
        first = {**item["CommandPlugins"][0], "Name": "prepare", "Status": "Failed", "ResponseCode": 7}
        first["Output"] = "----------ERROR-------\nno disk"
        skipped = {"Name": "run", "Status": "Success", "ResponseCode": 0, "Output": ""}
        item["CommandPlugins"] = [first, skipped]
        result = InvocationResult.from_api(item)
        assert (result.exit_code, result.stderr) == (7, "no disk")

    def test_a_command_answer_with_odd_values_does_not_crash(self):
        summary = CommandSummary.from_api({"CommandId": "c", "Status": "Brand New", "TargetCount": None})
        assert summary.status is Status.UNKNOWN and summary.target_count == 0

    def test_a_command_carries_its_token_and_whether_it_targets_tags(self):
        summary = CommandSummary.from_api(
            {
                "CommandId": "c",
                "Status": "Pending",
                "Comment": comment(2, 3),
                "Targets": [{"Key": "tag:Role"}],
            }
        )
        assert (summary.attempt, summary.chunk, summary.by_tag) == (2, 3, True)


class TestHelpers:
    def test_tail_keeps_the_last_lines(self):
        assert tail("a\nb\nc\n", lines=2) == "b\nc"
        assert tail(None) == ""

    def test_split_without_error_marker(self):
        assert split_plugin_output("only stdout") == ("only stdout", "")
