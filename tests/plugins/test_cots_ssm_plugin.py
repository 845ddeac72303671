from types import SimpleNamespace

import pytest

from cots_ssm.fleet.links import FleetPageLink
from cots_ssm_plugin import CotsSsmPlugin
from ssm_fleet.links.ssm import CloudWatchOutputLink, SsmRunCommandLink

pytestmark = pytest.mark.matrix


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
