"""The one thread that moves invocations through their states and runs their processes.

Each tick it decides under the service lock (deliver, start, time out, terminate), then starts,
kills and polls processes outside the lock, then records the results under the lock again. One
thread serves every instance, so 1,000 instances cost 1,000 processes, not 1,000 threads.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ssm_emulator.executor import ProcessRunner, ProcessSpec, RunningProcess, read_output
from ssm_emulator.models import STDERR_LIMIT, STDOUT_LIMIT, EmulatedCommand, Invocation
from ssm_emulator.statuses import NOT_STARTED_CODE, STOPPED_EXIT_CODE, Details, Status

if TYPE_CHECKING:
    from ssm_emulator.faults import FaultState
    from ssm_emulator.instances import InstanceRegistry

log = logging.getLogger(__name__)

TICK_SECONDS = 0.05


@dataclass
class _Plan:
    starts: list[tuple[Invocation, ProcessSpec]] = field(default_factory=list)
    kills: list[RunningProcess] = field(default_factory=list)
    running: list[tuple[Invocation, RunningProcess]] = field(default_factory=list)
    touched: set[EmulatedCommand] = field(default_factory=set)


class Scheduler:
    """Drives the active commands of one emulator."""

    def __init__(
        self,
        lock: threading.RLock,
        active_commands: Callable[[], list[EmulatedCommand]],
        runner: ProcessRunner,
        faults: FaultState,
        registry: InstanceRegistry,
        base_env: dict[str, str],
        on_finished: Callable[[Invocation, RunningProcess], None] | None = None,
    ) -> None:
        self.lock = lock
        self.active_commands = active_commands
        self.runner = runner
        self.faults = faults
        self.registry = registry
        self.base_env = base_env
        self.on_finished = on_finished
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ssm-emulator-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def wake(self) -> None:
        """Run a tick now (after SendCommand, CancelCommand or a fault change)."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.tick()
            except Exception:  # the thread must survive a bad tick; the next one retries
                log.exception("scheduler tick failed")
            self._wake.wait(TICK_SECONDS)
            self._wake.clear()

    def tick(self) -> None:
        """Advance every active command by one step."""
        plan = _Plan()
        now = time.monotonic()
        with self.lock:
            for command in self.active_commands():
                self._plan_command(command, now, plan)
        started = [(invocation, self._spawn(invocation, spec)) for invocation, spec in plan.starts]
        for process in plan.kills:
            self.runner.kill(process)
        finished = [
            (inv, proc, code) for inv, proc in plan.running if (code := self._poll(inv, proc)) is not None
        ]
        outputs = [(inv, proc, code, *self._outputs(proc)) for inv, proc, code in finished]
        with self.lock:
            for invocation, process in started:
                self._attach(invocation, process, plan)
            for invocation, _process, code, stdout, stderr in outputs:
                self._finish(invocation, code, stdout, stderr)
                plan.touched.add(invocation.command)
            for command in plan.touched:
                command.refresh()
        for invocation, process, *_ in outputs:
            if self.on_finished is not None:
                self.on_finished(invocation, process)

    # -- deciding (lock held) ------------------------------------------------------------
    def _plan_command(self, command: EmulatedCommand, now: float, plan: _Plan) -> None:
        if command.awaiting_targets(now):
            return  # SSM has not resolved its targets yet: nothing to deliver
        running = sum(1 for inv in command.invocations if inv.active and inv.status is not Status.PENDING)
        terminate = command.errors_exceeded()
        for invocation in command.invocations:
            if invocation.status is Status.PENDING:
                if self._plan_pending(invocation, now, terminate, running < command.concurrency, plan):
                    running += 1
            elif invocation.active:
                self._plan_running(invocation, now, plan)

    def _plan_pending(
        self, invocation: Invocation, now: float, terminate: bool, slot: bool, plan: _Plan
    ) -> bool:
        command = invocation.command
        if terminate:
            invocation.finish(Status.CANCELLED, Details.TERMINATED, NOT_STARTED_CODE)
        elif now >= command.delivery_deadline:
            invocation.finish(Status.TIMED_OUT, Details.DELIVERY_TIMED_OUT, NOT_STARTED_CODE)
        elif slot and self.registry.is_online(invocation.instance_id):
            return self._plan_start(invocation, now, plan)
        else:
            return False
        plan.touched.add(command)
        return False

    def _plan_start(self, invocation: Invocation, now: float, plan: _Plan) -> bool:
        command = invocation.command
        invocation.start()
        invocation.started_monotonic = now
        plan.touched.add(command)
        cwd = self._working_directory(invocation)
        if not cwd.is_dir():
            message = f"failed to run commands: working directory {cwd} does not exist\n"
            invocation.finish(Status.FAILED, Details.FAILED, 1, stderr=message)
            return False
        extra, forced = self.faults.script_faults(invocation.instance_id)
        spec = ProcessSpec(
            command_id=command.command_id,
            instance_id=invocation.instance_id,
            commands=command.request.commands,
            cwd=cwd,
            env=self._env(invocation),
            extra_seconds=extra,
            forced_code=forced,
        )
        plan.starts.append((invocation, spec))
        return True

    def _plan_running(self, invocation: Invocation, now: float, plan: _Plan) -> None:
        process = invocation.process
        if process is None:
            return
        timeout = invocation.command.request.execution_timeout
        started = invocation.started_monotonic or now
        if not invocation.stop_reason and now - started >= timeout:
            invocation.stop_reason = Details.EXECUTION_TIMED_OUT
            plan.kills.append(process)
        elif not invocation.stop_reason and invocation.cancel_requested:
            invocation.stop_reason = Details.CANCELLED
            plan.kills.append(process)
        plan.running.append((invocation, process))

    def _attach(self, invocation: Invocation, process: RunningProcess | None, plan: _Plan) -> None:
        if process is None:
            invocation.finish(Status.FAILED, Details.FAILED, 1, stderr=invocation.spawn_error)
            plan.touched.add(invocation.command)
            return
        invocation.process = process
        if invocation.cancel_requested:
            invocation.stop_reason = Details.CANCELLED
            self.runner.kill(process)
        log.debug(
            "started %s on %s (pid %s)", invocation.command.command_id, invocation.instance_id, process.pid
        )

    def _working_directory(self, invocation: Invocation) -> Path:
        requested = invocation.command.request.working_directory
        if requested:
            return Path(requested)
        path = self.runner.state_dir / "instances" / invocation.instance_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _env(self, invocation: Invocation) -> dict[str, str]:
        env = dict(self.base_env)
        env["AWS_SSM_INSTANCE_ID"] = invocation.instance_id
        env["INSTANCE_ID"] = invocation.instance_id
        env["AWS_SSM_REGION_NAME"] = invocation.command.region
        env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = invocation.command.region
        return env

    # -- running (no lock) -----------------------------------------------------------------
    def _spawn(self, invocation: Invocation, spec: ProcessSpec) -> RunningProcess | None:
        try:
            process = self.runner.spawn(spec)
        except OSError as error:
            invocation.spawn_error = f"failed to run commands: {error}\n"
            return None
        self.faults.count_execution(spec.instance_id, spec.command_id, process.pid)
        return process

    def _poll(self, invocation: Invocation, process: RunningProcess) -> int | None:
        code = self.runner.poll(process)
        if code is not None:
            code = shell_exit_code(code)
            self.faults.execution_log.ended(invocation.instance_id, invocation.command.command_id, code)
        return code

    def _outputs(self, process: RunningProcess) -> tuple[str, str]:
        return read_output(process.stdout_path, STDOUT_LIMIT * 4), read_output(
            process.stderr_path, STDERR_LIMIT * 4
        )

    # -- recording (lock held) ------------------------------------------------------------
    def _finish(self, invocation: Invocation, code: int, stdout: str, stderr: str) -> None:
        # As the agent does: the status follows the exit code, and only the code of a process it
        # stopped itself (128 + SIGKILL) turns into TimedOut or Cancelled.
        reason = invocation.stop_reason if code == STOPPED_EXIT_CODE else None
        if reason is Details.EXECUTION_TIMED_OUT:
            timeout = invocation.command.request.execution_timeout
            stderr += f"\nfailed to run commands: execution timed out after {timeout} seconds\n"
            invocation.finish(Status.TIMED_OUT, reason, code, stdout, stderr)
        elif reason is Details.CANCELLED:
            invocation.finish(Status.CANCELLED, Details.CANCELLED, code, stdout, stderr)
        elif code == 0:
            invocation.finish(Status.SUCCESS, Details.SUCCESS, 0, stdout, stderr)
        else:
            separator = "" if not stderr or stderr.endswith("\n") else "\n"
            stderr += f"{separator}failed to run commands: exit status {code}"
            invocation.finish(Status.FAILED, Details.FAILED, code, stdout, stderr)
        log.info(
            "%s on %s: %s (%s), exit code %s",
            invocation.command.command_id,
            invocation.instance_id,
            invocation.status,
            invocation.details,
            invocation.response_code,
        )


def shell_exit_code(code: int) -> int:
    """Report a process killed by a signal (negative code) as a shell would: 128 + signal."""
    return 128 - code if code < 0 else code


def base_environment(endpoint_url: str) -> dict[str, str]:
    """Return the environment every script starts from: ours, pointed at the emulator."""
    env = dict(os.environ)
    env["AWS_ENDPOINT_URL"] = endpoint_url
    env.setdefault("AWS_ACCESS_KEY_ID", "testing")
    env.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    return env
