"""Worker-slot time and detection latency of each way of waiting, through a real scheduler run.

Run: .venv/bin/python benchmarks/bench_slots.py [--poke-interval 300] [--batch-seconds 780]

Starts the executing emulator and `airflow standalone` (LocalExecutor, SQLite) on the DAGs of
`benchmarks/dags/`, one per way of waiting, sends one batch (`sleep <batch-seconds>` on 3 instances)
and triggers every DAG at once on it; the provider's operator sends its own identical command and
waits with `wait_for_completion`. While they run, the benchmark reads Airflow's metadata database
every second. The seconds a task instance held a worker slot are its `running` windows, from the
metadata: each reschedule poke is `start_date` to `end_date` (Airflow sets both per poke); a
deferrable task runs from `start_date` until its trigger row is created, then from its `queued_dttm`
after the trigger fired until `end_date`. Per hour of batch = slot seconds / batch seconds x 3600,
the batch being first start to last end of the watched command's invocations. Detection latency is
the last invocation's end (emulator timestamps) to the task's success `end_date`.

Over 350 lines for a reason: one benchmark, its set-up, its measurements and its table.
"""

from __future__ import annotations

import argparse
import importlib.util
import sqlite3
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import common
from common import ROOT, Section, Table

DAG_FOLDER = ROOT / "benchmarks" / "dags"
TASK_ID = "wait"
INSTANCES = 3
MODES = {
    "bench_wait_ours_reschedule": "ours, reschedule",
    "bench_wait_ours_deferrable": "ours, deferrable",
    "bench_wait_provider_deferrable": "provider sensor, deferrable",
    "bench_wait_provider_poke": "provider sensor, poke",
    "bench_wait_provider_wait_for_completion": "provider operator, wait_for_completion",
}


