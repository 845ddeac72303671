"""The deferrable trigger against the executing emulator over real HTTP (aiobotocore)."""

import asyncio
import contextlib
import importlib
import time

import pytest

from ssm_fleet.check import CheckStatus
from ssm_fleet.compat import AirflowException, AirflowFailException, AirflowSensorTimeout
from ssm_fleet.operators.ssm import SsmRunCommandOperator
from ssm_fleet.sensors.ssm import SsmRunCommandFleetSensor
from ssm_fleet.triggers.ssm import SsmFleetTrigger, stops_the_fleet

try:  # Airflow 3.2+
    from airflow.sdk.exceptions import TaskDeferred
except ImportError:  # Airflow 3.0 / 3.1
    from airflow.exceptions import TaskDeferred


def import_string(classpath):
    module, _, name = classpath.rpartition(".")
    return getattr(importlib.import_module(module), name)


NO_BOTOCORE_RETRY = {"retries": {"mode": "standard", "total_max_attempts": 1}}


def send(context, **kwargs):
    kwargs.setdefault("commands", ["echo working on $AWS_SSM_INSTANCE_ID"])
    return SsmRunCommandOperator(task_id="run", **kwargs).execute(context)


def fail_on(instance_id, code, then="true"):
    """A script that fails with ``code`` (and says why on stderr) on one instance only."""
    return [
        f'if [ "$AWS_SSM_INSTANCE_ID" = "{instance_id}" ]; then echo "no space left on /data" >&2; '
        f"exit {code}; fi",
        then,
    ]


def trigger(command_ids, **kwargs):
    kwargs.setdefault("deadline", time.time() + 120)
    kwargs.setdefault("poll_interval", 0.5)
    return SsmFleetTrigger(command_ids=command_ids, **kwargs)


async def first_event(trig):
    async for event in trig.run():
        return event.payload
    raise AssertionError("the trigger ended without an event")


def run(trig, limit=120.0):
    return asyncio.run(asyncio.wait_for(first_event(trig), limit))


def wait_until(predicate, limit=20.0, what=""):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {limit}s waiting for {what}")


def statuses(ssm, command_ids):
    return {c: ssm.list_commands(CommandId=c)["Commands"][0]["Status"] for c in command_ids}


@pytest.mark.matrix
class TestSerialize:
    def test_round_trip_by_classpath_and_kwargs(self):
        first = SsmFleetTrigger(
            command_ids=["c-1", "c-2"],
            deadline=1_800_000_000.5,
            max_failed_instances="10%",
            failure_policy="cancel",
            poll_interval=30,
            aws_conn_id="aws_batch",
            region_name="eu-west-1",
            verify=False,
            botocore_config={"retries": {"mode": "adaptive", "max_attempts": 8}},
            output_tail_lines=5,
            cancel_on_timeout=False,
            max_consecutive_api_errors=3,
        )
        classpath, kwargs = first.serialize()
        assert classpath == "ssm_fleet.triggers.ssm.SsmFleetTrigger"
        second = import_string(classpath)(**kwargs)
        assert second.serialize() == (classpath, kwargs)
        assert kwargs["deadline"] == 1_800_000_000.5, "the deadline is absolute"
        assert kwargs["max_failed_instances"] == "10%" and kwargs["failure_policy"] == "cancel"

    def test_bad_tolerance_is_refused_naming_it(self):
        with pytest.raises(ValueError, match="max_failed_instances='lots'"):
            SsmFleetTrigger(command_ids=["c"], deadline=0, max_failed_instances="lots")


