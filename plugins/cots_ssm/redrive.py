"""Clear as a redrive: which instances of a fleet run go again, and which stay as they ended.

Pure Python, no Airflow import. After a Clear, an instance whose latest invocation in the run
ended ``Success`` is not run again; one still running is watched, not sent again; every other
instance of the fleet (failed, timed out, cancelled, undeliverable, terminated, never started)
gets a new command, as AWS Step Functions' redrive and Rundeck's "retry failed nodes" do.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cots_ssm.status import InvocationResult, is_running, is_success, latest_per_instance

#: How an instance that no earlier command ever listed is counted.
NEVER_STARTED = "never started"


@dataclass(frozen=True)
class RedrivePlan:
    """What a Clear of a fleet run sends again.

    :param fleet: every instance of the run (earlier attempts and the fleet resolved now).
    :param rerun: the instances that get a new command, sorted.
    :param succeeded: the instances whose latest invocation ended ``Success``.
    :param running: the instances whose latest invocation is still running (watched, not re-sent).
    :param reasons: why each re-run instance goes again, counted (``Failed``, ``never started``...).
    """

    fleet: tuple[str, ...]
    rerun: tuple[str, ...]
    succeeded: tuple[str, ...]
    running: tuple[str, ...]
    reasons: tuple[tuple[str, int], ...]

    def describe(self) -> str:
        """E.g. ``Redrive: 3 of 120 instances (2 Failed, 1 Cancelled); 117 already succeeded``."""
        why = ", ".join(f"{n} {reason}" for reason, n in self.reasons)
        line = f"Redrive: {len(self.rerun)} of {len(self.fleet)} instances"
        line += f" ({why})" if why else ""
        line += f"; {len(self.succeeded)} already succeeded"
        if self.running:
            line += f"; {len(self.running)} still running (watched, not sent again)"
        return line


def plan_redrive(earlier: Sequence[InvocationResult], fleet_now: Iterable[str]) -> RedrivePlan:
    """Decide the redrive from the earlier attempts' invocations (in command order) and the fleet."""
    latest = latest_per_instance(earlier)
    fleet = sorted(set(latest) | set(fleet_now))
    succeeded, running, rerun = [], [], []
    reasons: Counter[str] = Counter()
    for instance_id in fleet:
        invocation = latest.get(instance_id)
        if invocation is not None and is_success(invocation.status):
            succeeded.append(instance_id)
        elif invocation is not None and is_running(invocation.status):
            running.append(instance_id)
        else:
            rerun.append(instance_id)
            reasons[invocation.status.value if invocation else NEVER_STARTED] += 1
    return RedrivePlan(
        fleet=tuple(fleet),
        rerun=tuple(rerun),
        succeeded=tuple(succeeded),
        running=tuple(running),
        reasons=tuple(sorted(reasons.items(), key=lambda item: (-item[1], item[0]))),
    )
