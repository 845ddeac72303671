"""How one fleet run becomes SSM commands: chunks of 50 ids, tag targets, run tokens.

Pure Python, no Airflow import. SendCommand has no idempotency token, so each command carries a
token in its Comment: the digest of the Airflow run, the attempt (1, then one more for each Clear
of the run) and the chunk. Whoever needs the run's commands (a retry, a redrive, the teardown,
the DAG's failure callback) finds them by that token through ListCommands, never through XCom alone.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from ssm_fleet.validation import MAX_INSTANCE_IDS_PER_COMMAND

_TOKEN = re.compile(
    r"\[af:(?P<digest>[0-9a-f]{16})(?: r(?P<attempt>\d{1,3}))?"
    r" (?:(?P<index>\d{1,3})/(?P<total>\d{1,3})|re(?P<resend>\d))\]$"
)
#: Room the token takes in the Comment: " [af:" + 16 hex + " r" + 3 digits + " " + "NNN/NNN" + "]".
#: A re-send's token (" re<k>" for " NNN/NNN") is shorter, so it fits the same room.
TOKEN_CHARS = 35
#: A re-send's chunk number: above any real chunk (at most 999), so it sorts after them all.
RESEND_CHUNK_BASE = 1000


class Token(NamedTuple):
    """What a Comment token says: whose run, which attempt, which chunk of how many.

    A re-send's token (``[af:<digest> r<attempt> re<k>]``, the host's ``k``-th automatic re-send
    within the attempt, one host per command) has ``resend`` k, chunk ``RESEND_CHUNK_BASE + k`` and
    total 0.
    """

    digest: str
    attempt: int
    chunk: int
    total: int
    resend: int = 0


def resend_comment(digest: str, attempt: int, resend: int, user_comment: str = "") -> str:
    """The Comment of a host's ``resend``-th automatic re-send within ``attempt`` (1-9)."""
    if not 1 <= resend <= 9:
        raise ValueError(f"resend={resend!r} is invalid: a host is re-sent 1 to 9 times")
    token = f"[af:{digest} r{attempt} re{resend}]"
    return f"{user_comment} {token}" if user_comment else token


def user_comment(comment: str | None) -> str:
    """A Comment without its run token: what the user wrote."""
    return _TOKEN.sub("", comment or "").rstrip()


def run_digest(*parts: str) -> str:
    """A short stable digest of the Airflow run identity (dag_id, run_id, task_id, map_index)."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


#: How far before the run's own time its commands are looked for (clock skew, a late-starting run).
LOOKUP_MARGIN = timedelta(hours=1)


def current_attempt(context: Mapping[str, Any]) -> int:
    """1 for a run never cleared, one more for each Clear (Airflow's ``clear_number``)."""
    number = getattr(context.get("dag_run"), "clear_number", 0)
    return int(number or 0) + 1


def lookup_since(context: Mapping[str, Any]) -> datetime:
    """Commands of this run were sent after the run was due (or created), give or take an hour."""
    dag_run = context.get("dag_run")
    since = getattr(dag_run, "run_after", None) or getattr(dag_run, "start_date", None)
    return (since or datetime.now(UTC) - timedelta(days=1)) - LOOKUP_MARGIN


def run_token_digest(dag_id: str, run_id: str, run_task_id: str, map_index: int | str = -1) -> str:
    """The token digest of the commands that task ``run_task_id`` sends in DAG run ``run_id``."""
    return run_digest(dag_id, run_id, run_task_id, str(map_index))


def tag_targets(tags: Mapping[str, Sequence[str]]) -> list[dict[str, Any]]:
    """``{"Role": ["batch"]}`` becomes ``[{"Key": "tag:Role", "Values": ["batch"]}]`` (keys are ANDed)."""
    return [{"Key": f"tag:{key}", "Values": list(values)} for key, values in tags.items()]


@dataclass(frozen=True)
class CommandChunk:
    """One SendCommand of a fleet run.

    :param index: 1-based position of this chunk.
    :param total: how many chunks the attempt has.
    :param digest: the run digest the Comment token carries.
    :param attempt: 1 for the first attempt of the run, one more for each Clear (default: 1).
    :param instance_ids: the (at most 50) instance ids of this chunk, if targeting by id.
    :param targets: the SSM ``Targets`` of this chunk, if targeting by tag.
    """

    index: int
    total: int
    digest: str
    attempt: int = 1
    instance_ids: tuple[str, ...] = ()
    targets: tuple[dict[str, Any], ...] = ()

    @property
    def token(self) -> Token:
        """The run token of this chunk."""
        return Token(self.digest, self.attempt, self.index, self.total)

    def comment(self, user_comment: str = "") -> str:
        """The command's ``Comment``: the user's text, then the run token."""
        token = f"[af:{self.digest} r{self.attempt} {self.index}/{self.total}]"
        return f"{user_comment} {token}" if user_comment else token

    def target_kwargs(self) -> dict[str, Any]:
        """The SendCommand arguments that name this chunk's targets."""
        if self.instance_ids:
            return {"InstanceIds": list(self.instance_ids)}
        return {"Targets": [dict(t) for t in self.targets]}

    def describe(self) -> str:
        """E.g. ``chunk 2/3 (50 instances: i-0a..., i-0b..., ...)`` or ``chunk 1/1 (tag:Role=batch)``."""
        if self.instance_ids:
            shown = ", ".join(self.instance_ids[:5]) + (", ..." if len(self.instance_ids) > 5 else "")
            what = f"{len(self.instance_ids)} instance(s): {shown}"
        else:
            what = "; ".join(f"{t['Key']}={','.join(t['Values'])}" for t in self.targets)
        return f"chunk {self.index}/{self.total} ({what})"


def plan_chunks(
    digest: str,
    *,
    attempt: int = 1,
    instance_ids: Sequence[str] | None = None,
    tags: Mapping[str, Sequence[str]] | None = None,
) -> list[CommandChunk]:
    """Split an attempt into SendCommand calls: 120 ids become 3 commands; tags are one command."""
    if tags:
        return [CommandChunk(1, 1, digest, attempt, targets=tuple(tag_targets(tags)))]
    ids = list(instance_ids or ())
    size = MAX_INSTANCE_IDS_PER_COMMAND
    groups = [tuple(ids[i : i + size]) for i in range(0, len(ids), size)]
    return [CommandChunk(n, len(groups), digest, attempt, instance_ids=g) for n, g in enumerate(groups, 1)]


def parse_token(comment: str | None) -> Token | None:
    """Return the :class:`Token` of a Comment we wrote (attempt 1 when it has none), else ``None``."""
    match = _TOKEN.search(comment or "")
    if not match:
        return None
    attempt = int(match["attempt"] or 1)
    if match["resend"]:
        resend = int(match["resend"])
        return Token(match["digest"], attempt, RESEND_CHUNK_BASE + resend, 0, resend)
    return Token(match["digest"], attempt, int(match["index"]), int(match["total"]))


def run_commands(digest: str, commands: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The commands of one run: those whose Comment carries its token's digest (any attempt)."""
    mine = []
    for command in commands:
        token = parse_token(command.get("Comment"))
        if token and token.digest == digest:
            mine.append(command)
    return mine
