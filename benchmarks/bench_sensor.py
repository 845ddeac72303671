"""What one poke of the fleet sensor costs: AWS calls and seconds, by fleet size.

Run: .venv/bin/python benchmarks/bench_sensor.py [--sizes 3 120 1000]
Not a test: it prints what it measured against the local emulator. Between pokes the sensor holds
no worker slot (reschedule mode), so a night costs (pokes x this) and nothing while waiting.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "local"), str(ROOT / "plugins")]
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-airflow-"))
os.environ.update(
    {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
)

from ssm_emulator import EmulatorServer  # noqa: E402
from ssm_fleet.operators.ssm import SsmRunCommandOperator  # noqa: E402
from ssm_fleet.sensors.ssm import SsmRunCommandFleetSensor  # noqa: E402


class _TaskInstance:
    dag_id, run_id, map_index, try_number = "bench", "manual__bench", -1, 1

    def __init__(self, task_id: str):
        self.task_id = task_id

    def xcom_push(self, key: str, value: object) -> None:
        pass


def measure(size: int, pokes: int) -> dict[str, object]:
    with EmulatorServer(port=0, instances=0) as emu:
        emu.add_instances(size, tags={"Role": "bench"})
        os.environ["AIRFLOW_CONN_AWS_DEFAULT"] = json.dumps(
            {"conn_type": "aws", "extra": {"endpoint_url": emu.endpoint_url, "region_name": "us-east-1"}}
        )
        context = {"ti": _TaskInstance("run"), "dag_run": None}
        send = SsmRunCommandOperator(
            task_id="run", target_tags={"Role": ["bench"]}, commands=["true"], max_concurrency="100%"
        )
        command_ids = send.execute(context)["command_ids"]
        sensor = SsmRunCommandFleetSensor(task_id="wait", command_ids=command_ids, poke_interval=1)
        while not sensor.poke({"ti": _TaskInstance("wait")}):
            time.sleep(0.5)
        emu.control.reset()
        started = time.perf_counter()
        for _ in range(pokes):
            sensor.read_verdict({"dag_run": None})
        seconds = (time.perf_counter() - started) / pokes
        calls = {action: c["accepted"] / pokes for action, c in emu.control.counters().items()}
    return {"size": size, "seconds": seconds, "calls": calls}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[3, 120, 1000])
    parser.add_argument("--pokes", type=int, default=5)
    args = parser.parse_args()
    print(f"{'instances':>9}  {'s/poke':>7}  AWS calls per poke")
    for size in args.sizes:
        result = measure(size, args.pokes)
        calls = ", ".join(f"{n:g} {action}" for action, n in sorted(result["calls"].items()))
        print(f"{result['size']:>9}  {result['seconds']:>7.3f}  {calls}", flush=True)


if __name__ == "__main__":
    main()
