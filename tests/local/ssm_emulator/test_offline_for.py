"""set_offline(ids, for_seconds=N): a host that was rebooting comes back Online by itself."""

from __future__ import annotations

import time


def ping(ssm, instance_id):
    info = ssm.describe_instance_information(Filters=[{"Key": "InstanceIds", "Values": [instance_id]}])
    return info["InstanceInformationList"][0]["PingStatus"]


def test_offline_for_seconds_comes_back_online_by_itself(emu, ssm, run, wait_for):
    instance = emu.instance_ids[0]
    emu.control.time_scale(0.03)  # TimeoutSeconds=30 lasts 0.9 s: the command misses the host
    emu.control.set_offline([instance], for_seconds=2)
    assert ping(ssm, instance) == "ConnectionLost"
    missed = run.send(["true"], [instance], TimeoutSeconds=30)
    run.wait(missed, timeout=10)
    assert run.result(missed, instance)["StatusDetails"] == "Delivery Timed Out"
    wait_for(lambda: ping(ssm, instance) == "Online", what="the host back Online", timeout=10)
    again = run.send(["true"], [instance], TimeoutSeconds=30)
    run.wait(again, timeout=10)
    assert run.result(again, instance)["Status"] == "Success"


def test_reset_cancels_a_come_back_not_yet_due(emu, ssm):
    instance = emu.instance_ids[1]
    emu.control.set_offline([instance], for_seconds=1.5)
    emu.control.reset()
    emu.control.set_offline([instance])  # offline for good now: the earlier come-back must not undo it
    time.sleep(2.5)
    assert ping(ssm, instance) == "ConnectionLost"
