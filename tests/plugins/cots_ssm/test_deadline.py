"""The night's deadline as pure rules: when it falls (DST nights too), the estimate, each alert once."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from cots_ssm.deadline import (
    MAX_LISTED_HOSTS,
    DeadlineNotice,
    Estimate,
    RunningHost,
    budget,
    deadline_alert_due,
    estimate_finish,
    late_alert_due,
    next_local_time,
    parse_deadline,
    run_deadline,
    slowest_first,
)
from ssm_fleet.alert import SUBJECT_MAX_CHARS

SIX = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
NIGHT = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class TestParseDeadline:
    @pytest.mark.parametrize(
        ("text", "expected"), [("06:00", time(6)), ("23:59", time(23, 59)), (" 00:00 ", time(0))]
    )
    def test_reads_hours_and_minutes(self, text, expected):
        assert parse_deadline(text) == expected

    @pytest.mark.parametrize("text", ["6:00", "24:00", "06:60", "0600", "", "06:00:00", 600])
    def test_refuses_anything_else_naming_the_field_and_the_value(self, text):
        with pytest.raises(ValueError, match=rf"deadline={text!r} is not a time of day: give HH:MM"):
            parse_deadline(text)


class TestRunDeadline:
    def test_a_two_oclock_night_is_due_at_six_that_morning(self):
        assert run_deadline(NIGHT, time(6), "UTC") == SIX

    def test_a_deadline_earlier_in_the_day_than_the_run_is_the_next_morning(self):
        evening = datetime(2026, 12, 1, 22, 0, tzinfo=UTC)
        assert run_deadline(evening, time(6), "UTC") == datetime(2026, 12, 2, 6, 0, tzinfo=UTC)

    def test_a_deadline_equal_to_the_run_time_is_a_day_later(self):
        assert run_deadline(NIGHT, time(2), "UTC") == NIGHT + timedelta(days=1)

    @pytest.mark.parametrize(
        ("night_utc", "deadline_utc"),
        [
            ("2026-01-15T01:00", "2026-01-15T05:00"),  # winter: Paris is UTC+1
            ("2026-07-15T00:00", "2026-07-15T04:00"),  # summer: UTC+2
            ("2026-03-29T01:00", "2026-03-29T04:00"),  # spring forward at 02:00: the night has 3 h
            ("2026-10-25T00:00", "2026-10-25T05:00"),  # fall back at 03:00: the night has 5 h
        ],
    )
    def test_six_oclock_paris_time_whatever_the_offset(self, night_utc, deadline_utc):
        assert run_deadline(utc(night_utc), time(6), "Europe/Paris") == utc(deadline_utc)

    def test_a_deadline_skipped_by_spring_forward_is_the_same_wall_clock_after_the_change(self):
        # 02:30 does not exist in Paris on 2026-03-29: it reads as 03:30 CEST (01:30 UTC).
        assert next_local_time(utc("2026-03-29T00:00"), time(2, 30), "Europe/Paris") == utc(
            "2026-03-29T01:30"
        )

    def test_a_deadline_repeated_by_fall_back_is_its_first_occurrence(self):
        # 02:30 happens twice in Paris on 2026-10-25: first at 00:30 UTC (CEST), then 01:30 UTC (CET).
        assert next_local_time(utc("2026-10-24T23:00"), time(2, 30), "Europe/Paris") == utc(
            "2026-10-25T00:30"
        )

    def test_a_manual_run_gets_the_jobs_budget_from_its_trigger_time(self):
        triggered = datetime(2026, 12, 1, 8, 17, tzinfo=UTC)
        deadline = run_deadline(triggered, time(6), "UTC", run_type="manual", schedule="0 2 * * *")
        assert deadline == triggered + timedelta(hours=4)

    def test_a_scheduled_run_ignores_the_budget(self):
        deadline = run_deadline(NIGHT, time(6), "UTC", run_type="scheduled", schedule="0 2 * * *")
        assert deadline == SIX


class TestBudget:
    @pytest.mark.parametrize(
        ("schedule", "deadline", "zone", "expected"),
        [
            ("0 2 * * *", time(6), "UTC", timedelta(hours=4)),
            ("30 2 * * *", time(6), "Europe/Paris", timedelta(hours=3, minutes=30)),
            ("0 22 * * *", time(6), "America/New_York", timedelta(hours=8)),
            ("0 2 * * *", time(2, 1), "UTC", timedelta(minutes=1)),
            ("0 5 1 * *", time(9), "UTC", timedelta(hours=4)),  # monthly: its time of day
        ],
    )
    def test_is_the_wall_clock_time_from_the_schedule_to_the_deadline(
        self, schedule, deadline, zone, expected
    ):
        assert budget(schedule, deadline, zone) == expected


START = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


class TestEstimateFinish:
    def test_no_estimate_before_a_quarter_of_the_hosts_finished_and_without_two_nights(self):
        now = START + timedelta(minutes=30)
        assert estimate_finish(now=now, started_at=START, fleet_size=8, finished=1, nights=[3600]) is None

    def test_a_quarter_of_the_fleet_finished_extrapolates_over_the_fleet(self):
        now = START + timedelta(minutes=30)
        found = estimate_finish(now=now, started_at=START, fleet_size=8, finished=2)
        assert found is not None
        assert found.finish == START + timedelta(hours=2)
        assert found.basis == "2/8 host(s) finished in 0:30:00"

    def test_one_host_of_three_is_enough(self):
        found = estimate_finish(now=START + timedelta(minutes=10), started_at=START, fleet_size=3, finished=1)
        assert found is not None and found.finish == START + timedelta(minutes=30)

    def test_two_nights_give_their_median_before_any_host_finished(self):
        nights = [3600.0, 7200.0, 5400.0]
        found = estimate_finish(now=START, started_at=START, fleet_size=6, finished=0, nights=nights)
        assert found is not None
        assert found.finish == START + timedelta(seconds=5400)
        assert found.basis == "the last 3 successful night(s), median 1:30:00"

    def test_only_the_last_seven_nights_count(self):
        nights = [99_999.0] * 5 + [600.0] * 7
        found = estimate_finish(now=START, started_at=START, fleet_size=6, finished=0, nights=nights)
        assert found is not None and found.finish == START + timedelta(seconds=600)

    def test_progress_weighs_by_the_share_of_hosts_finished(self):
        # 3/6 finished in 1 h -> 2 h by progress; nights say 4 h; half of each: 3 h.
        now = START + timedelta(hours=1)
        found = estimate_finish(now=now, started_at=START, fleet_size=6, finished=3, nights=[14400, 14400])
        assert found is not None
        assert found.finish == START + timedelta(hours=3)
        assert "3/6 host(s) finished" in found.basis and "the last 2 successful night(s)" in found.basis

    def test_never_earlier_than_now(self):
        now = START + timedelta(hours=3)
        found = estimate_finish(now=now, started_at=START, fleet_size=6, finished=0, nights=[600, 600])
        assert found is not None and found.finish == now

    @pytest.mark.parametrize(("size", "finished"), [(6, 6), (0, 0)])
    def test_nothing_to_estimate_for_a_finished_or_empty_fleet(self, size, finished):
        assert (
            estimate_finish(now=START, started_at=START, fleet_size=size, finished=finished, nights=[60, 60])
            is None
        )


class TestAlertsAreDueOnce:
    def test_late_when_the_estimate_passes_the_deadline_before_it(self):
        estimate = Estimate(SIX + timedelta(minutes=1), "x")
        assert late_alert_due(estimate, SIX, SIX - timedelta(hours=1))

    def test_not_late_on_time_without_estimate_or_after_the_deadline(self):
        assert not late_alert_due(Estimate(SIX, "x"), SIX, SIX - timedelta(hours=1))
        assert not late_alert_due(None, SIX, SIX - timedelta(hours=1))
        assert not late_alert_due(Estimate(SIX + timedelta(hours=1), "x"), SIX, SIX)

    def test_the_deadline_alert_is_due_at_the_deadline_for_a_watch_begun_before(self):
        assert not deadline_alert_due(SIX, SIX - timedelta(seconds=1), NIGHT)
        assert deadline_alert_due(SIX, SIX, NIGHT)

    def test_a_watch_begun_after_the_deadline_sends_nothing(self):
        # A Clear at 08:00 starts a new watch: the night's alert went at 06:00 already.
        assert not deadline_alert_due(SIX, SIX + timedelta(hours=2), SIX + timedelta(hours=2))


def notice(**values) -> DeadlineNotice:
    hosts = [
        RunningHost("i-0000000000000000b", START + timedelta(minutes=5)),
        RunningHost("i-0000000000000000a", START, "cots-a"),
    ]
    base = dict(
        dag_id="cots_nightly_batch",
        run_id="scheduled__2026-12-01T02:00:00+00:00",
        fleet_size=6,
        fleet_url="http://airflow/cots/fleet/cots_nightly_batch/run",
        deadline_at=SIX,
        deadline_text="07:00",  # Paris time: 06:00 UTC
        timezone="Europe/Paris",
        night=NIGHT,
        now=SIX,
        running=hosts,
    )
    return DeadlineNotice(**{**base, **values})


class TestDeadlineNotice:
    def test_the_subject_says_the_deadline_was_missed_and_how_many_hosts_still_run(self):
        assert (
            notice().subject()
            == "Airflow: cots_nightly_batch - deadline 07:00 missed: 2/6 host(s) still running"
        )

    def test_the_late_subject_gives_the_estimated_end_in_local_time(self):
        late = notice(
            late=True, estimate=Estimate(SIX + timedelta(minutes=40), "4/6 host(s) finished in 3:00:00")
        )
        assert late.subject() == (
            "Airflow: cots_nightly_batch - running late: done ~07:40, deadline 07:00 (2/6 host(s) running)"
        )
        assert len(late.subject()) <= SUBJECT_MAX_CHARS

    def test_the_body_names_the_night_the_deadline_the_hosts_longest_first_and_the_fleet_page(self):
        body = notice().body()
        assert body.startswith("Attention required: the COTS batch has not finished by its deadline.\n")
        assert "Night:    2026-12-01 03:00 (Europe/Paris)" in body
        assert "Deadline: 2026-12-01 07:00 (Europe/Paris, 2026-12-01 06:00 UTC)" in body
        assert "Fleet:    http://airflow/cots/fleet/cots_nightly_batch/run" in body
        assert body.index("- i-0000000000000000a (cots-a): for 4:00:00 since 2026-12-01 03:00") < body.index(
            "- i-0000000000000000b: for 3:55:00 since 2026-12-01 03:05"
        )
        assert "nothing was stopped" in body

    def test_the_late_body_opens_as_a_warning_and_gives_the_estimate_and_its_basis(self):
        estimate = Estimate(SIX + timedelta(minutes=40), "4/6 host(s) finished in 3:00:00")
        body = notice(late=True, estimate=estimate, now=SIX - timedelta(hours=1)).body()
        assert body.startswith(
            "Attention: the COTS batch is running late: it will likely miss its deadline.\n"
        )
        assert "Estimate: the fleet finishes ~2026-12-01 07:40, from 4/6 host(s) finished in 3:00:00" in body

    def test_the_host_list_is_bounded(self):
        many = [RunningHost(f"i-{n:017x}", START) for n in range(MAX_LISTED_HOSTS + 5)]
        body = notice(running=many, fleet_size=40).body()
        assert body.count("\n- i-") == MAX_LISTED_HOSTS
        assert "... and 5 more, see the fleet page." in body
        assert f"Still running ({MAX_LISTED_HOSTS + 5} of 40)" in body

    def test_a_host_not_started_says_so_and_comes_last(self):
        hosts = slowest_first(
            [RunningHost("i-0000000000000000c", None), RunningHost("i-0000000000000000d", START)]
        )
        assert [h.instance_id for h in hosts] == ["i-0000000000000000d", "i-0000000000000000c"]
        assert "- i-0000000000000000c: not started yet" in notice(running=hosts).body()
