"""The diagnosis table (rnnsym.conformance.diagnose.BUG_CLASSES): every bug class is recognised from the
outputs of its own variant, and correct outputs match none of them."""
import pytest

from rnnsym.conformance.cases import build_case
from rnnsym.conformance.compare import compare_flat
from rnnsym.conformance.diagnose import BUG_CLASSES, SHAPE_CLASSES, catalogue, facts
from rnnsym.conformance.target import Outcome, expected_outputs
from rnnsym.conformance.bug_models import bug_model_outputs, fits
from rnnsym.frameworks import Config
from rnnsym.frameworks.torch import torch_harness


def cases(harness, cell):
    """A rich fixed-length case (2 layers, both directions, an initial state) and a padded
    variable-length one: between them every entry of the table applies."""
    rich = Config(cell=cell, T=3, B=2, d_in=4, d_h=5, num_layers=2, bidirectional=True,
                  initial_state=True, dtype="float64")
    yield build_case(harness, rich)
    yield build_case(harness, rich.replace(num_layers=1, T=4), length_mode="packed, unsorted")


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
def test_each_bug_class_is_recognised_from_its_own_outputs(cell):
    harness = torch_harness(cell)
    recognised, applied = set(), set()
    for case in cases(harness, cell):
        expected, tol = expected_outputs(harness, case)
        correct = Outcome(case, expected, tol, got=expected)
        x = facts(harness, case)
        applied |= {i for i, bug in enumerate(BUG_CLASSES) if bug.variants(x)}
        for variant in catalogue(harness, correct):
            got = bug_model_outputs(harness, case, variant)
            if variant.config is not None or not compare_flat(expected, got, tol.arrays):
                continue            # on this case, a correct target gives the same outputs
            assert not fits(harness, correct, variant), f"correct outputs match {variant.text!r}"
            assert fits(harness, Outcome(case, expected, tol, got=got), variant), variant.text
            recognised |= {i for i, bug in enumerate(BUG_CLASSES)
                           if variant.text in {v.text for v in bug.variants(x)}}
    missed = [BUG_CLASSES[i].text for i in sorted(applied - recognised)
              if "float32 tolerance" not in BUG_CLASSES[i].text]
    assert not missed, missed


def test_shape_classes_are_data():
    config = Config(cell="gru", T=3, B=2, d_in=4, d_h=5, batch_first=True)
    error = "output: expected shape (B, T, D*d_out) = (2, 3, 5), got (3, 2, 5) = (T, B, 5)"
    found = [text for text, applies in SHAPE_CLASSES if applies(config, error)]
    assert found == ["batch_first ignored: the target treats (B, T, ·) input as time-major"]
    assert not [text for text, applies in SHAPE_CLASSES if applies(config, "")]
