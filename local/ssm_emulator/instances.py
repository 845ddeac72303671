"""The SSM-managed instances of one emulator: which EC2 instances have an "agent", and its ping.

Only instances registered here (those the emulator bootstrapped or added) are SSM-managed; any
other EC2 instance is unknown to Run Command, as an instance without the agent is on AWS. Tags
are read live from moto's EC2 backend, so CreateTags / DeleteTags are seen at once; `untag`
removes a tag there too, and `restore_tags` puts back what it removed.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from dataclasses import dataclass, field
from typing import Any

from moto.ec2.models import ec2_backends


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class ManagedInstance:
    """One EC2 instance with an emulated SSM agent."""

    instance_id: str
    account_id: str
    region: str
    private_ip: str
    private_dns_name: str
    seq: int
    online: bool = True
    #: Terminated: gone from the fleet (unknown to SSM, matched by no filter); reset brings it back.
    terminated: bool = False
    registered_at: dt.datetime = field(default_factory=_utcnow)
    changed_at: dt.datetime = field(default_factory=_utcnow)

    @property
    def ping_status(self) -> str:
        return "Online" if self.online else "ConnectionLost"

    def tags(self) -> dict[str, str]:
        return dict(self._ec2().tags.get(self.instance_id, {}))

    def remove_tag(self, key: str) -> str | None:
        """Delete tag `key` in moto's EC2; return its value, or None if the instance had no such tag."""
        value = self.tags().get(key)
        if value is not None:
            self._ec2().delete_tags([self.instance_id], {key: None})
        return value

    def put_tag(self, key: str, value: str) -> None:
        self._ec2().create_tags([self.instance_id], {key: value})

    def _ec2(self) -> Any:
        return ec2_backends[self.account_id][self.region]

    def information(self) -> dict[str, object]:
        """Shape a DescribeInstanceInformation `InstanceInformation`."""
        return {
            "InstanceId": self.instance_id,
            "PingStatus": self.ping_status,
            # An online agent pings all the time; a lost one was last heard when it went away.
            "LastPingDateTime": _utcnow() if self.online else self.changed_at,
            "AgentVersion": "3.3.1611.0",
            "IsLatestVersion": True,
            "PlatformType": "Linux",
            "PlatformName": "Amazon Linux",
            "PlatformVersion": "2023",
            "ResourceType": "EC2Instance",
            "IPAddress": self.private_ip,
            "ComputerName": self.private_dns_name,
            "RegistrationDate": self.registered_at,
            "SourceId": self.instance_id,
            "SourceType": "AWS::EC2::Instance",
        }


class InstanceRegistry:
    """Thread-safe registry of managed instances, in registration order."""

    def __init__(self) -> None:
        self._instances: dict[str, ManagedInstance] = {}
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._removed_tags: list[tuple[ManagedInstance, str, str]] = []

    def register(
        self, account_id: str, region: str, ec2_instance: dict[str, object], online: bool = True
    ) -> None:
        """Register an instance described by an EC2 RunInstances answer."""
        instance_id = str(ec2_instance["InstanceId"])
        with self._lock:
            self._instances[instance_id] = ManagedInstance(
                instance_id=instance_id,
                account_id=account_id,
                region=region,
                private_ip=str(ec2_instance.get("PrivateIpAddress", "")),
                private_dns_name=str(ec2_instance.get("PrivateDnsName", "")),
                seq=next(self._seq),
                online=online,
            )

    def get(self, account_id: str, region: str, instance_id: str) -> ManagedInstance | None:
        """Return the managed instance with this id in this account and region, if any."""
        instance = self._instances.get(instance_id)
        if instance is None or instance.terminated:
            return None
        if instance.account_id != account_id or instance.region != region:
            return None
        return instance

    def in_region(self, account_id: str, region: str) -> list[ManagedInstance]:
        """Return the managed instances of an account and region, in registration order."""
        with self._lock:
            instances = list(self._instances.values())
        return [
            i for i in instances if i.account_id == account_id and i.region == region and not i.terminated
        ]

    def is_online(self, instance_id: str) -> bool:
        instance = self._instances.get(instance_id)
        return instance is not None and instance.online and not instance.terminated

    def terminate(self, instance_id: str) -> bool:
        """Take an instance out of the fleet; return whether it was still in it.

        Raises KeyError for an instance that is not registered.
        """
        with self._lock:
            instance = self._instances[instance_id]
            was_in, instance.terminated = not instance.terminated, True
            instance.changed_at = _utcnow()
        return was_in

    def terminated(self) -> list[str]:
        with self._lock:
            return [i.instance_id for i in self._instances.values() if i.terminated]

    def restore_terminated(self) -> None:
        """Bring terminated instances back into the fleet (part of the control API's reset)."""
        with self._lock:
            for instance in self._instances.values():
                instance.terminated = False

    def set_online(self, instance_ids: list[str], online: bool) -> list[str]:
        """Set the ping status of instances; return the ids that are not registered."""
        unknown = []
        with self._lock:
            for instance_id in instance_ids:
                instance = self._instances.get(instance_id)
                if instance is None:
                    unknown.append(instance_id)
                elif instance.online != online:
                    instance.online = online
                    instance.changed_at = _utcnow()
        return unknown

    def all_online(self) -> None:
        """Bring every instance back online (part of the control API's reset)."""
        with self._lock:
            ids = [i.instance_id for i in self._instances.values() if not i.online]
        self.set_online(ids, True)

    def untag(self, instance_id: str, key: str) -> bool:
        """Remove tag `key` from an instance in moto's EC2; return whether it had the tag.

        Raises KeyError for an instance that is not registered.
        """
        with self._lock:
            instance = self._instances[instance_id]
            value = instance.remove_tag(key)
            if value is not None:
                self._removed_tags.append((instance, key, value))
        return value is not None

    def restore_tags(self) -> None:
        """Put back the tags `untag` removed (part of the control API's reset)."""
        with self._lock:
            removed, self._removed_tags = self._removed_tags, []
        for instance, key, value in reversed(removed):
            instance.put_tag(key, value)

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._instances)
