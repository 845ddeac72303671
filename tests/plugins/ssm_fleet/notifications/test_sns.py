from types import SimpleNamespace

import boto3
import pytest
from airflow.sdk import DAG
from botocore.exceptions import ClientError

from cots_ssm.tasks import CotsFailureNotifier, CotsRunFailureNotifier
from ssm_fleet.notifications.sns import SsmFailureSnsNotifier
from ssm_fleet.spec import FleetRun

RUN = FleetRun()

MISSING_TOPIC = "arn:aws:sns:us-east-1:123456789012:does-not-exist"


def failure_context(make_context, failed_instance):
    context = make_context(task_id="run")
    ti = context["ti"]
    ti.xcom_push(
        "return_value",
        {
            "command_ids": ["cmd-1"],
            "instance_ids": ["i-1", "i-2", "i-3"],
            "region_name": "eu-west-1",
            "log_group": "/aws/ssm/AWS-RunShellScript",
        },
    )
    wait = make_context(task_id="wait")
    wait["ti"].xcom_push(
        "results",
        [
            {
                "instance_id": failed_instance,
                "status": "Failed",
                "status_details": "Failed",
                "exit_code": 3,
                "command_id": "cmd-1",
                "stderr_tail": "ERROR: license server unreachable",
            },
            {
                "instance_id": "i-2",
                "status": "Success",
                "status_details": "Success",
                "exit_code": 0,
                "command_id": "cmd-1",
                "stderr_tail": "",
            },
        ],
    )
    wait["exception"] = RuntimeError("SSM fleet run failed: 1 of 3 host(s) failed")
    return wait


class TestPublish:
    @pytest.mark.matrix
    def test_alert_read_back_from_the_subscription(self, aws, alerts, make_context):
        notifier = SsmFailureSnsNotifier(target_arn=aws.topic_arn, fleet_run=RUN)
        notifier.notify(failure_context(make_context, "i-0123456789abcdef0"))
        (envelope,) = alerts()
        assert envelope["Subject"] == "Airflow: cots_test - 1/3 host(s) failed"
        body = envelope["Message"]
        assert "i-0123456789abcdef0: Failed (Failed), exit code 3" in body
        assert "ERROR: license server unreachable" in body
        assert "i-2" not in body.split("Failed instances")[1].split("SSM commands")[0]
        assert "https://eu-west-1.console.aws.amazon.com/systems-manager/run-command/cmd-1" in body
        assert "log-group/$252Faws$252Fssm$252FAWS-RunShellScript" in body

    def test_a_failed_publish_raises_and_logs_what_the_alert_said(self, aws, make_context, capfd):
        notifier = SsmFailureSnsNotifier(target_arn=MISSING_TOPIC, fleet_run=RUN)
        with pytest.raises(ClientError, match="NotFound"):
            notifier.notify(failure_context(make_context, "i-0123456789abcdef0"))
        logged = capfd.readouterr().out
        assert f"FAILED TO PUBLISH the failure alert to {MISSING_TOPIC}" in logged
        assert "nobody was paged" in logged
        assert "Subject: Airflow: cots_test - 1/3 host(s) failed" in logged
        assert "i-0123456789abcdef0: Failed (Failed), exit code 3" in logged
        assert "license server unreachable" in logged

    @pytest.mark.matrix
    def test_as_a_task_failure_callback_airflow_logs_the_failed_publish_in_the_task_log(
        self, aws, make_context, capfd
    ):
        """What Airflow does with the error: the task stays failed, its log says nobody was paged.

        The task runner runs a failed task's callbacks and never lets one raise. Airflow 3.3's
        notifier logs "Failed to send notification (sync)" and re-raises, and the runner logs
        "Failed to run task callback"; 3.0's notifier logs "Failed to send notification" and
        swallows it. Either way the task's log says what the alert said.
        """
        runner = pytest.importorskip("airflow.sdk.execution_time.task_runner")

        class Log:
            def __getattr__(self, name):
                return lambda *args, **kwargs: print("task runner:", name, *args, kwargs)

        notifier = SsmFailureSnsNotifier(target_arn=MISSING_TOPIC, fleet_run=RUN)
        task = SimpleNamespace(on_failure_callback=[notifier])
        context = failure_context(make_context, "i-0123456789abcdef0")
        context["dag"] = DAG("cots_test", schedule=None)  # Airflow renders the notifier's fields with it
        runner._run_task_state_change_callbacks(task, "on_failure_callback", context, Log())

        logged = capfd.readouterr().out
        assert "Failed to send notification" in logged
        assert "FAILED TO PUBLISH" in logged and "license server unreachable" in logged

    def test_a_run_with_a_raised_tolerance_says_so_in_its_alert(self, aws, alerts, make_context):
        context = failure_context(make_context, "i-0123456789abcdef0")
        context["dag_run"] = SimpleNamespace(conf={"max_failed_instances": "1"}, triggering_user_name="bob")
        context["dag"] = SimpleNamespace(params={"max_failed_instances": "0", "failure_policy": "finish"})
        CotsFailureNotifier(target_arn=aws.topic_arn, fleet_run=RUN).notify(context)  # the job's notifier
        (envelope,) = alerts()
        assert 'Overrides (triggered by bob):\n- max_failed_instances: "0" -> "1"\n' in envelope["Message"]

    def test_no_topic_logs_the_alert(self, aws, alerts, make_context, capfd):
        SsmFailureSnsNotifier(target_arn="", fleet_run=RUN).notify(
            failure_context(make_context, "i-0123456789abcdef0")
        )
        assert "No SNS topic configured" in capfd.readouterr().out
        assert alerts() == []

    @pytest.mark.matrix
    def test_fifo_topic_is_published_to(self, aws, make_context, capfd):
        sns = boto3.client("sns", endpoint_url=aws.endpoint_url, region_name="us-east-1")
        arn = sns.create_topic(Name="cots-alerts.fifo", Attributes={"FifoTopic": "true"})["TopicArn"]
        SsmFailureSnsNotifier(target_arn=arn, fleet_run=RUN).notify(
            failure_context(make_context, "i-0123456789abcdef0")
        )
        logged = capfd.readouterr().out
        assert "FAILED TO PUBLISH" not in logged
        assert f"Failure alert published to {arn}" in logged


