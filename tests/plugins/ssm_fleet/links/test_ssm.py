import pytest

from ssm_fleet.links.ssm import (
    SsmRunCommandLink,
    log_group_url,
    run_command_url,
)

pytestmark = pytest.mark.matrix


def test_run_command_url():
    assert run_command_url("eu-west-1", "abc-123") == (
        "https://eu-west-1.console.aws.amazon.com/systems-manager/run-command/abc-123?region=eu-west-1"
    )


def test_log_group_url_escapes_slashes_like_the_console():
    assert log_group_url("us-east-1", "/aws/ssm/AWS-RunShellScript").endswith(
        "#logsV2:log-groups/log-group/$252Faws$252Fssm$252FAWS-RunShellScript"
    )


def test_link_formats_from_persisted_xcom():
    link = SsmRunCommandLink()
    assert link.format_link(region_name="us-east-1", aws_domain="aws.amazon.com", command_id="c-1").endswith(
        "/run-command/c-1?region=us-east-1"
    )
