"""Which tasks of a DAG make one fleet run: the one value every class that finds the run's work reads.

A fleet run is sent by one task (its token, :func:`ssm_fleet.plan.run_token_digest`, names the DAG,
the run and that task) and judged by another (its ``verdict`` and ``results`` hand-ons). The cleanup
operator and the notifiers find the run's commands and results through those two task ids and the
document; built from one :class:`FleetRun`, they cannot disagree with the tasks they clean up after.
"""

from __future__ import annotations

from dataclasses import dataclass

from ssm_fleet import validation


@dataclass(frozen=True)
class FleetRun:
    """The send task, the wait task and the SSM document of one fleet run in a DAG.

    :param send_task_id: the task that sends the commands (:class:`~ssm_fleet.operators.ssm.
        SsmRunCommandOperator`; its token finds them) (default: ``run``).
    :param wait_task_id: the task that waits for them and hands on the verdict (default: ``wait``).
    :param document_name: the SSM document the commands run (default: ``AWS-RunShellScript``).
    """

    send_task_id: str = "run"
    wait_task_id: str = "wait"
    document_name: str = "AWS-RunShellScript"

    def __post_init__(self) -> None:
        for field, value in (("send_task_id", self.send_task_id), ("wait_task_id", self.wait_task_id)):
            if not isinstance(value, str) or not value.strip():
                raise validation.InvalidParameterError(field, value, "give the task id of the DAG's task")
        if self.send_task_id == self.wait_task_id:
            raise validation.InvalidParameterError(
                "wait_task_id", self.wait_task_id, "the wait is another task than the send"
            )
        validation.document_name(self.document_name)

    def check_sender(self, task_id: str, document_name: str | None) -> None:
        """Refuse a send task built from this run with another task id or document than the run's."""
        if task_id != self.send_task_id:
            raise validation.InvalidParameterError(
                "task_id", task_id, f"the fleet run's send task is {self.send_task_id!r}"
            )
        if document_name is not None and document_name != self.document_name:
            raise validation.InvalidParameterError(
                "document_name", document_name, f"the fleet run's document is {self.document_name!r}"
            )
