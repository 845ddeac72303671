"""The Airflow plugin of the ``cots_ssm`` package.

Registers the console links (MWAA needs operator extra links to come from a plugin) and the fleet
page: a FastAPI app in the API server (Airflow 3.0+), shown as a "Fleet" tab of each DAG run where
the running Airflow offers ``external_views`` (3.1+); on 3.0 the sensor's "Fleet" link and the
alert lead to it.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

from cots_ssm.fleet.links import FleetPageLink
from cots_ssm.fleet.urls import FLEET_URL_PREFIX
from ssm_fleet.links.ssm import CloudWatchOutputLink, SsmRunCommandLink

#: Airflow 3.1+ knows ``external_views`` (and its ``dag_run`` destination); 3.0 ignores the name.
SUPPORTS_EXTERNAL_VIEWS = hasattr(AirflowPlugin, "external_views")


def _fastapi_apps() -> list[dict[str, Any]]:
    try:
        from cots_ssm.fleet.app import create_app
    except ImportError:  # no API server pieces in this process (e.g. a slim worker image)
        return []
    return [{"app": create_app(), "url_prefix": FLEET_URL_PREFIX, "name": "COTS fleet view"}]


def _external_views() -> list[dict[str, Any]]:
    if not SUPPORTS_EXTERNAL_VIEWS:
        return []
    return [
        {
            "name": "Fleet",
            "href": FLEET_URL_PREFIX + "/dags/{DAG_ID}/runs/{RUN_ID}",
            "url_route": "cots_fleet",
            "destination": "dag_run",
            "category": "cots",
        }
    ]


class CotsSsmPlugin(AirflowPlugin):
    """The ``cots_ssm`` plugin: console and fleet links, and the fleet page of each DAG run."""

    name = "cots_ssm"
    operator_extra_links = [SsmRunCommandLink(), CloudWatchOutputLink(), FleetPageLink()]
    fastapi_apps = _fastapi_apps()
    external_views = _external_views()
