"""The fleet page as a link: from a task's extra links and from an alert."""

from __future__ import annotations

from typing import Any

from cots_ssm.fleet.urls import fleet_url

try:  # Airflow 3.0+: the task SDK's base class of operator links
    from airflow.sdk import BaseOperatorLink
except ImportError:  # pragma: no cover
    from airflow.models.baseoperatorlink import BaseOperatorLink  # type: ignore[no-redef,unused-ignore]


def fleet_page_url(dag_id: str, run_id: str) -> str:
    """The fleet page of a run, absolute when Airflow's ``[api] base_url`` is set (alerts need it)."""
    try:
        from airflow.configuration import conf

        base = conf.get("api", "base_url", fallback="") or ""
    except Exception:  # outside an Airflow installation: a relative link is still right in the UI
        base = ""
    return fleet_url(base, dag_id, run_id)


class FleetPageLink(BaseOperatorLink):
    """The fleet page of the task's DAG run: every instance, live, in the Airflow UI."""

    name = "Fleet"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        """The fleet page of the task's run."""
        return fleet_page_url(ti_key.dag_id, ti_key.run_id)
