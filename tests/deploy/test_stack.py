"""The CloudFormation stack and the execution role's policy: linted, scoped, and one source for both."""

import copy
import json
from pathlib import Path

import pytest
from cfnlint.api import lint_file
from policy import (
    EXAMPLE_VALUES,
    POLICY_FILE,
    TEMPLATE,
    host_policy,
    host_scope_violations,
    lint,
    load_template,
    render,
    scope_violations,
)

# Every AWS call of the package (hooks, operators, sensor, notifier): the policy grants these, no more.
CALLED_ACTIONS = {
    "ssm:SendCommand",
    "ssm:ListCommands",
    "ssm:ListCommandInvocations",
    "ssm:GetCommandInvocation",
    "ssm:CancelCommand",
    "ssm:DescribeInstanceInformation",
    "sns:Publish",
}


def statements_granting(policy, action):
    return [s for s in policy["Statement"] if action in json.dumps(s["Action"])]


class TestTemplate:
    def test_cfn_lint_finds_nothing(self):
        assert [str(match) for match in lint_file(Path(TEMPLATE))] == []

    def test_the_hosts_are_ssm_managed_and_write_the_output_to_the_packages_log_group_only(self):
        role = load_template()["Resources"]["InstanceRole"]["Properties"]
        assert role["ManagedPolicyArns"] == [
            {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"}
        ]
        writes, describe = host_policy(FleetRegion="eu-west-1")["Statement"]
        assert writes["Resource"] == [
            "arn:aws:logs:eu-west-1:ACCOUNT:log-group:/aws/ssm/AWS-RunShellScript",
            "arn:aws:logs:eu-west-1:ACCOUNT:log-group:/aws/ssm/AWS-RunShellScript:*",
        ], "the operator's default group (/aws/ssm/<document>), in the hosts' region"
        assert set(writes["Action"]) == {
            "logs:CreateLogGroup",
            "logs:CreateLogStream",
            "logs:DescribeLogStreams",
            "logs:PutLogEvents",
        }
        assert describe["Action"] == "logs:DescribeLogGroups", "names only: IAM takes it on * alone"

    def test_the_hosts_policy_is_scoped_and_parliament_finds_nothing(self):
        group = "/aws/ssm/AWS-RunShellScript"
        assert host_scope_violations(host_policy(), group) == []
        assert lint(host_policy(**EXAMPLE_VALUES)) == []

    @pytest.mark.parametrize(
        "resource",
        [
            "*",
            "arn:aws:logs:REGION:ACCOUNT:log-group:*",
            "arn:aws:logs:REGION:ACCOUNT:log-group:/aws/ssm/*",
            "arn:aws:logs:*:*:log-group:/aws/ssm/AWS-RunShellScript:*",
        ],
    )
    def test_a_wider_log_grant_to_the_hosts_is_a_violation(self, resource):
        policy = host_policy()
        policy["Statement"][0]["Resource"] = [resource]
        (violation,) = host_scope_violations(policy, "/aws/ssm/AWS-RunShellScript")
        assert f"logs:PutLogEvents on {resource}, beyond the log group" in violation

    def test_the_email_subscription_is_optional(self):
        template = load_template()
        assert template["Resources"]["AlertEmailSubscription"]["Condition"] == "HasAlertEmail"
        assert template["Parameters"]["AlertEmail"]["Default"] == ""


class TestPolicy:
    def test_the_mwaa_policy_file_is_rendered_from_the_template(self):
        assert json.loads(POLICY_FILE.read_text()) == render(), "run `make mwaa-policy`"

    def test_grants_every_call_of_the_package_and_nothing_else(self):
        granted = set()
        for statement in render()["Statement"]:
            assert statement["Effect"] == "Allow"
            granted |= set(
                statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            )
        assert granted == CALLED_ACTIONS

    def test_parliament_finds_nothing_unexpected(self):
        assert lint(render(**EXAMPLE_VALUES)) == []

    def test_parliament_is_listening(self):
        wide = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "sns:Publsh", "Resource": "*"}],
        }
        assert any("UNKNOWN_ACTION" in finding for finding in lint(wide))

    def test_is_scoped(self):
        assert scope_violations(render()) == []
        assert scope_violations(json.loads(POLICY_FILE.read_text())) == []

    def test_the_region_parameter_reaches_the_hosts_and_the_topic_is_the_stacks(self):
        policy = render(FleetRegion="eu-west-1")
        hosts = [s for s in statements_granting(policy, "ssm:SendCommand") if "Condition" in s]
        assert hosts and all(
            s["Resource"]
            == [
                "arn:aws:ec2:eu-west-1:ACCOUNT:instance/*",
                "arn:aws:ssm:eu-west-1:ACCOUNT:managed-instance/*",
            ]
            for s in hosts
        )
        (topic,) = statements_granting(policy, "sns:Publish")
        assert topic["Resource"] == ["arn:aws:sns:REGION:ACCOUNT:cots-batch-alerts"], "no job names a topic"


