"""The nightly DAG on CeleryExecutor, PostgreSQL and Redis with two workers, over 200 emulated instances.

Each run targets the 200 instances by id: 4 chunks, so 4 SendCommand calls, and the sensor polls
every 10 s (compose's ``COTS_BATCH_POLL_SECONDS``), each poke a Celery task of its own. The faults
are the ones fleet runs meet in production: pokes on different workers, a worker killed mid-poke,
a scheduler restarted mid-run, a failing fleet. The last test stops the stack and checks that no
process of it is left.
"""

from __future__ import annotations

import socket
import time
import urllib.parse
from collections import Counter

import boto3
import pytest
from cluster import WORKERS, descendants, wait_until

from ssm_emulator.__main__ import process_gone

pytestmark = pytest.mark.distributed
INSTANCES = 200  # the cluster fixture's emulator
CHUNKS = INSTANCES // 50
DAG = "cots_nightly_batch"
QUEUE = "default"  # Airflow's default Celery queue: every task of the DAG goes there


def other_worker(name: str) -> str:
    (other,) = set(WORKERS) - {name}
    return other


def each_ran_once(aws) -> None:
    executions = aws.control.executions()
    assert Counter(executions.get(i, 0) for i in aws.instance_ids) == {1: INSTANCES}, executions
    assert aws.control.counters()["SendCommand"]["accepted"] == CHUNKS, "one SendCommand per chunk of 50"


def trigger(api, aws, duration: int) -> str:
    return api.trigger({"instance_ids": aws.instance_ids, "script_arguments": ["--duration", str(duration)]})


def seconds_running(watch, end: float) -> float:
    """Time the wait task spent running (a poke in a worker) according to the samples."""
    samples = [*watch.samples, None]
    return sum(
        ((after.at if after else end) - sample.at)
        for sample, after in zip(samples, samples[1:], strict=False)
        if sample and sample.state == "running"
    )


def test_pokes_run_on_both_workers_and_no_slot_is_held_between_them(cluster, api, aws, watch_wait):
    """A 200-instance run succeeds; its pokes ran on both workers; between pokes no worker runs anything.

    Which worker ran a poke is Airflow's own record: the task instance's ``hostname`` (each worker's
    ``hostname_callable`` answers its name), sampled from the metadata database with the poke's
    pid. Celery gives a free message to whichever idle worker asks first, and one worker may win
    every time; so, as a drain does in production, once a poke ends the worker that ran it stops
    consuming the queue (Celery ``cancel_consumer``) and the other resumes (``add_consumer``): the
    next poke must land on the other worker. Between pokes the task instance is
    ``up_for_reschedule`` and, within seconds of a poke's end, Celery ``inspect active`` shows no task
    on either worker until the next poke; the pokes' running time is a fraction of the wall time.
    """
    app = cluster.celery_app()
    nodes = cluster.ping_workers()
    idle_checks: list[tuple[float, str | None]] = []  # (seconds until both workers idle, TI state then)

    def alternate(sample) -> None:
        if sample.state != "up_for_reschedule" or sample.hostname not in WORKERS:
            return
        app.control.cancel_consumer(QUEUE, destination=[nodes[sample.hostname]], reply=True)
        app.control.add_consumer(QUEUE, destination=[nodes[other_worker(sample.hostname)]], reply=True)
        # The poke's Celery task ends a moment after it recorded up_for_reschedule (log upload, exit).
        idle_checks.append((workers_idle_within(app, nodes, 8), api.task_state(run_id, "wait")))

    run_id = trigger(api, aws, duration=30)
    watch = watch_wait(run_id, on_change=alternate)
    try:
        with watch:
            finished = api.wait_for_run(run_id, timeout=300)
            end = time.monotonic()
    finally:
        for node in nodes.values():
            app.control.add_consumer(QUEUE, destination=[node], reply=True)

    assert finished["state"] == "success"
    pokes = watch.pokes()
    assert len(pokes) >= 3, watch.samples
    assert {p.hostname for p in pokes} == set(WORKERS), [(p.pid, p.hostname) for p in pokes]
    assert all(a.hostname != b.hostname for a, b in zip(pokes, pokes[1:], strict=False)), "each on the other"
    assert len(idle_checks) >= 2, idle_checks
    assert all(waited < 8 and state == "up_for_reschedule" for waited, state in idle_checks), idle_checks
    between = [s.state for s in watch.samples if pokes[0].at < s.at < pokes[-1].at and s.state != "running"]
    assert set(between) <= {"up_for_reschedule", "scheduled", "queued"}, between
    first = pokes[0].at
    busy = seconds_running(watch, end)
    workers = sorted({p.hostname for p in pokes})
    print(f"\n{len(pokes)} pokes on {workers}: {busy:.1f} s running in {end - first:.1f} s")
    assert busy < 0.5 * (end - first), "a slot was held between pokes"

    each_ran_once(aws)
    rows = api.xcom(run_id, "wait", "results")
    assert len(rows) == INSTANCES and {r["status"] for r in rows} == {"Success"}


