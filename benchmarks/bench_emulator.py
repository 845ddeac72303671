"""Figures of the local SSM emulator: start time, call latency, and a 1,000-instance batch.

Run: .venv/bin/python benchmarks/bench_emulator.py [--instances 1000] [--calls 200]
Not a test: it prints what it measured.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import boto3
from botocore.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "local"))

from ssm_emulator import EmulatorServer  # noqa: E402

BATCH = 50


def client(emu: EmulatorServer, service: str):
    return boto3.session.Session().client(
        service,
        endpoint_url=emu.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "max_attempts": 5}),
    )


def latency(call, calls: int) -> str:
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    p95 = samples[int(len(samples) * 0.95) - 1]
    return f"median {statistics.median(samples):6.2f} ms   p95 {p95:6.2f} ms   ({calls} calls)"


def wait_all_success(ssm, command_ids: list[str], timeout: float) -> float:
    started = time.monotonic()
    pending = set(command_ids)
    while pending:
        if time.monotonic() - started > timeout:
            raise SystemExit(f"{len(pending)} commands not finished after {timeout}s")
        for command_id in list(pending):
            command = ssm.list_commands(CommandId=command_id)["Commands"][0]
            if command["Status"] == "Success":
                pending.discard(command_id)
            elif command["Status"] in ("Failed", "TimedOut", "Cancelled"):
                raise SystemExit(
                    f"command {command_id} ended {command['Status']} ({command['StatusDetails']})"
                )
        time.sleep(0.2)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")

    started = time.perf_counter()
    emu = EmulatorServer(instances=3).start()
    print(f"server start (3 instances, topic, queue): {time.perf_counter() - started:6.2f} s")
    try:
        run(emu, args)
    finally:
        started = time.perf_counter()
        emu.stop()
        print(f"server stop: {time.perf_counter() - started:6.2f} s")


def run(emu: EmulatorServer, args: argparse.Namespace) -> None:
    started = time.perf_counter()
    ssm = client(emu, "ssm")
    ssm.describe_instance_information()
    print(
        f"first call (client creation + DescribeInstanceInformation): {time.perf_counter() - started:6.2f} s"
    )

    probe = ssm.send_command(
        InstanceIds=emu.instance_ids, DocumentName="AWS-RunShellScript", Parameters={"commands": ["true"]}
    )["Command"]["CommandId"]
    wait_all_success(ssm, [probe], timeout=30)
    print("DescribeInstanceInformation:", latency(ssm.describe_instance_information, args.calls))
    print(
        "ListCommandInvocations:     ",
        latency(lambda: ssm.list_command_invocations(CommandId=probe, Details=True), args.calls),
    )

    started = time.perf_counter()
    fleet = emu.add_instances(args.instances, tags={"Role": "bench"})
    print(f"add {len(fleet)} instances: {time.perf_counter() - started:6.2f} s")

    started = time.perf_counter()
    command_ids = [
        ssm.send_command(
            InstanceIds=fleet[i : i + BATCH],
            DocumentName="AWS-RunShellScript",
            Parameters={"commands": ["sleep 1"]},
        )["Command"]["CommandId"]
        for i in range(0, len(fleet), BATCH)
    ]
    sent = time.perf_counter() - started
    waited = wait_all_success(ssm, command_ids, timeout=300)
    print(f"{len(fleet)} x 'sleep 1' as {len(command_ids)} commands of {BATCH}: sent in {sent:5.2f} s, "
          f"all Success {sent + waited:5.2f} s after the first send")  # fmt: skip

    started = time.perf_counter()
    wanted, seen, pages = set(command_ids), set(), 0
    for page in ssm.get_paginator("list_command_invocations").paginate(PaginationConfig={"PageSize": 50}):
        pages += 1
        for invocation in page["CommandInvocations"]:
            if invocation["CommandId"] in wanted and invocation["Status"] == "Success":
                seen.add((invocation["CommandId"], invocation["InstanceId"]))
    print(f"listed {len(seen)} Success invocations of the batch across {pages} pages "
          f"in {time.perf_counter() - started:5.2f} s")  # fmt: skip
    if len(seen) != len(fleet):
        raise SystemExit(f"expected {len(fleet)} listed invocations, saw {len(seen)}")


if __name__ == "__main__":
    main()