@pytest.mark.matrix
class TestDagRunFailure:
    """The DAG-level callback: a run that ends without a failed task (dagrun_timeout) or marked failed."""

    def start_batch(self, make_context, aws):
        from ssm_fleet.operators.ssm import SsmRunCommandOperator

        context = make_context(run_id="scheduled__timeout")
        op = SsmRunCommandOperator(task_id="run", instance_ids=aws.instance_ids, commands=["sleep 60"])
        return context, op.execute(context)

    def test_timed_out_run_is_cancelled_by_token_and_alerted(self, aws, alerts, make_context):

        context, sent = self.start_batch(make_context, aws)
        callback_context = {
            "dag": SimpleNamespace(dag_id=context["ti"].dag_id, params={"failure_policy": "finish"}),
            "dag_run": SimpleNamespace(conf={"failure_policy": "cancel"}),
            "run_id": context["ti"].run_id,
            "reason": "timed_out",
        }
        CotsRunFailureNotifier(target_arn=aws.topic_arn, fleet_run=RUN).notify(callback_context)
        (command,) = boto3.client("ssm", endpoint_url=aws.endpoint_url).list_commands(
            CommandId=sent["command_ids"][0]
        )["Commands"]
        assert command["Status"] in ("Cancelling", "Cancelled")
        (message,) = alerts()
        assert message["Subject"] == "Airflow: cots_test - run failed: timed_out"
        assert "dagrun_timeout" in message["Message"] and sent["command_ids"][0] in message["Message"]
        assert "Overrides (triggered by (not recorded by this Airflow version)):" in message["Message"]
        assert '- failure_policy: "finish" -> "cancel"' in message["Message"]

    def test_a_task_failure_with_nothing_left_running_sends_no_second_alert(self, aws, alerts, make_context):
        from ssm_fleet.notifications.sns import SsmDagRunFailureNotifier

        callback_context = {
            "dag": SimpleNamespace(dag_id="cots_test"),
            "run_id": "manual__nothing-running",
            "reason": "task_failure",
        }
        SsmDagRunFailureNotifier(target_arn=aws.topic_arn, fleet_run=RUN).notify(callback_context)
        assert alerts(wait=1) == []


def test_the_subject_says_what_happened_to_the_fleet(aws, alerts, make_context):
    from ssm_fleet.errors import FleetRunFailed

    context = make_context(task_id="cancel_leftovers")
    context["exception"] = FleetRunFailed("stopped", headline="run stopped mid-batch, fleet cancelled")
    SsmFailureSnsNotifier(target_arn=aws.topic_arn, fleet_run=RUN).notify(context)
    (message,) = alerts()
    assert message["Subject"] == "Airflow: cots_test - run stopped mid-batch, fleet cancelled"


def test_an_earlier_attempts_results_never_reach_this_attempts_alert(aws, alerts, make_context):
    from ssm_fleet.errors import FleetRunFailed

    context = make_context(task_id="preflight", clear_number=1)
    old = [{"instance_id": "i-0123456789abcdef0", "status": "Failed", "status_details": "Failed"}]
    context["ti"].store[("wait", "results")] = old
    context["ti"].store[("wait", "verdict")] = {"attempt": 1, "outcome": "failed"}
    context["ti"].store[("run", "return_value")] = {"attempt": 1, "command_ids": ["c-old"]}
    context["exception"] = FleetRunFailed(
        "i-0fff: offline", headline="preflight refused 1 host(s), nothing sent"
    )
    SsmFailureSnsNotifier(target_arn=aws.topic_arn, fleet_run=RUN).notify(context)
    (message,) = alerts()
    assert message["Subject"] == "Airflow: cots_test - preflight refused 1 host(s), nothing sent"
    assert "i-0123456789abcdef0" not in message["Message"] and "c-old" not in message["Message"]
