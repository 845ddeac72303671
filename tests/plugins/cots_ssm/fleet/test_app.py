"""The fleet app behind Airflow's own API security: 401 anonymous, 403 refused, 200 allowed."""

import os
import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cots_ssm.fleet.data import LiveRead, RunFacts
from cots_ssm.fleet.urls import FLEET_URL_PREFIX, fleet_path
from ssm_fleet.status import Status, StatusDetails

from .fleet_rows import XSS, api_command, api_invocation, instance_id, rows

pytestmark = pytest.mark.matrix

DAG, RUN = "cots_nightly_batch", "manual__2026-11-27T02:30:00+00:00"


class FakeSource:
    """The Airflow DB and SSM of one run, in memory."""

    def __init__(self, facts, live=None):
        self.facts, self.live_read, self.live_calls = facts, live or LiveRead(), 0

    def run(self, dag_id, run_id, run_task_id, wait_task_id):
        return self.facts if (dag_id, run_id) == (DAG, RUN) else None

    def history(self, dag_id, wait_task_id, limit):
        return []

    def live(self, dag_id, run_id, run_task_id, facts):
        self.live_calls += 1
        return self.live_read

    def links(self, facts, region):
        return lambda command_id, instance_id: [("SSM Run Command", f"https://console/{command_id}")]


@pytest.fixture(scope="module")
def auth_manager():
    from airflow.api_fastapi.app import init_auth_manager
    from airflow.utils import db

    db.initdb()  # token checks read the revoked-token table (Airflow 3.1+)
    # Airflow 3.0.6 signs with [api_auth] jwt_issuer, which the pinned PyJWT requires to be a string.
    os.environ.setdefault("AIRFLOW__API_AUTH__JWT_ISSUER", "airflow")

    return init_auth_manager()


@pytest.fixture
def client(auth_manager, monkeypatch):
    from airflow.models.dag import DagModel

    from cots_ssm.fleet.app import create_app

    if hasattr(DagModel, "get_team_name"):  # Airflow 3.1+: asks the DB which team owns the DAG
        monkeypatch.setattr(DagModel, "get_team_name", staticmethod(lambda dag_id: None))

    def make(facts=None, live=None):
        source = FakeSource(facts or RunFacts(state="success", rows=rows(3, failed={1: XSS})), live)
        parent = FastAPI()
        parent.mount(FLEET_URL_PREFIX, create_app(source=source))
        return TestClient(parent), source

    return make


def token(auth_manager, role):
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return auth_manager.generate_jwt(SimpleAuthManagerUser(username="someone", role=role))


class TestAuth:
    def test_anonymous_gets_401(self, client):
        http, _ = client()
        assert http.get(fleet_path(DAG, RUN)).status_code == 401

    def test_anonymous_browser_gets_a_401_page_with_no_run_data(self, client):
        http, _ = client()
        answer = http.get(fleet_path(DAG, RUN), headers={"Accept": "text/html"})
        assert answer.status_code == 401
        assert instance_id(0) not in answer.text and "log in" in answer.text

    def test_a_forged_token_gets_403(self, client):
        http, _ = client()
        answer = http.get(fleet_path(DAG, RUN), headers={"Authorization": "Bearer not-a-jwt"})
        assert answer.status_code == 403

    def test_a_user_without_a_role_gets_403(self, client, auth_manager):
        http, _ = client()
        answer = http.get(
            fleet_path(DAG, RUN), headers={"Authorization": f"Bearer {token(auth_manager, None)}"}
        )
        assert answer.status_code == 403

    def test_a_viewer_reads_the_page_with_host_output_escaped(self, client, auth_manager):
        http, _ = client()
        answer = http.get(
            fleet_path(DAG, RUN) + f"?instance={instance_id(1)}",
            headers={"Authorization": f"Bearer {token(auth_manager, 'VIEWER')}"},
        )
        assert answer.status_code == 200, answer.text
        assert "<img src=x" not in answer.text and "&lt;script&gt;alert(1)" in answer.text
        assert "script-src 'nonce-" in answer.headers["content-security-policy"]

    def test_unknown_run_is_404(self, client, auth_manager):
        http, _ = client()
        answer = http.get(
            fleet_path(DAG, "nope"), headers={"Authorization": f"Bearer {token(auth_manager, 'VIEWER')}"}
        )
        assert answer.status_code == 404


class TestSources:
    def test_a_running_run_is_read_from_ssm_and_refreshes(self, client, auth_manager):
        live = LiveRead(
            [api_command(2, Status.IN_PROGRESS)],
            [
                api_invocation(0, Status.IN_PROGRESS, StatusDetails.IN_PROGRESS),
                api_invocation(1, Status.SUCCESS, StatusDetails.SUCCESS, 0),
            ],
        )
        http, source = client(RunFacts(state="running"), live)
        answer = http.get(
            fleet_path(DAG, RUN), headers={"Authorization": f"Bearer {token(auth_manager, 'VIEWER')}"}
        )
        assert answer.status_code == 200
        assert source.live_calls == 1 and "<body data-live>" in answer.text
        assert "1 InProgress" in answer.text and "1 Success" in answer.text and "of 2 hosts" in answer.text

    def test_a_running_run_with_a_deadline_shows_it_and_the_estimate(self, client, auth_manager):
        from datetime import UTC, datetime, timedelta

        live = LiveRead(
            [api_command(2, Status.IN_PROGRESS)],
            [
                api_invocation(0, Status.IN_PROGRESS, StatusDetails.IN_PROGRESS),
                api_invocation(1, Status.SUCCESS, StatusDetails.SUCCESS, 0),
            ],
        )
        deadline = datetime.now(UTC) + timedelta(hours=1)
        facts = RunFacts(state="running", deadline_at=deadline, timezone="Europe/Paris")
        http, _ = client(facts, live)
        answer = http.get(
            fleet_path(DAG, RUN), headers={"Authorization": f"Bearer {token(auth_manager, 'VIEWER')}"}
        )
        (line,) = re.findall(r'<p class="muted" id="deadline">([^<]*)</p>', answer.text)
        assert line.startswith("Deadline ") and "(Europe/Paris) · estimate: the fleet finishes ~" in line
        assert "1/2 host(s) finished in" in line

    def test_a_finished_run_shows_the_recorded_results_without_reading_ssm(self, client, auth_manager):
        http, source = client()
        answer = http.get(
            fleet_path(DAG, RUN), headers={"Authorization": f"Bearer {token(auth_manager, 'VIEWER')}"}
        )
        assert source.live_calls == 0 and "2 Success" in answer.text and "1 Failed" in answer.text
        assert "data-live" not in answer.text  # no refresh: only the theme script, allowed by its nonce
        (nonce,) = re.findall(r'<script nonce="([^"]+)">', answer.text)
        assert answer.text.count("<script") == 1
        assert f"script-src 'nonce-{nonce}'" in answer.headers["content-security-policy"]

    def test_the_recorded_verdict_says_the_fleet_size_the_tolerance_and_hosts_gone(
        self, client, auth_manager
    ):
        verdict = {"expected": 4, "allowed_failures": 1, "gone": ["i-0gone"]}
        http, _ = client(RunFacts(state="failed", rows=rows(3, failed={1: "x"}), verdict=verdict))
        answer = http.get(
            fleet_path(DAG, RUN), headers={"Authorization": f"Bearer {token(auth_manager, 'VIEWER')}"}
        )
        assert "of 4 hosts" in answer.text and "1 not listed by SSM yet" in answer.text
        assert "at most 1 failed tolerated" in answer.text and "1 gone from the fleet" in answer.text
