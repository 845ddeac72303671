"""Public classes of the plugin package document every constructor argument with ``:param``."""

import importlib
import inspect
import pkgutil

import pytest

import cots_ssm

MODULES = [
    importlib.import_module(info.name)
    for info in pkgutil.walk_packages(cots_ssm.__path__, prefix="cots_ssm.")
    if not info.ispkg
]
CLASSES = sorted(
    {
        (cls.__module__, cls.__name__): cls
        for module in MODULES
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if cls.__module__ == module.__name__ and not cls.__name__.startswith("_")
    }.items()
)
UNDOCUMENTED_OK = {"self", "kwargs", "args", "botocore_config", "value", "field", "reason"}


@pytest.mark.parametrize("cls", [c for _, c in CLASSES], ids=[f"{m}.{n}" for (m, n), _ in CLASSES])
def test_public_class_has_param_docstrings(cls):
    assert cls.__doc__ and cls.__doc__.strip(), f"{cls.__name__} has no docstring"
    if cls.__init__ is object.__init__ or issubclass(cls, (str, Exception)) and "__init__" not in vars(cls):
        return
    if "__init__" not in vars(cls) and not hasattr(cls, "__dataclass_fields__"):
        return
    names = set(inspect.signature(cls).parameters) - UNDOCUMENTED_OK
    missing = sorted(n for n in names if f":param {n}:" not in cls.__doc__)
    assert not missing, f"{cls.__name__} does not document {missing}"
