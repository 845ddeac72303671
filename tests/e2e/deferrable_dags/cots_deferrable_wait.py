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
        # Airflow 3.3 LocalExecutor: a poke's "finished" event read after the task was queued again marks
        # it failed; under load the scheduler read it 5 s late. Real pokes are minutes apart.
        poke_interval=15,
        timeout=300,
    )


cots_deferrable_wait()
