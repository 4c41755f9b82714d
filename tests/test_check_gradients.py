"""``rnnsym check --gradients``: torch's modules pass; every broken backward in
tests/broken/gradients.py is caught with its diagnosis and the parameter whose gradient
differs; gradient-preserving rewrites (autograd through a hand-written forward, a reordered
accumulation) pass."""
import sys
from pathlib import Path

import numpy as np
import pytest

from rnnsym.conformance import UsageError, check
from rnnsym.conformance.cli import main as check_main

BROKEN = Path(__file__).parent / "broken" / "gradients.py"
sys.path.insert(0, str(BROKEN.parent))

from gradients import BROKEN_GRADIENTS, EQUIVALENT_GRADIENTS  # noqa: E402


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
def test_torch_modules_gradients_pass(cell):
    """Stacks and both directions, packed sequences, projections (LSTM), batch_first and
    initial states."""
    report = check("torch", cell, examples=40, seed=0, gradients=True)
    assert report.passed, report.format()
    assert report.coverage["layers"] == [1, 2, 3], report.format()
    assert report.coverage["bidirectional"] == [False, True], report.format()
    assert any(m.startswith("packed") for m in report.coverage["lengths"]), report.format()


@pytest.mark.parametrize("cell,name,expect", BROKEN_GRADIENTS,
                         ids=[n for _, n, _ in BROKEN_GRADIENTS])
def test_broken_backward_is_caught_and_diagnosed(cell, name, expect):
    report = check(f"{BROKEN}:{name}", cell, examples=40, seed=0, gradients=True)
    assert not report.passed and report.failure_kind == "wrong gradients", report.format()
    assert report.diagnosis and expect in report.diagnosis, report.format()
    assert report.diagnosis.startswith("gradient of ")
    assert "--gradients" in report.format()


def test_the_differing_parameter_is_named():
    report = check(f"{BROKEN}:elman_bias_once", "elman", examples=30, seed=0, gradients=True)
    assert report.diagnosis.startswith("gradient of param:b_h differs")
    report = check(f"{BROKEN}:elman_transposed", "elman", examples=30, seed=0, gradients=True)
    assert report.diagnosis.startswith("gradient of param:W_hh differs")


@pytest.mark.parametrize("cell,name", EQUIVALENT_GRADIENTS,
                         ids=[n for _, n in EQUIVALENT_GRADIENTS])
def test_gradient_preserving_rewrite_passes(cell, name):
    report = check(f"{BROKEN}:{name}", cell, examples=25, seed=0, gradients=True)
    assert report.passed, report.format()


@pytest.mark.parametrize("name,cell", [("GRUReverseByFlip", "gru"), ("LSTMOutputBuffer", "lstm")])
def test_rewritten_stacks_pass_over_stacks_and_directions(name, cell):
    report = check(f"{BROKEN}:{name}", cell, examples=25, seed=0, gradients=True,
                   layers=(2, 3), bidirectional="yes")
    assert report.passed, report.format()
    assert report.coverage["layers"] == [2, 3] and report.coverage["bidirectional"] == [True]
    # the flip-built one takes no packed input: listed as unsupported, not a failure
    assert [u.feature for u in report.unsupported] == \
        (["lengths"] if name == "GRUReverseByFlip" else []), report.format()


@pytest.mark.parametrize("name,cell,expect", [
    ("LSTMDetachedCell", "lstm", "no gradient through the cell state c"),
    ("GRUDetachedReset", "gru", "no gradient through the reset gate r"),
    ("LSTMTruncated3", "lstm", "truncated BPTT: the gradient stops after 3 steps")])
def test_step_bugs_are_diagnosed_in_stacks(name, cell, expect):
    """A bug in the step is in every layer and direction; the diagnosis still names it."""
    report = check(f"{BROKEN}:{name}", cell, examples=40, seed=0, gradients=True,
                   layers=(2,), bidirectional="yes")
    assert not report.passed and report.failure_kind == "wrong gradients", report.format()
    config = report.counterexample.config
    assert config.num_layers == 2 and config.bidirectional, report.format()
    assert expect in report.diagnosis, report.format()


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
def test_torch_cells_gradients_pass(cell):
    report = check("torch", cell, examples=15, seed=0, gradients=True, cell_api=True)
    assert report.passed, report.format()


