from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from cots_ssm.window import in_start_window, start_window

DUE = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)


class TestStartWindow:
    def test_scheduled_run_on_time_runs(self):
        decision = start_window(run_type="scheduled", due=DUE, started=DUE + timedelta(minutes=3))
        assert decision.run and "in its window" in decision.reason

    def test_scheduled_run_12_hours_late_is_skipped_saying_when_it_was_due(self):
        decision = start_window(run_type="scheduled", due=DUE, started=DUE + timedelta(hours=12))
        assert not decision.run
        assert "due at 2026-11-27 02:00 UTC" in decision.reason and "12 h 00 min late" in decision.reason
        assert "Nothing was sent" in decision.reason

    @pytest.mark.parametrize("run_type", ["manual", "asset_triggered", "backfill"])
    def test_other_runs_are_never_skipped(self, run_type):
        assert start_window(run_type=run_type, due=DUE, started=DUE + timedelta(hours=12)).run

    def test_a_cleared_run_runs_whenever_it_is_cleared(self):
        late = DUE + timedelta(hours=12)
        assert start_window(run_type="scheduled", due=DUE, started=late, clear_number=1).run

    def test_the_grace_is_configurable(self):
        started = DUE + timedelta(minutes=90)
        assert not start_window(run_type="scheduled", due=DUE, started=started).run
        assert start_window(run_type="scheduled", due=DUE, started=started, grace=timedelta(hours=2)).run

    def test_airflow_run_type_enum_is_understood(self):
        from airflow.utils.types import DagRunType

        late = DUE + timedelta(hours=12)
        assert not start_window(run_type=DagRunType.SCHEDULED, due=DUE, started=late).run
        assert start_window(run_type=DagRunType.MANUAL, due=DUE, started=late).run


class TestInStartWindow:
    def test_reads_the_dag_run(self):
        run = SimpleNamespace(
            run_type="scheduled", run_after=DUE, start_date=DUE + timedelta(hours=12), clear_number=0
        )
        pushed = {}
        ti = SimpleNamespace(xcom_push=lambda key, value: pushed.update({key: value}))
        assert in_start_window(dag_run=run, ti=ti, start_grace_minutes=60) is False
        assert pushed == {"in_window": False}, "the teardown reads it: nothing was sent"
        run.clear_number = 1
        assert in_start_window(dag_run=run, ti=ti, start_grace_minutes=60) is True
