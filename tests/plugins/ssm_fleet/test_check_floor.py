"""Every check of the sensor and of the trigger costs the AWS-call floor, counted by the emulator.

The floor of a check is the pages of ListCommandInvocations: ceil(n/50) per command of n instances
(at least 1). A check that finds the fleet running costs exactly that; ListCommands is added only
where it changes the verdict: once nothing runs, or under the cancel policy (see
``ssm_fleet.check.commands_to_describe``).

The sizes are the page arithmetic, not scale: 1 host (one page) and 120 (three commands of at most 50
by ids, three pages of one command by tag, the failure on the last). The same floor at 1,000 hosts is a
figure of ``make bench`` (``benchmarks/bench_checks.py``, "at the floor" per size), not a test.
"""

import asyncio
import math
import time

import pytest

from ssm_fleet.operators.ssm import SsmRunCommandOperator
from ssm_fleet.sensors.ssm import SsmRunCommandFleetSensor
from ssm_fleet.triggers.ssm import SsmFleetTrigger
from ssm_fleet.verdict import Outcome

SIZES = (1, 120)
PAGE = 50


def fail_on(instance_id, code):
    return [f'if [ "$AWS_SSM_INSTANCE_ID" = "{instance_id}" ]; then echo "bad input" >&2; exit {code}; fi']


def check(reader, command_ids, **kwargs):
    """One check by the sensor (``read_verdict``) or by the trigger (``await read_verdict()``)."""
    if reader == "sensor":
        op = SsmRunCommandFleetSensor(task_id="wait", command_ids=command_ids, **kwargs)
        return op.read_verdict({"dag_run": None})
    trigger = SsmFleetTrigger(command_ids=command_ids, deadline=time.time() + 60, **kwargs)
    return asyncio.run(trigger.read_verdict())


def calls(aws):
    return {action: c["calls"] for action, c in aws.control.counters().items()}


def counted(aws, reader, command_ids, **kwargs):
    """The verdict of one check and the AWS calls it made, by action."""
    before = calls(aws)
    verdict = check(reader, command_ids, **kwargs)
    after = calls(aws)
    return verdict, {a: n - before.get(a, 0) for a, n in after.items() if n != before.get(a, 0)}


