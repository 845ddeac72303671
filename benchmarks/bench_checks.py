"""What one status check costs, and whether its verdict is right: ours beside the Amazon provider's.

Run: .venv/bin/python benchmarks/bench_checks.py [--sizes 1 10 50 120 500 1000]

For each fleet size N, targeted by tag (one command) and by ids (one command per 50 ids, the most
SendCommand takes), on one executing emulator over real HTTP:

1. the fleet is set offline and the batch sent: every invocation is listed and Pending, so a check
   finds the fleet running; each approach makes one check and the emulator counts its calls;
2. the fleet comes back online, the batch runs, and one instance fails (exit code 3): the last one
   of the target order, so its invocation is on the last page of the listing;
3. each approach makes one more check: its calls, its verdict (the right one is "failed") and
   whether it names the failed instance.

Approaches: our `SsmRunCommandFleetSensor` (a reschedule-mode check is one `poke()` in a new
process; the deferrable trigger's check is `read_verdict()`, when this branch has the trigger),
the provider's `SsmRunCommandCompletedSensor.poke()` and its deferrable `SsmRunCommandTrigger`
(one sensor or trigger per command, the only way they can watch N > 50 ids). A check of the
provider's trigger is one attempt of its waiter: both snapshots of the counters are taken between
two attempts. The floor is ceil(N/50) ListCommandInvocations per check.

Over 350 lines for a reason: one benchmark, its set-up, its measurements and its table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import common
from common import CallCounter, Calls, Section, Table, describe_calls, floor_pages, total

SIZES = (1, 10, 50, 120, 500, 1000)
FAIL_EXIT_CODE = 3
TAG = {"Role": "bench"}
#: A 4-hour batch polled every 5 minutes: 47 checks find it running, the 48th finds the verdict.
NIGHT_CHECKS = 4 * 60 // 5


@dataclass
class Check:
    """One check of one approach: the calls it made and what it concluded."""

    calls: Calls
    verdict: str  # running, success, failed, or "error: ..."
    names_failed: bool = False


@dataclass
class Case:
    size: int
    targeting: str
    pages: int
    failed_on_page: int
    running: dict[str, Check] = field(default_factory=dict)
    final: dict[str, Check] = field(default_factory=dict)


# -- sending -------------------------------------------------------------------------------------------------
def send_batch(ssm: Any, targeting: str, ids: Sequence[str]) -> list[str]:
    common_kwargs = {
        "DocumentName": "AWS-RunShellScript",
        "Parameters": {"commands": ["true"]},
        "TimeoutSeconds": 3600,
        "MaxConcurrency": "100%",
        "MaxErrors": "100%",
    }
    if targeting == "tags":
        targets = [{"Key": f"tag:{k}", "Values": [v]} for k, v in TAG.items()]
        return [ssm.send_command(Targets=targets, **common_kwargs)["Command"]["CommandId"]]
    return [
        ssm.send_command(InstanceIds=list(ids[i : i + common.PAGE_SIZE]), **common_kwargs)["Command"][
            "CommandId"
        ]
        for i in range(0, len(ids), common.PAGE_SIZE)
    ]


def listing(ssm: Any, command_ids: Sequence[str]) -> list[list[dict[str, Any]]]:
    """Every page of every command, in order (read by the harness, not counted as a check)."""
    paginator = ssm.get_paginator("list_command_invocations")
    return [
        page["CommandInvocations"]
        for cid in command_ids
        for page in paginator.paginate(CommandId=cid, PaginationConfig={"PageSize": common.PAGE_SIZE})
    ]


def wait_listed(ssm: Any, command_ids: Sequence[str], size: int, finished: bool) -> list[list[dict]]:
    ended = ("Success", "Failed", "TimedOut", "Cancelled")
    pages: list[list[dict]] = []

    def ready() -> bool:
        nonlocal pages
        pages = listing(ssm, command_ids)
        items = [i for page in pages for i in page]
        return len(items) == size and (not finished or all(i["Status"] in ended for i in items))

    common.wait_until(ready, 300, f"{size} invocations {'finished' if finished else 'listed'}", pause=0.5)
    return pages


# -- the approaches ----------------------------------------------------------------------------------------
def ours_reschedule(command_ids: list[str], failing: str) -> Check:
    from ssm_fleet.compat import AirflowFailException
    from ssm_fleet.sensors.ssm import SsmRunCommandFleetSensor

    sensor = SsmRunCommandFleetSensor(task_id="wait", command_ids=command_ids, poke_interval=300)
    try:
        done = sensor.poke(common.context("wait"))
    except AirflowFailException as error:
        return Check({}, "failed", failing in str(error))
    return Check({}, "success" if done else "running")


def ours_deferrable_available() -> bool:
    try:
        from ssm_fleet.triggers.ssm import SsmFleetTrigger  # noqa: F401
    except ImportError:
        return False
    return True


def ours_deferrable(command_ids: list[str], failing: str) -> Check:
    """One check of our trigger, as the triggerer runs it: `read_verdict()`."""
    from ssm_fleet.triggers.ssm import SsmFleetTrigger
    from ssm_fleet.verdict import Outcome

    trigger = SsmFleetTrigger(
        command_ids=command_ids, deadline=time.time() + 3600, poll_interval=300, aws_conn_id="aws_default"
    )
    verdict = asyncio.run(trigger.read_verdict())
    if verdict.outcome is Outcome.RUNNING:
        return Check({}, "running")
    if verdict.outcome is Outcome.FAILED:
        return Check({}, "failed", any(i.instance_id == failing for i in verdict.failed))
    return Check({}, "success")


def provider_poke(command_ids: list[str], failing: str) -> Check:
    from airflow.providers.amazon.aws.sensors.ssm import SsmRunCommandCompletedSensor

    verdicts = []
    for number, cid in enumerate(command_ids):
        sensor = SsmRunCommandCompletedSensor(task_id=f"wait_{number}", command_id=cid, poke_interval=300)
        try:
            verdicts.append(("success" if sensor.poke(common.context(sensor.task_id)) else "running", False))
        except RuntimeError as error:
            verdicts.append(("failed", failing in str(error)))
    return _combine(verdicts)


def _combine(verdicts: list[tuple[str, bool]]) -> Check:
    """Several sensors (one per command) judge a fleet: any failed fails it, any running keeps it running."""
    for wanted in ("failed", "running"):
        hits = [named for verdict, named in verdicts if verdict == wanted]
        if hits:
            return Check({}, wanted, any(hits))
    return Check({}, "success")


def _provider_trigger(cid: str) -> Any:
    from airflow.providers.amazon.aws.triggers.ssm import SsmRunCommandTrigger

    return SsmRunCommandTrigger(
        command_id=cid, waiter_delay=1, waiter_max_attempts=1000, aws_conn_id="aws_default"
    )


async def _first_event(trigger: Any) -> dict[str, Any]:
    events = trigger.run()
    try:
        event = await events.__anext__()
        return dict(event.payload)
    finally:
        await events.aclose()


def provider_deferrable_final(command_ids: list[str], failing: str) -> Check:
    verdicts = []
    for cid in command_ids:
        try:
            event = asyncio.run(_first_event(_provider_trigger(cid)))
        except Exception as error:  # the waiter raises on an AWS-level failure (Cancelled, TimedOut)
            verdicts.append(("failed", failing in str(error)))
            continue
        verdicts.append((str(event["status"]), failing in json.dumps(event)))
    return _combine([("failed" if v == "failed" else "success", n) for v, n in verdicts])


def provider_deferrable_running(control: Any) -> Callable[[list[str], str], Check]:
    """One waiter attempt of each command's trigger on a running fleet: calls between two attempts."""

    def gci() -> int:
        return int(control.counters().get("GetCommandInvocation", {}).get("calls", 0))

    async def one_attempt(cid: str) -> Calls:
        task = asyncio.ensure_future(_first_event(_provider_trigger(cid)))
        try:
            base = await asyncio.to_thread(gci)
            snapshots = []
            for wanted in (base + 1, base + 2):
                while await asyncio.to_thread(gci) < wanted:
                    if task.done():
                        raise RuntimeError(f"the provider's trigger ended early: {task.result()}")
                    await asyncio.sleep(0.05)
                snapshots.append(common.accepted(await asyncio.to_thread(control.counters)))
            return common.diff(snapshots[1], snapshots[0])
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def check(command_ids: list[str], failing: str) -> Check:
        calls: Calls = {}
        for cid in command_ids:
            for action, n in asyncio.run(one_attempt(cid)).items():
                calls[action] = calls.get(action, 0) + n
        return Check(calls, "running")

    return check


