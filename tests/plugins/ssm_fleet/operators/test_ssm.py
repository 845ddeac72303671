import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from ssm_fleet.compat import AirflowException, AirflowFailException
from ssm_fleet.errors import FleetRunError, FleetRunFailed
from ssm_fleet.operators.cancel import SsmCancelCommandsOperator as _Cancel
from ssm_fleet.operators.ssm import SsmFleetPreflightOperator, SsmRunCommandOperator
from ssm_fleet.plan import plan_chunks, run_digest
from ssm_fleet.spec import FleetRun

SCRIPT = ["echo batch on $AWS_SSM_INSTANCE_ID"]


def SsmCancelCommandsOperator(**kwargs):  # noqa: N802 - the cleanup of the run the tests send
    return _Cancel(fleet_run=FleetRun(), **kwargs)


def operator(**kwargs):
    kwargs.setdefault("commands", SCRIPT)
    kwargs.setdefault("task_id", "run")
    return SsmRunCommandOperator(**kwargs)


class TestValidationBeforeAnyCall:
    @pytest.mark.parametrize(
        ("kwargs", "named"),
        [
            ({"instance_ids": ["i-0abc; touch pwned"]}, "instance_ids='i-0abc; touch pwned'"),
            ({"instance_ids": ["i-12345678"], "target_tags": {"Role": ["cots"]}}, "exactly one"),
            ({}, "exactly one"),
            (
                {"target_tags": {"Role": ["cots"]}, "delivery_timeout_seconds": 29},
                "delivery_timeout_seconds=29",
            ),
            (
                {"target_tags": {"Role": ["cots"]}, "execution_timeout_seconds": 172801},
                "execution_timeout_seconds",
            ),
            ({"target_tags": {"Role": ["cots"]}, "comment": "x" * 71}, "comment="),
            ({"target_tags": {"Role": ["cots"]}, "max_concurrency": "0"}, "max_concurrency='0'"),
            ({"target_tags": {"Role": ["cots"]}, "max_errors": "lots"}, "max_errors='lots'"),
            ({"target_tags": {"Role": ["cots"]}, "script_arguments": ["a\nb"]}, "script_arguments='a\\nb'"),
            ({"target_tags": {"Role": ["cots"]}, "commands": []}, "commands=[]"),
            (
                {"target_tags": {"Role": ["cots"]}, "output_s3_bucket_name": "Bad_Bucket"},
                "output_s3_bucket_name",
            ),
            ({"target_tags": {"Role; reboot": ["cots"]}}, "target_tags key='Role; reboot'"),
            (
                {"target_tags": {"Role": ["cots"]}, "document_name": "AWS-RunRemoteScript"},
                "for the document 'AWS-RunRemoteScript', whose quoting this package does not implement",
            ),
            (
                {"target_tags": {"Role": ["cots"]}, "script_arguments": ["{{ssm:/prod/db/password}}"]},
                "script_arguments='{{ssm:/prod/db/password}}' is invalid: '{{' is refused",
            ),
        ],
    )
    def test_refused_with_field_and_value_and_nothing_sent(self, aws, accepted, make_context, kwargs, named):
        with pytest.raises(AirflowFailException, match="Nothing was sent") as error:
            operator(**kwargs).execute(make_context())
        assert named in str(error.value)
        assert accepted() == 0, "no AWS call may happen before validation passes"


class TestDocuments:
    def test_powershell_gets_its_quoting_and_its_execution_timeout(self):
        kwargs = operator(
            document_name="AWS-RunPowerShellScript",
            commands=["C:\\cots\\run.ps1"],
            script_arguments=["a\u2019; Remove-Item C:\\data; \u2019"],
            execution_timeout_seconds=5400,
        ).build_send_kwargs()
        assert kwargs["Parameters"]["executionTimeout"] == ["5400"]
        line = "C:\\cots\\run.ps1 'a\u2019\u2019; Remove-Item C:\\data; \u2019\u2019'"
        assert line in kwargs["Parameters"]["commands"]


