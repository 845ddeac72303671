from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from cots_ssm.window import (
    RUN_TYPES,
    in_start_window,
    missed_night_alert,
    night_of,
    start_window,
    when,
    with_logical_date,
)

DUE = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)
LATE = DUE + timedelta(hours=12)


class RecordingTi:
    def __init__(self, run_id="scheduled__2026-11-27T02:00:00+00:00"):
        self.dag_id, self.run_id, self.task_id = "cots_nightly_batch", run_id, "window"
        self.log_url = "http://airflow/log"
        self.pushed = {}

    def xcom_push(self, key, value):
        self.pushed[key] = value


def run(run_type="scheduled", due=DUE, started=LATE, clear_number=0):
    return SimpleNamespace(run_type=run_type, run_after=due, start_date=started, clear_number=clear_number)


class TestStartWindow:
    def test_scheduled_run_on_time_runs(self):
        decision = start_window(run_type="scheduled", due=DUE, started=DUE + timedelta(minutes=3))
        assert decision.run and "in its window" in decision.reason and not decision.missed_night

    def test_scheduled_run_12_hours_late_is_a_missed_night_saying_when_it_was_due(self):
        decision = start_window(run_type="scheduled", due=DUE, started=LATE)
        assert not decision.run and decision.missed_night
        assert "the night of 2026-11-27 did not run" in decision.reason
        assert "due at 2026-11-27 02:00 UTC" in decision.reason and "12 h 00 min late" in decision.reason
        assert "Nothing was sent" in decision.reason and "Clear this run" in decision.reason

    @pytest.mark.parametrize("run_type", ["manual", "scheduled"])
    def test_the_default_run_types_run(self, run_type):
        assert start_window(run_type=run_type, due=DUE, started=DUE).run

    @pytest.mark.parametrize("run_type", ["backfill", "asset_triggered", "operator_triggered"])
    def test_other_run_types_are_refused_by_default_without_an_alert(self, run_type):
        decision = start_window(run_type=run_type, due=DUE, started=DUE)
        assert not decision.run and not decision.missed_night
        assert decision.reason.startswith(f"Refused: a {run_type} run for the night of 2026-11-27.")
        assert "Nothing was sent" in decision.reason
        assert "accepts manual, scheduled runs only" in decision.reason

    def test_a_refused_backfill_says_why_and_how_to_run_one_night_again(self):
        reason = start_window(run_type="backfill", due=DUE, started=DUE).reason
        assert "once per night of the range" in reason
        assert "Clear that night's scheduled run" in reason and "trigger the DAG by hand" in reason
        assert "add backfill to the job's run_types and pass {logical_date}" in reason

    def test_a_cleared_backfill_is_still_refused(self):
        assert not start_window(run_type="backfill", due=DUE, started=LATE, clear_number=2).run

    def test_a_job_that_lists_backfill_runs_its_backfills_whenever(self):
        decision = start_window(run_type="backfill", due=DUE, started=LATE, allowed=RUN_TYPES)
        assert decision.run and decision.reason == "backfill run: runs whenever it is triggered"

    def test_manual_runs_are_never_skipped(self):
        assert start_window(run_type="manual", due=DUE, started=LATE).run

    def test_a_cleared_run_runs_whenever_it_is_cleared(self):
        assert start_window(run_type="scheduled", due=DUE, started=LATE, clear_number=1).run

    def test_the_grace_is_configurable(self):
        started = DUE + timedelta(minutes=90)
        assert not start_window(run_type="scheduled", due=DUE, started=started).run
        assert start_window(run_type="scheduled", due=DUE, started=started, grace=timedelta(hours=2)).run

    def test_airflow_run_type_enum_is_understood(self):
        from airflow.utils.types import DagRunType

        assert not start_window(run_type=DagRunType.SCHEDULED, due=DUE, started=LATE).run
        assert start_window(run_type=DagRunType.MANUAL, due=DUE, started=LATE).run
        assert not start_window(run_type=DagRunType.BACKFILL_JOB, due=DUE, started=DUE).run

    def test_the_log_line_says_the_jobs_time_and_utc(self):
        spring_forward = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # 03:30 CEST: 02:30 does not exist
        decision = start_window(
            run_type="scheduled", due=spring_forward, started=spring_forward, timezone="Europe/Paris"
        )
        assert decision.reason == (
            "scheduled for 2026-03-29 03:30 CEST (2026-03-29 01:30 UTC), started 0 min later: in its window"
        )

    def test_a_missed_night_is_said_in_the_jobs_time_and_utc(self):
        due = datetime(2026, 10, 25, 1, 30, tzinfo=UTC)  # the second 02:30 of the fall-back night
        reason = start_window(
            run_type="scheduled", due=due, started=due + timedelta(hours=9), timezone="Europe/Paris"
        ).reason
        assert "due at 2026-10-25 02:30 CET (2026-10-25 01:30 UTC)" in reason
        assert "started at 2026-10-25 11:30 CET (2026-10-25 10:30 UTC), 9 h 00 min late" in reason


class TestWhenAndNight:
    def test_utc_is_said_once(self):
        assert when(DUE) == "2026-11-27 02:00 UTC"

    def test_the_night_is_the_date_in_the_jobs_timezone(self):
        # 00:30 in Paris is still the previous day in UTC: the job's night is the Paris date.
        moment = datetime(2026, 11, 26, 23, 30, tzinfo=UTC)
        assert (night_of(moment), night_of(moment, "Europe/Paris")) == ("2026-11-26", "2026-11-27")


