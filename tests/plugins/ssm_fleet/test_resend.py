"""Automatic re-sends: the token, which hosts get one, how the ledger counts them, how they are named."""

from dataclasses import replace
from datetime import timedelta

import pytest

from ssm_fleet.invocations import CommandSummary, InvocationResult
from ssm_fleet.ledger import RunLedger
from ssm_fleet.plan import (
    RESEND_CHUNK_BASE,
    TOKEN_CHARS,
    Token,
    parse_token,
    plan_chunks,
    resend_comment,
    run_commands,
    user_comment,
)
from ssm_fleet.resend import (
    MISSED_START_DETAILS,
    Due,
    ResendPolicy,
    candidates,
    missed_start,
    notes,
    plan_round,
    wants_resend,
)
from ssm_fleet.send import HostResend, resend_kwargs
from ssm_fleet.status import Status, StatusDetails

from .ssm_answers import DIGEST, IDS, T0, api_invocation

NOW = T0.timestamp() + 600


def missed(instance_id, details=StatusDetails.DELIVERY_TIMED_OUT, command_id="cmd-1", **kwargs):
    """An invocation SSM ended before the batch started: no start time, no exit code."""
    item = api_invocation(instance_id, "TimedOut", details.value, -1, command_id, attempt=1, **kwargs)
    item["CommandPlugins"][0].pop("ResponseStartDateTime")
    item["CommandPlugins"][0].pop("ResponseFinishDateTime")
    return InvocationResult.from_api(item)


def ran(instance_id, status="Success", code=0, command_id="cmd-1"):
    return InvocationResult.from_api(api_invocation(instance_id, status, status, code, command_id, attempt=1))


def resent(instance_id, k, status="Success", code=0, minutes=14):
    """The k-th re-send's invocation of a host, requested ``minutes`` after T0."""
    item = api_invocation(instance_id, status, status, code, f"re-{instance_id}-{k}")
    item["Comment"] = resend_comment(DIGEST, 1, k)
    item["RequestedDateTime"] = T0 + timedelta(minutes=minutes)
    return InvocationResult.from_api(item)


def chunk_command(ids, command_id="cmd-1", status=Status.SUCCESS):
    return CommandSummary(command_id, status, status.value, len(ids), tuple(ids), attempt=1, chunk=1)


def resend_command(instance_id, k, command_id=None, status=Status.PENDING, at="2"):
    return CommandSummary(
        command_id or f"re-{instance_id}-{k}",
        status,
        status.value,
        1,
        (instance_id,),
        attempt=1,
        chunk=RESEND_CHUNK_BASE + k,
        requested_at=at,
        resend=k,
    )


class TestToken:
    @pytest.mark.parametrize("user", ["", "x" * 65])
    def test_a_resend_token_fits_the_chunk_tokens_room_and_parses_back(self, user):
        comment = resend_comment(DIGEST, 999, 9, user)
        assert len(comment) <= len(user) + TOKEN_CHARS <= 100
        assert parse_token(comment) == Token(DIGEST, 999, RESEND_CHUNK_BASE + 9, 0, 9)
        assert user_comment(comment) == user

    def test_a_resend_sorts_after_every_chunk_of_its_attempt(self):
        ids = [f"i-{n:017x}" for n in range(50 * 999)]
        last = plan_chunks(DIGEST, instance_ids=ids)[-1].token
        assert parse_token(resend_comment(DIGEST, 1, 1)).chunk > last.chunk == 999

    def test_chunk_tokens_still_parse_as_before(self):
        assert parse_token(f"nightly [af:{DIGEST} r2 3/4]") == Token(DIGEST, 2, 3, 4, 0)
        assert parse_token(f"nightly [af:{DIGEST} 2/3]") == Token(DIGEST, 1, 2, 3)

    def test_resends_are_commands_of_the_run(self):
        mine = {"CommandId": "a", "Comment": resend_comment(DIGEST, 1, 1)}
        other = {"CommandId": "b", "Comment": resend_comment("f" * 16, 1, 1)}
        assert run_commands(DIGEST, [mine, other]) == [mine]

    @pytest.mark.parametrize("k", [0, 10])
    def test_a_resend_number_outside_1_to_9_is_refused(self, k):
        with pytest.raises(ValueError, match=f"resend={k}"):
            resend_comment(DIGEST, 1, k)

    def test_the_host_resend_command_carries_its_token(self):
        chunk = HostResend(RESEND_CHUNK_BASE + 2, 0, DIGEST, 3, instance_ids=(IDS[0],))
        assert parse_token(chunk.comment("nightly")) == Token(DIGEST, 3, RESEND_CHUNK_BASE + 2, 0, 2)
        assert chunk.describe() == f"re-send 2 of {IDS[0]}"


