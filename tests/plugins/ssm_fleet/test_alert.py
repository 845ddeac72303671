import pytest

from ssm_fleet.alert import BODY_MAX_BYTES, FailureAlert, fifo_ids


def row(n, stderr="Traceback\nDisk full on /data"):
    return {
        "instance_id": f"i-{n:017x}",
        "instance_name": f"cots-{n}",
        "command_id": "cmd-1",
        "status": "Failed",
        "status_details": "Failed",
        "exit_code": 3,
        "started_at": "2026-11-26T02:00:00+00:00",
        "finished_at": "2026-11-26T02:10:00+00:00",
        "stderr_tail": stderr,
        "stdout_url": "",
        "stderr_url": "s3://bucket/out/stderr",
    }


def alert(**kwargs):
    defaults = dict(
        dag_id="cots_nightly_batch", run_id="scheduled__2026-11-26T02:00:00+00:00", task_id="wait"
    )
    return FailureAlert(**{**defaults, **kwargs})


class TestSubject:
    def test_names_the_dag_and_what_failed(self):
        assert alert(failed_rows=[row(1)], fleet_size=3).subject() == (
            "Airflow: cots_nightly_batch - 1/3 host(s) failed"
        )
        assert alert(task_id="preflight").subject() == "Airflow: cots_nightly_batch - task preflight failed"

    @pytest.mark.parametrize("dag_id", ["d" * 300, "line\nbreak\tand\x07bell", "naïve—dag"])
    def test_one_printable_line_under_100_chars(self, dag_id):
        subject = alert(dag_id=dag_id).subject()
        assert len(subject) < 100
        assert subject.isprintable() and subject.isascii()


class TestBody:
    def test_names_instance_status_details_exit_code_and_stderr(self):
        body = alert(
            failed_rows=[row(7)],
            fleet_size=3,
            error="SSM fleet run failed",
            log_url="http://localhost:8080/log",
            command_links={"cmd-1": "https://console/cmd-1"},
            try_number=2,
        ).body()
        assert "- i-00000000000000007 (cots-7): Failed (Failed), exit code 3" in body
        assert "    Disk full on /data" in body
        assert "Task: wait (try 2)" in body and "Log:  http://localhost:8080/log" in body
        assert "- cmd-1: https://console/cmd-1" in body
        assert "stderr url: s3://bucket/out/stderr" in body

    def test_capped_below_256_kb_and_says_what_was_left_out(self):
        rows = [row(n, stderr="x" * 7000) for n in range(200)]
        body = alert(failed_rows=rows, fleet_size=200).body()
        assert len(body.encode()) <= BODY_MAX_BYTES < 262_144
        assert "more failed instance(s)" in body
        assert "Failed instances (200 of 200)" in body

    def test_links_the_runs_fleet_page_when_given(self):
        url = "http://airflow:8080/cots-fleet/dags/cots_nightly_batch/runs/scheduled__x"
        assert f"Fleet: {url}" in alert(fleet_url=url).body()
        assert "Fleet:" not in alert().body()


class TestFifo:
    def test_standard_topic_needs_nothing(self):
        assert fifo_ids("arn:aws:sns:us-east-1:123456789012:alerts", "dag", "run") == {}

    def test_fifo_topic_gets_group_and_stable_dedup(self):
        ids = fifo_ids("arn:aws:sns:us-east-1:123456789012:alerts.fifo", "dag", "run", "wait", "1")
        assert ids["MessageGroupId"] == "dag"
        assert ids == fifo_ids("arn:aws:sns:us-east-1:123456789012:alerts.fifo", "dag", "run", "wait", "1")
        assert len(ids["MessageDeduplicationId"]) <= 128


class TestLinearBody:
    def test_each_instance_is_rendered_once_even_when_the_body_is_capped(self, monkeypatch):
        import ssm_fleet.alert as module

        rendered = []
        original = module._instance_lines
        monkeypatch.setattr(module, "_instance_lines", lambda r: rendered.append(r) or original(r))
        rows = [row(n, stderr="x" * 1500) for n in range(5000)]
        body = alert(failed_rows=rows, fleet_size=5000).body(max_bytes=100_000)
        assert len(body.encode()) <= 100_000
        shown = body.count("Failed (Failed), exit code 3")
        assert 0 < shown < 5000 and f"... and {5000 - shown} more failed instance(s)" in body
        assert len(rendered) == shown + 1, "rendering stops at the first instance that does not fit"

    def test_a_teardown_alert_without_failed_instances_says_why_in_the_subject(self):
        text = alert(task_id="cancel_leftovers", headline="run cut short: 2 command(s) cancelled").subject()
        assert text == "Airflow: cots_nightly_batch - run cut short: 2 command(s) cancelled"


class TestResentHosts:
    def test_a_failed_host_the_wait_resent_says_so(self):
        resent = {**row(4), "resent": "re-sent 1x after Delivery Timed Out at 02:14"}
        body = alert(failed_rows=[resent, row(5)]).body()
        assert "  re-sent 1x after Delivery Timed Out at 02:14 (automatically, by the wait)" in body
        assert body.count("re-sent") == 1, "a host never re-sent says nothing of it"
