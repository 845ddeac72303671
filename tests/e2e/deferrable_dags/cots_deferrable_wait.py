"""A test-only DAG: one fleet run waited for by the sensor in deferrable mode (chosen by a Param)."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import Param, dag

from ssm_fleet.operators.ssm import SsmRunCommandOperator
from ssm_fleet.sensors.ssm import SsmRunCommandFleetSensor


@dag(
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"deferrable": Param(True, type="boolean"), "seconds": Param(20, type="integer")},
    tags=["test"],
)
def cots_deferrable_wait() -> None:
    run = SsmRunCommandOperator(
        task_id="run",
        target_tags={"Role": ["cots"]},
        commands=["sleep {{ params.seconds }}", "echo done on $AWS_SSM_INSTANCE_ID"],
    )
    SsmRunCommandFleetSensor(
        task_id="wait",
        command_ids=run.output["command_ids"],
        deferrable="{{ params.deferrable }}",
        poke_interval=5,  # a 2 s reschedule poke invites the scheduler's requeue race under load
        timeout=300,
    )


cots_deferrable_wait()
