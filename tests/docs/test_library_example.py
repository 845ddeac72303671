"""The README's example of the library in a DAG of one's own runs as written, and wires what it says."""

import re
from pathlib import Path

import pendulum
import pytest
from airflow.sdk import DAG

README = Path(__file__).resolve().parents[2] / "README.md"
pytestmark = pytest.mark.matrix


def library_example() -> str:
    section = README.read_text().split("## The library in your own DAG", 1)[1]
    (code,) = re.findall(r"```python\n(.*?)```", section.split("\n## ", 1)[0], flags=re.S)
    return code


def test_the_readme_example_builds_a_dag_whose_tasks_share_one_fleet_run():
    namespace = {"TOPIC": "arn:aws:sns:us-east-1:123456789012:alerts"}
    with DAG("library_example", schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as dag:
        exec(compile(library_example(), str(README), "exec"), namespace)  # noqa: S102 - our own README
    fleet = namespace["fleet"]
    send, watch, cleanup = (dag.task_dict[t] for t in ("send", "watch", "cleanup"))
    assert send.document_name == fleet.document_name == "AWS-RunShellScript"
    assert cleanup.fleet_run is fleet and cleanup.is_teardown and send in cleanup.upstream_list
    assert watch.deferrable is True and watch.on_failure_callback[0].fleet_run is fleet
    assert set(dag.task_dict) == {"send", "watch", "cleanup"}
