"""Every module under plugins/ imports on the Airflow and provider versions it runs on.

The first thing a version of Airflow or of the Amazon provider breaks is an import (a name moved,
a module removed): this is the cheapest version-sensitive test, and the matrix runs it on every
MWAA Airflow. Modules are found on disk, so a package added to plugins/ is covered without a list.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.matrix
PLUGINS = Path(__file__).resolve().parents[1] / "plugins"


def plugin_modules() -> list[str]:
    names = []
    for top in pkgutil.iter_modules([str(PLUGINS)]):
        names.append(top.name)
        if top.ispkg:
            names += [m.name for m in pkgutil.walk_packages([str(PLUGINS / top.name)], prefix=f"{top.name}.")]
    return sorted(names)


MODULES = plugin_modules()


def test_the_plugins_folder_is_found():
    assert "cots_ssm_plugin" in MODULES and len(MODULES) > 20, MODULES


@pytest.mark.parametrize("name", MODULES)
def test_module_imports(name):
    module = importlib.import_module(name)
    assert module.__name__ == name
