"""Where the fleet page's data comes from: Airflow's database (run, XCom) and SSM (live runs).

Runs inside the API server. The run's commands are found by its run token through
:class:`~ssm_fleet.hooks.ssm.SsmFleetHook`, as the operator and the teardown find them; the rows are
read through :mod:`ssm_fleet.status`, as the sensor reads them.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from cots_ssm.deadline import parse_deadline, run_deadline
from cots_ssm.fleet.model import (
    FleetPage,
    HistoryPoint,
    LinkMaker,
    deadline_line,
    live_rows,
    views_from_rows,
)
from cots_ssm.overrides import param_defaults, run_overrides
from cots_ssm.tasks import FLEET_RUN
from cots_ssm.watch import LATE_TASK_ID
from ssm_fleet.plan import lookup_since, run_token_digest

log = logging.getLogger(__name__)

#: Runs of the DAG in the history chart.
HISTORY_RUNS = 30
#: Airflow run states after which nothing changes any more.
FINISHED_RUN_STATES = frozenset({"success", "failed"})


@dataclass(frozen=True)
class RunFacts:
    """What Airflow's database says of one DAG run.

    :param state: the run's state.
    :param start_date: when it started.
    :param end_date: when it ended.
    :param run_after: when it was due.
    :param rows: the sensor's recorded ``results`` rows, ``None`` if it recorded none.
    :param verdict: the sensor's recorded ``verdict`` summary.
    :param sent: what the run task returned (command ids, region, document, log group).
    :param aws_conn_id: the AWS connection of the run task.
    :param attempt: the run's attempt (1, then one more per Clear).
    :param overrides: who triggered the run with which values other than the job's, one per line.
    :param deadline_at: the run's deadline, if its job has one (default: None).
    :param timezone: the job's timezone, for the deadline (default: UTC).
    """

    state: str
    start_date: datetime | None = None
    end_date: datetime | None = None
    run_after: datetime | None = None
    rows: list[dict[str, Any]] | None = None
    verdict: Mapping[str, Any] = field(default_factory=dict)
    sent: Mapping[str, Any] = field(default_factory=dict)
    aws_conn_id: str = "aws_default"
    attempt: int = 1
    overrides: tuple[str, ...] = ()
    deadline_at: datetime | None = None
    timezone: str = "UTC"


@dataclass(frozen=True)
class LiveRead:
    """What SSM says of a run's commands now.

    :param commands: the run's commands (ListCommands), oldest first.
    :param invocations: every invocation of those commands.
    :param region: the region the commands ran in.
    :param error: why SSM could not be read, if it could not.
    """

    commands: list[dict[str, Any]] = field(default_factory=list)
    invocations: list[dict[str, Any]] = field(default_factory=list)
    region: str = ""
    error: str = ""


class FleetSource(Protocol):
    """Where the page reads runs, history and live SSM answers (Airflow's DB and SSM, or a fake)."""

    def run(self, dag_id: str, run_id: str, run_task_id: str, wait_task_id: str) -> RunFacts | None:
        """What Airflow recorded of one run: its sends, verdict and state (``None``: no such run)."""

    def history(self, dag_id: str, wait_task_id: str, limit: int) -> list[HistoryPoint]:
        """The latest runs of the DAG, newest first, at most ``limit``."""

    def live(self, dag_id: str, run_id: str, run_task_id: str, facts: RunFacts) -> LiveRead:
        """The run's invocations as SSM lists them now (for a run still running)."""

    def links(self, facts: RunFacts, region: str) -> LinkMaker:
        """The console links of the run's commands and output, in ``region`` unless the run names one."""


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())


@functools.lru_cache(maxsize=256)
def _conn_id(dag_id: str, task_id: str) -> str:
    """The AWS connection of the DAG's run task (read once per process: a live page polls)."""
    try:
        from airflow.models.serialized_dag import SerializedDagModel

        dag = SerializedDagModel.get_dag(dag_id)
        task = dag.get_task(task_id) if dag else None
        return str(getattr(task, "aws_conn_id", None) or "aws_default")
    except Exception:  # a DAG that no longer parses still has a fleet page
        log.debug("No AWS connection id for %s.%s; using aws_default", dag_id, task_id, exc_info=True)
        return "aws_default"


