from cots_ssm.redrive import NEVER_STARTED, plan_redrive
from cots_ssm.status import InvocationResult, Status, latest_per_instance

IDS = [f"i-{n:017x}" for n in range(120)]


def invocation(instance_id, status=Status.SUCCESS, command_id="c-1"):
    return InvocationResult(command_id, instance_id, status, status.value)


class TestLatestPerInstance:
    def test_a_later_command_wins(self):
        latest = latest_per_instance(
            [invocation(IDS[0], Status.FAILED), invocation(IDS[0], command_id="c-2")]
        )
        assert latest[IDS[0]].command_id == "c-2"


class TestPlanRedrive:
    def test_only_instances_that_did_not_succeed_run_again(self):
        failed = {IDS[3]: Status.FAILED, IDS[40]: Status.FAILED, IDS[77]: Status.CANCELLED}
        earlier = [invocation(i, failed.get(i, Status.SUCCESS)) for i in IDS]
        plan = plan_redrive(earlier, IDS)
        assert plan.rerun == (IDS[3], IDS[40], IDS[77])
        assert len(plan.succeeded) == 117 and not plan.running
        assert plan.describe() == "Redrive: 3 of 120 instances (2 Failed, 1 Cancelled); 117 already succeeded"

    def test_a_success_in_a_later_attempt_is_not_run_again(self):
        earlier = [invocation(IDS[0], Status.FAILED, "c-1"), invocation(IDS[0], Status.SUCCESS, "c-2")]
        assert plan_redrive(earlier, IDS[:1]).rerun == ()

    def test_instances_never_started_run_and_running_ones_are_only_watched(self):
        earlier = [invocation(IDS[0], Status.TIMED_OUT), invocation(IDS[1], Status.IN_PROGRESS)]
        plan = plan_redrive(earlier, IDS[:3])
        assert plan.rerun == (IDS[0], IDS[2]) and plan.running == (IDS[1],)
        assert dict(plan.reasons) == {"TimedOut": 1, NEVER_STARTED: 1}
        assert "1 still running (watched, not sent again)" in plan.describe()

    def test_the_fleet_is_every_instance_seen_or_resolved(self):
        plan = plan_redrive([invocation(IDS[5], Status.FAILED)], IDS[:2])
        assert plan.fleet == (IDS[0], IDS[1], IDS[5]) and plan.rerun == plan.fleet

    def test_nothing_to_redrive(self):
        plan = plan_redrive([invocation(i) for i in IDS[:4]], IDS[:4])
        assert plan.rerun == () and plan.describe() == "Redrive: 0 of 4 instances; 4 already succeeded"