@pytest.mark.matrix
class TestSend:
    def test_ids_are_sent_and_pushed_to_xcom(self, aws, ssm, make_context):
        context = make_context()
        result = operator(instance_ids=aws.instance_ids).execute(context)
        assert len(result["command_ids"]) == 1
        assert sorted(result["instance_ids"]) == sorted(aws.instance_ids) and result["attempt"] == 1
        assert context["ti"].xcom_pull(key="command_ids") == result["command_ids"]
        command = ssm.list_commands(CommandId=result["command_ids"][0])["Commands"][0]
        assert command["Parameters"]["commands"] == SCRIPT
        assert command["Parameters"]["executionTimeout"] == ["3600"]
        assert command["CloudWatchOutputConfig"]["CloudWatchOutputEnabled"] is True
        assert command["Comment"].startswith("[af:") and len(command["Comment"]) <= 100

    def test_script_arguments_are_quoted(self, aws, ssm, make_context):
        result = operator(
            instance_ids=aws.instance_ids[:1], commands=["echo"], script_arguments=["; touch pwned", "$(id)"]
        ).execute(make_context())
        command = ssm.list_commands(CommandId=result["command_ids"][0])["Commands"][0]
        assert command["Parameters"]["commands"] == ["echo '; touch pwned' '$(id)'"]

    def test_tags_become_one_tag_target_and_resolve_instances(self, aws, ssm, make_context):
        result = operator(target_tags={"Role": ["cots"]}).execute(make_context())
        command = ssm.list_commands(CommandId=result["command_ids"][0])["Commands"][0]
        assert command["Targets"] == [{"Key": "tag:Role", "Values": ["cots"]}]
        assert sorted(result["instance_ids"]) == sorted(aws.instance_ids)

    def test_rendered_template_text_is_accepted(self, aws, make_context):
        result = operator(instance_ids=str(aws.instance_ids), target_tags="{}").execute(make_context())
        assert result["instance_ids"] == sorted(aws.instance_ids)


