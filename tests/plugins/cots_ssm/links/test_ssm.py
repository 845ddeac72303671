from types import SimpleNamespace

import pytest

from cots_ssm.links.ssm import (
    CloudWatchOutputLink,
    FleetPageLink,
    SsmRunCommandLink,
    log_group_url,
    run_command_url,
)
from cots_ssm_plugin import CotsSsmPlugin

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


def test_plugin_registers_the_console_and_fleet_links():
    names = {type(link) for link in CotsSsmPlugin.operator_extra_links}
    assert names == {SsmRunCommandLink, CloudWatchOutputLink, FleetPageLink}


def test_fleet_link_points_at_the_runs_fleet_page_with_the_run_id_quoted():
    key = SimpleNamespace(dag_id="cots_nightly_batch", run_id="manual__2026-11-27T02:30:00+00:00")
    assert (
        FleetPageLink()
        .get_link(None, ti_key=key)
        .endswith("/cots-fleet/dags/cots_nightly_batch/runs/manual__2026-11-27T02%3A30%3A00%2B00%3A00")
    )


def test_plugin_mounts_the_fleet_app_and_adds_the_tab_only_where_airflow_has_external_views():
    from airflow.plugins_manager import AirflowPlugin

    (app,) = CotsSsmPlugin.fastapi_apps
    assert app["url_prefix"] == "/cots-fleet"
    views = CotsSsmPlugin.external_views if hasattr(AirflowPlugin, "external_views") else []
    assert [v.get("destination") for v in views] == (
        ["dag_run"] if hasattr(AirflowPlugin, "external_views") else []
    )
