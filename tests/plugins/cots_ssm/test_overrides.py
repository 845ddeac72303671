"""Alerting is not a form field, a tolerance moves only within the job's bound, and every override shows."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from cots_ssm.fleet.data import RunFacts, load_page
from cots_ssm.fleet.render import render_page
from cots_ssm.jobs.loader import parse_jobs
from cots_ssm.overrides import (
    NOT_RECORDED,
    Override,
    RunOverrides,
    bound_problems,
    context_overrides,
    find_overrides,
    tolerance_choices,
)
from cots_ssm.report import report_fleet
from ssm_fleet.alert import FailureAlert

DEFAULTS = {
    "instance_ids": [],
    "target_tags": {"Role": ["cots"]},
    "execution_timeout_seconds": 14400,
    "max_failed_instances": "0",
    "failure_policy": "finish",
    "deferrable": False,
}
RAISED = {"max_failed_instances": "10%", "failure_policy": "cancel"}


def dag_run(conf, user="alice"):
    return SimpleNamespace(conf=conf, triggering_user_name=user)


class TestFindOverrides:
    def test_a_scheduled_run_or_the_jobs_own_values_are_no_override(self):
        assert find_overrides({}, DEFAULTS) == ()
        assert find_overrides(None, DEFAULTS) == ()
        same = {"max_failed_instances": "0", "execution_timeout_seconds": "14400", "deferrable": "false"}
        assert find_overrides(same, DEFAULTS) == (), "rendered template text equals the value"

    def test_each_changed_field_in_the_forms_order_with_its_old_value(self):
        conf = {"failure_policy": "cancel", "max_failed_instances": "10%", "target_tags": {"Role": ["x"]}}
        assert find_overrides(conf, DEFAULTS) == (
            Override("target_tags", {"Role": ["x"]}, {"Role": ["cots"]}),
            Override("max_failed_instances", "10%", "0"),
            Override("failure_policy", "cancel", "finish"),
        )

    def test_keys_the_form_does_not_have_are_not_overrides(self):
        """An old client's sns_topic_arn="" reaches nothing: the notifiers hold the job's topic."""
        assert find_overrides({"sns_topic_arn": ""}, DEFAULTS) == ()


class TestRunOverrides:
    def test_says_who_what_and_from_which_value(self):
        found = context_overrides({"dag_run": dag_run(RAISED), "dag": SimpleNamespace(params=DEFAULTS)})
        assert found.summary() == (
            'Triggered by alice with overrides: max_failed_instances: "0" -> "10%"; '
            'failure_policy: "finish" -> "cancel"'
        )
        assert found.lines() == [
            "Overrides (triggered by alice):",
            '- max_failed_instances: "0" -> "10%"',
            '- failure_policy: "finish" -> "cancel"',
        ]

    def test_an_airflow_that_records_no_user_says_so(self):
        run = SimpleNamespace(conf=RAISED)
        assert (
            context_overrides({"dag_run": run, "dag": SimpleNamespace(params=DEFAULTS)}).who == NOT_RECORDED
        )

    def test_nothing_changed_says_nothing(self):
        found = context_overrides({"dag_run": dag_run({}), "dag": SimpleNamespace(params=DEFAULTS)})
        assert not found and found.summary() == "" and found.lines() == []


class TestToleranceChoices:
    @pytest.mark.parametrize(
        ("own", "bound", "choices"),
        [
            ("0", "", ["0"]),
            ("2", "", ["0", "1", "2"]),
            ("2", "3", ["0", "1", "2", "3"]),
            ("10%", "12%", ["0", "0%", *(f"{n}%" for n in range(1, 13))]),
            ("0", "100%", None),
        ],
    )
    def test_from_none_up_to_the_bound_in_its_unit(self, own, bound, choices):
        assert tolerance_choices(own, bound) == choices


class TestBounds:
    @pytest.mark.parametrize(
        ("settings", "problems"),
        [
            ({"max_failed_instances": "10%", "max_failed_instances_bound": "25%"}, []),
            ({"max_failed_instances": "0", "max_failed_instances_bound": "25%"}, []),
            (
                {"max_failed_instances": "10%", "max_failed_instances_bound": "5%"},
                [("max_failed_instances_bound", "'5%' is below the job's max_failed_instances '10%'")],
            ),
            (
                {"max_failed_instances": "2", "max_failed_instances_bound": "10%"},
                [("max_failed_instances_bound", "'10%': give a count, as max_failed_instances '2' is")],
            ),
            (
                {"failure_policy": "cancel", "failure_policy_choices": ["finish"]},
                [("failure_policy_choices", "['finish'] does not include the job's failure_policy 'cancel'")],
            ),
        ],
    )
    def test_a_bound_the_jobs_own_values_break_is_named(self, settings, problems):
        merged = {
            "max_failed_instances": "0",
            "failure_policy": "finish",
            "failure_policy_choices": ["finish"],
        }
        assert list(bound_problems({**merged, **settings})) == problems

    def test_the_jobs_file_refuses_the_job_naming_the_field(self):
        jobs = {"jobs": [{"id": "j", "max_failed_instances": "10%", "max_failed_instances_bound": "5%"}]}
        (error,) = parse_jobs(jobs, source="jobs.yaml", env={}).errors
        assert str(error) == (
            "jobs.yaml: job 'j' (jobs[0]), field 'max_failed_instances_bound': "
            "'5%' is below the job's max_failed_instances '10%'"
        )


class TestShownEverywhere:
    def test_the_report_says_it_first(self, caplog):
        ti = SimpleNamespace(
            xcom_pull=lambda task_ids, key: {"outcome": "succeeded"} if key == "verdict" else []
        )
        with caplog.at_level(logging.INFO, logger="cots_ssm.report"):
            report_fleet(ti, dag_run=dag_run(RAISED), dag=SimpleNamespace(params=DEFAULTS))
        assert caplog.records[0].levelno == logging.WARNING
        assert (
            caplog.records[0]
            .getMessage()
            .startswith('Triggered by alice with overrides: max_failed_instances: "0" -> "10%"')
        )

    def test_the_alert_body_says_it_above_the_error(self):
        changed = context_overrides({"dag_run": dag_run(RAISED), "dag": SimpleNamespace(params=DEFAULTS)})
        body = FailureAlert(
            "cots_nightly_batch", "manual__1", "wait", error="boom", notes=changed.lines()
        ).body()
        assert '\n\nOverrides (triggered by alice):\n- max_failed_instances: "0" -> "10%"\n' in body
        assert body.index("Overrides") < body.index("Error:")
        assert "Overrides" not in FailureAlert("d", "r", "t").body()

    def test_the_fleet_page_says_it_escaped(self):
        lines = tuple(RunOverrides("<b>eve</b>", (Override("script_arguments", ["<x>"], []),)).lines())

        class Source:
            def run(self, *args):
                return RunFacts(state="success", rows=[], overrides=lines)

            def history(self, *args):
                return []

            def links(self, facts, region):
                return lambda command_id, instance_id: []

        page = load_page("cots_nightly_batch", "manual__1", source=Source())
        assert page is not None and page.overrides == lines
        html = render_page(page)
        assert (
            "Overrides (triggered by &lt;b&gt;eve&lt;/b&gt;):<br>"
            "- script_arguments: [] -&gt; [&quot;&lt;x&gt;&quot;]" in html
        )