class TestChunksAndRetries:
    @pytest.fixture(scope="class")
    def fleet(self, emulator):
        return emulator.add_instances(120, tags={"Fleet": "chunks"})

    def test_120_ids_become_3_commands(self, aws, fleet, ssm, accepted, make_context):
        result = operator(instance_ids=fleet).execute(make_context())
        assert len(result["command_ids"]) == 3
        sizes = [
            len(ssm.list_commands(CommandId=c)["Commands"][0]["InstanceIds"]) for c in result["command_ids"]
        ]
        assert sizes == [50, 50, 20]
        assert accepted("SendCommand") == 3

    def test_a_retry_adopts_instead_of_sending_again(self, aws, fleet, accepted, make_context):
        first = operator(instance_ids=fleet).execute(make_context(run_id="manual__retry"))
        again = operator(instance_ids=fleet).execute(make_context(run_id="manual__retry"))
        assert again["command_ids"] == first["command_ids"]
        assert accepted("SendCommand") == 3

    def test_a_retry_sends_only_the_missing_chunks(self, aws, fleet, accepted, make_context):
        op = operator(instance_ids=fleet)
        context = make_context(run_id="manual__partial")
        # An earlier try sent chunk 1 and died before chunks 2 and 3.
        ti = context["ti"]
        chunk = plan_chunks(run_digest(ti.dag_id, ti.run_id, ti.task_id, "-1"), instance_ids=fleet)[0]
        earlier = op.hook.send_command_once(
            **op.build_send_kwargs(), **chunk.target_kwargs(), Comment=chunk.comment()
        )
        result = op.execute(context)
        assert result["command_ids"][0] == earlier["CommandId"]
        assert len(set(result["command_ids"])) == 3
        assert accepted("SendCommand") == 3

    def test_throttling_is_retried_by_us_and_each_chunk_is_accepted_once(
        self, aws, fleet, accepted, make_context, fast_retries
    ):
        aws.control.throttle("SendCommand", count=2)
        result = operator(instance_ids=fleet).execute(make_context(run_id="manual__throttled"))
        assert len(result["command_ids"]) == 3
        counters = aws.control.counters()["SendCommand"]
        assert (counters["accepted"], counters["throttled"]) == (3, 2)

    def test_an_ambiguous_answer_not_found_fails_the_try_and_the_next_try_sends(
        self, aws, fleet, make_context, fast_retries, capfd
    ):
        # One 500 before SSM acted: botocore does not retry; the look-up finds nothing; the try
        # fails retryably without sending again (SSM's reads may lag); the next try looks, then sends.
        aws.control.server_error("SendCommand", count=1)
        context = make_context(run_id="manual__5xx")
        with pytest.raises(FleetRunError, match="not sending again in this try"):
            operator(instance_ids=fleet[:50], retries=2).execute(context)
        assert aws.control.counters()["SendCommand"]["calls"] == 1, "botocore never retries SendCommand"
        assert aws.control.counters()["ListCommands"]["accepted"] >= 2, "looked up by token, more than once"
        assert "the answer was lost" in capfd.readouterr().out
        result = operator(instance_ids=fleet[:50], retries=2).execute(context)
        counters = aws.control.counters()["SendCommand"]
        assert (counters["calls"], counters["accepted"], counters["server_errors"]) == (2, 1, 1)
        assert len(result["command_ids"]) == 1

    def test_a_lost_answer_that_shows_up_late_is_adopted_by_the_next_try(
        self, aws, emulator, make_context, fast_retries
    ):
        hosts = emulator.add_instances(10, tags={"Fleet": "lag"})
        aws.control.consistency_delay(3)  # SSM's reads lag its writes
        aws.control.lost_answer("SendCommand", count=1)
        context = make_context(run_id="manual__lag")
        with pytest.raises(FleetRunError):
            operator(instance_ids=hosts, retries=2).execute(context)
        time.sleep(3.5)  # the task's retry delay, in production at least a minute
        result = operator(instance_ids=hosts, retries=2).execute(context)
        aws.control.consistency_delay(0)
        assert len(result["command_ids"]) == 1
        assert aws.control.counters()["SendCommand"]["accepted"] == 1, "sent once, found by the next try"

    @pytest.mark.parametrize("mode", ["500", "drop"])
    def test_a_lost_answer_is_adopted_not_sent_again(
        self, aws, emulator, make_context, fast_retries, mode, capfd
    ):
        # Hosts of their own: the class fleet may still be starting other tests' scripts.
        hosts = emulator.add_instances(70, tags={"Fleet": f"lost{mode}"})
        # SSM runs the first chunk, then its answer is lost (HTTP 500, or the connection dropped).
        aws.control.lost_answer("SendCommand", count=1, mode=mode)
        result = operator(instance_ids=hosts).execute(make_context(run_id=f"manual__lost{mode}"))
        assert len(result["command_ids"]) == 2
        assert aws.control.counters()["SendCommand"]["accepted"] == 2, "nothing sent twice"
        assert "the answer was lost" in capfd.readouterr().out
        deadline = time.monotonic() + 30
        while sum(aws.control.executions().get(i, 0) for i in hosts) < 70 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert {aws.control.executions().get(i) for i in hosts} == {1}, "every instance ran once"

    def test_a_chunk_sent_twice_keeps_one_and_cancels_the_other(self, aws, fleet, make_context, capfd):
        context = make_context(run_id="manual__twice")
        op = operator(instance_ids=fleet[:50], commands=["sleep 30"])
        ti = context["ti"]
        chunk = plan_chunks(run_digest(ti.dag_id, ti.run_id, ti.task_id, "-1"), instance_ids=fleet[:50])[0]
        copies = [
            op.hook.send_command_once(
                **op.build_send_kwargs(), **chunk.target_kwargs(), Comment=chunk.comment()
            )
            for _ in range(2)
        ]
        result = op.execute(context)
        kept, extra = copies[0]["CommandId"], copies[1]["CommandId"]
        assert result["command_ids"] == [kept], "the earliest copy speaks; the extra one is not watched"
        assert op.hook.get_commands([extra])[0]["Status"] in ("Cancelling", "Cancelled")
        assert op.hook.get_commands([kept])[0]["Status"] not in ("Cancelling", "Cancelled")
        assert f"Command {extra} is a second copy of chunk 1 of attempt 1" in capfd.readouterr().out
        op.hook.cancel_command(kept)

    def test_a_host_that_lost_its_tag_fails_the_run_once(self, aws, emulator, make_context):
        # The execution role may SendCommand only to hosts tagged Role=cots (least privilege).
        hosts = emulator.add_instances(120, tags={"Role": "tagloss"})
        aws.control.require_tag("Role", "tagloss")
        aws.control.untag(hosts[70], "Role")
        op = operator(instance_ids=hosts, commands=["sleep 30"], preflight=False)
        context = make_context(run_id="manual__tagloss")
        with pytest.raises(AirflowFailException) as error:
            op.execute(context)
        message = str(error.value)
        assert "chunk 2/3" in message and "AccessDeniedException" in message and hosts[70] in message
        with pytest.raises(AirflowFailException):
            op.execute(context)  # even if someone retries by hand: refused again, nothing new runs
        assert aws.control.counters()["SendCommand"]["accepted"] <= 4
        ti = context["ti"]
        commands = op.hook.find_run_commands(
            run_digest(ti.dag_id, ti.run_id, "run", "-1"), datetime.now(UTC) - timedelta(hours=1)
        )
        assert commands and all(c["Status"] in ("Cancelling", "Cancelled") for c in commands)

    def test_a_try_that_gives_up_leaves_what_it_sent_for_the_teardown(
        self, aws, fleet, accepted, make_context, fast_retries
    ):
        context = make_context(run_id="manual__half")
        op = operator(instance_ids=fleet, commands=["sleep 30"])
        ti = context["ti"]
        chunk = plan_chunks(run_digest(ti.dag_id, ti.run_id, ti.task_id, "-1"), instance_ids=fleet)[0]
        sent = op.hook.send_command_once(
            **op.build_send_kwargs(), **chunk.target_kwargs(), Comment=chunk.comment()
        )
        aws.control.server_error("SendCommand", count=100, status=503)
        op.retries = 2  # not its last try
        with pytest.raises(FleetRunError, match="not sending again in this try"):
            op.execute(context)
        assert ti.xcom_pull(key="command_ids") == [sent["CommandId"]], "adopted ids are in XCom at once"
        assert accepted("SendCommand") == 1, "chunks 2 and 3 never reached SSM"
        aws.control.reset()
        # A retry would clear XCom: the teardown finds the run's commands by their token anyway.
        ti.store.clear()
        cancel = SsmCancelCommandsOperator(
            task_id="cancel", command_ids=None, fail_on_leftovers=False, settle_seconds=0
        )
        assert cancel.execute(make_context(task_id="cancel", run_id="manual__half")) == [sent["CommandId"]]

    def test_the_last_try_that_cannot_confirm_its_sends_cancels_them_and_fails_for_good(
        self, aws, fleet, make_context, fast_retries
    ):
        context = make_context(run_id="manual__last")
        op = operator(instance_ids=fleet, commands=["sleep 30"], retries=0)
        aws.control.server_error("SendCommand", count=100, status=503)
        ti = context["ti"]
        chunk = plan_chunks(run_digest(ti.dag_id, ti.run_id, ti.task_id, "-1"), instance_ids=fleet)[0]
        aws.control.reset()
        sent = op.hook.send_command_once(
            **op.build_send_kwargs(), **chunk.target_kwargs(), Comment=chunk.comment()
        )
        aws.control.server_error("SendCommand", count=100, status=503)
        with pytest.raises(FleetRunFailed, match="last try") as error:
            op.execute(context)
        assert error.value.headline == "send not confirmed, run stopped"
        aws.control.reset()
        assert op.hook.get_commands([sent["CommandId"]])[0]["Status"] in ("Cancelling", "Cancelled")

    def test_a_permanent_error_cancels_what_the_try_sent_and_fails_for_good(
        self, aws, fleet, accepted, make_context, ssm
    ):
        # Chunk 2 names an instance SSM does not know (terminated since the fleet was listed).
        ids = [*fleet[:50], "i-0000000000000dead", *fleet[51:]]
        op = operator(instance_ids=ids, commands=["sleep 30"], preflight=False)
        context = make_context(run_id="manual__refused")
        with pytest.raises(AirflowFailException) as error:
            op.execute(context)
        message = str(error.value)
        assert "chunk 2/3" in message and "i-0000000000000dead" in message and "InvalidInstanceId" in message
        assert "Not retried" in message and "Cancelled the 1 command(s)" in message
        assert accepted("SendCommand") == 2, "chunk 1, then chunk 2 refused; no retry"
        ti = context["ti"]  # the run created one command, chunk 1, and cancelled it
        digest = run_digest(ti.dag_id, ti.run_id, ti.task_id, "-1")
        (first,) = op.hook.find_run_commands(digest, datetime.now(UTC) - timedelta(hours=1))
        assert first["Status"] in ("Cancelled", "Cancelling")

    def test_another_run_sends_again(self, aws, fleet, accepted, make_context):
        a = operator(instance_ids=fleet).execute(make_context(run_id="manual__a"))
        b = operator(instance_ids=fleet).execute(make_context(run_id="manual__b"))
        assert set(a["command_ids"]).isdisjoint(b["command_ids"])
        assert accepted("SendCommand") == 6


