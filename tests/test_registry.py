"""The target registry (rnnsym.frameworks.registry): one entry per target, and --help, the
unknown-target error and the README's list all made from it; a new target is one registry
line (plus its file); the ONNX names agree with rnnsym.conformance.onnx's dispatch."""
import importlib
import re
import sys
from pathlib import Path

import pytest

from rnnsym.conformance import UsageError, check
from rnnsym.conformance.cli import configure
from rnnsym.conformance.onnx import is_onnx_target
from rnnsym.frameworks import registry
from rnnsym.frameworks.registry import TARGETS, Target, lookup, markdown_list, resolve_harness

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "broken"))


def test_the_readme_lists_exactly_the_registry():
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- targets:[^\n]*-->\n(.*?)\n<!-- /targets -->", text, re.S)
    assert block, "README: the targets block is missing"
    assert block.group(1) == markdown_list()
    for target in TARGETS:
        assert f"`{target.name}`" in block.group(1)


def test_help_and_the_unknown_target_error_name_every_target():
    import argparse
    helptext = configure(argparse.ArgumentParser()).format_help()
    with pytest.raises(UsageError) as err:
        check("nope", "gru", examples=1)
    for target in TARGETS:
        for name in target.names:
            assert name in str(err.value), name
            assert name in "".join(helptext.split()), name   # (argparse wraps at "-")
    assert "flax" in str(err.value) and "torch-onnx" in str(err.value)


@pytest.mark.parametrize("target", [t for t in TARGETS if not t.onnx], ids=lambda t: t.name)
def test_every_harness_factory_imports(target):
    module, function = target.factory.split(":")
    assert callable(getattr(importlib.import_module(module), function))


def test_onnx_entries_are_what_check_sends_to_the_onnx_checker():
    for target in TARGETS:
        spec = target.name.replace("MODULE:NAME", "my_backend.py:run")
        assert is_onnx_target(spec) == target.onnx, target.name
        assert lookup(spec) is target
    assert lookup("Torch").name == "torch" and lookup("flax-linen").name == "flax"
    assert lookup("pkg.mod:MyGRU").name == "MODULE:NAME"


def test_options_a_target_does_not_take_are_usage_errors():
    with pytest.raises(UsageError, match="--cell-api is not defined for target keras "
                                         r"\(only for: torch, MODULE:NAME\)"):
        resolve_harness("keras", "gru", cell_api=True)
    with pytest.raises(UsageError, match="--backward NAME is not defined for target torch"):
        resolve_harness("torch", "gru", backward="bw")
    with pytest.raises(UsageError, match="ONNX target"):
        resolve_harness("onnxruntime", "gru")


def test_a_new_target_is_one_registry_line(monkeypatch):
    """tests/broken/reference_framework.py registered under a new name: checked, listed in
    the unknown-target error, and a wrong claim about it still fails."""
    line = Target("numpy-reference", "rnnsym's hand-written NumPy references",
                  "reference_framework:make_harness")
    monkeypatch.setattr(registry, "TARGETS", TARGETS + (line,))
    # in_process: the registry line is patched into this process only (a worker imports afresh)
    report = check("numpy-reference", "gru", examples=10, seed=1, in_process=True)
    assert report.passed and report.dtype == "float64", report.format()
    assert check("numpy-reference", "gru", variant="reset=before", examples=20, seed=1,
                 in_process=True).failure_kind == "wrong numbers"
    with pytest.raises(UsageError, match="numpy-reference"):
        check("nope", "gru", examples=1)
    assert "`numpy-reference`: rnnsym's hand-written NumPy references" in markdown_list()
