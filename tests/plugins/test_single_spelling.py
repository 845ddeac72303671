"""Every SSM status and status detail is spelled in one module of the plugins: the library's vocabulary."""

import ast
from collections import defaultdict
from pathlib import Path

from ssm_fleet.status import PingStatus, Status, StatusDetails

PACKAGE = Path(__file__).resolve().parents[2] / "plugins"
SPELLINGS = {s.value for s in Status} | {d.value for d in StatusDetails} | {p.value for p in PingStatus}


def string_constants(path: Path) -> set[str]:
    """String literals of a module, docstrings left out (prose may mention a status)."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    }


def test_each_status_string_lives_in_one_module():
    where = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        for literal in string_constants(path) & SPELLINGS:
            where[literal].add(str(path.relative_to(PACKAGE)))
    spelled_twice = {literal: sorted(paths) for literal, paths in where.items() if len(paths) > 1}
    assert spelled_twice == {}
    assert where["Cancelled"] == {"ssm_fleet/status.py"}