class TestPreflight:
    def test_offline_instance_is_named_and_nothing_sent(self, aws, accepted, make_context):
        aws.control.set_offline([aws.instance_ids[1]])
        with pytest.raises(AirflowFailException, match=aws.instance_ids[1]) as error:
            operator(instance_ids=aws.instance_ids).execute(make_context())
        assert "ConnectionLost" in str(error.value)
        assert accepted("SendCommand") == 0

    def test_unknown_instance_is_named(self, aws, accepted, make_context):
        with pytest.raises(AirflowFailException, match="i-0000000000000dead: unknown to SSM"):
            operator(instance_ids=["i-0000000000000dead"]).execute(make_context())
        assert accepted("SendCommand") == 0

    def test_tags_matching_nothing(self, aws, make_context):
        with pytest.raises(AirflowFailException, match="No SSM-managed instance has the tags"):
            operator(target_tags={"Role": ["nobody"]}).execute(make_context())

    @pytest.mark.matrix
    def test_preflight_operator_returns_online_instances(self, aws, make_context):
        op = SsmFleetPreflightOperator(task_id="preflight", target_tags={"Role": ["cots"]})
        assert sorted(op.execute(make_context(task_id="preflight"))) == sorted(aws.instance_ids)

    def test_preflight_operator_refuses_injection(self, aws, accepted, make_context):
        op = SsmFleetPreflightOperator(task_id="preflight", instance_ids=["i-0abc; touch pwned"])
        with pytest.raises(AirflowFailException, match="touch pwned"):
            op.execute(make_context(task_id="preflight"))
        assert accepted() == 0


