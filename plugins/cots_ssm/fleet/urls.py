"""Where the fleet page of a run lives: one spelling of its URL for the plugin, links and alerts."""

from __future__ import annotations

from urllib.parse import quote

#: The prefix the plugin mounts the fleet app under (not one of Airflow's reserved prefixes).
FLEET_URL_PREFIX = "/cots-fleet"


def fleet_path(dag_id: str, run_id: str) -> str:
    """The path of the fleet page of DAG run ``run_id`` (run ids hold ``:`` and ``+``: quoted)."""
    return f"{FLEET_URL_PREFIX}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def fleet_url(base_url: str, dag_id: str, run_id: str) -> str:
    """The fleet page under an Airflow base URL (``[api] base_url``; empty gives a relative link)."""
    return base_url.rstrip("/") + fleet_path(dag_id, run_id)


def airflow_run_url(dag_id: str, run_id: str) -> str:
    """The run's page in the Airflow 3 UI, relative to the same server."""
    return f"/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"
