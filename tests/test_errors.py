"""One exception hierarchy: every public exception of rnnsym derives from rnnsym.RnnsymError,
and UsageError / Unsupported are one class each wherever they are imported from."""
import importlib
import inspect
import pkgutil
import sys

import pytest

import rnnsym
from rnnsym.errors import RnnsymError, Unsupported, UsageError

#: BaseExceptions on purpose, with the reason: they are not errors of the user's.
NOT_RNNSYM_ERRORS = {
    # a target's own `except Exception` must not swallow the checker's time limit
    "rnnsym.conformance.limits.TargetTimeout",
}


def _all_modules():
    """Every module of rnnsym, imported (none imports a framework at module level)."""
    for info in pkgutil.walk_packages(rnnsym.__path__, "rnnsym."):
        if info.name != "rnnsym.__main__":          # running it is the CLI
            importlib.import_module(info.name)
    return [m for name, m in sorted(sys.modules.items())
            if name.startswith("rnnsym.") and m is not None]


def _public_exception_classes():
    """(qualified name, class) of every public exception class defined in an rnnsym module."""
    found = {}
    for module in _all_modules():
        for name, obj in vars(module).items():
            if (inspect.isclass(obj) and issubclass(obj, BaseException)
                    and obj.__module__ == module.__name__ and not name.startswith("_")):
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return found


def test_every_public_exception_class_derives_from_rnnsym_error():
    classes = _public_exception_classes()
    # the scan sees the classes it must (a scan that finds nothing proves nothing)
    for name in ("rnnsym.errors.UsageError", "rnnsym.shapes.ShapeError",
                 "rnnsym.cells.parse.DefinitionError", "rnnsym.onnx.attributes.OnnxError",
                 "rnnsym.frameworks.ContractError", "rnnsym.conformance.limits.TargetTimeout"):
        assert name in classes, f"{name} not found by the scan"
    outside = sorted(name for name, cls in classes.items()
                     if not issubclass(cls, RnnsymError) and name not in NOT_RNNSYM_ERRORS)
    assert outside == [], f"exceptions outside RnnsymError: {outside}"
    for name in NOT_RNNSYM_ERRORS:
        assert not issubclass(classes[name], Exception), f"{name} should stay a BaseException"


@pytest.mark.parametrize("name, expected", [("UsageError", UsageError),
                                            ("Unsupported", Unsupported)])
def test_one_class_object_per_name(name, expected):
    holders = {m.__name__: getattr(m, name) for m in _all_modules() if hasattr(m, name)}
    assert {"rnnsym.cli", "rnnsym.frameworks", "rnnsym.conformance"} & set(holders), holders
    others = {k: v for k, v in holders.items() if v is not expected}
    assert others == {}, f"{name} should be rnnsym.errors.{name} everywhere, but: {others}"
    assert getattr(rnnsym, name) is expected


def test_old_names_keep_their_builtin_bases():
    """`except ValueError` / `except NotImplementedError` written against the old classes
    still catch the merged ones."""
    from rnnsym.conformance.checker import OptionTypeError
    from rnnsym.frameworks import ContractError, OutputError
    assert issubclass(UsageError, ValueError) and issubclass(ContractError, UsageError)
    assert issubclass(Unsupported, NotImplementedError)
    assert issubclass(OutputError, AssertionError)
    assert issubclass(OptionTypeError, TypeError) and issubclass(OptionTypeError, UsageError)
    from rnnsym.shapes import ShapeConflict
    assert issubclass(ShapeConflict, ValueError) and issubclass(ShapeConflict, RnnsymError)


def test_errors_module_imports_nothing_of_rnnsym():
    source = inspect.getsource(importlib.import_module("rnnsym.errors"))
    assert "import" not in source.replace("imports nothing", "")


def test_cli_usage_error_still_exits_2(capsys):
    from rnnsym.cli import main
    assert main(["unroll", "elman", "--steps", "0"]) == 2
    assert "--steps must be at least 1" in capsys.readouterr().err