# -- one fleet size ----------------------------------------------------------------------------------------
def approaches(control: Any) -> dict[str, tuple[Callable, Callable]]:
    """Map each approach's name to its (running check, final check)."""
    found = {"ours reschedule": (ours_reschedule, ours_reschedule)}
    if ours_deferrable_available():
        found["ours deferrable"] = (ours_deferrable, ours_deferrable)
    found["provider poke"] = (provider_poke, provider_poke)
    found["provider deferrable"] = (provider_deferrable_running(control), provider_deferrable_final)
    return found


def measure(
    control: Any, check: Callable[[list[str], str], Check], command_ids: list[str], failing: str
) -> Check:
    with CallCounter(control) as counter:
        try:
            result = check(command_ids, failing)
        except Exception as error:
            result = Check({}, f"error: {type(error).__name__}: {str(error)[:120]}")
    if not result.calls:  # the provider's running trigger measures its own window
        result.calls = counter.calls
    return result


def measure_size(size: int) -> list[Case]:
    from ssm_emulator import EmulatorServer

    cases = []
    with EmulatorServer(port=0, instances=0) as emu:
        ids = emu.add_instances(size, tags=TAG)
        failing = ids[-1]
        common.use_emulator(emu.endpoint_url)
        ssm = common.boto3_ssm(emu.endpoint_url)
        emu.control.force_exit(failing, FAIL_EXIT_CODE)
        for targeting in ("tags", "ids"):
            emu.control.set_offline(ids)
            command_ids = send_batch(ssm, targeting, ids)
            wait_listed(ssm, command_ids, size, finished=False)
            checks = approaches(emu.control)
            running = {
                name: measure(emu.control, pair[0], command_ids, failing) for name, pair in checks.items()
            }
            emu.control.set_offline(ids, offline=False)
            pages = wait_listed(ssm, command_ids, size, finished=True)
            page_of_failure = next(
                n for n, page in enumerate(pages, 1) if any(i["InstanceId"] == failing for i in page)
            )
            final = {
                name: measure(emu.control, pair[1], command_ids, failing) for name, pair in checks.items()
            }
            cases.append(Case(size, targeting, len(pages), page_of_failure, running, final))
    return cases