def wait_ended(ssm, command_ids, limit=180.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        found = [ssm.list_commands(CommandId=c)["Commands"][0] for c in command_ids]
        if all(c["Status"] not in ("Pending", "InProgress", "Cancelling") for c in found):
            return
        time.sleep(0.5)
    raise AssertionError(f"commands still running after {limit}s")


@pytest.fixture(scope="module")
def fleets(emulator):
    return {n: emulator.add_instances(n, tags={"Role": f"floor{n}"}) for n in SIZES}


@pytest.mark.parametrize("reader", ["sensor", "trigger"])
@pytest.mark.parametrize("targeting", ["ids", "tag"])
@pytest.mark.parametrize("size", SIZES)
def test_running_check_costs_the_floor_and_the_final_one_what_it_needs(
    aws, fleets, ssm, make_context, reader, targeting, size
):
    fleet = fleets[size]
    bad = fleet[-1]
    target = {"instance_ids": fleet} if targeting == "ids" else {"target_tags": {"Role": [f"floor{size}"]}}
    aws.control.set_offline(fleet)  # every invocation stays Pending: the fleet is running, no script yet
    sent = SsmRunCommandOperator(
        task_id="run", preflight=False, max_errors="100%", max_concurrency="100%",
        commands=fail_on(bad, 5), **target,
    ).execute(make_context())  # fmt: skip
    command_ids = sent["command_ids"]
    per_command = [len(fleet[i : i + PAGE]) for i in range(0, size, PAGE)] if targeting == "ids" else [size]
    assert len(command_ids) == len(per_command)
    floor = sum(max(1, math.ceil(n / PAGE)) for n in per_command)

    verdict, used = counted(aws, reader, command_ids)
    assert verdict.outcome is Outcome.RUNNING and len(verdict.running) == size
    assert used == {"ListCommandInvocations": floor}

    aws.control.set_offline(fleet, offline=False)
    wait_ended(ssm, command_ids)
    verdict, used = counted(aws, reader, command_ids)
    # Every command ended: its target count confirms the list is complete (one ListCommands each).
    assert used == {"ListCommandInvocations": floor, "ListCommands": len(command_ids)}
    assert verdict.outcome is Outcome.FAILED and verdict.expected == size
    assert [(i.instance_id, i.exit_code) for i in verdict.failed] == [(bad, 5)]
    pages = ssm.get_paginator("list_command_invocations").paginate(CommandId=command_ids[-1])
    last_page = list(pages)[-1]["CommandInvocations"]
    assert bad in [i["InstanceId"] for i in last_page], "the failure must sit on the last page"


@pytest.mark.parametrize("reader", ["sensor", "trigger"])
def test_commands_that_ended_while_others_run_cost_nothing_more(aws, fleets, ssm, make_context, reader):
    fleet = fleets[120]
    aws.control.set_offline(fleet[100:])  # the third command (20 instances) stays Pending
    sent = SsmRunCommandOperator(
        task_id="run", preflight=False, instance_ids=fleet, commands=["true"], max_concurrency="100%"
    ).execute(make_context())
    command_ids = sent["command_ids"]
    try:
        wait_ended(ssm, command_ids[:2])
        verdict, used = counted(aws, reader, command_ids)
        assert verdict.outcome is Outcome.RUNNING and len(verdict.finished) == 100
        assert used == {"ListCommandInvocations": 3}, "the floor: 3 commands of at most 50"
    finally:
        aws.control.set_offline(fleet[100:], offline=False)
        wait_ended(ssm, command_ids)


@pytest.mark.parametrize("reader", ["sensor", "trigger"])
class TestWhenListCommandsIsRead:
    def test_a_command_with_no_invocation_yet_is_described(self, aws, make_context, reader):
        aws.control.consistency_delay(30, actions=["ListCommandInvocations", "GetCommandInvocation"])
        sent = SsmRunCommandOperator(task_id="run", instance_ids=aws.instance_ids, commands=["true"]).execute(
            make_context()
        )
        verdict, used = counted(aws, reader, sent["command_ids"])
        assert verdict.outcome is Outcome.RUNNING and verdict.expected == 3, "not yet, 3 to come"
        assert used == {"ListCommandInvocations": 1, "ListCommands": 1}

    def test_a_command_no_read_shows_yet_is_running_never_success(self, aws, make_context, reader):
        aws.control.consistency_delay(30)  # ListCommands lags too: SSM knows nothing of it yet
        sent = SsmRunCommandOperator(task_id="run", instance_ids=aws.instance_ids, commands=["true"]).execute(
            make_context()
        )
        verdict, used = counted(aws, reader, sent["command_ids"])
        assert verdict.outcome is Outcome.RUNNING and verdict.problems == ()
        assert used == {"ListCommandInvocations": 1, "ListCommands": 1}

    def test_a_percentage_under_cancel_reads_target_counts_once_exceeded(
        self, aws, ssm, make_context, reader
    ):
        bad = aws.instance_ids[0]
        sent = SsmRunCommandOperator(
            task_id="run", instance_ids=aws.instance_ids, commands=[*fail_on(bad, 2), "sleep 60"]
        ).execute(make_context())
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                verdict, used = counted(aws, reader, sent["command_ids"], max_failed_instances="10%",
                                        failure_policy="cancel")  # fmt: skip
                if verdict.failed:
                    break
                assert used == {"ListCommandInvocations": 1}
                time.sleep(0.3)
            assert verdict.outcome is Outcome.FAILED, "1 of 3 failed is more than 10%: cancel at once"
            assert used == {"ListCommandInvocations": 1, "ListCommands": 1}
        finally:
            for command_id in sent["command_ids"]:
                ssm.cancel_command(CommandId=command_id)
