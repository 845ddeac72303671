"""Console links of a fleet run: the SSM Run Command page and the CloudWatch output log group."""

from __future__ import annotations

from urllib.parse import quote

from airflow.providers.amazon.aws.links.base_aws import BASE_AWS_CONSOLE_LINK, BaseAwsLink

_REGIONAL_CONSOLE = BASE_AWS_CONSOLE_LINK.replace("https://console.", "https://{region_name}.console.")


def run_command_url(region_name: str, command_id: str, aws_domain: str = "aws.amazon.com") -> str:
    """The SSM console page of one command (used in alerts, where there is no operator link)."""
    return SsmRunCommandLink.format_str.format(
        region_name=region_name, aws_domain=aws_domain, command_id=command_id
    )


def log_group_fragment(log_group: str) -> str:
    """The CloudWatch console escapes ``/`` in a log group name as ``$252F``."""
    return quote(quote(log_group, safe=""), safe="").replace("%", "$")


def log_group_url(region_name: str, log_group: str, aws_domain: str = "aws.amazon.com") -> str:
    """The CloudWatch console URL of a log group."""
    return CloudWatchOutputLink.format_str.format(
        region_name=region_name, aws_domain=aws_domain, log_group=log_group_fragment(log_group)
    )


class SsmRunCommandLink(BaseAwsLink):
    """The SSM Run Command console page of the (first) command a task sent or watched."""

    name = "SSM Run Command"
    key = "_ssm_fleet_command"
    format_str = _REGIONAL_CONSOLE + "/systems-manager/run-command/{command_id}?region={region_name}"


class CloudWatchOutputLink(BaseAwsLink):
    """The CloudWatch Logs group that receives the commands' output, when CloudWatch output is on."""

    name = "CloudWatch output"
    key = "_ssm_fleet_log_group"
    format_str = "https://console.{aws_domain}/cloudwatch/home?region={region_name}#logsV2:log-groups/log-group/{log_group}"
