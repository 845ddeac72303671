"""The failure alert the support team reads: subject and body, within SNS limits. Pure Python."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ssm_fleet.status import explain

SUBJECT_MAX_CHARS = 99
#: SNS takes 262,144 bytes; keep a margin for the JSON envelope of subscriptions.
BODY_MAX_BYTES = 250_000
_SUBJECT_UNSAFE = re.compile(r"[^\x20-\x7e]+")


@dataclass(frozen=True)
class FailureAlert:
    """What failed, gathered from the Airflow context by the notifier.

    :param dag_id: the DAG that failed.
    :param run_id: the DAG run.
    :param task_id: the task that failed.
    :param try_number: the try of that task.
    :param error: the task's exception text.
    :param log_url: the Airflow log of the failed try.
    :param failed_rows: result-table rows of failed instances (see ``InvocationResult.as_row``).
    :param fleet_size: how many instances the run targeted, if known.
    :param command_links: command id to SSM console URL.
    :param log_group_url: the CloudWatch output log group URL, if CloudWatch output is on.
    :param fleet_url: a page of the run's fleet in the Airflow UI, if the application has one.
    :param opening: the first line of the body (default: "Attention required: the fleet run failed.").
    :param headline: what the subject says failed, when no instance is named (default: the task).
    :param notes: lines the application adds to the head, e.g. who triggered the run with which
        values (default: none).
    """

    dag_id: str
    run_id: str
    task_id: str
    try_number: int | None = None
    error: str = ""
    log_url: str = ""
    failed_rows: Sequence[Mapping[str, Any]] = field(default=())
    fleet_size: int | None = None
    command_links: Mapping[str, str] = field(default_factory=dict)
    log_group_url: str = ""
    fleet_url: str = ""
    opening: str = "Attention required: the fleet run failed."
    headline: str = ""
    notes: Sequence[str] = ()

    def subject(self) -> str:
        """One line under 100 chars naming the DAG and what failed (SNS refuses anything else)."""
        if self.failed_rows:
            size = f"/{self.fleet_size}" if self.fleet_size else ""
            what = self.headline or f"{len(self.failed_rows)}{size} host(s) failed"
        else:
            what = self.headline or f"task {self.task_id} failed"
        text = _SUBJECT_UNSAFE.sub(" ", f"Airflow: {self.dag_id} - {what}").strip()
        return text if len(text) <= SUBJECT_MAX_CHARS else text[: SUBJECT_MAX_CHARS - 3] + "..."

    def body(self, max_bytes: int = BODY_MAX_BYTES) -> str:
        """The whole alert, instances dropped from the end (and said so) if it would exceed ``max_bytes``.

        Linear in the number of rows: each instance's lines are rendered once, and the listing stops
        where the bytes left (after the head, the tail and the "more" line) run out.
        """
        head, tail = self._head(), self._tail()
        budget = max_bytes - len(head.encode()) - len(tail.encode()) - len(_more_line(len(self.failed_rows)))
        shown: list[str] = []
        for count, row in enumerate(self.failed_rows):
            block = "\n".join(_instance_lines(row)) + "\n"
            size = len(block.encode())
            if size > budget:
                shown.append(_more_line(len(self.failed_rows) - count))
                break
            budget -= size
            shown.append(block)
        text = head + "".join(shown) + tail
        return text if len(text.encode()) <= max_bytes else text.encode()[:max_bytes].decode(errors="ignore")

    def _head(self) -> str:
        try_text = f" (try {self.try_number})" if self.try_number else ""
        lines = [
            self.opening,
            "",
            f"DAG:  {self.dag_id}",
            f"Run:  {self.run_id}",
            f"Task: {self.task_id}{try_text}",
            f"Log:  {self.log_url or 'n/a'}",
            *([f"Fleet: {self.fleet_url}"] if self.fleet_url else []),
            *(["", *self.notes] if self.notes else []),
            "",
            "Error:",
            *(f"  {line}" for line in (self.error or "n/a").splitlines()[:60]),
        ]
        if self.failed_rows:
            size = f" of {self.fleet_size}" if self.fleet_size else ""
            lines += ["", f"Failed instances ({len(self.failed_rows)}{size}):"]
        return "\n".join(lines) + "\n"

    def _tail(self) -> str:
        lines: list[str] = []
        if self.command_links:
            lines += ["", "SSM commands:", *(f"- {cid}: {url}" for cid, url in self.command_links.items())]
        if self.log_group_url:
            lines += ["", f"CloudWatch output: {self.log_group_url}"]
        return "\n".join(lines) + "\n" if lines else ""


def _more_line(hidden: int) -> str:
    return f"... and {hidden} more failed instance(s), see the log and the console.\n"


def _instance_lines(row: Mapping[str, Any]) -> list[str]:
    name = f" ({row['instance_name']})" if row.get("instance_name") else ""
    code = row.get("exit_code")
    lines = [
        f"- {row['instance_id']}{name}: {row['status']} ({row['status_details']}), "
        f"exit code {'n/a' if code is None else code} - {explain(row['status_details'])}",
        f"  command {row.get('command_id')}; started {row.get('started_at') or 'n/a'}, "
        f"ended {row.get('finished_at') or 'n/a'}",
    ]
    if row.get("resent"):  # what the wait did by itself before this host failed
        lines.append(f"  {row['resent']} (automatically, by the wait)")
    stderr = (row.get("stderr_tail") or "").splitlines()
    if stderr:
        lines += ["  stderr (last lines):", *(f"    {line}" for line in stderr)]
    for key in ("stdout_url", "stderr_url"):
        if row.get(key):
            lines.append(f"  {key.replace('_', ' ')}: {row[key]}")
    return lines


def fifo_ids(topic_arn: str, *parts: str) -> dict[str, str]:
    """``MessageGroupId`` and ``MessageDeduplicationId`` when the topic is FIFO, else nothing."""
    if not topic_arn.endswith(".fifo"):
        return {}
    group = re.sub(r"[^A-Za-z0-9!-/:-@\[-`{-~]", "_", parts[0])[:128] if parts else "airflow"
    dedup = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    return {"MessageGroupId": group or "airflow", "MessageDeduplicationId": dedup}