class TestVerdicts:
    @pytest.mark.matrix
    def test_success_carries_the_table_with_attempts(self, aws, make_context):
        sent = send(make_context(), instance_ids=aws.instance_ids)
        event = run(trigger(sent["command_ids"]))
        assert event["status"] == CheckStatus.SUCCEEDED
        assert [r["instance_id"] for r in event["results"]] == sorted(aws.instance_ids)
        assert {r["status"] for r in event["results"]} == {"Success"}
        assert {r["attempt"] for r in event["results"]} == {1}
        assert event["verdict"]["outcome"] == "succeeded" and event["verdict"]["expected"] == 3

    def test_failure_policy_cancel_cancels_the_rest(self, aws, ssm, make_context):
        bad = aws.instance_ids[0]
        sent = send(make_context(), instance_ids=aws.instance_ids, commands=fail_on(bad, 3, then="sleep 60"))
        event = run(trigger(sent["command_ids"], failure_policy="cancel"))
        assert event["status"] == CheckStatus.FAILED
        assert event["cancelled"] == sent["command_ids"]
        assert f"{bad}" in event["failure_summary"] and "exit code 3" in event["failure_summary"]
        assert "stderr| no space left on /data" in event["failure_summary"]
        ended = {"Failed", "Cancelled"}
        wait_until(lambda: set(statuses(ssm, sent["command_ids"]).values()) <= ended, what="cancelled")
        wait_until(lambda: aws.control.live_process_groups() == [], what="no script left running")

    @pytest.mark.matrix
    def test_deadline_cancels_and_yields_a_timeout_event(self, aws, ssm, make_context):
        sent = send(make_context(), instance_ids=aws.instance_ids, commands=["sleep 60"])
        deadline = time.time() + 2
        event = run(trigger(sent["command_ids"], deadline=deadline))
        assert event["status"] == CheckStatus.TIMEOUT
        assert event["cancelled"] == sent["command_ids"]
        assert "InProgress" in event["verdict"]["progress"]
        wait_until(lambda: set(statuses(ssm, sent["command_ids"]).values()) == {"Cancelled"}, what="cancel")
        wait_until(lambda: aws.control.live_process_groups() == [], what="no script left running")

    def test_on_kill_without_a_recorded_state_cancels_nothing(self, aws, ssm, make_context):
        sent = send(make_context(), instance_ids=aws.instance_ids, commands=["sleep 60"])
        asyncio.run(trigger(sent["command_ids"]).on_kill())  # no task instance: the state is unknown
        assert set(statuses(ssm, sent["command_ids"]).values()) <= {"Pending", "InProgress"}
        ssm.cancel_command(CommandId=sent["command_ids"][0])

    @pytest.mark.parametrize(
        ("task_state", "run_state", "stops"),
        [
            ("failed", "running", True),
            ("failed", "failed", True),
            ("skipped", "failed", True),
            (None, "queued", False),  # a Clear: the task has no state, its run is queued again
            ("scheduled", "running", False),
            ("restarting", "running", False),
            ("success", "running", False),  # marked done: the batch is left alone
            (None, "failed", True),
        ],
    )
    def test_what_airflow_recorded_tells_a_stop_from_a_clear(self, task_state, run_state, stops):
        assert stops_the_fleet(task_state, run_state) is stops

    def test_a_restarted_trigger_finishes_with_the_original_deadline(self, aws, make_context):
        bad = aws.instance_ids[2]
        sent = send(make_context(), instance_ids=aws.instance_ids, commands=["sleep 3", *fail_on(bad, 9)])
        first = trigger(sent["command_ids"])

        async def restart():
            running = asyncio.ensure_future(first_event(first))
            await asyncio.sleep(1.2)  # a check or two, then the triggerer stops
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
            classpath, kwargs = first.serialize()
            second = import_string(classpath)(**kwargs)
            assert second.deadline == first.deadline
            return await first_event(second)

        event = asyncio.run(asyncio.wait_for(restart(), 60))
        assert event["status"] == CheckStatus.FAILED
        assert f"{bad}" in event["failure_summary"] and "exit code 9" in event["failure_summary"]

    def test_a_restart_after_the_deadline_times_out_at_once(self, aws, ssm, make_context):
        sent = send(make_context(), instance_ids=aws.instance_ids, commands=["sleep 60"])
        first = trigger(sent["command_ids"], deadline=time.time() + 1.5)
        classpath, kwargs = first.serialize()
        time.sleep(2)  # the triggerer was down past the deadline
        started = time.monotonic()
        event = run(import_string(classpath)(**kwargs))
        assert event["status"] == CheckStatus.TIMEOUT and event["cancelled"] == sent["command_ids"]
        assert event["verdict"]["outcome"] == "running", "one last read comes before the timeout"
        assert time.monotonic() - started < 10, "no further wait"
        wait_until(lambda: set(statuses(ssm, sent["command_ids"]).values()) == {"Cancelled"}, what="cancel")

    def test_transient_errors_past_the_limit_yield_an_error_event(self, aws, make_context):
        sent = send(make_context(), instance_ids=aws.instance_ids)
        aws.control.throttle("ListCommandInvocations", count=50)
        trig = trigger(sent["command_ids"], botocore_config=NO_BOTOCORE_RETRY, max_consecutive_api_errors=2)
        event = run(trig)
        assert event["status"] == CheckStatus.ERROR
        assert "2 transient AWS errors in a row" in event["message"]
        with pytest.raises(AirflowException, match="2 transient AWS errors in a row") as error:
            SsmRunCommandFleetSensor(task_id="wait", command_ids=sent["command_ids"]).execute_complete(
                make_context(task_id="wait"), event
            )
        assert not isinstance(error.value, AirflowFailException), "transient: the task may retry"

    def test_a_command_ssm_does_not_list_is_not_yet_never_success(self, aws):
        # SSM's reads lag its writes: an id it does not know yet is waited for, up to the deadline.
        event = run(trigger(["12345678-1234-1234-1234-123456789012"], deadline=time.time() + 2))
        assert event["status"] == CheckStatus.TIMEOUT and event["verdict"]["outcome"] == "running"

    def test_a_permanent_aws_error_yields_an_error_event_naming_it(self, aws, make_context):
        sent = send(make_context(), instance_ids=aws.instance_ids)
        aws.control.server_error("ListCommandInvocations", count=50, status=500)
        event = run(
            trigger(sent["command_ids"], botocore_config=NO_BOTOCORE_RETRY, max_consecutive_api_errors=1)
        )
        assert event["status"] == CheckStatus.ERROR
        assert sent["command_ids"][0] in event["message"]

    def test_throttling_is_absorbed_within_a_check(self, aws, make_context):
        sent = send(make_context(), instance_ids=aws.instance_ids)
        aws.control.throttle("ListCommandInvocations", count=2)
        event = run(trigger(sent["command_ids"], botocore_config=NO_BOTOCORE_RETRY))
        assert event["status"] == CheckStatus.SUCCEEDED
        assert aws.control.counters()["ListCommandInvocations"]["throttled"] == 2


