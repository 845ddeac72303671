"""The one defaults table (docs/configuration.md) says what the code does.

Each row's default is compared with ``BatchConfig``'s, each variable is set and must change its
key in ``BatchConfig.from_env``, and every field, variable and jobs-file key has its row.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
import yaml

from cots_ssm.config import PREFIX, BatchConfig

ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT / "docs" / "configuration.md"
FIELDS = {f.name: f for f in dataclasses.fields(BatchConfig)}
DEFAULTS = BatchConfig()


def table_rows() -> dict[str, tuple[str, str]]:
    """``key -> (variable, default cell)`` of the table between its markers."""
    text = TABLE.read_text()
    body = text.split("<!-- defaults:start -->")[1].split("<!-- defaults:end -->")[0]
    found = {}
    for line in body.strip().splitlines()[2:]:
        key, variable, default = (cell.strip() for cell in line.strip("|").split("|")[:3])
        found[key.strip("`")] = (variable.strip("`"), default)
    return found


ROWS = table_rows()


def documented(cell: str) -> object:
    """The value a default cell states: a backticked YAML value, or ``none`` for empty."""
    if cell == "none":
        return ""
    match = re.fullmatch(r"`([^`]*)`", cell)
    assert match, f"default cell {cell!r} is neither `value` nor none"
    return yaml.safe_load(match.group(1))


def probe(name: str) -> tuple[str, object]:
    """A value for the field's variable other than its default: (as the variable, as parsed)."""
    default = getattr(DEFAULTS, name)
    if name == "failure_policy":
        return "cancel", "cancel"
    if isinstance(default, bool):
        return str(not default).lower(), not default
    if isinstance(default, int | float):
        return str(int(default) + 1), int(default) + 1
    if isinstance(default, list):
        return json.dumps(["probe"]), ["probe"]
    if isinstance(default, dict):
        return json.dumps({"Probe": ["yes"]}), {"Probe": ["yes"]}
    return "probe-value", "probe-value"


def variables_read_by_the_code() -> set[str]:
    """Every ``COTS_BATCH_*`` name ``config.py`` reads, from its source."""
    source = (ROOT / "plugins" / "cots_ssm" / "config.py").read_text()
    names = re.findall(r'PREFIX \+ "([A-Z_]+)"', source) + re.findall(r'_\w+\(env, "([A-Z_]+)"', source)
    return {PREFIX + name for name in names}


def test_every_field_has_its_row():
    missing = sorted(set(FIELDS) - set(ROWS))
    assert not missing, f"BatchConfig fields without a row in {TABLE.name}: {missing}"


def test_every_row_is_a_key_of_the_jobs_file():
    schema = json.loads((ROOT / "plugins" / "cots_ssm" / "jobs" / "cots_jobs.schema.json").read_text())
    keys = set(schema["$defs"]["settings"]["properties"]) | set(schema["$defs"]["job"]["properties"])
    unknown = sorted(set(ROWS) - keys)
    assert not unknown, f"rows of {TABLE.name} that the jobs file does not accept: {unknown}"


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_the_default_is_the_codes(name):
    stated = documented(ROWS[name][1])
    actual = getattr(DEFAULTS, name)
    assert stated == actual, f"{name}: {TABLE.name} says {stated!r}, BatchConfig says {actual!r}"


@pytest.mark.parametrize("name", sorted(k for k in FIELDS if ROWS.get(k, ("",))[0]))
def test_the_variable_sets_its_key(name):
    variable = ROWS[name][0]
    raw, parsed = probe(name)
    read = getattr(BatchConfig.from_env({variable: raw}), name)
    assert read == parsed, f"{name}: {variable}={raw!r} gave {read!r}, expected {parsed!r}"


def test_every_variable_the_code_reads_has_its_row():
    listed = {variable for variable, _ in ROWS.values() if variable}
    missing = sorted(variables_read_by_the_code() - listed)
    assert not missing, f"variables read by config.py without a row in {TABLE.name}: {missing}"