class TestCancel:
    @pytest.mark.matrix
    def test_cancels_only_what_still_runs(self, aws, ssm, make_context):
        slow = operator(instance_ids=aws.instance_ids, commands=["sleep 60"]).execute(
            make_context(run_id="slow")
        )
        cancel = SsmCancelCommandsOperator(
            task_id="cancel", command_ids=slow["command_ids"], fail_on_leftovers=False, settle_seconds=0
        )
        assert cancel.execute(make_context(task_id="cancel")) == slow["command_ids"]

    def test_nothing_sent_nothing_cancelled(self, aws, accepted, make_context):
        cancel = SsmCancelCommandsOperator(task_id="cancel", command_ids=None, settle_seconds=0)
        assert cancel.execute(make_context(task_id="cancel")) == []
        assert accepted("CancelCommand") == 0 and accepted("ListCommands") >= 1


def wait_for_verdict(command_ids, context, **kwargs):
    """Poke a fleet sensor until it decides; return (succeeded, results table)."""
    from ssm_fleet.sensors.ssm import SsmRunCommandFleetSensor

    sensor = SsmRunCommandFleetSensor(task_id="wait", command_ids=command_ids, poke_interval=1, **kwargs)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if sensor.poke(context):
                return True, context["ti"].xcom_pull(task_ids="wait", key="results")
        except AirflowFailException:
            return False, context["ti"].xcom_pull(task_ids="wait", key="results")
        time.sleep(0.5)
    raise AssertionError("no verdict within 60 s")