def _e2e() -> Any:
    """The REST client and port helper of the end-to-end tests (tests/e2e/conftest.py), reused."""
    spec = importlib.util.spec_from_file_location("e2e_conftest", ROOT / "tests" / "e2e" / "conftest.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass
class Sample:
    at: datetime
    state: str | None
    start: datetime | None
    end: datetime | None
    queued: datetime | None
    trigger_created: datetime | None


@dataclass
class Watch:
    """The task instance of one DAG run, sampled from the metadata database."""

    dag_id: str
    run_id: str
    samples: list[Sample] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return bool(self.samples) and self.samples[-1].state in ("success", "failed")

    def windows(self) -> list[tuple[datetime, datetime]]:
        """The running windows of the task instance, from its metadata."""
        created = next((s.trigger_created for s in self.samples if s.trigger_created), None)
        last = self.samples[-1] if self.samples else None
        if created is not None and last is not None and last.end and last.start and last.queued:
            return [(last.start, created), (last.queued, last.end)]
        found: dict[datetime, datetime] = {}
        for s in self.samples:
            if (
                s.state in ("up_for_reschedule", "success", "failed")
                and s.start
                and s.end
                and s.end >= s.start
            ):
                found[s.start] = s.end
        return sorted(found.items())


class MetadataSampler(threading.Thread):
    """Reads the task instances (and their triggers) of the watched runs every `interval` seconds."""

    QUERY = """
        SELECT ti.state, ti.start_date, ti.end_date, ti.queued_dttm, tr.created_date
        FROM task_instance ti LEFT JOIN trigger tr ON tr.id = ti.trigger_id
        WHERE ti.dag_id = ? AND ti.run_id = ? AND ti.task_id = ?
    """

    def __init__(self, database: Path, watches: list[Watch], interval: float = 1.0):
        super().__init__(daemon=True)
        self.database, self.watches, self.interval = database, watches, interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                with sqlite3.connect(f"file:{self.database}?mode=ro", uri=True, timeout=5) as db:
                    for watch in list(self.watches):
                        row = db.execute(self.QUERY, (watch.dag_id, watch.run_id, TASK_ID)).fetchone()
                        if row:
                            state, *times = row
                            watch.samples.append(Sample(datetime.now(UTC), state, *(_time(t) for t in times)))
            except sqlite3.OperationalError:
                pass  # locked by a writer: the next sample
            self.stopped.wait(self.interval)


def _invocation_times(ssm: Any, command_id: str) -> tuple[datetime, datetime, str]:
    starts, ends, statuses = [], [], set()
    paginator = ssm.get_paginator("list_command_invocations")
    for page in paginator.paginate(CommandId=command_id, Details=True):
        for invocation in page["CommandInvocations"]:
            statuses.add(invocation["Status"])
            for plugin in invocation.get("CommandPlugins", []):
                starts.append(_time(plugin.get("ResponseStartDateTime")))
                ends.append(_time(plugin.get("ResponseFinishDateTime")))
    return min(filter(None, starts)), max(filter(None, ends)), "/".join(sorted(statuses))


def _operator_command(ssm: Any, batch_command: str) -> str | None:
    others = [c["CommandId"] for c in ssm.list_commands()["Commands"] if c["CommandId"] != batch_command]
    return others[0] if others else None


def run_scheduler(poke_interval: int, batch_seconds: int, log_dir: Path) -> dict[str, Any]:
    from devenv import LocalAws, airflow_env, emulator, migrate, standalone

    e2e = _e2e()
    log_dir.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="bench-slots-airflow-"))
    with emulator(instances=INSTANCES, tag="Role=bench") as aws:
        aws = LocalAws(aws.endpoint_url, aws.instance_ids, aws.topic_arn, aws.queue_url)
        port = e2e.free_port()
        env = airflow_env(aws, home)
        env.update(
            {
                "AIRFLOW__CORE__DAGS_FOLDER": str(DAG_FOLDER),
                "BENCH_POKE_INTERVAL": str(poke_interval),
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                "AIRFLOW__API__PORT": str(port),
                "AIRFLOW__API__BASE_URL": f"http://localhost:{port}",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{port}/execution/",
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(e2e.free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(e2e.free_port()),
                "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(e2e.free_port()),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            }
        )
        migrate(env)
        with standalone(env, log=log_dir / "slots-standalone.log"):
            api = e2e.Api(f"http://localhost:{port}", home / "simple_auth_manager_passwords.json.generated")
            api.login(time.monotonic() + 180)
            dags = _wait_for_dags(api)
            ssm = common.boto3_ssm(aws.endpoint_url)
            script = f"sleep {batch_seconds}"
            command_id = ssm.send_command(
                InstanceIds=aws.instance_ids,
                DocumentName="AWS-RunShellScript",
                Parameters={"commands": [script], "executionTimeout": [str(batch_seconds * 3)]},
            )["Command"]["CommandId"]
            conf = {"command_id": command_id, "instance_ids": aws.instance_ids, "script": script}
            watches: list[Watch] = []
            sampler = MetadataSampler(home / "airflow.db", watches)
            sampler.start()
            for dag_id in sorted(dags, key=_order):
                watches.append(Watch(dag_id, _trigger(api, dag_id, conf)))
                _wait_started(watches[-1])
            deadline = time.monotonic() + batch_seconds + 3 * poke_interval + 300
            while not all(w.done for w in watches) and time.monotonic() < deadline:
                time.sleep(2)
            sampler.stopped.set()
            sampler.join()
            operator_command = _operator_command(ssm, command_id)
            times = {"batch": _invocation_times(ssm, command_id)}
            if operator_command:
                times["operator"] = _invocation_times(ssm, operator_command)
    return {
        "watches": watches,
        "times": times,
        "poke_interval": poke_interval,
        "batch_seconds": batch_seconds,
    }


def _order(dag_id: str) -> int:
    """The ways that hold a slot all along start last: their start competes with no check."""
    return list(MODES).index(dag_id) if dag_id in MODES else len(MODES)


def _wait_started(watch: Watch, timeout: float = 90, settle: float = 10) -> None:
    """Wait until the task's process has started and done its first check (or run `settle` seconds).

    The runs are triggered one after the other, each once the previous one is past its start: on 2
    cores, processes that start at the same moment slow each other down (the first check of four
    tasks started together took over 20 s), which would measure the machine, not the way of waiting.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = [s for s in watch.samples if s.state == "running"]
        last = watch.samples[-1].state if watch.samples else None
        if last in ("up_for_reschedule", "deferred", "success", "failed"):
            return
        if running and (running[-1].at - running[0].at).total_seconds() >= settle:
            return
        time.sleep(0.5)


def _wait_for_dags(api: Any) -> list[str]:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        status, answer = api.call("GET", "/api/v2/dags?tags=bench&limit=50")
        found = sorted(d["dag_id"] for d in answer.get("dags", [])) if status == 200 else []
        expected = [d for d in MODES if d != "bench_wait_ours_deferrable"]
        if all(d in found for d in expected):
            time.sleep(5)  # one more parse loop: an optional DAG (ours, deferrable) may follow
            status, answer = api.call("GET", "/api/v2/dags?tags=bench&limit=50")
            return sorted(d["dag_id"] for d in answer["dags"])
        time.sleep(2)
    raise RuntimeError("the benchmark DAGs did not appear in Airflow within 180 s")


def _trigger(api: Any, dag_id: str, conf: dict[str, Any]) -> str:
    status, run = api.call("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf})
    if status != 200:
        raise RuntimeError(f"could not trigger {dag_id}: HTTP {status} {run}")
    return str(run["dag_run_id"])


def _overlap(window: tuple[datetime, datetime], start: datetime, end: datetime) -> float:
    return max(0.0, (min(window[1], end) - max(window[0], start)).total_seconds())


def figures(watch: Watch, batch: tuple[datetime, datetime, str] | None) -> dict[str, Any]:
    """What one way of waiting cost, from its task instance's windows and the batch's invocation times."""
    windows = watch.windows()
    last = watch.samples[-1] if watch.samples else None
    held = sum((end - start).total_seconds() for start, end in windows)
    item: dict[str, Any] = {
        "mode": MODES.get(watch.dag_id, watch.dag_id),
        "dag_id": watch.dag_id,
        "state": last.state if last else None,
        "windows": [(start.isoformat(), end.isoformat()) for start, end in windows],
        "running_windows": len(windows),
        "median_window_seconds": round(statistics.median([(e - s).total_seconds() for s, e in windows]), 2)
        if windows
        else None,
        "slot_seconds": round(held, 1),
    }
    if batch is None or last is None or last.end is None:
        return item
    first_start, last_end, statuses = batch
    seconds = (last_end - first_start).total_seconds()
    during = sum(_overlap(w, first_start, last_end) for w in windows)
    item.update(
        {
            "invocations": statuses,
            "batch_seconds": round(seconds, 1),
            "slot_seconds_during_batch": round(during, 1),
            "slot_seconds_per_batch_hour": round(during / seconds * 3600, 1),
            "slot_share_percent": round(during / seconds * 100, 2),
            "detection_latency_seconds": round((last.end - last_end).total_seconds(), 1),
        }
    )
    return item


def summarize(result: dict[str, Any]) -> tuple[list[dict[str, Any]], Table]:
    poke = result["poke_interval"]
    data = [
        figures(w, result["times"].get("operator" if "wait_for_completion" in w.dag_id else "batch"))
        for w in result["watches"]
    ]
    rows = [
        [
            i["mode"],
            i["state"],
            i["running_windows"],
            i["median_window_seconds"],
            i["slot_seconds"],
            i.get("batch_seconds", "?"),
            i.get("slot_seconds_during_batch", "?"),
            f"{i['slot_seconds_per_batch_hour']:.0f} s ({i['slot_share_percent']:.2f} %)"
            if "slot_share_percent" in i
            else "?",
            f"{i['detection_latency_seconds']:.0f} s" if "detection_latency_seconds" in i else "?",
        ]
        for i in data
    ]
    table = Table(
        f"Worker-slot time and detection latency through airflow standalone (checks every {poke} s)",
        [
            "way of waiting",
            "task state",
            "running windows",
            "median window (s)",
            "slot seconds, whole task",
            "batch seconds",
            "slot seconds during the batch",
            "slot time per hour of batch",
            f"detection latency (interval {poke} s)",
        ],
        rows,
        [
            f"One batch (`sleep {result['batch_seconds']}` on {INSTANCES} emulated instances) watched by "
            "every way under `airflow standalone` (LocalExecutor, SQLite); poke interval and "
            f"waiter delay {poke} s (the defaults: the provider's 120 s, ours 300 s).",
            "The runs are triggered one after the other, each once the previous one has made its first "
            "check (or held its slot 10 s), so that their process starts do not slow each other down on "
            "this 2-core machine; the provider's operator sends its own command (same script, same hosts).",
            "Slot seconds: the task instance's `running` windows in Airflow's metadata (each reschedule "
            "poke `start_date`..`end_date`; deferrable: `start_date`..trigger created, then `queued_dttm` "
            "after the trigger fired..`end_date`); the process start before `start_date` is not included.",
            "Per hour of batch: the slot seconds that fell between the batch's first start and last end, "
            "divided by that span. The check that sees the end comes after it: it is in the whole-task "
            "seconds and in the detection latency, once per run.",
            "Detection latency: the last invocation's end (emulator) to the task's success `end_date`.",
        ],
    )
    return data, table


def run(poke_interval: int = 300, batch_seconds: int = 780, log_dir: Path | None = None) -> Section:
    started = time.perf_counter()
    print(f"  slots: airflow standalone, a {batch_seconds} s batch, checks every {poke_interval} s ...")
    result = run_scheduler(poke_interval, batch_seconds, log_dir or ROOT / "build" / "bench")
    data, table = summarize(result)
    return Section("slots", [table], data, time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--poke-interval", type=int, default=300)
    parser.add_argument("--batch-seconds", type=int, default=780)
    args = parser.parse_args()
    section = run(args.poke_interval, args.batch_seconds)
    print(section.tables[0].markdown())


if __name__ == "__main__":
    main()
