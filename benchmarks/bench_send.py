"""The send path: 1,000 ids (20 chunks of 50) under throttling and lost answers, ours vs the provider's.

Run: .venv/bin/python benchmarks/bench_send.py [--instances 1000] [--throttle 0.4]

On the executing emulator, with `--throttle` of the SendCommand calls answered ThrottlingException
(deterministic: 0.4 = 2 calls in 5), and in a second scenario also the answers of the first 2
accepted SendCommand calls lost (HTTP 500 after SSM acted, the command runs):

- ours: one `SsmRunCommandOperator` with the 1,000 ids (it chunks them, backs off on throttling
  itself, botocore never retries the write, and looks a lost chunk up by its run token before
  sending it again);
- the provider's `SsmRunCommandOperator` as a user must write it for 1,000 ids: 20 operators of 50
  ids each (`wait_for_completion=False`; a task that fails is retried by Airflow, once here); and
  one operator with all 1,000 ids, which SSM refuses.

Counted by the emulator: SendCommand calls (throttled, accepted), commands created, and how many
instances ran the script twice (or never).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from typing import Any

import common
from common import Section, Table

TAG = {"Role": "bench"}
LOST_ANSWERS = 2
PROVIDER_TASK_RETRIES = 1


def _ours(ids: Sequence[str]) -> str:
    from ssm_fleet.operators.ssm import SsmRunCommandOperator

    operator = SsmRunCommandOperator(
        task_id="run", instance_ids=list(ids), commands=["true"], preflight=False, max_concurrency="100%"
    )
    # A run id of its own: the operator would adopt the commands of an earlier run with the same token.
    result = operator.execute(common.context("run", run_id=f"manual__bench_{time.monotonic_ns()}"))
    return f"sent: {len(result['command_ids'])} commands"


def _provider_try(number: int, chunk: Sequence[str]) -> None:
    from airflow.providers.amazon.aws.operators.ssm import SsmRunCommandOperator

    SsmRunCommandOperator(
        task_id=f"run_{number}",
        document_name="AWS-RunShellScript",
        run_command_kwargs={"InstanceIds": list(chunk), "Parameters": {"commands": ["true"]}},
        wait_for_completion=False,
    ).execute(common.context(f"run_{number}"))


def _provider_chunks(ids: Sequence[str]) -> str:
    """20 tasks of 50 ids; a failed task is retried as Airflow would (`retries=1`)."""
    failed = 0
    for number, start in enumerate(range(0, len(ids), common.PAGE_SIZE)):
        for attempt in range(PROVIDER_TASK_RETRIES + 1):
            try:
                _provider_try(number, ids[start : start + common.PAGE_SIZE])
                break
            except Exception:
                if attempt == PROVIDER_TASK_RETRIES:
                    failed += 1
    return f"{failed} task(s) failed after {PROVIDER_TASK_RETRIES} retry"


def _provider_one(ids: Sequence[str]) -> str:
    try:
        _provider_try(0, ids)
    except Exception as error:
        return f"refused: {_short(error)}"
    return "accepted"


def _short(error: BaseException) -> str:
    info = getattr(error, "response", {}).get("Error", {})
    if info:
        return str(info.get("Code"))
    return f"{type(error).__name__}: {str(error)[:70]}"


def _settle(control: Any, ssm: Any, before: set[str]) -> tuple[int, dict[str, int]]:
    """Wait for every command sent to end; return the new commands and the executions per instance."""
    ended = ("Success", "Failed", "TimedOut", "Cancelled")

    def new_commands() -> list[dict[str, Any]]:
        pages = ssm.get_paginator("list_commands").paginate()
        return [c for page in pages for c in page["Commands"] if c["CommandId"] not in before]

    common.wait_until(lambda: all(c["Status"] in ended for c in new_commands()), 180, "the commands to end")
    return len(new_commands()), control.executions()


def _one(
    emu: Any, ssm: Any, ids: Sequence[str], send: Callable[[Sequence[str]], str], throttle: float, lost: int
) -> dict[str, Any]:
    # The harness's own look-up comes before the reset: only the sender's calls are counted.
    before = {
        c["CommandId"] for page in ssm.get_paginator("list_commands").paginate() for c in page["Commands"]
    }
    emu.control.reset()
    emu.control.throttle("SendCommand", rate=throttle)
    if lost:
        emu.control.lost_answer("SendCommand", count=lost, mode="500")
    started = time.perf_counter()
    outcome = send(ids)
    seconds = time.perf_counter() - started
    calls = emu.control.counters()
    counters = calls.get("SendCommand", {})
    commands, executions = _settle(emu.control, ssm, before)
    return {
        "outcome": outcome,
        "seconds": round(seconds, 1),
        "send_calls": counters.get("calls", 0),
        "throttled": counters.get("throttled", 0),
        "accepted": counters.get("accepted", 0),
        "lost_answers": counters.get("lost_answers", 0),
        "commands": commands,
        "ran_twice": sum(1 for n in executions.values() if n > 1),
        "never_ran": sum(1 for i in ids if executions.get(i, 0) == 0),
        "calls": common.accepted(calls),
    }


def run(instances: int = 1000, throttle: float = 0.4) -> Section:
    from ssm_emulator import EmulatorServer

    started = time.perf_counter()
    ways = [
        ("ours: one operator, 1,000 ids", _ours),
        ("provider: 20 operators of 50 ids", _provider_chunks),
        ("provider: one operator, 1,000 ids", _provider_one),
    ]
    scenarios = [
        (f"{throttle:.0%} throttled", 0),
        (f"{throttle:.0%} throttled + {LOST_ANSWERS} answers lost", 2),
    ]
    results = []
    print(f"  send: {instances} instances ...", flush=True)
    with EmulatorServer(port=0, instances=0) as emu:
        ids = emu.add_instances(instances, tags=TAG)
        common.use_emulator(emu.endpoint_url)
        ssm = common.boto3_ssm(emu.endpoint_url)
        for scenario, lost in scenarios:
            for name, send in ways:
                result = _one(emu, ssm, ids, send, throttle, lost)
                results.append({"scenario": scenario, "way": name, **result})
    table = Table(
        f"Send path: {instances:,} ids in chunks of 50, SendCommand throttled",
        [
            "faults",
            "who sends",
            "SendCommand calls",
            "throttled",
            "not throttled",
            "answers lost",
            "ListCommands",
            "commands created",
            "instances ran more than once",
            "never ran",
            "seconds",
            "outcome",
        ],
        [
            [
                r["scenario"],
                r["way"],
                r["send_calls"],
                r["throttled"],
                r["accepted"],
                r["lost_answers"],
                r["calls"].get("ListCommands", 0),
                r["commands"],
                f"**{r['ran_twice']}**" if r["ran_twice"] else 0,
                f"**{r['never_ran']}**" if r["never_ran"] else 0,
                r["seconds"],
                r["outcome"],
            ]
            for r in results
        ],
        [
            f"Throttling is deterministic ({throttle:.0%}: 2 SendCommand calls in 5 answer "
            f"ThrottlingException). Answers lost: the first {LOST_ANSWERS} SendCommand calls that get "
            "through create their command (it runs), then answer HTTP 500.",
            "The provider's operator leaves SendCommand to botocore's default retries: a throttled call is "
            "sent again, and so is one that answered 500 after its command was created. Ours never "
            "lets botocore retry the write: it backs off on throttling and looks a lost chunk up by its "
            "run token (ListCommands: once before sending, to adopt what an earlier try sent, then after "
            "each lost answer).",
            f"The provider's 20 tasks: a task that fails is run again once "
            f"(retries={PROVIDER_TASK_RETRIES}).",
        ],
    )
    return Section("send", [table], results, time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--throttle", type=float, default=0.4)
    args = parser.parse_args()
    print(run(args.instances, args.throttle).tables[0].markdown())


if __name__ == "__main__":
    main()