class TestRedrive:
    @pytest.fixture(scope="class")
    def fleet(self, emulator):
        return emulator.add_instances(120, tags={"Fleet": "redrive"})

    def test_clear_reruns_only_the_instances_that_did_not_succeed(self, aws, fleet, make_context, capfd):
        bad = sorted([fleet[5], fleet[60], fleet[110]])
        for instance_id in bad:
            aws.control.force_exit(instance_id, 3)
        first = operator(instance_ids=fleet).execute(make_context(run_id="manual__redrive"))
        ok, rows = wait_for_verdict(
            first["command_ids"], make_context(task_id="wait", run_id="manual__redrive")
        )
        assert not ok and sorted(r["instance_id"] for r in rows if r["exit_code"] == 3) == bad
        for instance_id in bad:
            aws.control.force_exit(instance_id, None)

        # Clear of the run: Airflow counts it in dag_run.clear_number; XCom is gone.
        context = make_context(run_id="manual__redrive", clear_number=1)
        context["ti"].store.clear()
        second = operator(instance_ids=fleet).execute(context)
        plan = "Attempt 2: sends to 3 of 120 host(s) (3 Failed); 117 already succeeded (not sent again)"
        assert plan in capfd.readouterr().out
        assert second["command_ids"][:3] == first["command_ids"] and len(second["command_ids"]) == 4
        assert second["attempt"] == 2 and len(second["instance_ids"]) == 120
        new = operator().hook.get_commands(second["command_ids"][3:])[0]
        assert sorted(new["InstanceIds"]) == bad and " r2 1/1]" in new["Comment"]
        assert aws.control.counters()["SendCommand"]["accepted"] == 4

        ok, rows = wait_for_verdict(
            second["command_ids"], make_context(task_id="wait", run_id="manual__redrive", clear_number=1)
        )
        assert ok and len(rows) == 120
        assert Counter(r["attempt"] for r in rows) == {1: 117, 2: 3}
        assert {r["instance_id"] for r in rows if r["attempt"] == 2} == set(bad)

    def test_a_clear_with_nothing_failed_sends_nothing(self, aws, fleet, make_context, capfd):
        first = operator(instance_ids=fleet[:10]).execute(make_context(run_id="manual__green"))
        assert wait_for_verdict(first["command_ids"], make_context(task_id="wait", run_id="manual__green"))[0]
        again = operator(instance_ids=fleet[:10]).execute(
            make_context(run_id="manual__green", clear_number=1)
        )
        assert again["command_ids"] == first["command_ids"]
        assert "Attempt 2: sends to 0 of 10 host(s); 10 already succeeded" in capfd.readouterr().out
        assert aws.control.counters()["SendCommand"]["accepted"] == 1

    def test_redrive_off_runs_the_whole_fleet_again(self, aws, fleet, make_context):
        first = operator(instance_ids=fleet[:60]).execute(make_context(run_id="manual__all"))
        assert wait_for_verdict(first["command_ids"], make_context(task_id="wait", run_id="manual__all"))[0]
        again = operator(instance_ids=fleet[:60], redrive="false").execute(
            make_context(run_id="manual__all", clear_number=1)
        )
        assert set(again["command_ids"]).isdisjoint(first["command_ids"]) and len(again["command_ids"]) == 2
        assert aws.control.counters()["SendCommand"]["accepted"] == 4


