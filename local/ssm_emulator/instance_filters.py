"""DescribeInstanceInformation filters.

Both `InstanceInformationFilterList` (legacy, `key`/`valueSet`) and `Filters` (`Key`/`Values`,
also `tag:<key>` and `tag-key`) are supported. All filters are ANDed; the values of one filter
are ORed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ssm_emulator.exceptions import InvalidFilterKey, InvalidInstanceInformationFilterValue
from ssm_emulator.instances import ManagedInstance
from ssm_emulator.validation import check_instance_id_format

Predicate = Callable[[ManagedInstance, dict[str, str]], bool]
_Values = Callable[[ManagedInstance, dict[str, str]], list[str]]

_ATTRIBUTES: dict[str, _Values] = {
    "InstanceIds": lambda instance, _tags: [instance.instance_id],
    "PingStatus": lambda instance, _tags: [instance.ping_status],
    "PlatformTypes": lambda _instance, _tags: ["Linux"],
    "ResourceType": lambda _instance, _tags: ["EC2Instance"],
    "AgentVersion": lambda instance, _tags: [str(instance.information()["AgentVersion"])],
    "SourceIds": lambda instance, _tags: [instance.instance_id],
    "SourceTypes": lambda _instance, _tags: ["AWS::EC2::Instance"],
    # The emulated agents have no activation, no Quick Setup role and no association.
    "ActivationIds": lambda _instance, _tags: [],
    "IamRole": lambda _instance, _tags: [],
    "AssociationStatus": lambda _instance, _tags: [],
}
_LEGACY_KEYS = frozenset(
    {"InstanceIds", "AgentVersion", "PingStatus", "PlatformTypes", "ActivationIds", "IamRole", "ResourceType"}
    | {"AssociationStatus"}
)
_ALLOWED_VALUES = {
    "PingStatus": {"Online", "ConnectionLost", "Inactive"},
    "PlatformTypes": {"Windows", "Linux", "MacOS"},
    "ResourceType": {"EC2Instance", "ManagedInstance"},
}


def instance_predicates(params: dict[str, Any]) -> list[Predicate]:
    """Turn both filter lists of a DescribeInstanceInformation request into predicates."""
    predicates = []
    for item in params.get("InstanceInformationFilterList") or []:
        key = item.get("key", "")
        if key not in _LEGACY_KEYS:
            raise InvalidFilterKey(f"InstanceInformationFilterList does not support the key {key}.")
        predicates.append(_predicate(key, list(item.get("valueSet") or [])))
    for item in params.get("Filters") or []:
        predicates.append(_predicate(item.get("Key", ""), list(item.get("Values") or [])))
    return predicates


def _predicate(key: str, values: list[str]) -> Predicate:
    if not values:
        raise InvalidInstanceInformationFilterValue(f"Filter {key} needs at least one value.")
    wanted = set(values)
    if key.startswith("tag:") and len(key) > 4:
        tag = key[4:]
        return lambda _instance, tags: tags.get(tag) in wanted
    if key == "tag-key":
        return lambda _instance, tags: bool(wanted & set(tags))
    if key not in _ATTRIBUTES:
        raise InvalidFilterKey(f"Filter key {key} is not valid for DescribeInstanceInformation.")
    _check_values(key, values)
    attribute = _ATTRIBUTES[key]
    return lambda instance, tags: bool(wanted & set(attribute(instance, tags)))


def _check_values(key: str, values: list[str]) -> None:
    if key == "InstanceIds":
        for value in values:
            check_instance_id_format(value)
        return
    allowed = _ALLOWED_VALUES.get(key)
    bad = [value for value in values if allowed is not None and value not in allowed]
    if bad:
        raise InvalidInstanceInformationFilterValue(
            f"{', '.join(bad)} is not a valid {key} value; use one of {', '.join(sorted(allowed or ()))}."
        )
