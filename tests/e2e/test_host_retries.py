"""Hosts that missed the start are re-sent by the wait itself (issue 19, acceptance lines 2 and 3).

``airflow standalone`` on the executing emulator, with a jobs file of four jobs run side by side
(each on a fleet of its own, so the whole file takes one Airflow start and about two minutes):

- ``retry_reschedule`` / ``retry_deferrable``: two hosts, one batch at a time (``max_concurrency``
  1), the first running 25 s; the second, offline right after the send and back Online 60 s later,
  misses its start (``Delivery Timed Out``) and is re-sent once by the wait, in both wait modes:
  the run is green and the report names the re-send;
- ``retry_never``: the same with ``host_retries: 0``: the run fails naming the host;
- ``retry_exit_codes``: ``retry_exit_codes: [75]``; one host exits 75 (re-run once), one exits 3
  (not re-run).

Judged by what ran on each host (the emulator's execution counts), the runs' states, the wait's
result rows and the report's log.
"""

from __future__ import annotations

import json
import os
import time
import uuid

import pytest
import yaml

pytestmark = pytest.mark.e2e

JOBS = ("retry_reschedule", "retry_deferrable", "retry_never", "retry_exit_codes")
#: The emulator scales delivery timeouts: the jobs' 30 s last 15 s.
TIME_SCALE = 0.5
#: The first host's batch outlasts the second one's (scaled) delivery timeout.
FIRST_HOST_SECONDS = 25
#: How long the second host stays offline (a reboot): it comes back well after its delivery timeout.
OFFLINE_SECONDS = 60


def jobs_file(fleets: dict[str, list[str]]) -> dict:
    common = {"delivery_timeout_seconds": 30, "poll_interval_seconds": 10, "retries": 0}
    single = {**common, "max_concurrency": "1"}
    return {
        "jobs": [
            {"id": "retry_reschedule", "instance_ids": fleets["retry_reschedule"], **single},
            {
                "id": "retry_deferrable",
                "instance_ids": fleets["retry_deferrable"],
                **single,
                "deferrable": True,
                "poll_interval_seconds": 5,
            },
            {"id": "retry_never", "instance_ids": fleets["retry_never"], **single, "host_retries": 0},
            {
                "id": "retry_exit_codes",
                "instance_ids": fleets["retry_exit_codes"],
                **common,
                "retry_exit_codes": [75],
            },
        ]
    }


def task_log(api, dag_id: str, run_id: str, task_id: str) -> str:
    api.dag_id = dag_id
    status, log = api.call("GET", f"{api.run_path(run_id)}/taskInstances/{task_id}/logs/1?full_content=true")
    return json.dumps(log) if status == 200 else ""


@pytest.fixture(scope="module")
def nights(emulator, tmp_path_factory, start_standalone):
    """Every job run once, side by side; yields the api, the fleets, the runs and their end states."""
    fleets = {job: emulator.add_instances(2, tags={"Role": f"retry-{uuid.uuid4().hex[:8]}"}) for job in JOBS}
    home = tmp_path_factory.mktemp("airflow-host-retries")
    path = home / "jobs.yaml"
    path.write_text(yaml.safe_dump(jobs_file(fleets)))
    emulator.control.reset()
    emulator.control.time_scale(TIME_SCALE)
    for job in ("retry_reschedule", "retry_deferrable", "retry_never"):
        emulator.control.extra_duration(fleets[job][0], FIRST_HOST_SECONDS)
    emulator.control.force_exit(fleets["retry_exit_codes"][0], 75)
    emulator.control.force_exit(fleets["retry_exit_codes"][1], 3)
    os.environ["COTS_JOBS_FILE"] = str(path)
    try:
        with start_standalone(emulator, home, JOBS[0]) as api:
            runs = {}
            for job in JOBS:
                api.dag_id = job
                api.wait_for(f"/api/v2/dags/{job}", lambda dag: True, time.monotonic() + 60, job)
                runs[job] = api.trigger({})
            take_offline(api, emulator, fleets, runs)
            states = {}
            for job, run_id in runs.items():
                api.dag_id = job
                states[job] = api.wait_for_run(run_id, timeout=300)["state"]
            yield api, fleets, runs, states
    finally:
        os.environ.pop("COTS_JOBS_FILE", None)
        emulator.control.reset()


def take_offline(api, emulator, fleets: dict[str, list[str]], runs: dict[str, str]) -> None:
    """Each offline job's second host goes offline once its run task has sent (preflight saw it Online)."""
    waiting = {"retry_reschedule", "retry_deferrable", "retry_never"}
    deadline = time.monotonic() + 120
    while waiting and time.monotonic() < deadline:
        for job in sorted(waiting):
            api.dag_id = job
            if api.task_state(runs[job], "run") == "success":
                emulator.control.set_offline([fleets[job][1]], for_seconds=OFFLINE_SECONDS)
                waiting.discard(job)
        time.sleep(0.5)
    assert not waiting, f"the run task of {waiting} did not succeed"


def rows(api, job: str, run_id: str) -> dict[str, dict]:
    api.dag_id = job
    return {row["instance_id"]: row for row in api.xcom(run_id, "wait", "results")}


@pytest.mark.parametrize("job", ["retry_reschedule", "retry_deferrable"])
def test_a_host_back_online_is_resent_once_and_the_run_is_green(nights, emulator, job):
    api, fleets, runs, states = nights
    first, rebooted = fleets[job]
    assert states[job] == "success"
    ran = emulator.control.executions()
    assert (ran.get(first), ran.get(rebooted)) == (1, 1), "each host ran its batch exactly once"
    row = rows(api, job, runs[job])[rebooted]
    assert row["status"] == "Success"
    assert row["resent"].startswith("re-sent 1x after Delivery Timed Out at ")
    report = task_log(api, job, runs[job], "report")
    assert "re-sent 1x after Delivery Timed Out" in report and rebooted in report
    assert f"{rebooted}: Delivery Timed Out, re-sent " in task_log(api, job, runs[job], "wait")


def test_with_host_retries_0_the_run_fails_naming_the_host(nights, emulator):
    api, fleets, runs, states = nights
    missed = fleets["retry_never"][1]
    assert states["retry_never"] == "failed"
    assert emulator.control.executions().get(missed, 0) == 0
    row = rows(api, "retry_never", runs["retry_never"])[missed]
    assert (row["status_details"], row["resent"]) == ("Delivery Timed Out", "")
    assert missed in task_log(api, "retry_never", runs["retry_never"], "wait")


def test_exit_75_is_rerun_once_exit_3_is_not(nights, emulator):
    api, fleets, runs, states = nights
    listed, other = fleets["retry_exit_codes"]
    assert states["retry_exit_codes"] == "failed"
    ran = emulator.control.executions()
    assert (ran.get(listed), ran.get(other)) == (2, 1)
    found = rows(api, "retry_exit_codes", runs["retry_exit_codes"])
    assert found[listed]["resent"].startswith("re-sent 1x after exit code 75 at ")
    assert (found[listed]["exit_code"], found[other]["exit_code"], found[other]["resent"]) == (75, 3, "")