class TestWhatIsResent:
    @pytest.mark.parametrize("details", sorted(MISSED_START_DETAILS))
    def test_an_invocation_that_never_started_missed_the_start(self, details):
        assert missed_start(missed(IDS[0], details))
        assert wants_resend(missed(IDS[0], details), ResendPolicy())

    @pytest.mark.parametrize(
        ("status", "details"),
        [("Cancelled", "Cancelled"), ("TimedOut", "Execution Timed Out"), ("Failed", "Failed")],
    )
    def test_cancelled_and_batches_that_ran_did_not_miss_it(self, status, details):
        item = api_invocation(IDS[0], status, details, 1, attempt=1)
        assert not wants_resend(InvocationResult.from_api(item), ResendPolicy())

    def test_a_failed_batch_is_rerun_only_for_a_listed_exit_code(self):
        policy = ResendPolicy(retry_exit_codes=frozenset({75}))
        assert wants_resend(ran(IDS[0], "Failed", 75), policy)
        assert not wants_resend(ran(IDS[0], "Failed", 3), policy)
        assert not wants_resend(ran(IDS[0], "Failed", 75), ResendPolicy())

    def test_host_retries_0_resends_nothing(self):
        assert not wants_resend(missed(IDS[0]), ResendPolicy(host_retries=0))

    @pytest.mark.parametrize(
        ("kwargs", "field"),
        [
            ({"host_retries": 10}, "host_retries=10"),
            ({"retry_exit_codes": frozenset({0})}, "retry_exit_codes"),
        ],
    )
    def test_bad_settings_are_refused_naming_the_field(self, kwargs, field):
        with pytest.raises(ValueError, match=field):
            ResendPolicy(**kwargs)

    def test_the_policy_survives_the_triggers_serialisation(self):
        policy = ResendPolicy(2, frozenset({75, 3}), until=NOW)
        assert ResendPolicy.from_dict(policy.to_dict()) == policy


class TestCandidates:
    def test_a_host_that_missed_the_start_is_due_its_first_resend(self):
        ledger = RunLedger([chunk_command(IDS[:2])], [missed(IDS[0]), ran(IDS[1])])
        assert candidates(ledger, 1, ResendPolicy(), NOW) == [Due(IDS[0], 1, "Delivery Timed Out", "cmd-1")]

    def test_a_host_whose_resends_are_used_up_is_not_due(self):
        ledger = RunLedger([chunk_command(IDS[:1])], [missed(IDS[0]), resent(IDS[0], 1, "TimedOut")])
        assert candidates(ledger, 1, ResendPolicy(host_retries=1), NOW) == []

    def test_the_second_resend_answers_the_first_ones_outcome(self):
        again = replace(missed(IDS[0], command_id="re-1"), resend=1, chunk=RESEND_CHUNK_BASE + 1)
        ledger = RunLedger([chunk_command(IDS[:1])], [missed(IDS[0]), again])
        assert candidates(ledger, 1, ResendPolicy(host_retries=2), NOW) == [
            Due(IDS[0], 2, "Delivery Timed Out", "re-1")
        ]

    def test_a_resend_listed_before_its_invocation_counts_as_used(self):
        ledger = RunLedger([chunk_command(IDS[:1]), resend_command(IDS[0], 1)], [missed(IDS[0])])
        assert candidates(ledger, 1, ResendPolicy(), NOW) == []
        verdict = ledger.verdict()
        assert verdict.outcome == "running" and verdict.failed == ()

    def test_nothing_is_due_once_the_bound_has_passed(self):
        ledger = RunLedger([chunk_command(IDS[:1])], [missed(IDS[0])])
        assert candidates(ledger, 1, ResendPolicy(until=NOW), NOW) == []
        assert candidates(ledger, 1, ResendPolicy(until=NOW + 1), NOW) != []

    def test_a_host_of_an_earlier_attempt_is_not_due_in_this_one(self):
        ledger = RunLedger([chunk_command(IDS[:1])], [missed(IDS[0])])
        assert candidates(ledger, 2, ResendPolicy(), NOW) == []

    def test_only_online_hosts_go_the_others_wait(self):
        due = [Due(IDS[0], 1, "Undeliverable", "cmd-1"), Due(IDS[1], 1, "Undeliverable", "cmd-1")]
        instances = [
            {"InstanceId": IDS[0], "PingStatus": "Online"},
            {"InstanceId": IDS[1], "PingStatus": "ConnectionLost"},
        ]
        round_ = plan_round(due, instances)
        assert (round_.due, round_.waiting) == ((due[0],), (IDS[1],))

    @pytest.mark.parametrize("instances", [[], [{"InstanceId": IDS[0], "PingStatus": "Inactive"}]])
    def test_a_host_that_will_not_come_back_neither_goes_nor_waits(self, instances):
        round_ = plan_round([Due(IDS[0], 1, "Undeliverable", "cmd-1")], instances)
        assert (round_.due, round_.waiting) == ((), ())


