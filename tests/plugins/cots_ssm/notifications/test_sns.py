import boto3

from cots_ssm.notifications.sns import SsmFailureSnsNotifier


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
    wait["exception"] = RuntimeError("SSM fleet run failed: 1 of 3 instance(s) failed")
    return wait


class TestPublish:
    def test_alert_read_back_from_the_subscription(self, aws, alerts, make_context):
        notifier = SsmFailureSnsNotifier(target_arn=aws.topic_arn)
        notifier.notify(failure_context(make_context, "i-0123456789abcdef0"))
        (envelope,) = alerts()
        assert envelope["Subject"] == "Airflow: cots_test - 1/3 instance(s) failed"
        body = envelope["Message"]
        assert "i-0123456789abcdef0: Failed (Failed), exit code 3" in body
        assert "ERROR: license server unreachable" in body
        assert "i-2" not in body.split("Failed instances")[1].split("SSM commands")[0]
        assert "https://eu-west-1.console.aws.amazon.com/systems-manager/run-command/cmd-1" in body
        assert "log-group/$252Faws$252Fssm$252FAWS-RunShellScript" in body

    def test_publish_error_is_logged_not_raised(self, aws, make_context, capfd):
        notifier = SsmFailureSnsNotifier(target_arn="arn:aws:sns:us-east-1:123456789012:does-not-exist")
        notifier.notify(failure_context(make_context, "i-0123456789abcdef0"))
        logged = capfd.readouterr().out
        assert "FAILED TO PUBLISH" in logged and "license server unreachable" in logged

    def test_no_topic_logs_the_alert(self, aws, alerts, make_context, capfd):
        SsmFailureSnsNotifier(target_arn="").notify(failure_context(make_context, "i-0123456789abcdef0"))
        assert "No SNS topic configured" in capfd.readouterr().out
        assert alerts() == []

    def test_fifo_topic_is_published_to(self, aws, make_context, capfd):
        sns = boto3.client("sns", endpoint_url=aws.endpoint_url, region_name="us-east-1")
        arn = sns.create_topic(Name="cots-alerts.fifo", Attributes={"FifoTopic": "true"})["TopicArn"]
        SsmFailureSnsNotifier(target_arn=arn).notify(failure_context(make_context, "i-0123456789abcdef0"))
        logged = capfd.readouterr().out
        assert "FAILED TO PUBLISH" not in logged
        assert f"Failure alert published to {arn}" in logged
