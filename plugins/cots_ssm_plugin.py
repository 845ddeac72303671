"""The Airflow plugin of the ``cots_ssm`` package.

Registers the console links: MWAA needs operator extra links to come from a plugin.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from cots_ssm.links.ssm import CloudWatchOutputLink, SsmRunCommandLink


class CotsSsmPlugin(AirflowPlugin):
    """The ``cots_ssm`` plugin: console links of the SSM fleet operator and sensor."""

    name = "cots_ssm"
    operator_extra_links = [SsmRunCommandLink(), CloudWatchOutputLink()]