class TestFleetOf110ByTag:
    """Three pages of one tag command (50, 50, 10): the failure on the last, short page."""

    @pytest.fixture(scope="class")
    def fleet(self, emulator):
        return emulator.add_instances(110, tags={"Role": "fleet110"})

    def test_failure_on_page_3_names_the_instance_and_exit_code(self, aws, fleet, ssm, make_context):
        bad = fleet[105]
        sent = send(make_context(), target_tags={"Role": ["fleet110"]}, max_errors="100%",
                    max_concurrency="100%", commands=fail_on(bad, 4))  # fmt: skip
        (command_id,) = sent["command_ids"]
        event = run(trigger(sent["command_ids"]))
        pages = ssm.get_paginator("list_command_invocations").paginate(CommandId=command_id)
        page_of = {i["InstanceId"]: n for n, page in enumerate(pages, 1) for i in page["CommandInvocations"]}
        assert len(page_of) == 110 and page_of[bad] == 3, "the failure must sit on the third page"
        assert event["status"] == CheckStatus.FAILED
        assert (
            f"{bad}" in event["failure_summary"]
            and "Failed (Failed), exit code 4" in event["failure_summary"]
        )
        assert "1 of 110 host(s) failed" in event["failure_summary"]
        failed = [r for r in event["results"] if r["status"] == "Failed"]
        assert [(r["instance_id"], r["exit_code"]) for r in failed] == [(bad, 4)]
        assert len(event["results"]) == 110