def _form_defaults(dag_id: str) -> dict[str, Any]:
    """The DAG's trigger-form defaults (the job's values) as deployed now (not cached: jobs change)."""
    try:
        from airflow.models.serialized_dag import SerializedDagModel

        return param_defaults(getattr(SerializedDagModel.get_dag(dag_id), "params", None))
    except Exception:  # a DAG that no longer parses: its overrides cannot be told
        log.debug("No trigger-form defaults for %s", dag_id, exc_info=True)
        return {}


def _deadline(dag_id: str, dag_run: Any) -> tuple[datetime | None, str]:
    """The run's deadline, from its job's watch task as deployed (none if the job has no deadline)."""
    try:
        from airflow.models.serialized_dag import SerializedDagModel

        dag = SerializedDagModel.get_dag(dag_id)
        if dag is None or not dag.has_task(LATE_TASK_ID):
            return None, "UTC"
        watch: Any = dag.get_task(LATE_TASK_ID)  # its template fields, as serialized
        zone = str(watch.deadline_timezone)
        run_type = str(getattr(dag_run.run_type, "value", dag_run.run_type))
        at = run_deadline(
            dag_run.logical_date or dag_run.run_after,
            parse_deadline(str(watch.deadline_text)),
            zone,
            run_type=run_type,
            schedule=str(watch.deadline_schedule),
        )
        return at, zone
    except Exception:  # a DAG that no longer parses still has a fleet page, without its deadline
        log.debug("No deadline for %s", dag_id, exc_info=True)
        return None, "UTC"


class AirflowSource:
    """The fleet page's data from Airflow's metadata database and from SSM through the hook."""

    def _xcoms(
        self, session: Any, dag_id: str, run_ids: Iterable[str], wanted: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str, str], Any]:
        from airflow.models.xcom import XComModel
        from sqlalchemy import select, tuple_

        query = select(XComModel).where(
            XComModel.dag_id == dag_id,
            XComModel.run_id.in_(list(run_ids)),
            XComModel.map_index == -1,
            tuple_(XComModel.task_id, XComModel.key).in_(list(wanted)),
        )
        return {
            (x.run_id, x.task_id, x.key): _json(XComModel.deserialize_value(x))
            for x in session.scalars(query)
        }

    def run(self, dag_id: str, run_id: str, run_task_id: str, wait_task_id: str) -> RunFacts | None:
        """Read the run, its hand-ons and its task states from Airflow's metadata database."""
        from airflow.models.dagrun import DagRun
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            dag_run = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
            if dag_run is None:
                return None
            wanted = [(wait_task_id, "results"), (wait_task_id, "verdict"), (run_task_id, "return_value")]
            xcoms = self._xcoms(session, dag_id, [run_id], wanted)
            attempt = int(getattr(dag_run, "clear_number", 0) or 0) + 1
            deadline_at, zone = _deadline(dag_id, dag_run)
            verdict = xcoms.get((run_id, wait_task_id, "verdict")) or {}
            sent = xcoms.get((run_id, run_task_id, "return_value")) or {}
            # What an earlier attempt recorded stays in XCom until its task runs again: never show it.
            current = isinstance(verdict, dict) and verdict.get("attempt", 1) == attempt
            rows = xcoms.get((run_id, wait_task_id, "results")) if current else None
            return RunFacts(
                state=str(dag_run.state or ""),
                start_date=dag_run.start_date,
                end_date=dag_run.end_date,
                run_after=getattr(dag_run, "run_after", None),
                rows=rows if isinstance(rows, list) else None,
                verdict=verdict if current else {},
                sent=sent if isinstance(sent, dict) and sent.get("attempt", 1) == attempt else {},
                aws_conn_id=_conn_id(dag_id, run_task_id),
                attempt=attempt,
                overrides=tuple(run_overrides(dag_run, _form_defaults(dag_id)).lines()),
                deadline_at=deadline_at,
                timezone=zone,
            )

    def history(self, dag_id: str, wait_task_id: str, limit: int) -> list[HistoryPoint]:
        """Read the DAG's latest runs and their verdicts from Airflow's metadata database."""
        from airflow.models.dagrun import DagRun
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            runs = list(
                session.scalars(
                    select(DagRun).where(DagRun.dag_id == dag_id).order_by(DagRun.id.desc()).limit(limit)
                )
            )
            ids = [r.run_id for r in runs]
            verdicts = self._xcoms(session, dag_id, ids, [(wait_task_id, "verdict")])
            points = []
            for run in reversed(runs):
                verdict = verdicts.get((run.run_id, wait_task_id, "verdict")) or {}
                failed = verdict.get("failed") if isinstance(verdict, dict) else None
                points.append(
                    HistoryPoint(
                        run_id=run.run_id,
                        duration_seconds=_seconds(run.start_date, run.end_date),
                        failed=None if failed is None else int(failed),
                        state=str(run.state or ""),
                    )
                )
            return points

    def live(self, dag_id: str, run_id: str, run_task_id: str, facts: RunFacts) -> LiveRead:
        """List the run's invocations from SSM; an AWS error is returned as text, not raised."""
        from botocore.exceptions import BotoCoreError, ClientError

        from ssm_fleet.hooks.ssm import SsmFleetHook, error_text

        try:
            hook = SsmFleetHook(aws_conn_id=facts.aws_conn_id, region_name=facts.sent.get("region_name"))
            digest = run_token_digest(dag_id, run_id, run_task_id)
            since = lookup_since({"dag_run": facts})
            commands = hook.find_run_commands(digest, since, facts.sent.get("document_name"))
            invocations = [i for c in commands for i in hook.list_invocations(c["CommandId"])]
            return LiveRead(commands, invocations, str(hook.conn_region_name or ""))
        except (BotoCoreError, ClientError) as error:
            return LiveRead(error=f"SSM could not be read: {error_text(error)}")

    def links(self, facts: RunFacts, region: str) -> LinkMaker:
        """Build the console links in the region the run sent in."""
        from ssm_fleet.links.ssm import log_group_url, run_command_url

        region = str(facts.sent.get("region_name") or region or "us-east-1")
        group = str(facts.sent.get("log_group") or "")

        def make(command_id: str, instance_id: str) -> list[tuple[str, str]]:
            links = [("SSM Run Command", run_command_url(region, command_id))] if command_id else []
            if group:
                links.append(("CloudWatch output", log_group_url(region, group)))
            return links

        return make


