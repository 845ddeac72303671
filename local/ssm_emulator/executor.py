"""Running invocation scripts as real processes, each in its own process group.

Like the SSM agent, the emulator writes the commands to `_script.sh` in an orchestration
directory (`<state_dir>/commands/<command_id>/<instance_id>/`) and captures stdout and stderr
to files there, so no thread is needed per process. The scheduler polls the processes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

#: Read at most this many bytes of an output file (enough for 24,000 4-byte characters).
_READ_LIMIT = 24_000 * 4

# Runs the script after an injected delay, then exits with a forced code when one is set.
_FAULT_WRAPPER = 'sleep "$1"; bash "$2"; rc=$?; if [ -n "$3" ]; then rc=$3; fi; exit "$rc"'


@dataclass(frozen=True)
class ProcessSpec:
    """What to run for one invocation."""

    command_id: str
    instance_id: str
    commands: list[str]
    cwd: Path
    env: dict[str, str]
    extra_seconds: float = 0.0
    forced_code: int | None = None


@dataclass
class RunningProcess:
    """A started invocation script."""

    popen: subprocess.Popen[bytes]
    orchestration_dir: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def stdout_path(self) -> Path:
        return self.orchestration_dir / "stdout"

    @property
    def stderr_path(self) -> Path:
        return self.orchestration_dir / "stderr"


def live_process_groups() -> set[int] | None:
    """Return the process groups that have a member that is not a zombie (None without /proc).

    Zombies count as gone: in a container whose PID 1 does not reap, killed orphans stay zombies.
    """
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    groups = set()
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":
            groups.add(int(fields[2]))
    return groups


def group_alive(pgid: int) -> bool:
    """Tell whether a process group still has a member that is not a zombie."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    live = live_process_groups()
    return live is None or pgid in live


def read_output(path: Path, limit: int = _READ_LIMIT) -> str:
    """Read the start of an output file as text (invalid UTF-8 is replaced)."""
    try:
        with path.open("rb") as handle:
            return handle.read(limit).decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""


class ProcessRunner:
    """Starts, polls and kills invocation processes; remembers every process group it made."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self._groups: set[int] = set()
        self._running: dict[int, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()

    def spawn(self, spec: ProcessSpec) -> RunningProcess:
        """Start the script of one invocation in a new session (so a new process group)."""
        orchestration_dir = self.state_dir / "commands" / spec.command_id / spec.instance_id
        orchestration_dir.mkdir(parents=True, exist_ok=True)
        script = orchestration_dir / "_script.sh"
        script.write_text("\n".join(spec.commands) + "\n")
        args = ["bash", str(script)]
        if spec.extra_seconds > 0 or spec.forced_code is not None:
            forced = "" if spec.forced_code is None else str(spec.forced_code)
            args = [
                "bash",
                "-c",
                _FAULT_WRAPPER,
                "ssm-emulator",
                str(spec.extra_seconds),
                str(script),
                forced,
            ]
        with (
            (orchestration_dir / "stdout").open("wb") as out,
            (orchestration_dir / "stderr").open("wb") as err,
        ):
            popen = subprocess.Popen(
                args,
                cwd=spec.cwd,
                env=spec.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        with self._lock:
            self._groups.add(popen.pid)
            self._running[popen.pid] = popen
        return RunningProcess(popen=popen, orchestration_dir=orchestration_dir)

    def poll(self, process: RunningProcess) -> int | None:
        """Return the exit code once the script's shell has exited (reaping it), else None."""
        code = process.popen.poll()
        if code is not None:
            with self._lock:
                self._running.pop(process.pid, None)
            self._forget_if_gone(process.pid)
        return code

    def kill(self, process: RunningProcess) -> None:
        """SIGKILL the whole process group of a script (what the agent does on timeout or cancel)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)

    def kill_all(self, wait_seconds: float = 5.0) -> list[int]:
        """SIGKILL every process group this runner started that may still have members, and reap."""
        with self._lock:
            groups = sorted(self._groups)
            running = list(self._running.values())
            self._groups.clear()
            self._running.clear()
        for pgid in groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
        deadline = time.monotonic() + wait_seconds
        for popen in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(timeout=max(0.01, deadline - time.monotonic()))
        return groups

    def live_groups(self) -> list[int]:
        """Return the process groups started here that still have a live member."""
        with self._lock:
            groups = sorted(self._groups)
        live = live_process_groups()
        if live is None:
            return [pgid for pgid in groups if group_alive(pgid)]
        return [pgid for pgid in groups if pgid in live]

    def _forget_if_gone(self, pgid: int) -> None:
        # A script may leave background children behind in its group; keep tracking those groups
        # so that stop() can kill them.
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            with self._lock:
                self._groups.discard(pgid)
