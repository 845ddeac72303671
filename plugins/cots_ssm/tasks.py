"""The library's wait and notifiers as this application uses them: its run, wording and fleet page.

Every job's DAG is built from :data:`FLEET_RUN` (its send and wait task ids and document), so the
cleanup, the alerts, the report and the fleet page read the tasks the DAG really has.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from cots_ssm.fleet.links import FleetPageLink, fleet_page_url
from cots_ssm.overrides import context_overrides
from ssm_fleet.alert import FailureAlert
from ssm_fleet.notifications.sns import SsmDagRunFailureNotifier, SsmFailureSnsNotifier
from ssm_fleet.sensors.ssm import SsmRunCommandFleetSensor
from ssm_fleet.spec import FleetRun

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

#: The tasks of every job's DAG that send and wait for its fleet run (cots_ssm.jobs.dag).
FLEET_RUN = FleetRun(send_task_id="run", wait_task_id="wait", document_name="AWS-RunShellScript")
#: The first line of every alert about a job's run.
OPENING = "Attention required: the COTS batch failed."


def dress(alert: FailureAlert, context: Any) -> FailureAlert:
    """An alert with the application's opening, the run's fleet page and what the run changed."""
    return dataclasses.replace(
        alert,
        opening=OPENING if alert.opening == FailureAlert.opening else alert.opening,
        fleet_url=fleet_page_url(alert.dag_id, alert.run_id),
        notes=context_overrides(context).lines(),
    )


class CotsFailureNotifier(SsmFailureSnsNotifier):
    """The task failure alert of a job: the library's, with the COTS wording and the fleet page."""

    def decorate(self, alert: FailureAlert, context: Any) -> FailureAlert:
        """The library's alert, dressed: see :func:`dress`."""
        return dress(alert, context)


class CotsRunFailureNotifier(SsmDagRunFailureNotifier):
    """The DAG run failure alert of a job: the library's, with the COTS wording and the fleet page."""

    def decorate(self, alert: FailureAlert, context: Any) -> FailureAlert:
        """The library's alert, dressed: see :func:`dress`."""
        return dress(alert, context)


class CotsFleetSensor(SsmRunCommandFleetSensor):
    """The wait of a job: the library's sensor, with a link to the run's fleet page."""

    operator_extra_links = (*SsmRunCommandFleetSensor.operator_extra_links, FleetPageLink())
