"""What every benchmark of `make bench` shares: paths, AWS set-up, call counting, tables, the machine.

Not a test module: the benchmarks print what they measured (AWS calls are counted by the local
emulator, `local/ssm_emulator`, over real HTTP) and never assert a figure.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT / "local", ROOT / "plugins", ROOT / "benchmarks"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-airflow-"))
# The operators' and sensors' own logs would drown the tables: the benchmarks count, they do not narrate.
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "ERROR")
os.environ.update(
    {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
)
for _leaked in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
    os.environ.pop(_leaked, None)

#: ListCommandInvocations returns at most this many invocations per page.
PAGE_SIZE = 50
#: Short names of the actions in the tables.
ACTION_NAMES = {
    "ListCommandInvocations": "LCI",
    "ListCommands": "LC",
    "GetCommandInvocation": "GCI",
    "SendCommand": "Send",
    "DescribeInstanceInformation": "DII",
    "CancelCommand": "Cancel",
}
ABBREVIATIONS = (
    "LCI = ListCommandInvocations, LC = ListCommands, GCI = GetCommandInvocation, "
    "DII = DescribeInstanceInformation."
)


def floor_pages(size: int) -> int:
    """The fewest ListCommandInvocations pages that can show every invocation of `size` instances."""
    return math.ceil(size / PAGE_SIZE)


def use_emulator(endpoint_url: str) -> None:
    """Point Airflow's `aws_default` connection (in this process) at the emulator."""
    os.environ["AIRFLOW_CONN_AWS_DEFAULT"] = json.dumps(
        {"conn_type": "aws", "extra": {"endpoint_url": endpoint_url, "region_name": "us-east-1"}}
    )


def boto3_ssm(endpoint_url: str) -> Any:
    import boto3

    return boto3.session.Session().client("ssm", endpoint_url=endpoint_url, region_name="us-east-1")


class FakeTaskInstance:
    """The little of a TaskInstance that operators and sensors use outside a scheduler run."""

    dag_id, run_id, map_index, try_number = "bench", "manual__bench", -1, 1

    def __init__(self, task_id: str, run_id: str = "manual__bench"):
        self.task_id, self.run_id = task_id, run_id
        self.xcom: dict[str, object] = {}

    def xcom_push(self, key: str, value: object) -> None:
        self.xcom[key] = value


def context(task_id: str, run_id: str = "manual__bench") -> dict[str, Any]:
    return {"ti": FakeTaskInstance(task_id, run_id), "dag_run": None}


# -- counting --------------------------------------------------------------------------------------------
Calls = dict[str, int]


def accepted(counters: Mapping[str, Mapping[str, int]]) -> Calls:
    return {action: c["calls"] for action, c in counters.items()}


def diff(after: Calls, before: Calls) -> Calls:
    """Calls made between two snapshots, by action (actions with none left out)."""
    out = {action: n - before.get(action, 0) for action, n in after.items()}
    return {action: n for action, n in sorted(out.items()) if n}


class CallCounter:
    """Counts the AWS calls the emulator received while a block ran."""

    def __init__(self, control: Any):
        self.control = control
        self.calls: Calls = {}

    def __enter__(self) -> CallCounter:
        self._before = accepted(self.control.counters())
        return self

    def __exit__(self, *exc: object) -> None:
        self.calls = diff(accepted(self.control.counters()), self._before)


def describe_calls(calls: Mapping[str, float]) -> str:
    """`{"ListCommandInvocations": 3, "ListCommands": 1}` -> `3 LCI + 1 LC`, the LCI first."""
    if not calls:
        return "0"
    order = sorted(calls, key=lambda a: (a != "ListCommandInvocations", a))
    return " + ".join(f"{calls[a]:g} {ACTION_NAMES.get(a, a)}" for a in order)


def total(calls: Mapping[str, float]) -> float:
    return sum(calls.values())


def wait_until(ready: Callable[[], bool], timeout: float, what: str, pause: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(pause)


# -- results ---------------------------------------------------------------------------------------------
@dataclass
class Table:
    """One table of the report: Markdown for people, rows for the JSON."""

    title: str
    headers: Sequence[str]
    rows: list[Sequence[object]]
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        lines = [f"### {self.title}", ""]
        lines.append("| " + " | ".join(self.headers) + " |")
        lines.append("|" + "|".join("---" for _ in self.headers) + "|")
        lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in self.rows]
        if self.notes:
            lines.append("")
            lines += [f"- {note}" for note in self.notes]
        return "\n".join(lines) + "\n"

    def as_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "rows": [dict(zip(self.headers, row, strict=True)) for row in self.rows],
            "notes": self.notes,
        }


@dataclass
class Section:
    """What one benchmark measured: its tables and the raw figures behind them."""

    name: str
    tables: list[Table]
    data: Any
    seconds: float = 0.0


# -- the machine -----------------------------------------------------------------------------------------
def _first(path: str, prefix: str) -> str:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(prefix):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def machine() -> dict[str, Any]:
    memory_kb = _first("/proc/meminfo", "MemTotal").split()[0]
    return {
        "cpu": _first("/proc/cpuinfo", "model name"),
        "cores": os.cpu_count(),
        "ram_gib": round(int(memory_kb) / 1024 / 1024, 1) if memory_kb.isdigit() else None,
        "os": platform.platform(),
        "python": platform.python_version(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def versions() -> dict[str, str]:
    found = {}
    for name in (
        "apache-airflow",
        "apache-airflow-providers-amazon",
        "boto3",
        "botocore",
        "aiobotocore",
        "moto",
    ):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def git_revision() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+changes" if dirty else "")