class TestTeardownFindsTheRunByToken:
    @pytest.mark.matrix
    def test_a_run_stopped_mid_batch_is_cancelled_and_fails_the_teardown_once(self, aws, make_context):
        sent = operator(instance_ids=aws.instance_ids, commands=["sleep 60"]).execute(
            make_context(run_id="cut")
        )
        cancel = SsmCancelCommandsOperator(task_id="cancel", settle_seconds=0)
        context = make_context(task_id="cancel", run_id="cut")
        # The wait never reached a verdict (the run was marked failed); XCom of the wait is empty.
        with pytest.raises(FleetRunFailed, match="stopped before its verdict") as error:
            cancel.execute(context)
        assert f"Commands cancelled now: {sent['command_ids'][0]}" in str(error.value)
        assert error.value.headline == "run stopped mid-batch, fleet cancelled"
        assert operator().hook.get_commands(sent["command_ids"])[0]["Status"] in ("Cancelling", "Cancelled")

    def test_the_token_finds_the_commands_when_no_xcom_names_them(self, aws, make_context):
        sent = operator(instance_ids=aws.instance_ids, commands=["sleep 60"]).execute(
            make_context(run_id="noxcom")
        )
        context = make_context(task_id="cancel", run_id="noxcom")
        context["ti"].store.clear()  # a send killed before it handed anything on
        cancel = SsmCancelCommandsOperator(task_id="cancel", settle_seconds=0)
        with pytest.raises(FleetRunFailed, match="stopped before its verdict"):
            cancel.execute(context)
        assert operator().hook.get_commands(sent["command_ids"])[0]["Status"] in ("Cancelling", "Cancelled")

    @pytest.mark.parametrize("outcome", ["succeeded", "failed", "timeout", "error"])
    def test_a_verdict_of_this_attempt_leaves_the_teardown_green(self, aws, make_context, outcome):
        operator(instance_ids=aws.instance_ids[:1], commands=["true"]).execute(make_context(run_id="judged"))
        context = make_context(task_id="cancel", run_id="judged")
        context["ti"].store[("wait", "verdict")] = {"attempt": 1, "outcome": outcome}
        cancel = SsmCancelCommandsOperator(task_id="cancel", settle_seconds=0)
        cancel.execute(context)  # the wait reported it: one red task per incident

    def test_a_verdict_of_an_earlier_attempt_never_judges_this_one(self, aws, make_context):
        context = make_context(run_id="stale", clear_number=1)
        operator(instance_ids=aws.instance_ids[:1], commands=["sleep 60"]).execute(context)
        teardown = make_context(task_id="cancel", run_id="stale", clear_number=1)
        teardown["ti"].store[("wait", "verdict")] = {"attempt": 1, "outcome": "succeeded"}
        with pytest.raises(FleetRunFailed, match="Attempt 2 of the run was stopped"):
            SsmCancelCommandsOperator(task_id="cancel", settle_seconds=0).execute(teardown)

    def test_after_a_send_that_failed_on_its_own_the_teardown_stays_green(self, aws, make_context):
        # A refused or failed send cancels what it sent itself and alerts: nothing is left to say.
        context = make_context(task_id="cancel", run_id="refused")
        assert SsmCancelCommandsOperator(task_id="cancel", settle_seconds=0).execute(context) == []

    def test_a_run_skipped_on_purpose_skips_its_teardown_without_calling_aws(
        self, aws, accepted, make_context
    ):
        from ssm_fleet.compat import AirflowSkipException

        cancel = SsmCancelCommandsOperator(task_id="cancel", run_skipped="True")
        with pytest.raises(AirflowSkipException, match="nothing to clean up"):
            cancel.execute(make_context(task_id="cancel"))
        assert accepted() == 0

    def test_leftovers_can_be_cancelled_quietly(self, aws, make_context):
        sent = operator(instance_ids=aws.instance_ids, commands=["sleep 60"]).execute(
            make_context(run_id="quiet")
        )
        cancel = SsmCancelCommandsOperator(task_id="cancel", fail_on_leftovers=False, settle_seconds=0)
        assert cancel.execute(make_context(task_id="cancel", run_id="quiet")) == sent["command_ids"]

    def test_a_cancel_that_fails_fails_the_teardown_naming_the_command(self, aws, make_context):
        sent = operator(instance_ids=aws.instance_ids[:1], commands=["sleep 60"]).execute(
            make_context(run_id="stuck")
        )
        aws.control.server_error("CancelCommand", count=100)
        cancel = SsmCancelCommandsOperator(
            task_id="cancel",
            settle_seconds=0,
            botocore_config={"retries": {"mode": "standard", "total_max_attempts": 1}},
        )
        with pytest.raises(AirflowException, match=f"Could not cancel 1 command.*{sent['command_ids'][0]}"):
            cancel.execute(make_context(task_id="cancel", run_id="stuck"))
        aws.control.reset()
        operator().hook.cancel_command(sent["command_ids"][0])