def test_cell_api_gradients():
    """A hand-written GRUCell passes; one with r detached in its step is caught."""
    assert check(f"{BROKEN}:GRUCellPlain", "gru", examples=15, seed=0, gradients=True,
                 cell_api=True).passed
    report = check(f"{BROKEN}:GRUCellDetachedReset", "gru", examples=30, seed=0,
                   gradients=True, cell_api=True)
    assert not report.passed and report.failure_kind == "wrong gradients", report.format()
    assert "no gradient through the reset gate r" in report.diagnosis, report.format()


def test_forward_only_bug_passes_without_gradients():
    """The detached state is a forward bug that only shows in gradients."""
    assert check(f"{BROKEN}:GRUDetachedState", "gru", examples=20, seed=0, layers=(1,),
                 bidirectional="no", without="lengths").passed


def test_targets_without_gradients_are_usage_errors(capsys):
    with pytest.raises(UsageError, match="no backward"):
        check(f"{BROKEN}:elman_without_backward", "elman", examples=5, seed=0, gradients=True)
    with pytest.raises(UsageError, match="ONNX targets compute no gradients"):
        check("onnxruntime", "gru", examples=5, seed=0, gradients=True)
    with pytest.raises(UsageError, match="one layer"):
        check("torch", "gru", examples=5, seed=0, gradients=True, layers=(2,), cell_api=True)
    with pytest.raises(UsageError, match="one layer"):
        check(f"{BROKEN}:elman", "elman", examples=5, seed=0, gradients=True, layers=(2,))
    assert check_main([f"{BROKEN}:elman_without_backward", "--cell", "elman", "--gradients",
                       "--examples", "3", "--no-progress"]) == 2


def test_gradient_tolerance_scales_with_dtype():
    from rnnsym.conformance.cases import build_case
    from rnnsym.conformance.gradients import expected_gradients, gradient_tolerance, upstream_for
    from rnnsym.frameworks import Config
    from rnnsym.frameworks.torch import torch_harness
    harness = torch_harness("lstm")
    tols = {}
    for dtype in ("float32", "float64"):
        case = build_case(harness, Config(cell="lstm", T=3, B=2, d_in=4, d_h=5, dtype=dtype,
                                          initial_state=True))
        up = upstream_for(case)
        expected = expected_gradients(harness, case, up)
        tols[dtype] = gradient_tolerance(harness, case, up, expected).arrays
    for k in tols["float32"]:
        ratio = np.median(tols["float32"][k] / tols["float64"][k])
        assert 1e7 < ratio < 1e11, (k, ratio)       # u32 / u64 = 2**29 ≈ 5.4e8


def test_gru_gate_entries_differ_from_a_correct_gru():
    """The reset/update-path entries of GRADIENT_BUGS are not the correct gradient (else they
    would 'diagnose' a right GRU), and with no gate held constant the same construction is
    the correct gradient."""
    from rnnsym.conformance.cases import build_case
    from rnnsym.conformance.compare import compare_flat
    from rnnsym.conformance.gradient_bugs import GRADIENT_BUGS, _gru_constant_gate
    from rnnsym.conformance.gradients import expected_gradients, gradient_tolerance, upstream_for
    from rnnsym.frameworks import Config
    from rnnsym.frameworks.torch import torch_harness
    from rnnsym.reference import gru_backward
    harness = torch_harness("gru")
    case = build_case(harness, Config(cell="gru", T=3, B=2, d_in=4, d_h=5, dtype="float64",
                                      initial_state=True))
    up = upstream_for(case)
    expected = expected_gradients(harness, case, up)
    tol = gradient_tolerance(harness, case, up, expected).arrays

    def right(config, params, x, s0, u):
        return gru_backward(params, x, s0, u["output"][:, :, 0], {"h": u["h_n"][0, 0]})
    assert not compare_flat(expected, expected_gradients(harness, case, up, layer=right), tol)
    entries = [b for b in GRADIENT_BUGS if "gate" in b.message and b.when(case.config)]
    assert len(entries) == 2
    for gate in "rz":
        variant = expected_gradients(harness, case, up, layer=lambda c, p, x, s, u:
                                     _gru_constant_gate(c, p, x, s, u, gate))
        assert compare_flat(expected, variant, tol), gate


@pytest.mark.parametrize("cell,variant", [("elman", None), ("lstm", None),
                                          ("gru", "reset_after=true"),
                                          ("gru", "reset_after=false")])
def test_keras_gradients_pass(cell, variant):
    report = check("keras", cell, examples=10, seed=0, gradients=True, variant=variant)
    assert report.passed, report.format()


