import time

import pytest

from ssm_fleet.compat import AirflowException, AirflowFailException, AirflowSensorTimeout
from ssm_fleet.operators.ssm import SsmRunCommandOperator
from ssm_fleet.sensors.ssm import SsmRunCommandFleetSensor

NO_BOTOCORE_RETRY = {"retries": {"mode": "standard", "total_max_attempts": 1}}


def send(context, **kwargs):
    kwargs.setdefault("commands", ["echo working on $AWS_SSM_INSTANCE_ID", "echo warning >&2"])
    return SsmRunCommandOperator(task_id="run", **kwargs).execute(context)


def sensor(command_ids, **kwargs):
    kwargs.setdefault("poke_interval", 1)
    return SsmRunCommandFleetSensor(task_id="wait", command_ids=command_ids, **kwargs)


def send_with_a_retry(context, ids):
    """The run task twice in one DAG run, as after a retry: the second try must adopt."""
    first = send(context, instance_ids=ids)
    retry = send(context, instance_ids=ids)
    assert retry["command_ids"] == first["command_ids"]
    return first


def poke_until_done(op, context, limit=60.0):
    deadline = time.monotonic() + limit
    pokes = 0
    while time.monotonic() < deadline:
        pokes += 1
        if op.poke(context):
            return pokes
        time.sleep(0.5)
    raise AssertionError(f"sensor still waiting after {limit}s")


class TestVerdicts:
    @pytest.mark.matrix
    def test_all_instances_succeed(self, aws, make_context, capfd):
        sent = send(make_context(), instance_ids=aws.instance_ids)
        context = make_context(task_id="wait")
        poke_until_done(sensor(sent["command_ids"]), context)
        rows = context["ti"].xcom_pull(key="results")
        assert [r["instance_id"] for r in rows] == sorted(aws.instance_ids)
        assert {r["status"] for r in rows} == {"Success"} and {r["exit_code"] for r in rows} == {0}
        assert all("working on i-" in r["stdout_tail"] for r in rows)
        assert context["ti"].xcom_pull(key="verdict")["outcome"] == "succeeded"
        logged = capfd.readouterr().out
        assert "3/3 hosts done: 3 Success" in logged
        assert logged.count("Finished: ") >= 3, "each finished instance is logged"

    @pytest.mark.matrix
    def test_one_failure_names_instance_exit_code_and_stderr(self, aws, make_context):
        bad = aws.instance_ids[1]
        sent = send(
            make_context(),
            instance_ids=aws.instance_ids,
            commands=[
                f'if [ "$AWS_SSM_INSTANCE_ID" = "{bad}" ]; then echo "disk /data full" >&2; exit 3; fi'
            ],
        )
        context = make_context(task_id="wait")
        with pytest.raises(AirflowFailException) as error:
            poke_until_done(sensor(sent["command_ids"]), context)
        message = str(error.value)
        assert f"{bad}" in message and "Failed (Failed), exit code 3" in message
        assert "stderr| disk /data full" in message
        assert "1 of 3 host(s) failed" in message
        failed = [r for r in context["ti"].xcom_pull(key="results") if r["status"] == "Failed"]
        assert [r["instance_id"] for r in failed] == [bad]

    def test_failure_within_tolerance_succeeds(self, aws, make_context):
        aws.control.force_exit(aws.instance_ids[0], 2)
        sent = send(make_context(), instance_ids=aws.instance_ids)
        context = make_context(task_id="wait")
        poke_until_done(sensor(sent["command_ids"], max_failed_instances="34%"), context)
        assert context["ti"].xcom_pull(key="verdict")["failed"] == 1

    def test_execution_timeout_is_reported_as_such(self, aws, make_context):
        sent = send(
            make_context(),
            instance_ids=aws.instance_ids[:1],
            commands=["sleep 30"],
            execution_timeout_seconds=1,
        )
        with pytest.raises(AirflowFailException, match=r"TimedOut \(Execution Timed Out\)"):
            poke_until_done(sensor(sent["command_ids"]), make_context(task_id="wait"))


