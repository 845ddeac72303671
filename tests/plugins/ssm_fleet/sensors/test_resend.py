"""The wait re-sends hosts that missed the start, on the executing emulator: the sensor and the trigger."""

import asyncio
import time
from datetime import UTC, datetime

import pytest

from ssm_fleet.compat import AirflowFailException
from ssm_fleet.operators.ssm import SsmRunCommandOperator
from ssm_fleet.sensors.ssm import SsmRunCommandFleetSensor
from ssm_fleet.triggers.ssm import SsmFleetTrigger

pytestmark = pytest.mark.matrix


def send(context, ids):
    op = SsmRunCommandOperator(
        task_id="run", instance_ids=ids, commands=["echo ok"], preflight=False, delivery_timeout_seconds=30
    )
    return op.execute(context)


def sensor(command_ids, **kwargs):
    return SsmRunCommandFleetSensor(task_id="wait", command_ids=command_ids, poke_interval=1, **kwargs)


def poke_until_done(op, context, limit=40.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if op.poke(context):
            return
        time.sleep(0.3)
    raise AssertionError(f"sensor still waiting after {limit}s")


@pytest.fixture
def rebooting(aws):
    """The second host is offline at send time and back Online 8 s later; delivery times out in 0.9 s.

    The margin is for a slow send on a loaded machine: back before its delivery timed out, the host
    would run the original command and miss nothing.
    """
    aws.control.time_scale(0.03)
    aws.control.set_offline([aws.instance_ids[1]], for_seconds=8)
    return aws.instance_ids[1]


def test_the_sensor_resends_a_host_back_online_once_and_the_run_is_green(
    aws, make_context, accepted, rebooting, capfd
):
    ids = aws.instance_ids[:2]
    sent = send(make_context(), ids)
    context = make_context(task_id="wait")
    poke_until_done(sensor(sent["command_ids"], host_retries=1), context)
    assert accepted("SendCommand") == 2, "the original command, then one re-send"
    assert aws.control.executions() == {ids[0]: 1, rebooting: 1}
    rows = {r["instance_id"]: r for r in context["ti"].xcom_pull(key="results")}
    assert rows[rebooting]["status"] == "Success"
    assert rows[rebooting]["resent"].startswith("re-sent 1x after Delivery Timed Out at ")
    assert rows[ids[0]]["resent"] == ""
    assert f"{rebooting}: Delivery Timed Out, re-sent " in capfd.readouterr().out


def test_a_retried_poke_reads_the_ledger_and_never_sends_the_same_resend_twice(
    aws, make_context, accepted, rebooting
):
    sent = send(make_context(), aws.instance_ids[:2])
    context = make_context(task_id="wait")
    first = sensor(sent["command_ids"], host_retries=1)
    deadline = time.monotonic() + 30
    while accepted("SendCommand") < 2 and time.monotonic() < deadline:
        first.poke(context)
        time.sleep(0.3)
    assert accepted("SendCommand") == 2, "the first sensor re-sent the host"
    # A new process for the same poke (reschedule mode, a retried try): it reads the ledger, sends nothing.
    sensor(sent["command_ids"], host_retries=1).poke(context)
    assert accepted("SendCommand") == 2
    poke_until_done(sensor(sent["command_ids"], host_retries=1), context)
    assert accepted("SendCommand") == 2
    assert aws.control.executions()[rebooting] == 1


def test_with_host_retries_0_the_run_fails_naming_the_host(aws, make_context, accepted, rebooting):
    sent = send(make_context(), aws.instance_ids[:2])
    with pytest.raises(AirflowFailException, match=f"{rebooting}.*Delivery Timed Out"):
        poke_until_done(sensor(sent["command_ids"], host_retries=0), make_context(task_id="wait"))
    assert accepted("SendCommand") == 1


def test_exit_75_is_rerun_once_when_listed_exit_3_is_not(aws, make_context, accepted):
    ids = aws.instance_ids[:2]
    aws.control.force_exit(ids[0], 75)
    aws.control.force_exit(ids[1], 3)
    sent = send(make_context(), ids)
    context = make_context(task_id="wait")
    with pytest.raises(AirflowFailException, match="2 of 2 host"):
        poke_until_done(sensor(sent["command_ids"], host_retries=1, retry_exit_codes=[75]), context)
    assert aws.control.executions() == {ids[0]: 2, ids[1]: 1}
    rows = {r["instance_id"]: r for r in context["ti"].xcom_pull(key="results")}
    assert rows[ids[0]]["resent"].startswith("re-sent 1x after exit code 75 at ")


def test_retry_exit_codes_that_are_not_codes_are_refused_naming_the_field(make_context):
    with pytest.raises(AirflowFailException, match="retry_exit_codes"):
        sensor(["c-1"], host_retries=1, retry_exit_codes="75").poke(make_context(task_id="wait"))


def test_the_trigger_resends_the_same_way(aws, make_context, accepted, rebooting):
    sent = send(make_context(), aws.instance_ids[:2])
    trig = SsmFleetTrigger(
        command_ids=sent["command_ids"],
        deadline=time.time() + 60,
        poll_interval=0.3,
        attempt=1,
        resend={"host_retries": 1, "retry_exit_codes": [], "until": None},
    )
    assert SsmFleetTrigger(**trig.serialize()[1]).spec == trig.spec

    async def first_event():
        async for event in trig.run():
            return event.payload

    event = asyncio.run(asyncio.wait_for(first_event(), 60))
    assert event["status"] == "succeeded"
    assert accepted("SendCommand") == 2
    rows = {r["instance_id"]: r for r in event["results"]}
    assert rows[rebooting]["resent"].startswith("re-sent 1x after Delivery Timed Out")
    assert aws.control.executions()[rebooting] == 1


@pytest.mark.parametrize(
    "until", ["2026-11-26T06:00:00+00:00", datetime(2026, 11, 26, 6, tzinfo=UTC), 1_795_672_800]
)
def test_the_resend_bound_is_a_moment_given_as_text_datetime_or_epoch(make_context, until):
    spec = sensor(["c-1"], host_retries=2, resend_until=until).wait_spec(make_context(task_id="wait"))
    assert (spec.resend.host_retries, spec.resend.until) == (2, 1_795_672_800.0)


def test_host_retries_0_is_no_resend_policy_at_all(make_context):
    assert sensor(["c-1"]).wait_spec(make_context(task_id="wait")).resend is None


def test_a_trigger_restarted_by_the_triggerer_does_not_send_the_resend_again(
    aws, make_context, accepted, rebooting
):
    sent = send(make_context(), aws.instance_ids[:2])
    kwargs = {"command_ids": sent["command_ids"], "deadline": time.time() + 60, "poll_interval": 0.3}
    first = SsmFleetTrigger(**kwargs, attempt=1, resend={"host_retries": 1})

    async def until_resent():
        while accepted("SendCommand") < 2:
            await first.check()
            await asyncio.sleep(0.3)

    asyncio.run(asyncio.wait_for(until_resent(), 30))
    restarted = SsmFleetTrigger(
        **SsmFleetTrigger(**kwargs, attempt=1, resend={"host_retries": 1}).serialize()[1]
    )

    async def first_event():
        async for event in restarted.run():
            return event.payload

    assert asyncio.run(asyncio.wait_for(first_event(), 60))["status"] == "succeeded"
    assert accepted("SendCommand") == 2
    assert aws.control.executions()[rebooting] == 1