def test_keras_layer_with_a_detached_initial_state_fails():
    """The Keras harness's gradients are the layer's own: a layer called on a detached
    initial state gives no h0 gradient, and the check says so."""
    from rnnsym.conformance.cases import build_case
    from rnnsym.conformance.gradients import run_gradient_case
    from rnnsym.frameworks import Config
    from rnnsym.frameworks.keras import KerasHarness

    class Detaching(KerasHarness):
        def build(self, config):
            layer = super().build(config)
            call = layer.__call__

            class Wrapped:
                weights = layer.weights
                set_weights = layer.set_weights

                def __call__(self, x, initial_state):
                    return call(x, initial_state=[s.detach() for s in initial_state])
            return Wrapped()

    case = build_case(Detaching("gru"), Config(cell="gru", T=3, B=2, d_in=4, d_h=5,
                                               dtype="float64", initial_state=True))
    outcome = run_gradient_case(Detaching("gru"), case)
    assert outcome.kind == "wrong gradients"
    assert [m.name for m in outcome.mismatches] == ["h0"]
    assert np.all(outcome.got["h0"] == 0)


def test_padding_bug_is_caught_in_bidirectional_stacks_and_blending_passes():
    report = check(f"{BROKEN}:GRUPaddingDetached", "gru", examples=60, seed=1, gradients=True,
                   layers=(2,), bidirectional="yes")
    assert not report.passed, report.format()
    assert "the state held through the padding steps is detached" in report.diagnosis
    assert report.counterexample.lengths is not None
    report = check(f"{BROKEN}:LSTMPaddingBlended", "lstm", examples=40, seed=1, gradients=True,
                   layers=(2,), bidirectional="yes")
    assert report.passed and any(m.startswith("packed") for m in report.coverage["lengths"])


def test_sample_gradients_are_the_stack_gradients_of_each_sample():
    """Per-sample lengths: the gradients of a batch are those of each sample run alone on its
    own steps; a batch whose lengths are all T gives the batched result."""
    from rnnsym.conformance.gradients import _state0, sample_gradients, stack_gradients
    from rnnsym.frameworks import Config
    from rnnsym.frameworks.torch import torch_harness
    rng = np.random.default_rng(0)
    config = Config(cell="lstm", T=4, B=3, d_in=2, d_h=3, num_layers=2, bidirectional=True,
                    dtype="float64", initial_state=True)
    harness = torch_harness("lstm")
    from rnnsym.conformance.cases import build_case
    case = build_case(harness, config)
    params = harness.to_canonical(config, case.values)
    s0 = _state0(config, case.state0)
    up = {k: rng.uniform(-1, 1, v) for k, v in config.flat_shapes().items()}
    full = sample_gradients(config, params, case.x, s0, up, [4, 4, 4])
    batched = stack_gradients(config, params, case.x, s0, up)
    np.testing.assert_allclose(full[1], batched[1], rtol=1e-12, atol=1e-14)
    for a, b in zip(full[0][1], batched[0][1]):
        for k in a:
            np.testing.assert_allclose(a[k], b[k], rtol=1e-12, atol=1e-14, err_msg=k)
    d_params, d_x, d_s0 = sample_gradients(config, params, case.x, s0, up, [4, 1, 2])
    assert np.all(d_x[1:, 1] == 0) and np.all(d_x[2:, 2] == 0) and np.any(d_x[0, 1] != 0)
    one = stack_gradients(config, params, case.x[:2, 2:3],
                          [[{k: v[2:3] for k, v in s.items()} for s in dirs] for dirs in s0],
                          {k: (v[:2, 2:3] if k == "output" else v[:, :, 2:3])
                           for k, v in up.items()})
    np.testing.assert_allclose(d_x[:2, 2], one[1][:, 0], rtol=1e-12)
    np.testing.assert_allclose(d_s0[1][1]["c"][2], one[2][1][1]["c"][0], rtol=1e-12)


def test_keras_gradients_with_masks_follow_the_repeated_outputs(monkeypatch):
    """Keras' masked outputs repeat the last valid one, so their upstream gradient reaches
    step len-1: the oracle models it (padding "repeat"), and with torch's convention (zeros
    past a length, no gradient) the same correct layer would fail."""
    from rnnsym.frameworks.keras import KerasHarness
    report = check("keras", "gru", examples=40, seed=2, gradients=True, bidirectional="no")
    assert report.passed, report.format()
    assert "mask argument" in report.coverage["lengths"], report.format()
    monkeypatch.setattr(KerasHarness, "length_padding", lambda self, config: "zero")
    report = check("keras", "gru", examples=40, seed=2, gradients=True, bidirectional="no")
    assert not report.passed and report.failure_kind == "wrong gradients", report.format()
    assert report.counterexample.lengths is not None