class TestFleetOf120ByTag:
    @pytest.fixture(scope="class")
    def fleet(self, emulator):
        return emulator.add_instances(120, tags={"Role": "fleet120"})

    def test_failure_on_page_2_fails_naming_it(self, aws, fleet, ssm, accepted, make_context):
        bad = fleet[75]
        aws.control.force_exit(bad, 4)
        sent = send(make_context(), target_tags={"Role": ["fleet120"]}, max_errors="100%")
        (command_id,) = sent["command_ids"]
        with pytest.raises(
            AirflowFailException, match=f"{bad} \\(.*\\): Failed \\(Failed\\), exit code 4"
        ) as error:
            poke_until_done(sensor(sent["command_ids"]), make_context(task_id="wait"))
        assert "1 of 120 host(s) failed" in str(error.value)
        pages = ssm.get_paginator("list_command_invocations").paginate(CommandId=command_id, MaxResults=50)
        page_of = {i["InstanceId"]: n for n, page in enumerate(pages, 1) for i in page["CommandInvocations"]}
        assert len(page_of) == 120 and page_of[bad] >= 2, "the failure must sit beyond the first page"
        assert accepted("SendCommand") == 1

    def test_all_120_succeed(self, aws, fleet, make_context):
        sent = send(make_context(), target_tags={"Role": ["fleet120"]}, max_concurrency="100%")
        context = make_context(task_id="wait")
        poke_until_done(sensor(sent["command_ids"]), context)
        assert len(context["ti"].xcom_pull(key="results")) == 120


class TestFleetOf120ById:
    """120 ids are 3 commands; a retry of the send adopts them; SendCommand is accepted 3 times."""

    @pytest.fixture(scope="class")
    def fleet(self, emulator):
        return emulator.add_instances(120, tags={"Role": "ids120"})

    def test_failure_in_the_second_command_fails_naming_it(self, aws, fleet, accepted, make_context):
        bad = fleet[75]
        aws.control.force_exit(bad, 6)
        sent = send_with_a_retry(make_context(), fleet)
        assert len(sent["command_ids"]) == 3
        wait = sensor(sent["command_ids"])
        with pytest.raises(
            AirflowFailException, match=f"{bad} \\(.*\\): Failed \\(Failed\\), exit code 6"
        ) as error:
            poke_until_done(wait, make_context(task_id="wait"))
        assert "1 of 120 host(s) failed" in str(error.value)
        with pytest.raises(AirflowFailException):  # a retry of the sensor reaches the same verdict
            wait.poke(make_context(task_id="wait"))
        assert accepted("SendCommand") == 3

    def test_all_succeed(self, aws, fleet, accepted, make_context):
        sent = send_with_a_retry(make_context(), fleet)
        context = make_context(task_id="wait")
        poke_until_done(sensor(sent["command_ids"]), context)
        assert context["ti"].xcom_pull(key="verdict")["outcome"] == "succeeded"
        assert len(context["ti"].xcom_pull(key="results")) == 120
        assert accepted("SendCommand") == 3


class TestTransientErrors:
    def test_throttling_is_absorbed(self, aws, make_context):
        sent = send(make_context(), instance_ids=aws.instance_ids)
        aws.control.throttle("ListCommandInvocations", count=2)
        op = sensor(sent["command_ids"], botocore_config=NO_BOTOCORE_RETRY)
        poke_until_done(op, make_context(task_id="wait"))
        assert aws.control.counters()["ListCommandInvocations"]["throttled"] == 2

    def test_server_errors_are_absorbed(self, aws, make_context):
        sent = send(make_context(), instance_ids=aws.instance_ids)
        aws.control.server_error("ListCommands", count=2)
        poke_until_done(
            sensor(sent["command_ids"], botocore_config=NO_BOTOCORE_RETRY), make_context(task_id="wait")
        )

    def test_too_many_in_a_row_fail_the_poke_with_the_count(self, aws, make_context):
        sent = send(make_context(), instance_ids=aws.instance_ids)
        # ListCommandInvocations: every check reads it (ListCommands only when the verdict needs it).
        aws.control.throttle("ListCommandInvocations", count=50)
        op = sensor(sent["command_ids"], botocore_config=NO_BOTOCORE_RETRY, max_consecutive_api_errors=2)
        with pytest.raises(AirflowException, match="2 transient AWS errors in a row"):
            op.poke(make_context(task_id="wait"))

    def test_empty_list_right_after_send_is_not_yet(self, aws, make_context):
        aws.control.consistency_delay(2)
        sent = send(make_context(), instance_ids=aws.instance_ids)
        op = sensor(sent["command_ids"])
        assert op.poke(make_context(task_id="wait")) is False
        assert poke_until_done(op, make_context(task_id="wait")) >= 1