def test_a_worker_killed_mid_poke_the_run_still_ends_and_each_instance_ran_once(
    cluster, api, aws, watch_wait
):
    """``kill -9`` of the whole worker running a poke (main process and children); a new worker starts.

    Airflow's own mechanism takes over: the task instance's heartbeat stops, the scheduler fails
    that try after the heartbeat timeout, and the retry pokes the commands already sent.
    """
    run_id = trigger(api, aws, duration=30)
    with watch_wait(run_id) as watch:
        deadline = time.monotonic() + 180
        while True:
            poke = watch.wait_for(
                lambda s: s.state == "running" and s.hostname in WORKERS and s.pid, 180, "a poke to run"
            )
            victim = poke.hostname
            if poke.pid in descendants(cluster.group_of(victim)):
                killed = cluster.kill_airflow(victim)
                break
            assert time.monotonic() < deadline, "never caught a poke running"  # it ended first: next one
            watch.samples.clear()
        assert poke.pid in killed
        wait_until(lambda: all(process_gone(pid) for pid in killed), 10, "every killed process to end")
        cluster.start_airflow(victim)
        finished = api.wait_for_run(run_id, timeout=360)

    assert finished["state"] == "success"
    status, wait = api.call("GET", f"{api.run_path(run_id)}/taskInstances/wait")
    assert wait["try_number"] >= 2, "Airflow retried the poke of the killed worker"
    assert {p.try_number for p in watch.pokes()} >= {1, 2}
    query = urllib.parse.urlencode(
        {"dag_id": DAG, "run_id": run_id, "task_id": "wait", "event": "heartbeat timeout"}
    )
    status, events = api.call("GET", f"/api/v2/eventLogs?{query}")
    assert status == 200 and events["total_entries"] == 1, events  # the scheduler's own audit record
    each_ran_once(aws)


def test_a_scheduler_stopped_and_restarted_mid_run_the_run_still_ends_and_each_instance_ran_once(
    cluster, api, aws, watch_wait
):
    """SIGTERM to the scheduler once the sensor waits between pokes, 15 s without one, then a new one."""
    run_id = trigger(api, aws, duration=30)
    with watch_wait(run_id) as watch:
        watch.wait_for(lambda s: s.state == "up_for_reschedule", 180, "the first poke to end")
        cluster.stop_airflow("scheduler")
        time.sleep(15)
        restarted = time.monotonic()
        cluster.start_airflow("scheduler")
        finished = api.wait_for_run(run_id, timeout=300)

    assert finished["state"] == "success"
    assert [p for p in watch.pokes() if p.at > restarted], "the new scheduler scheduled the next pokes"
    each_ran_once(aws)


def test_a_failing_run_alerts_through_sns_and_leaves_nothing_running(cluster, api, aws, alerts, run_safety):
    """Three instances (in chunks 1, 2 and 4) exit 4: the run fails, one alert names them, nothing runs on."""
    bad = sorted([aws.instance_ids[10], aws.instance_ids[60], aws.instance_ids[160]])
    for instance_id in bad:
        aws.control.force_exit(instance_id, 4)
    run_id = trigger(api, aws, duration=3)
    assert api.wait_for_run(run_id, timeout=300)["state"] == "failed"
    assert api.task_state(run_id, "wait") == "failed"
    (alert,) = run_safety.alerts_for(alerts, run_id, wait=10)
    lines = alert["Message"].splitlines()
    assert f"Failed instances (3 of {INSTANCES}):" in lines, alert["Message"]
    for instance_id in bad:
        (line,) = [line for line in lines if line.startswith(f"- {instance_id} ")]
        assert "exit code 4" in line, line
    assert run_safety.nothing_left_running(aws, run_id)
    each_ran_once(aws)


def invocation_pages(aws, command_id: str) -> list[list[str]]:
    """The instance ids of a command's ListCommandInvocations pages (50 each)."""
    ssm = boto3.client("ssm", endpoint_url=aws.endpoint_url, region_name="us-east-1")
    pages = ssm.get_paginator("list_command_invocations").paginate(
        CommandId=command_id, PaginationConfig={"PageSize": 50}
    )
    return [[i["InstanceId"] for i in page["CommandInvocations"]] for page in pages]


def seconds_in(watch, state: str, end: float) -> float:
    samples = [*watch.samples, None]
    return sum(
        ((after.at if after else end) - sample.at)
        for sample, after in zip(samples, samples[1:], strict=False)
        if sample and sample.state == state
    )