class TestWithLogicalDate:
    def test_the_placeholder_becomes_the_night_of_the_run(self):
        dag_run = SimpleNamespace(logical_date=datetime(2026, 11, 26, 23, 30, tzinfo=UTC), run_after=None)
        arguments = ["--date", "{logical_date}", "--out=/data/{logical_date}.csv", "--keep"]
        assert with_logical_date(arguments, dag_run, timezone="Europe/Paris") == [
            "--date",
            "2026-11-27",
            "--out=/data/2026-11-27.csv",
            "--keep",
        ]

    def test_a_manual_run_without_logical_date_is_for_the_night_it_was_triggered(self):
        dag_run = SimpleNamespace(logical_date=None, run_after=datetime(2026, 11, 28, 9, 0, tzinfo=UTC))
        assert with_logical_date(["{logical_date}"], dag_run) == ["2026-11-28"]

    @pytest.mark.parametrize("arguments", ["--date {logical_date}", None, {"a": "{logical_date}"}])
    def test_anything_but_a_list_is_left_for_the_operators_to_refuse(self, arguments):
        dag_run = SimpleNamespace(logical_date=DUE, run_after=DUE)
        assert with_logical_date(arguments, dag_run) == arguments

    def test_arguments_without_the_placeholder_are_unchanged(self):
        assert with_logical_date(["--keywords", "a,b"], SimpleNamespace(logical_date=DUE)) == [
            "--keywords",
            "a,b",
        ]


class TestMissedNightAlert:
    def test_says_which_night_when_due_when_started_and_how_to_run_it_now(self):
        due = datetime(2026, 10, 25, 1, 30, tzinfo=UTC)  # the second 02:30 of the fall-back night
        alert = missed_night_alert(
            dag_id="document_indexer",
            run_id="scheduled__2026-10-25T01:30:00+00:00",
            night=due,
            due=due,
            started=due + timedelta(hours=11, minutes=4),
            grace=timedelta(minutes=60),
            timezone="Europe/Paris",
        )
        assert alert.subject() == "Airflow: document_indexer - night 2026-10-25 did not run (started late)"
        body = alert.body()
        assert body.startswith("Attention required: a scheduled night of the batch did not run.")
        assert "The night of 2026-10-25 did not run: nothing was sent to the fleet." in body
        assert "Due:     2026-10-25 02:30 CET (2026-10-25 01:30 UTC)" in body
        assert (
            "Started: 2026-10-25 13:34 CET (2026-10-25 12:34 UTC), 11 h 04 min late "
            "(start_grace_minutes allows 1 h 00 min)"
        ) in body
        clear = (
            "POST /api/v2/dags/document_indexer/dagRuns/scheduled__2026-10-25T01%3A30%3A00%2B00%3A00/clear"
        )
        assert f'{clear} with {{"dry_run": false}}' in body


class TestInStartWindow:
    def test_a_missed_night_pushes_the_skip_and_publishes_exactly_one_alert(self, aws, alerts):
        ti = RecordingTi()
        assert in_start_window(dag_run=run(), ti=ti, sns_topic_arn=aws.topic_arn) is False

        assert ti.pushed["in_window"] is False, "the teardown reads it: nothing was sent"
        assert "did not run" in ti.pushed["skipped_because"]
        (message,) = alerts()
        assert message["Subject"] == (
            "Airflow: cots_nightly_batch - night 2026-11-27 did not run (started late)"
        )
        lines = [line.strip() for line in message["Message"].splitlines()]
        assert "Due:     2026-11-27 02:00 UTC" in lines
        assert (
            "Started: 2026-11-27 14:00 UTC, 12 h 00 min late (start_grace_minutes allows 1 h 00 min)" in lines
        )
        assert ti.run_id in message["Message"] and "Clear this run" in message["Message"]

    def test_a_cleared_late_run_runs_and_alerts_nobody(self, aws, alerts):
        ti = RecordingTi()
        assert in_start_window(dag_run=run(clear_number=1), ti=ti, sns_topic_arn=aws.topic_arn) is True
        assert ti.pushed == {"in_window": True}
        assert alerts(wait=1) == []

    def test_a_refused_backfill_pushes_its_reason_and_alerts_nobody(self, aws, alerts, caplog):
        ti = RecordingTi(run_id="backfill__2026-11-27T02:00:00+00:00")
        backfill = run("backfill", started=DUE)
        assert in_start_window(dag_run=backfill, ti=ti, sns_topic_arn=aws.topic_arn) is False
        assert ti.pushed["in_window"] is False
        assert ti.pushed["skipped_because"].startswith("Refused: a backfill run for the night of 2026-11-27.")
        assert "Refused: a backfill run" in caplog.text
        assert alerts(wait=1) == []
        assert aws.control.counters().get("SendCommand", {}).get("accepted", 0) == 0

    def test_a_job_that_lists_backfill_runs_it(self):
        ti = RecordingTi()
        assert in_start_window(dag_run=run("backfill", started=DUE), ti=ti, run_types=RUN_TYPES) is True
        assert ti.pushed == {"in_window": True}
