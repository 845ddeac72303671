"""How one fleet run becomes SSM commands: chunks of 50 ids, tag targets, retry tokens.

Pure Python, no Airflow import. SendCommand has no idempotency token, so each command carries a
token in its Comment, derived from the Airflow run; a retry lists the commands already sent and
sends only the chunks that are missing.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cots_ssm.validation import MAX_INSTANCE_IDS_PER_COMMAND

_TOKEN = re.compile(r"\[af:(?P<digest>[0-9a-f]{16}) (?P<index>\d+)/(?P<total>\d+)\]$")
#: Room the token takes in the Comment: " [af:" + 16 hex + " " + "NNN/NNN" + "]".
TOKEN_CHARS = 30


def run_digest(*parts: str) -> str:
    """A short stable digest of the Airflow run identity (dag_id, run_id, task_id, map_index)."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


def tag_targets(tags: Mapping[str, Sequence[str]]) -> list[dict[str, Any]]:
    """``{"Role": ["cots"]}`` becomes ``[{"Key": "tag:Role", "Values": ["cots"]}]`` (keys are ANDed)."""
    return [{"Key": f"tag:{key}", "Values": list(values)} for key, values in tags.items()]


@dataclass(frozen=True)
class CommandChunk:
    """One SendCommand of a fleet run.

    :param index: 1-based position of this chunk.
    :param total: how many chunks the run has.
    :param digest: the run digest the Comment token carries.
    :param instance_ids: the (at most 50) instance ids of this chunk, if targeting by id.
    :param targets: the SSM ``Targets`` of this chunk, if targeting by tag.
    """

    index: int
    total: int
    digest: str
    instance_ids: tuple[str, ...] = ()
    targets: tuple[dict[str, Any], ...] = ()

    def comment(self, user_comment: str = "") -> str:
        token = f"[af:{self.digest} {self.index}/{self.total}]"
        return f"{user_comment} {token}" if user_comment else token

    def matches(self, command: Mapping[str, Any]) -> bool:
        """Whether an earlier ``command`` targets exactly what this chunk targets."""
        if self.instance_ids:
            return list(command.get("InstanceIds") or ()) == list(self.instance_ids)
        return [dict(t) for t in command.get("Targets") or ()] == [dict(t) for t in self.targets]

    def target_kwargs(self) -> dict[str, Any]:
        if self.instance_ids:
            return {"InstanceIds": list(self.instance_ids)}
        return {"Targets": [dict(t) for t in self.targets]}


def plan_chunks(
    digest: str,
    *,
    instance_ids: Sequence[str] | None = None,
    tags: Mapping[str, Sequence[str]] | None = None,
) -> list[CommandChunk]:
    """Split a run into SendCommand calls: 120 ids become 3 commands; tags are one command."""
    if tags:
        return [CommandChunk(1, 1, digest, targets=tuple(tag_targets(tags)))]
    ids = list(instance_ids or ())
    size = MAX_INSTANCE_IDS_PER_COMMAND
    groups = [tuple(ids[i : i + size]) for i in range(0, len(ids), size)]
    return [CommandChunk(n, len(groups), digest, instance_ids=g) for n, g in enumerate(groups, 1)]


def parse_token(comment: str | None) -> tuple[str, int, int] | None:
    """Return ``(digest, index, total)`` from a Comment we wrote, else ``None``."""
    match = _TOKEN.search(comment or "")
    if not match:
        return None
    return match["digest"], int(match["index"]), int(match["total"])


def sent_chunks(digest: str, commands: Sequence[Mapping[str, Any]]) -> dict[int, Mapping[str, Any]]:
    """Commands already sent for this run, by chunk index (the newest one wins)."""
    found: dict[int, Mapping[str, Any]] = {}
    ordered = sorted(commands, key=lambda c: str(c.get("RequestedDateTime") or ""))
    for command in ordered:
        token = parse_token(command.get("Comment"))
        if token and token[0] == digest:
            found[token[1]] = command
    return found
