"""One DAG per way of waiting for an SSM batch, for `benchmarks/bench_slots.py` (never deployed).

Each run gets the batch in its conf: `command_id` (sent by the benchmark, watched by the sensors)
and `instance_ids` and `script` (for the provider's operator, which sends its own command and waits
with `wait_for_completion`). Every DAG checks every `BENCH_POKE_INTERVAL` seconds (default 300).
"""

from __future__ import annotations

import inspect
import os

from airflow.providers.amazon.aws.operators.ssm import SsmRunCommandOperator as ProviderRunCommandOperator
from airflow.providers.amazon.aws.sensors.ssm import SsmRunCommandCompletedSensor
from airflow.sdk import DAG

from ssm_fleet.sensors.ssm import SsmRunCommandFleetSensor

POKE_INTERVAL = int(os.environ.get("BENCH_POKE_INTERVAL", "300"))
COMMAND_ID = "{{ dag_run.conf['command_id'] }}"


def bench_dag(mode: str) -> DAG:
    return DAG(
        dag_id=f"bench_wait_{mode}",
        schedule=None,
        catchup=False,
        render_template_as_native_obj=True,
        default_args={"retries": 0},
        tags=["bench"],
        doc_md=__doc__,
    )


with bench_dag("ours_reschedule"):
    SsmRunCommandFleetSensor(
        task_id="wait", command_ids=[COMMAND_ID], poke_interval=POKE_INTERVAL, mode="reschedule"
    )

if "deferrable" in inspect.signature(SsmRunCommandFleetSensor.__init__).parameters:
    with bench_dag("ours_deferrable"):
        SsmRunCommandFleetSensor(
            task_id="wait", command_ids=[COMMAND_ID], poke_interval=POKE_INTERVAL, deferrable=True
        )

with bench_dag("provider_poke"):
    SsmRunCommandCompletedSensor(
        task_id="wait", command_id=COMMAND_ID, poke_interval=POKE_INTERVAL, mode="poke", max_retries=1000
    )

with bench_dag("provider_deferrable"):
    SsmRunCommandCompletedSensor(
        task_id="wait", command_id=COMMAND_ID, poke_interval=POKE_INTERVAL, deferrable=True, max_retries=1000
    )

with bench_dag("provider_wait_for_completion"):
    ProviderRunCommandOperator(
        task_id="wait",
        document_name="AWS-RunShellScript",
        run_command_kwargs={
            "InstanceIds": "{{ dag_run.conf['instance_ids'] }}",
            "Parameters": {"commands": ["{{ dag_run.conf['script'] }}"]},
        },
        wait_for_completion=True,
        waiter_delay=POKE_INTERVAL,
        waiter_max_attempts=1000,
    )
