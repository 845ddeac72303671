"""What a triggered run changed from its job's values, who triggered it, and the bounds of a change.

Pure Python, no Airflow import. The trigger form's defaults are the job's values; a run's ``conf``
holds what its trigger gave. Every field whose given value differs from the job's is an override, and
the report, the alert and the fleet page say so with who triggered the run (the user Airflow records
on the DAG run, ``triggering_user_name``, when the running version records one).

A trigger may change the failure tolerance only within the job's bound (``max_failed_instances_bound``
in the jobs file: by default the job's own tolerance, which a trigger may only lower) and the failure
policy only to one of ``failure_policy_choices``. The trigger form carries both as its fields' allowed
values, so Airflow refuses an out-of-bound trigger, naming the field and the value, before the run
exists and before anything is sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: Who triggered the run, when the Airflow version does not record it on the DAG run.
NOT_RECORDED = "(not recorded by this Airflow version)"
#: A bound of 100%: any tolerance.
ANY_TOLERANCE = "100%"


def _text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _normal(value: Any) -> Any:
    """A value and its rendered template text compare equal (``60`` and ``"60"``, a list and its JSON)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return str(value)
    return value


@dataclass(frozen=True)
class Override:
    """One form field a trigger changed.

    :param field: the trigger form's field.
    :param value: what the trigger gave.
    :param default: the job's value.
    """

    field: str
    value: Any
    default: Any

    def __str__(self) -> str:
        return f"{self.field}: {_text(self.default)} -> {_text(self.value)}"


@dataclass(frozen=True)
class RunOverrides:
    """The overrides of one run and who triggered it.

    :param who: the triggering user, or :data:`NOT_RECORDED`.
    :param changes: each changed field, in the form's order.
    """

    who: str = NOT_RECORDED
    changes: tuple[Override, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.changes)

    def summary(self) -> str:
        """One line: who changed what, from which value (empty when nothing was changed)."""
        if not self.changes:
            return ""
        return f"Triggered by {self.who} with overrides: " + "; ".join(map(str, self.changes))

    def lines(self) -> list[str]:
        """The same, one change per line, for an alert body or a page."""
        if not self.changes:
            return []
        return [f"Overrides (triggered by {self.who}):", *(f"- {change}" for change in self.changes)]


def find_overrides(conf: Mapping[str, Any] | None, defaults: Mapping[str, Any]) -> tuple[Override, ...]:
    """Each field of ``defaults`` (the form's, i.e. the job's values) that ``conf`` gives another value."""
    conf = conf or {}
    return tuple(
        Override(name, conf[name], default)
        for name, default in defaults.items()
        if name in conf and _normal(conf[name]) != _normal(default)
    )


def param_defaults(params: Any) -> dict[str, Any]:
    """The trigger form's defaults from a DAG's ``params`` (Airflow's ``ParamsDict``, or a mapping)."""
    dump = getattr(params, "dump", None)
    return dict(dump()) if callable(dump) else dict(params or {})


def run_overrides(dag_run: Any, defaults: Mapping[str, Any]) -> RunOverrides:
    """The overrides of ``dag_run`` (its ``conf``) against ``defaults``, and its triggering user."""
    who = getattr(dag_run, "triggering_user_name", None) or NOT_RECORDED
    return RunOverrides(str(who), find_overrides(getattr(dag_run, "conf", None), defaults))


def context_overrides(context: Mapping[str, Any]) -> RunOverrides:
    """:func:`run_overrides` of an Airflow context's ``dag_run``, against its ``dag``'s form defaults."""
    return run_overrides(context.get("dag_run"), param_defaults(getattr(context.get("dag"), "params", None)))


# -- the bounds a trigger may move within -------------------------------------------------------------
def _tolerance(value: str) -> tuple[bool, int]:
    """``(is a percentage, number)`` of a tolerance such as ``"3"`` or ``"10%"``."""
    return value.endswith("%"), int(value.rstrip("%"))


def tolerance_choices(own: str, bound: str = "") -> list[str] | None:
    """Every tolerance a trigger may choose, from none up to ``bound`` (default: ``own``) in its unit.

    ``None``: any tolerance (a bound of ``100%``).
    """
    bound = bound or own
    try:
        percent, most = _tolerance(bound)
    except ValueError:  # a malformed job value: its own check refuses it, not this list
        return None
    if bound == ANY_TOLERANCE:
        return None
    if percent:
        return ["0", *(f"{n}%" for n in range(most + 1))]
    return [str(n) for n in range(most + 1)]


def bound_problems(settings: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """``(field, message)`` for each bound of a job's merged ``settings`` that its own values break."""
    own, bound = str(settings["max_failed_instances"]), str(settings.get("max_failed_instances_bound") or "")
    if bound and bound != ANY_TOLERANCE and own != "0":
        try:
            (own_percent, own_most), (percent, most) = _tolerance(own), _tolerance(bound)
        except ValueError:
            yield "max_failed_instances", f"{own!r} is not a tolerance such as 3 or 10%"
            return
        if own_percent != percent:
            unit = "a percentage" if own_percent else "a count"
            yield "max_failed_instances_bound", f"{bound!r}: give {unit}, as max_failed_instances {own!r} is"
        elif most < own_most:
            yield "max_failed_instances_bound", f"{bound!r} is below the job's max_failed_instances {own!r}"
    choices: Sequence[str] = settings.get("failure_policy_choices") or ()
    if settings["failure_policy"] not in choices:
        yield (
            "failure_policy_choices",
            f"{list(choices)!r} does not include the job's failure_policy {settings['failure_policy']!r}",
        )