def load_page(
    dag_id: str,
    run_id: str,
    *,
    run_task_id: str = FLEET_RUN.send_task_id,
    wait_task_id: str = FLEET_RUN.wait_task_id,
    source: FleetSource | None = None,
) -> FleetPage | None:
    """The fleet page of one run: recorded results once the sensor has them, else SSM read now."""
    source = source or AirflowSource()
    facts = source.run(dag_id, run_id, run_task_id, wait_task_id)
    if facts is None:
        return None
    live = facts.state not in FINISHED_RUN_STATES
    rows, summary, note, region, command_ids = facts.rows, dict(facts.verdict), "", "", []
    if rows is None:
        read = source.live(dag_id, run_id, run_task_id, facts)
        gone = list(facts.sent.get("gone") or ())
        rows, summary = live_rows(read.commands, read.invocations, gone) if read.commands else ([], {})
        note = read.error or ("" if read.commands else "No SSM command of this run found yet.")
        region, command_ids = read.region, [c["CommandId"] for c in read.commands]
    else:
        command_ids = list(dict.fromkeys(str(r.get("command_id")) for r in rows if r.get("command_id")))
    links = source.links(facts, region)
    history = [
        HistoryPoint(p.run_id, p.duration_seconds, p.failed, p.state, current=p.run_id == run_id)
        for p in source.history(dag_id, wait_task_id, HISTORY_RUNS)
    ]
    views = tuple(views_from_rows(rows, links))
    deadline = ""
    if facts.deadline_at is not None:
        deadline = deadline_line(
            deadline_at=facts.deadline_at,
            timezone=facts.timezone,
            now=datetime.now(UTC),
            live=live,
            views=views,
            expected=int(summary.get("expected") or 0),
            started_at=facts.start_date,
            history=history,
        )
    return FleetPage(
        dag_id=dag_id,
        run_id=run_id,
        run_state=facts.state,
        live=live,
        instances=views,
        progress=str(summary.get("progress") or ""),
        outcome=str(summary.get("outcome") or ""),
        commands=tuple((cid, url) for cid in command_ids for _, url in links(cid, "")[:1]),
        history=tuple(history),
        note=note,
        generated_at=datetime.now(UTC),
        overrides=facts.overrides,
        expected=int(summary.get("expected") or 0),
        allowed_failures=None if (allowed := summary.get("allowed_failures")) is None else int(allowed),
        gone=tuple(str(g) for g in summary.get("gone") or ()),
        deadline=deadline,
    )
