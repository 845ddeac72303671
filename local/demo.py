"""``make demo``: the nightly DAG end to end on the embedded default, twice.

Starts the local AWS emulator with 3 instances tagged ``Role=cots``, runs ``cots_nightly_batch``
through ``airflow dags test`` (SQLite Airflow, reschedule sensor included) once where every
instance succeeds and once where one instance fails, prints the reschedule pokes, the
per-instance results and the SNS alert as received from the SQS subscription, then stops
everything it started. Full logs go to ``build/demo/``.
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

BUILD = ROOT / "build" / "demo"
DAG_ID = "cots_nightly_batch"
HIGHLIGHTS = re.compile(
    r"(\d+/\d+ done|Finished: |Sent command|Adopting|Rescheduling task|Fleet result|Per-instance"
    r"|^\s*(instance|-{8}|i-[0-9a-f]+ )|stderr: |Failure alert|FAILED TO PUBLISH|Preflight"
    r"|instance\(s\) online|Cancelled command|nothing to cancel|DagRun Finished)"
)


def banner(text: str) -> None:
    print(f"\n{'=' * 100}\n{text}\n{'=' * 100}", flush=True)


def run_dag(env: dict[str, str], name: str, conf: dict) -> tuple[int, str]:
    """``airflow dags test`` with ``conf``; returns its exit code and its whole output."""
    command = ["airflow", "dags", "test", DAG_ID, "--conf", json.dumps(conf)]
    print(f"$ airflow dags test {DAG_ID} --conf '{json.dumps(conf)}'", flush=True)
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
    banner("Starting the local AWS emulator (3 EC2 instances tagged Role=cots, SSM-managed)")
    with emulator(instances=3) as aws:
        print(f"endpoint {aws.endpoint_url}; instances {', '.join(aws.instance_ids)}")
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

    banner("Summary")
    success = ok_code == 0 and bad_code != 0 and any(failing in a.get("Message", "") for a in alerts)
    print(f"run 1 (all succeed): exit {ok_code}; run 2 (one fails): exit {bad_code}; alert names {failing}: "
          f"{any(failing in a.get('Message', '') for a in alerts)}")  # fmt: skip
    print("Demo OK: everything it started has been stopped." if success else "Demo FAILED")
    return 0 if success else 1


if __name__ == "__main__":
    sys.exit(main())
