"""The direction of the imports: the library knows nothing of the application, the product nothing of local/.

Read from the source (every ``import`` and ``from ... import``, at any depth, type-checking blocks
included), so a function-level import cannot slip through.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "plugins" / "ssm_fleet"
PRODUCT = [ROOT / "plugins", ROOT / "dags", ROOT / "deploy", ROOT / "mwaa"]
APPLICATION_MODULES = {"cots_ssm", "cots_ssm_plugin"}
#: The top-level names local/ provides (the emulator, the demo, the dev stacks): test and demo tools.
LOCAL_MODULES = {path.stem for path in (ROOT / "local").iterdir() if path.suffix == ".py" or path.is_dir()}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Each module ``path`` imports, with its line: absolute names only (relative ones stay inside)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, node.module))
    return found


def offending(folders: list[Path], forbidden: set[str], root: Path = ROOT) -> list[str]:
    return [
        f"{path.relative_to(root)}:{line} imports {module}"
        for folder in folders
        for path in sorted(folder.rglob("*.py"))
        for line, module in imported_modules(path)
        if module.split(".")[0] in forbidden
    ]


def test_the_library_never_imports_the_application():
    assert offending([LIBRARY], APPLICATION_MODULES) == []


def test_the_product_never_imports_local_tools():
    assert "ssm_emulator" in LOCAL_MODULES and "devenv" in LOCAL_MODULES
    assert offending(PRODUCT, LOCAL_MODULES) == []


@pytest.mark.parametrize(
    ("source", "forbidden", "found"),
    [
        (
            "def f():\n    from cots_ssm.tasks import FLEET_RUN\n",
            APPLICATION_MODULES,
            ["x.py:2 imports cots_ssm.tasks"],
        ),
        ("import ssm_emulator.server as s\n", {"ssm_emulator"}, ["x.py:1 imports ssm_emulator.server"]),
        ("from . import status\nfrom ssm_fleet import plan\n", APPLICATION_MODULES, []),
    ],
)
def test_the_check_sees_imports_at_any_depth(tmp_path, source, forbidden, found):
    (tmp_path / "x.py").write_text(source)
    assert offending([tmp_path], forbidden, root=tmp_path) == found