def widened(change):
    policy = copy.deepcopy(render())
    change({s["Sid"]: s for s in policy["Statement"]})
    return policy


class TestScopeViolations:
    """A policy that grants too much makes these fail; each case shows the grant it catches."""

    def test_send_command_on_every_resource(self):
        def send_anywhere(statements):
            statements["SendToTheFleetOfDocumentIndexer"]["Resource"] = "*"

        assert scope_violations(widened(send_anywhere)) == [
            "statement 2 (SendToTheFleetOfDocumentIndexer): ssm:SendCommand on every resource"
        ]

    def test_send_command_to_instances_without_the_tag_condition(self):
        def drop_condition(statements):
            del statements["SendToTheFleetOfCotsNightlyBatch"]["Condition"]

        assert scope_violations(widened(drop_condition)) == [
            "statement 1 (SendToTheFleetOfCotsNightlyBatch): ssm:SendCommand on"
            " arn:aws:ec2:REGION:ACCOUNT:instance/*, arn:aws:ssm:REGION:ACCOUNT:managed-instance/*"
            " without a resource-tag condition"
        ]

    def test_named_instances_need_no_tag_condition_but_a_pattern_does(self):
        named = {"Sid": "Named", "Effect": "Allow", "Action": "ssm:SendCommand"}
        one = {**named, "Resource": ["arn:aws:ec2:r:a:instance/i-0123456789abcdef0"]}
        pattern = {**named, "Resource": ["arn:aws:ec2:r:a:instance/i-0123*"]}
        assert scope_violations({"Statement": [one]}) == []
        assert scope_violations({"Statement": [pattern]})

    def test_publish_on_every_topic(self):
        def publish_anywhere(statements):
            statements["FailureAlert"]["Resource"] = "*"

        assert scope_violations(widened(publish_anywhere)) == [
            "statement 4 (FailureAlert): sns:Publish on every topic"
        ]

    @pytest.mark.parametrize(
        "statement",
        [
            {"Effect": "Allow", "Action": "ssm:*", "Resource": "*"},
            {"Effect": "Allow", "Action": "*", "Resource": "*"},
            {"Effect": "Allow", "Action": "SSM:send*", "Resource": ["arn:aws:ec2:*:*:*"]},
            {"Effect": "Allow", "NotAction": "iam:*", "Resource": "arn:aws:ec2:*:*:instance/*"},
            {"Effect": "Allow", "Action": "ssm:SendCommand", "NotResource": "arn:aws:ssm:*:*:document/Other"},
        ],
        ids=["ssm-star", "star", "wildcard-action-and-arn", "not-action", "not-resource"],
    )
    def test_wildcards_are_read_as_aws_reads_them(self, statement):
        assert scope_violations({"Statement": [*render()["Statement"], statement]})

    def test_a_deny_or_another_service_is_no_violation(self):
        extra = [
            {"Effect": "Deny", "Action": "ssm:SendCommand", "Resource": "*"},
            {"Effect": "Allow", "Action": "ssm:ListCommands", "Resource": "*"},
        ]
        assert scope_violations({"Statement": [*render()["Statement"], *extra]}) == []
