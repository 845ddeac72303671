"""The JSON schema of the jobs file, read from disk once: the one source of the value rules.

The file check (``loader``) validates against it and the trigger form (``cots_ssm.params``) takes its
Params' rules from its ``$defs``, so the two refuse and accept the same values. Pure Python.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

SCHEMA_PATH = Path(__file__).with_name("cots_jobs.schema.json")
_LOCAL_REF = "#/$defs/"


@functools.cache
def schema() -> dict[str, Any]:
    """The whole schema, as shipped next to this module."""
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return loaded


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_LOCAL_REF):
            rest = {k: v for k, v in node.items() if k != "$ref"}
            return {**_inline(defs[ref[len(_LOCAL_REF) :]], defs), **_inline(rest, defs)}
        return {key: _inline(value, defs) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline(item, defs) for item in node]
    return node


@functools.cache
def shared_rule(name: str) -> dict[str, Any]:
    """The definition ``$defs[name]``, references inlined, without its description: built once, shared.

    A Param takes it as its JSON schema (Params cannot follow ``$ref`` into another document). Every
    caller gets the same object: read it, do not change it (:func:`rule` gives a copy to change).
    """
    defs = schema()["$defs"]
    if name not in defs:
        raise KeyError(f"{SCHEMA_PATH.name} has no definition {name!r}")
    inlined: dict[str, Any] = _inline(copy.deepcopy(defs[name]), defs)
    inlined.pop("description", None)
    return inlined


def rule(name: str) -> dict[str, Any]:
    """A copy of :func:`shared_rule`, free to change."""
    return copy.deepcopy(shared_rule(name))


@functools.cache
def validator(name: str) -> Draft202012Validator:
    """A validator of ``$defs[name]``, built once per process."""
    return Draft202012Validator({"$ref": f"{_LOCAL_REF}{name}", "$defs": schema()["$defs"]})


def setting_names() -> frozenset[str]:
    """The keys a job or ``defaults`` may set."""
    return frozenset(schema()["$defs"]["settings"]["properties"])


def job_keys() -> frozenset[str]:
    """Every key a job may have: the settings, its id and its description."""
    return setting_names() | frozenset(schema()["$defs"]["job"]["properties"])