def running_phases(watch) -> int:
    states = [s.state for s in watch.samples]
    return sum(1 for before, now in zip([None, *states], states, strict=False) if now == "running" != before)


def workers_idle_within(app, nodes: dict[str, str], limit: float) -> float:
    """Seconds until Celery ``inspect active`` shows no task on any worker (``inf`` past ``limit``)."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        active = app.control.inspect(destination=list(nodes.values()), timeout=1).active() or {}
        if set(active) == set(nodes.values()) and not any(active.values()):
            return time.monotonic() - start
        time.sleep(0.5)
    return float("inf")


def test_a_deferrable_wait_holds_no_slot_survives_a_triggerer_restart_and_catches_a_failure_on_page_3(
    cluster, api, aws, watch_wait, alerts, run_safety
):
    """The trigger form's ``deferrable`` on, over the 200 instances by tag: one command, 4 pages of 50.

    The wait task runs in a worker twice, its first check and the hand-back of the trigger's
    event, and is ``deferred`` in between with its trigger held by a triggerer job (Airflow's
    trigger table); meanwhile Celery ``inspect active`` shows no task on either worker. The
    triggerer holding it is stopped (SIGTERM) and a new one takes the trigger over. A second run,
    with an instance of the third page forced to exit 4, fails naming it.
    """
    by_tag = {"target_tags": {"Role": ["cots"]}, "deferrable": True}
    app, nodes = cluster.celery_app(), cluster.ping_workers()
    run_id = api.trigger({**by_tag, "script_arguments": ["--duration", "30"]})
    with watch_wait(run_id) as watch:
        held = watch.wait_for(
            lambda s: s.state == "deferred" and s.triggerer_id, 180, "the triggerer to hold it"
        )
        idle_after = workers_idle_within(app, nodes, 8)  # the worker's task ends a moment after deferring
        deferred_then = api.task_state(run_id, "wait")
        cluster.stop_airflow("triggerer")
        cluster.start_airflow("triggerer")
        watch.wait_for(
            lambda s: s.state == "deferred" and s.triggerer_id not in (None, held.triggerer_id),
            150,
            "a new triggerer to take the trigger over",
        )
        finished = api.wait_for_run(run_id, timeout=300)
        end = time.monotonic()
    assert finished["state"] == "success"
    assert idle_after < 8 and deferred_then == "deferred", (idle_after, deferred_then)
    assert running_phases(watch) == 2, watch.samples  # the first check and the hand-back, nothing else
    running, deferred = seconds_in(watch, "running", end), seconds_in(watch, "deferred", end)
    print(f"\ndeferrable: {running:.1f} s in a worker, {deferred:.1f} s deferred")
    assert deferred > 2 * running, watch.samples
    executions = aws.control.executions()
    assert Counter(executions.get(i, 0) for i in aws.instance_ids) == {1: INSTANCES}, executions
    assert aws.control.counters()["SendCommand"]["accepted"] == 1, "one tag-targeted command"

    (command_id,) = api.xcom(run_id, "run", "command_ids")
    victim = invocation_pages(aws, command_id)[2][0]
    aws.control.reset()
    aws.control.force_exit(victim, 4)
    run_id = api.trigger({**by_tag, "script_arguments": ["--duration", "15"]})
    with watch_wait(run_id) as watch:
        finished = api.wait_for_run(run_id, timeout=300)
    assert finished["state"] == "failed"
    states = [s.state for s in watch.samples]
    assert states[-1] == "failed" and "deferred" in states, states  # caught by the trigger
    (command_id,) = api.xcom(run_id, "run", "command_ids")
    assert victim in invocation_pages(aws, command_id)[2], "the failed instance is on page 3"
    rows = {row["instance_id"]: row for row in api.xcom(run_id, "wait", "results")}
    assert len(rows) == INSTANCES, len(rows)
    assert rows[victim]["status"] == "Failed" and rows[victim]["exit_code"] == 4, rows[victim]
    assert {r["status"] for i, r in rows.items() if i != victim} == {"Success"}
    (alert,) = run_safety.alerts_for(alerts, run_id, wait=10)
    assert f"Failed instances (1 of {INSTANCES}):" in alert["Message"].splitlines(), alert["Message"]
    assert run_safety.nothing_left_running(aws, run_id)


def test_no_process_of_the_suite_outlives_it(cluster):
    """Stop the stack as the fixture does: no PostgreSQL, Redis, Airflow or emulator process is left."""
    ports = [cluster.ports.postgres, cluster.ports.redis, cluster.ports.api_server]
    ports += cluster.ports.worker_logs.values()
    cluster.stop()
    assert cluster.leftovers() == []
    for port in ports:
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