class TestCancel:
    @pytest.mark.matrix
    def test_timeout_cancels_what_still_runs(self, aws, ssm, make_context):
        sent = send(make_context(), instance_ids=aws.instance_ids, commands=["sleep 60"])
        op = SsmRunCommandFleetSensor(
            task_id="wait", command_ids=sent["command_ids"], poke_interval=1, timeout=2, mode="poke"
        )
        with pytest.raises(AirflowSensorTimeout):
            op.execute(make_context(task_id="wait"))
        statuses = _wait_for_command_status(ssm, sent["command_ids"][0], {"Cancelled"})
        assert statuses == "Cancelled"

    @pytest.mark.matrix
    def test_a_killed_poke_cancels_nothing_a_clear_kills_pokes_too(self, aws, ssm, make_context):
        sent = send(make_context(), instance_ids=aws.instance_ids, commands=["sleep 60"])
        op = sensor(sent["command_ids"])
        assert op.poke(make_context(task_id="wait")) is False
        op.on_kill()
        assert ssm.list_commands(CommandId=sent["command_ids"][0])["Commands"][0]["Status"] in (
            "Pending",
            "InProgress",
        )
        ssm.cancel_command(CommandId=sent["command_ids"][0])

    def test_bad_tolerance_is_refused_before_any_call(self, aws, accepted, make_context):
        op = SsmRunCommandFleetSensor(task_id="wait", command_ids=["c"], max_failed_instances="lots")
        with pytest.raises(AirflowFailException, match="max_failed_instances='lots'"):
            op.execute(make_context(task_id="wait"))
        assert accepted() == 0

    def test_commands_handed_on_by_another_attempt_are_refused(self, aws, accepted, make_context):
        op = SsmRunCommandFleetSensor(task_id="wait", command_ids=["c"], run_attempt="1")
        with pytest.raises(AirflowFailException, match="was handed commands of attempt 1"):
            op.execute(make_context(task_id="wait", clear_number=1))
        assert accepted() == 0

    def test_a_timeout_names_the_hosts_that_had_not_finished_and_hands_on_their_rows(self, aws, make_context):
        sent = send(make_context(), instance_ids=aws.instance_ids, commands=["sleep 60"])
        op = SsmRunCommandFleetSensor(
            task_id="wait", command_ids=sent["command_ids"], poke_interval=1, timeout=1, mode="poke"
        )
        context = make_context(task_id="wait")
        with pytest.raises(AirflowSensorTimeout) as raised:
            op.execute(context)
        assert all(instance_id in str(raised.value) for instance_id in aws.instance_ids)
        rows = context["ti"].xcom_pull(task_ids="wait", key="results")
        assert sorted(r["instance_id"] for r in rows) == sorted(aws.instance_ids)

    def test_a_fleet_that_finished_after_the_last_poke_ends_green_at_the_timeout(self, aws, make_context):
        sent = send(make_context(), instance_ids=aws.instance_ids, commands=["true"])
        op = SsmRunCommandFleetSensor(
            task_id="wait", command_ids=sent["command_ids"], poke_interval=1, timeout=0, mode="poke"
        )
        context = make_context(task_id="wait")
        poke_until_done(sensor(sent["command_ids"]), make_context(task_id="wait"))  # the fleet has finished
        op.poke = lambda _context: False  # ...but the last poke came before it did
        op.execute(context)
        assert context["ti"].xcom_pull(task_ids="wait", key="verdict")["outcome"] == "succeeded"

    def test_a_timeout_stamps_this_attempts_verdict(self, aws, make_context):
        sent = send(make_context(), instance_ids=aws.instance_ids, commands=["sleep 60"])
        op = SsmRunCommandFleetSensor(
            task_id="wait", command_ids=sent["command_ids"], poke_interval=1, timeout=1, mode="poke"
        )
        context = make_context(task_id="wait")
        with pytest.raises(AirflowSensorTimeout):
            op.execute(context)
        verdict = context["ti"].xcom_pull(task_ids="wait", key="verdict")
        # As the trigger's: the deadline's own read came before the timeout, and found hosts running.
        assert (verdict["attempt"], verdict["outcome"]) == (1, "running")


def _wait_for_command_status(ssm, command_id, wanted, limit=20.0):
    deadline = time.monotonic() + limit
    status = None
    while time.monotonic() < deadline:
        status = ssm.list_commands(CommandId=command_id)["Commands"][0]["Status"]
        if status in wanted:
            return status
        time.sleep(0.2)
    return status