class TestLedger:
    def test_a_resend_is_one_more_invocation_of_its_host_after_the_chunk(self):
        ledger = RunLedger(
            [chunk_command(IDS[:2]), resend_command(IDS[0], 1, status=Status.SUCCESS)],
            [missed(IDS[0]), ran(IDS[1]), resent(IDS[0], 1)],
        )
        assert [i.resend for i in ledger.hosts[IDS[0]].invocations] == [0, 1]
        assert ledger.hosts[IDS[0]].latest.status is Status.SUCCESS
        assert ledger.verdict().outcome == "succeeded"

    def test_resends_of_two_hosts_are_not_duplicates_of_each_other(self):
        ledger = RunLedger([resend_command(IDS[0], 1), resend_command(IDS[1], 1)], [])
        assert ledger.duplicates == []

    def test_a_second_copy_of_one_hosts_resend_is_a_duplicate_the_earliest_kept(self):
        first, copy = resend_command(IDS[0], 1, "re-a", at="1"), resend_command(IDS[0], 1, "re-b", at="2")
        ledger = RunLedger([copy, first], [])
        assert [c.command_id for c in ledger.duplicates] == ["re-b"]
        assert "re-a" in [c.command_id for c in ledger.commands]

    def test_a_clears_plan_sees_the_resends_outcome(self):
        ledger = RunLedger(
            [chunk_command(IDS[:1]), resend_command(IDS[0], 1, status=Status.SUCCESS)],
            [missed(IDS[0]), resent(IDS[0], 1)],
        )
        assert ledger.plan(2, IDS[:1]).keep == (IDS[0],)

    def test_waiting_hosts_keep_the_fleet_running_not_failed(self):
        ledger = RunLedger([chunk_command(IDS[:2])], [missed(IDS[0]), ran(IDS[1])])
        assert ledger.verdict().outcome == "failed"
        waiting = ledger.verdict(waiting=[IDS[0]])
        assert (waiting.outcome, waiting.failed, waiting.expected) == ("running", (), 2)


class TestNaming:
    def test_each_resent_host_is_named_with_why_and_when(self):
        ledger = RunLedger(
            [chunk_command(IDS[:2]), resend_command(IDS[0], 1, status=Status.SUCCESS)],
            [missed(IDS[0]), ran(IDS[1]), resent(IDS[0], 1)],
        )
        assert notes(ledger, 1) == ((IDS[0], "re-sent 1x after Delivery Timed Out at 02:14"),)

    def test_an_exit_code_is_the_reason_of_a_rerun(self):
        ledger = RunLedger(
            [chunk_command(IDS[:1])], [ran(IDS[0], "Failed", 75), resent(IDS[0], 1, minutes=3)]
        )
        assert notes(ledger, 1) == ((IDS[0], "re-sent 1x after exit code 75 at 02:03"),)


class TestResendKwargs:
    def test_a_resend_repeats_the_document_parameters_and_options_not_the_rate_controls(self):
        source = {
            "CommandId": "cmd-1",
            "DocumentName": "AWS-RunShellScript",
            "DocumentVersion": "$DEFAULT",
            "Parameters": {"commands": ["run.sh"], "executionTimeout": ["3600"]},
            "TimeoutSeconds": 600,
            "MaxConcurrency": "100%",
            "MaxErrors": "100%",
            "OutputS3BucketName": "",
            "CloudWatchOutputConfig": {"CloudWatchOutputEnabled": False, "CloudWatchLogGroupName": ""},
            "InstanceIds": IDS,
            "Comment": f"nightly [af:{DIGEST} r1 1/1]",
        }
        assert resend_kwargs(source) == {
            "DocumentName": "AWS-RunShellScript",
            "DocumentVersion": "$DEFAULT",
            "Parameters": {"commands": ["run.sh"], "executionTimeout": ["3600"]},
            "TimeoutSeconds": 600,
        }
