"""The check re-sends hosts that missed the start, the same for the sensor and the trigger (no I/O)."""

from datetime import timedelta

from ssm_fleet.check import (
    CancelCommands,
    CheckStatus,
    DescribeCommands,
    DescribeInstances,
    FindRunCommands,
    GetOutput,
    ListInvocations,
    Resend,
    WaitSpec,
    fleet_check,
)
from ssm_fleet.plan import resend_comment
from ssm_fleet.resend import ResendPolicy

from .ssm_answers import DIGEST, IDS, T0, api_invocation, comment

NOW = (T0 + timedelta(minutes=14)).timestamp()


def missed(instance_id, command_id="cmd-1", details="Delivery Timed Out", attempt=1):
    item = api_invocation(instance_id, "TimedOut", details, -1, command_id, attempt=attempt)
    for key in ("ResponseStartDateTime", "ResponseFinishDateTime"):
        item["CommandPlugins"][0].pop(key)
    return item


def ran(instance_id, status="Success", code=0, command_id="cmd-1"):
    return api_invocation(instance_id, status, status, code, command_id, attempt=1)


def resent(item, k):
    """An invocation item of a host's k-th re-send."""
    return {**item, "CommandId": f"re-{item['InstanceId']}-{k}", "Comment": resend_comment(DIGEST, 1, k)}


def chunk(ids, status="Success"):
    return {
        "CommandId": "cmd-1",
        "Status": status,
        "TargetCount": len(ids),
        "InstanceIds": list(ids),
        "Comment": comment(),
        "DocumentName": "AWS-RunShellScript",
        "Parameters": {"commands": ["run"]},
    }


def resend_command(instance_id, k, command_id=None, status="Pending", at="2026-11-26T02:14:00"):
    return {
        "CommandId": command_id or f"re-{instance_id}-{k}",
        "Status": status,
        "TargetCount": 1,
        "InstanceIds": [instance_id],
        "Comment": resend_comment(DIGEST, 1, k),
        "RequestedDateTime": at,
    }


class FakeSsm:
    """SSM as a check sees it: listings, the run's commands, ping statuses; records every request."""

    def __init__(self, listings, commands, online=(), known=None):
        self.known = known  # the hosts SSM still lists (default: every host asked about)
        self.listings = listings
        self.commands = {c["CommandId"]: c for c in commands}
        self.online = set(online)
        self.requests = []

    def answer(self, request):
        self.requests.append(request)
        if isinstance(request, ListInvocations):
            return self.listings.get(request.command_id, [])
        if isinstance(request, DescribeCommands):
            return [self.commands[c] for c in request.command_ids if c in self.commands]
        if isinstance(request, FindRunCommands):
            return list(self.commands.values())
        if isinstance(request, DescribeInstances):
            known = [i for i in request.instance_ids if self.known is None or i in self.known]
            return [{"InstanceId": i, "PingStatus": "Online" if i in self.online else "ConnectionLost"}
                    for i in known]  # fmt: skip
        if isinstance(request, Resend):
            new = resend_command(request.due.instance_id, request.due.resend)
            self.commands[new["CommandId"]] = new
            return new["CommandId"]
        if isinstance(request, GetOutput):
            return None
        return list(request.command_ids)

    def check(self, spec, **kwargs):
        run = fleet_check(spec, now=kwargs.pop("now", NOW), **kwargs)
        try:
            request = next(run)
            while True:
                request = run.send(self.answer(request))
        except StopIteration as done:
            return done.value

    def sent(self):
        return [r.due for r in self.requests if isinstance(r, Resend)]


def spec(retries=1, codes=(), until=None):
    return WaitSpec(("cmd-1",), attempt=1, resend=ResendPolicy(retries, frozenset(codes), until))


def test_a_fleet_where_no_host_missed_its_start_costs_no_call_more():
    ssm = FakeSsm({"cmd-1": [ran(IDS[0]), ran(IDS[1])]}, [chunk(IDS[:2])])
    assert ssm.check(spec()).status is CheckStatus.SUCCEEDED
    assert not [r for r in ssm.requests if isinstance(r, (FindRunCommands, DescribeInstances, Resend))]


def test_a_host_back_online_is_resent_once_and_the_fleet_keeps_running():
    ssm = FakeSsm({"cmd-1": [missed(IDS[0]), ran(IDS[1])]}, [chunk(IDS[:2])], online=IDS)
    result = ssm.check(spec())
    assert result.status is CheckStatus.RUNNING
    assert [(d.instance_id, d.resend, d.source_command_id) for d in ssm.sent()] == [(IDS[0], 1, "cmd-1")]
    assert result.verdict.failed == ()
    assert result.payload(spec())["verdict"]["progress"] == "1/2 hosts done: 1 Success; 1 not listed yet"
    assert result.resent == (f"{IDS[0]}: Delivery Timed Out, re-sent 02:14 (re-send 1, re-{IDS[0]}-1)",)
    request = next(r for r in ssm.requests if isinstance(r, Resend))
    assert (request.digest, request.attempt, request.source["CommandId"]) == (DIGEST, 1, "cmd-1")


def test_a_second_check_before_the_resend_is_listed_does_not_send_it_again():
    ssm = FakeSsm({"cmd-1": [missed(IDS[0])]}, [chunk(IDS[:1])], online=IDS)
    ssm.check(spec())
    again = ssm.check(spec())
    assert len(ssm.sent()) == 1
    assert again.status is CheckStatus.RUNNING and again.verdict.failed == ()


