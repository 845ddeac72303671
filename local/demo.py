"""``make demo``: the two jobs of ``dags/cots_jobs.yaml`` end to end on the embedded default.

Starts the local AWS emulator with 3 instances tagged ``Role=cots`` and 2 tagged ``Role=indexer``,
runs the first job, ``cots_nightly_batch``, through ``airflow dags test`` (SQLite Airflow,
reschedule sensor included) once where every instance succeeds and once where one instance fails,
then the second job, ``document_indexer``, on its own fleet with its own arguments; prints the
reschedule pokes, the per-instance results and the SNS alert as received from the SQS
subscription, then stops everything it started. Full logs go to ``build/demo/``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import boto3
from devenv import ROOT, LocalAws, airflow_env, emulator, migrate, raise_on_sigterm

from ssm_emulator.control import EmulatorControl

BUILD = ROOT / "build" / "demo"
DAG_ID = "cots_nightly_batch"  # the first job of dags/cots_jobs.yaml
SECOND_JOB = "document_indexer"  # the second: its own fleet (Role=indexer), schedule and arguments
HIGHLIGHTS = re.compile(
    r"(\d+/\d+ hosts done|Finished: |Sent command|Adopting|Rescheduling task|Fleet result|Per-host"
    r"|^\s*(instance|-{8}|i-[0-9a-f]+ )|stderr: |Failure alert|FAILED TO PUBLISH|Preflight"
    r"|instance\(s\) online|Cancelled command|nothing to cancel|DagRun Finished)"
)


def banner(text: str) -> None:
    print(f"\n{'=' * 100}\n{text}\n{'=' * 100}", flush=True)


def run_dag(env: dict[str, str], name: str, conf: dict, dag_id: str = DAG_ID) -> tuple[int, str]:
    """``airflow dags test`` with ``conf``; returns its exit code and its whole output."""
    command = ["airflow", "dags", "test", dag_id, "--conf", json.dumps(conf)]
    print(f"$ airflow dags test {dag_id} --conf '{json.dumps(conf)}'", flush=True)
    started = time.monotonic()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    output = result.stdout + result.stderr
    (BUILD / f"{name}.log").write_text(output)
    for line in output.splitlines():
        if HIGHLIGHTS.search(line) and "Pushing xcom" not in line:
            print("  " + _strip_log_prefix(line), flush=True)
    print(f"-> exit code {result.returncode} after {time.monotonic() - started:.0f}s "
          f"(full log: build/demo/{name}.log)", flush=True)  # fmt: skip
    return result.returncode, output


def _strip_log_prefix(line: str) -> str:
    """Drop the timestamp, level and logger of a log line: keep what it says."""
    line = re.sub(r"^\S+Z \[\s*\w+\s*\] ", "", line)
    line = re.sub(r"\s+\[[\w.]+\]( loc=\S+)?( \w+=.*)?$", "", line)
    return line.rstrip()[:200]


def read_alerts(aws: LocalAws) -> list[dict]:
    sqs = boto3.client("sqs", endpoint_url=aws.endpoint_url, region_name="us-east-1")
    messages = sqs.receive_message(QueueUrl=aws.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=2)
    return [json.loads(m["Body"]) for m in messages.get("Messages", [])]


def main() -> int:
    raise_on_sigterm()
    BUILD.mkdir(parents=True, exist_ok=True)
    home = BUILD / "airflow-home"
    banner("Starting the local AWS emulator (3 EC2 instances tagged Role=cots, 2 Role=indexer, SSM-managed)")
    with emulator(instances=3) as aws:
        indexers = EmulatorControl(aws.endpoint_url).add_instances(2, tags={"Role": "indexer"})
        print(f"endpoint {aws.endpoint_url}; Role=cots: {', '.join(aws.instance_ids)}; "
              f"Role=indexer: {', '.join(indexers)}")  # fmt: skip
        env = airflow_env(aws, home)
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
            os.environ.setdefault(key, env[key])
        print("Migrating the SQLite Airflow database ...", flush=True)
        migrate(env)

        arguments = ["--keywords", "invoice,overdue,refund", "--duration", "4"]
        banner("Run 1: every instance succeeds")
        ok_code, _ = run_dag(
            env, "run-1-success", {"script_arguments": arguments, "poll_interval_seconds": 2}
        )
        print(f"SNS alerts received: {len(read_alerts(aws))} (none expected)")

        failing = aws.instance_ids[1]
        banner(f"Run 2: instance {failing} fails (the sample batch exits 3 there)")
        bad_code, _ = run_dag(
            env,
            "run-2-failure",
            {"script_arguments": [*arguments, "--fail-on", failing], "poll_interval_seconds": 2},
        )
        alerts = read_alerts(aws)
        banner(f"SNS alert as received from the SQS subscription ({len(alerts)} message(s))")
        for alert in alerts:
            print(f"Subject: {alert.get('Subject')}\n\n{alert.get('Message')}")

        banner(f"Run 3: the second job, {SECOND_JOB}, on the Role=indexer fleet with its own arguments")
        conf = {"poll_interval_seconds": 2}
        second_code, second_output = run_dag(env, "run-3-second-job", conf, SECOND_JOB)
        # Its own fleet only: the indexers ran it, the Role=cots instances did not.
        own_fleet = all(i in second_output for i in indexers) and not any(
            i in second_output for i in aws.instance_ids
        )
        print(f"SNS alerts received: {len(read_alerts(aws))} (none expected)")

    banner("Summary")
    named = any(failing in a.get("Message", "") for a in alerts)
    success = ok_code == 0 and bad_code != 0 and named and second_code == 0 and own_fleet
    print(f"{DAG_ID}: run 1 (all succeed): exit {ok_code}; run 2 (one fails): exit {bad_code}; "
          f"alert names {failing}: {named}")  # fmt: skip
    print(f"{SECOND_JOB}: run 3: exit {second_code}; "
          f"ran on its own fleet ({', '.join(indexers)}) only: {own_fleet}")  # fmt: skip
    print("Demo OK: everything it started has been stopped." if success else "Demo FAILED")
    return 0 if success else 1


if __name__ == "__main__":
    sys.exit(main())