# -- tables --------------------------------------------------------------------------------------------------
def _verdict(check: Check) -> str:
    if check.verdict == "failed":
        return "**right** (failed" + (", names it)" if check.names_failed else ", names no instance)")
    return f"WRONG ({check.verdict})"


def at_floor(case: Case, check: Check) -> bool:
    return check.calls == {"ListCommandInvocations": floor_pages(case.size)}


def tables(cases: list[Case]) -> list[Table]:
    names = list(cases[0].running)
    ours = [n for n in names if n.startswith("ours")]
    running = Table(
        "AWS calls of one status check while the fleet runs",
        ["N", "target", "floor", *names, *(f"{n} at the floor" for n in ours)],
        [],
        [
            "floor = ceil(N/50) ListCommandInvocations (LCI) pages; " + common.ABBREVIATIONS,
            "The fleet is listed and Pending (set offline before the send, so nothing ends under the check).",
            "By ids the fleet is one command per 50 ids; the provider's sensor and trigger watch one command "
            "each, so it takes ceil(N/50) of them (SendCommand refuses more than 50 ids).",
            "The provider's deferrable check is one attempt of its waiter: one GCI per command, for the "
            "first instance it has not seen end (its first check also lists the command: 1 LCI).",
        ],
    )
    final = Table(
        "The last check: AWS calls and verdict (one instance failed, on the last page)",
        ["N", "target", "pages", *names],
        [],
        [
            f"Every instance ended; the last one of the target order exited {FAIL_EXIT_CODE}, and its "
            "invocation is on the last page of the listing (`pages`: page of the failure / pages). "
            "The right verdict is `failed`; `names it` = the error or event names the failed instance.",
            "Our last check also reads the failed instance's output (GCI: stdout 24,000, stderr 8,000 "
            "chars) for the alert. The provider's trigger reads every instance of the first page, "
            "one GCI each.",
        ],
    )
    for case in cases:
        row: list[object] = [case.size, case.targeting, f"{floor_pages(case.size)} LCI"]
        row += [describe_calls(case.running[n].calls) for n in names]
        row += ["yes" if at_floor(case, case.running[n]) else "**no**" for n in ours]
        running.rows.append(row)
        cells = [f"{describe_calls(case.final[n].calls)}: {_verdict(case.final[n])}" for n in names]
        final.rows.append([case.size, case.targeting, f"{case.failed_on_page}/{case.pages}", *cells])
    night = Table(
        "Calls per night: a 4-hour batch checked every 5 minutes",
        ["N", "target", *names],
        [],
        [
            f"{NIGHT_CHECKS} checks: {NIGHT_CHECKS - 1} find the fleet running, the last one finds the "
            "verdict; computed from the calls per check measured above.",
            "The provider's defaults would not last the night: `max_retries` (75) x `poke_interval` (120 s) "
            "is 2.5 hours for its deferrable sensor; here every approach checks every 300 s.",
        ],
    )
    for case in cases:
        cells = []
        for n in names:
            calls = (NIGHT_CHECKS - 1) * total(case.running[n].calls) + total(case.final[n].calls)
            right = "" if case.final[n].verdict == "failed" else " (wrong verdict)"
            cells.append(f"{calls:g}{right}")
        night.rows.append([case.size, case.targeting, *cells])
    return [running, final, night]


def run(sizes: Sequence[int] = SIZES) -> Section:
    started = time.perf_counter()
    cases = []
    for size in sizes:
        print(f"  checks: {size} instances ...", flush=True)
        cases += measure_size(size)
    data = [
        {
            "size": c.size,
            "targeting": c.targeting,
            "floor_lci": floor_pages(c.size),
            "pages": c.pages,
            "failed_on_page": c.failed_on_page,
            "running": {n: vars(check) for n, check in c.running.items()},
            "final": {n: vars(check) for n, check in c.final.items()},
        }
        for c in cases
    ]
    return Section("checks", tables(cases), data, time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    section = run(parser.parse_args().sizes)
    for table in section.tables:
        print(table.markdown())


if __name__ == "__main__":
    main()