def test_an_offline_host_waits_without_being_sent_or_failing():
    ssm = FakeSsm({"cmd-1": [missed(IDS[0]), ran(IDS[1])]}, [chunk(IDS[:2])])
    result = ssm.check(spec())
    assert (result.status, ssm.sent(), result.verdict.waiting) == (CheckStatus.RUNNING, [], (IDS[0],))
    progress = result.payload(spec())["verdict"]["progress"]
    assert progress == f"1/2 hosts done: 1 Success; 1 to be re-sent once Online ({IDS[0]})"


def test_the_resent_host_that_succeeded_makes_the_run_green_and_its_row_names_the_resend():
    done = resent(ran(IDS[0]), 1)
    done["RequestedDateTime"] = T0 + timedelta(minutes=14)
    ssm = FakeSsm(
        {"cmd-1": [missed(IDS[0]), ran(IDS[1])], f"re-{IDS[0]}-1": [done]},
        [chunk(IDS[:2]), resend_command(IDS[0], 1, status="Success")],
        online=IDS,
    )
    result = ssm.check(spec())
    assert (result.status, ssm.sent()) == (CheckStatus.SUCCEEDED, [])
    payload = result.payload(spec())
    rows = {row["instance_id"]: row for row in payload["results"]}
    assert rows[IDS[0]]["resent"] == "re-sent 1x after Delivery Timed Out at 02:14"
    assert (rows[IDS[0]]["status"], rows[IDS[1]]["resent"]) == ("Success", "")
    assert payload["verdict"]["resent"] == [f"{IDS[0]}: re-sent 1x after Delivery Timed Out at 02:14"]


def test_with_its_resends_used_up_the_host_is_judged_by_its_latest_invocation():
    again = resent(missed(IDS[0]), 1)
    ssm = FakeSsm(
        {"cmd-1": [missed(IDS[0])], f"re-{IDS[0]}-1": [again]},
        [chunk(IDS[:1], "TimedOut"), resend_command(IDS[0], 1, status="TimedOut")],
        online=IDS,
    )
    result = ssm.check(spec())
    assert (result.status, ssm.sent()) == (CheckStatus.FAILED, [])
    assert f"{IDS[0]}" in result.payload(spec())["failure_summary"]
    assert "re-sent 1x after Delivery Timed Out" in result.payload(spec())["failure_summary"]


def test_host_retries_0_fails_the_run_naming_the_host():
    ssm = FakeSsm({"cmd-1": [missed(IDS[0])]}, [chunk(IDS[:1], "TimedOut")], online=IDS)
    result = ssm.check(WaitSpec(("cmd-1",), attempt=1, resend=None))
    assert (result.status, ssm.sent()) == (CheckStatus.FAILED, [])
    assert "Delivery Timed Out" in result.payload(spec())["failure_summary"]


def test_past_the_bound_nothing_is_resent_and_the_host_is_judged():
    ssm = FakeSsm({"cmd-1": [missed(IDS[0])]}, [chunk(IDS[:1], "TimedOut")], online=IDS)
    assert ssm.check(spec(until=NOW)).status is CheckStatus.FAILED
    assert ssm.sent() == []


def test_the_last_check_of_a_timed_out_wait_resends_nothing():
    ssm = FakeSsm({"cmd-1": [missed(IDS[0]), ran(IDS[1], "InProgress")]}, [chunk(IDS[:2], "InProgress")], IDS)
    result = ssm.check(spec(), timed_out=True)
    assert (result.status, ssm.sent()) == (CheckStatus.TIMEOUT, [])


def test_a_failed_batch_is_rerun_only_for_a_listed_exit_code():
    ssm = FakeSsm({"cmd-1": [ran(IDS[0], "Failed", 75), ran(IDS[1], "Failed", 3)]}, [chunk(IDS[:2])], IDS)
    result = ssm.check(spec(codes=[75]))
    assert [(d.instance_id, d.reason) for d in ssm.sent()] == [(IDS[0], "exit code 75")]
    assert result.status is CheckStatus.RUNNING  # IDS[0] runs again; IDS[1] failed, judged at the end
    assert [i.instance_id for i in result.verdict.failed] == [IDS[1]]


def test_a_second_copy_of_a_resend_is_cancelled_the_earliest_kept():
    first = resend_command(IDS[0], 1, "re-a", at="2026-11-26T02:14:00")
    copy = resend_command(IDS[0], 1, "re-b", at="2026-11-26T02:15:00")
    ssm = FakeSsm({"cmd-1": [missed(IDS[0])]}, [chunk(IDS[:1]), first, copy], online=IDS)
    ssm.check(spec())
    cancels = [r for r in ssm.requests if isinstance(r, CancelCommands)]
    assert [c.command_ids for c in cancels] == [("re-b",)]
    assert ssm.sent() == []


def test_a_host_ssm_no_longer_knows_is_judged_at_once():
    ssm = FakeSsm(
        {"cmd-1": [missed(IDS[0], details="Undeliverable"), ran(IDS[1])]}, [chunk(IDS[:2])], known=()
    )
    result = ssm.check(spec())
    assert (result.status, ssm.sent()) == (CheckStatus.FAILED, [])