@pytest.mark.matrix
class TestSensorGlue:
    def test_execute_defers_with_a_trigger_carrying_the_rendered_values(self, aws, ssm, make_context):
        sent = send(make_context(), instance_ids=aws.instance_ids, commands=["sleep 60"])
        op = SsmRunCommandFleetSensor(
            task_id="wait", command_ids=sent["command_ids"], deferrable="true", poke_interval="7",
            max_failed_instances="34%", failure_policy="cancel", timeout=600, output_tail_lines=4,
        )  # fmt: skip
        before = time.time()
        try:
            with pytest.raises(TaskDeferred) as deferred:
                op.execute(make_context(task_id="wait"))
        finally:
            ssm.cancel_command(CommandId=sent["command_ids"][0])
        trig = deferred.value.trigger
        assert isinstance(trig, SsmFleetTrigger) and deferred.value.method_name == "execute_complete"
        assert trig.command_ids == sent["command_ids"] and trig.poll_interval == 7
        assert str(trig.spec.tolerance) == "34%" and trig.spec.policy == "cancel"
        assert trig.spec.output_tail_lines == 4 and trig.spec.attempt == 1
        assert before + 600 <= trig.deadline <= time.time() + 600
        assert trig.aws_conn_id == "aws_default"

    def test_deferred_wait_resumes_with_the_triggers_event(self, aws, make_context):
        """Execute -> TaskDeferred -> the trigger's run (sensor's botocore config) -> execute_complete."""
        sent = send(make_context(), instance_ids=aws.instance_ids, commands=["sleep 3", "echo ok"])
        op = SsmRunCommandFleetSensor(
            task_id="wait", command_ids=sent["command_ids"], deferrable=True, poke_interval=1
        )
        context = make_context(task_id="wait")
        with pytest.raises(TaskDeferred) as deferred:
            op.execute(context)
        trig = deferred.value.trigger
        assert trig.botocore_config == op.botocore_config, "the sensor's retry config reaches the trigger"
        classpath, kwargs = trig.serialize()
        event = run(import_string(classpath)(**kwargs))
        resumed = SsmRunCommandFleetSensor(task_id="wait", command_ids=sent["command_ids"], deferrable=True)
        assert getattr(resumed, deferred.value.method_name)(context, event) is None
        assert context["ti"].xcom_pull(key="verdict")["outcome"] == "succeeded"
        assert {r["stdout_tail"] for r in context["ti"].xcom_pull(key="results")} == {"ok"}

    def test_deferrable_false_text_keeps_reschedule(self, aws, make_context):
        sent = send(make_context(), instance_ids=aws.instance_ids)
        op = SsmRunCommandFleetSensor(task_id="wait", command_ids=sent["command_ids"], deferrable="false")
        op.wait_spec(make_context(task_id="wait"))
        assert op.defer_wait is False and op.mode == "reschedule"

    def test_bad_deferrable_is_refused_naming_it(self, make_context):
        op = SsmRunCommandFleetSensor(task_id="wait", command_ids=["c"], deferrable="maybe")
        with pytest.raises(AirflowFailException, match="deferrable"):
            op.execute(make_context(task_id="wait"))

    def test_execute_complete_fails_as_poke_does(self, aws, make_context):
        bad = aws.instance_ids[1]
        sent = send(make_context(), instance_ids=aws.instance_ids, commands=fail_on(bad, 3))
        event = run(trigger(sent["command_ids"], attempt=1))
        context = make_context(task_id="wait")
        with pytest.raises(AirflowFailException) as by_poke:
            SsmRunCommandFleetSensor(task_id="wait", command_ids=sent["command_ids"]).poke(context)
        by_poke_xcom = [context["ti"].xcom_pull(key=key) for key in ("results", "verdict")]
        context["ti"].store.clear()
        with pytest.raises(AirflowFailException) as by_trigger:
            SsmRunCommandFleetSensor(task_id="wait", command_ids=sent["command_ids"]).execute_complete(
                context, event
            )
        assert str(by_trigger.value) == str(by_poke.value)
        assert f"{bad}" in str(by_trigger.value) and "stderr| no space left on /data" in str(by_trigger.value)
        assert [context["ti"].xcom_pull(key=key) for key in ("results", "verdict")] == by_poke_xcom

    def test_execute_complete_succeeds_and_pushes_the_table(self, aws, make_context):
        sent = send(make_context(), instance_ids=aws.instance_ids)
        event = run(trigger(sent["command_ids"]))
        context = make_context(task_id="wait")
        op = SsmRunCommandFleetSensor(task_id="wait", command_ids=sent["command_ids"])
        assert op.execute_complete(context, event) is None
        assert len(context["ti"].xcom_pull(key="results")) == 3
        assert context["ti"].xcom_pull(key="verdict")["outcome"] == "succeeded"

    def test_execute_complete_times_out_like_the_sensor(self, make_context):
        event = {
            "status": "timeout",
            "deadline": 1.0,
            "cancelled": ["c-1"],
            "verdict": {"progress": "1/3 hosts done: 1 Success; 2 InProgress"},
        }
        op = SsmRunCommandFleetSensor(task_id="wait", command_ids=["c-1"], timeout=60)
        with pytest.raises(AirflowSensorTimeout, match=r"1/3 hosts done.*cancelled: \['c-1'\]"):
            op.execute_complete(make_context(task_id="wait"), event)
