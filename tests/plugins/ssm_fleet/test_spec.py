import pytest

from ssm_fleet.operators.ssm import SsmRunCommandOperator
from ssm_fleet.spec import FleetRun
from ssm_fleet.validation import InvalidParameterError


class TestFleetRun:
    def test_the_defaults_are_the_send_task_the_wait_task_and_the_shell_document(self):
        assert FleetRun() == FleetRun("run", "wait", "AWS-RunShellScript")

    @pytest.mark.parametrize(
        ("kwargs", "field"),
        [
            ({"send_task_id": ""}, "send_task_id"),
            ({"wait_task_id": "  "}, "wait_task_id"),
            ({"send_task_id": "run", "wait_task_id": "run"}, "wait_task_id"),
            ({"document_name": "no spaces allowed"}, "document_name"),
        ],
    )
    def test_a_bad_value_is_refused_naming_its_field(self, kwargs, field):
        with pytest.raises(InvalidParameterError, match=f"^{field}="):
            FleetRun(**kwargs)


class TestTheSendTaskFollowsItsRun:
    def test_the_task_id_and_the_document_come_from_the_run(self):
        op = SsmRunCommandOperator(
            fleet_run=FleetRun("send", "watch", "AWS-RunPowerShellScript"), commands=["x"]
        )
        assert (op.task_id, op.document_name) == ("send", "AWS-RunPowerShellScript")

    def test_a_task_id_other_than_the_runs_is_refused_before_anything_is_built(self):
        with pytest.raises(InvalidParameterError, match="^task_id='send_again'.*send task is 'send'"):
            SsmRunCommandOperator(task_id="send_again", fleet_run=FleetRun("send", "watch"), commands=["x"])

    def test_a_document_other_than_the_runs_is_refused(self):
        with pytest.raises(InvalidParameterError, match="^document_name='AWS-RunPowerShellScript'"):
            SsmRunCommandOperator(
                fleet_run=FleetRun(), document_name="AWS-RunPowerShellScript", commands=["x"]
            )

    def test_without_a_run_the_operator_is_the_plain_provider_style_one(self):
        op = SsmRunCommandOperator(task_id="anything", commands=["x"])
        assert op.document_name == "AWS-RunShellScript"
