"""The report task's table and its lines about hosts the wait re-sent by itself."""

from __future__ import annotations

import logging
from types import SimpleNamespace

from cots_ssm.report import format_table, report_fleet

ROW = {"instance_id": "i-0abc", "status": "Success", "status_details": "Success", "exit_code": 0}
NOTE = "re-sent 1x after Delivery Timed Out at 02:14"


def test_the_table_has_a_column_naming_each_resend():
    table = format_table([{**ROW, "resent": NOTE}, {**ROW, "instance_id": "i-0def", "resent": ""}])
    header, _rule, resent, plain = table.splitlines()
    assert header.endswith("re-sent by the wait")
    assert resent.endswith(NOTE) and not plain.endswith(NOTE)


def test_a_green_run_names_its_resent_hosts(caplog):
    verdict = {
        "attempt": 1,
        "outcome": "succeeded",
        "progress": "2/2 hosts done",
        "resent": [f"i-0abc: {NOTE}"],
    }
    answers = {"verdict": verdict, "results": [{**ROW, "resent": NOTE}]}
    ti = SimpleNamespace(xcom_pull=lambda task_ids, key: answers[key])
    with caplog.at_level(logging.INFO, logger="cots_ssm.report"):
        report_fleet(ti, dag_run=SimpleNamespace(clear_number=0, conf={}), dag=SimpleNamespace(params={}))
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(f"i-0abc: {NOTE}" in message for message in warned)
