"""The ONNX bug models (rnnsym.conformance.onnx.diagnose.BUG_MODELS): each entry that applies to a case
is recognised from the outputs it produces, and outputs that follow the spec match none."""
import numpy as np
import pytest

from rnnsym.conformance.onnx.diagnose import BUG_MODELS, _combined, applicable, diagnose
from rnnsym.conformance.onnx.oracle import expectation
from rnnsym.frameworks.onnx import OnnxCase, layer_name
from rnnsym.onnx import Readings


def _case(op, attributes, present, T=3, N=3, I=2, H=4, seed=0, layers=1):
    rng = np.random.default_rng(seed)
    G = {"RNN": 1, "GRU": 3, "LSTM": 4}[op]
    D = 2 if attributes.get("direction") == "bidirectional" else 1
    inputs = {"X": rng.uniform(-1, 1, (T, N, I)),
              "sequence_lens": np.array([T, 0, 2][:N], np.int32)}
    for k in range(layers):
        shapes = {"W": (D, G * H, I if k == 0 else D * H), "R": (D, G * H, H),
                  "B": (D, 2 * G * H), "initial_h": (D, N, H), "initial_c": (D, N, H),
                  "P": (D, 3 * H)}
        inputs.update({layer_name(n, k): rng.uniform(-1, 1, shapes[n])
                       for n in ("W", "R", *present)})
    outputs = ("Y", "Y_h", "Y_c") if op == "LSTM" else ("Y", "Y_h")
    return OnnxCase(op, {"hidden_size": H, **attributes}, inputs, outputs, layers=layers)


CASES = [
    ("LSTM", {"clip": 0.4, "input_forget": 1, "activations": ["HardSigmoid", "Tanh", "Affine"],
              "activation_alpha": [0.3, 0.7]}, ("B", "initial_h", "initial_c", "P"),
     {"y_past_length": "zero", "empty_state": "initial"}),
    ("GRU", {"direction": "bidirectional", "activations": ["Sigmoid", "Softsign", "Sigmoid", "Tanh"]}, (),
     {"y_past_length": "hold", "empty_state": "zero"}),
    ("RNN", {"direction": "reverse", "activations": ["Affine"]}, ("B",), {}),
]
#: a stack of two bidirectional nodes (the feeding bug models)
STACKED = ("RNN", {"direction": "bidirectional"}, ("initial_h",), {})


@pytest.mark.parametrize("op, attributes, present, fixed, layers",
                         [(*c, 1) for c in CASES] + [(*STACKED, 2)])
def test_each_bug_model_is_recognised_from_its_own_outputs(op, attributes, present, fixed,
                                                            layers):
    case = _case(op, attributes, present, layers=layers)
    models = applicable(case, fixed)
    assert len(models) >= 3
    for model in models:
        kw, changes = _combined(case, [model])
        got, _ = expectation(case, Readings(**fixed).replace(**changes), "float64", **kw)
        assert model.describe(case) in diagnose(case, got, "float64", fixed), model.describe(case)


@pytest.mark.parametrize("layers", [1, 2])
def test_outputs_that_follow_the_spec_match_no_bug_model(layers):
    op, attributes, present, fixed = CASES[2] if layers == 1 else STACKED
    case = _case(op, attributes, present, layers=layers)
    expected, _ = expectation(case, Readings(**fixed), "float64")
    assert diagnose(case, expected, "float64", fixed) == []
    assert len(BUG_MODELS) == len({m.describe(case) for m in BUG_MODELS})


def test_every_bug_model_is_exercised_above():
    seen = set()
    for op, attributes, present, fixed in CASES:
        case = _case(op, attributes, present)
        seen |= {id(m) for m in applicable(case, fixed)}
    seen |= {id(m) for m in applicable(_case(*STACKED[:3], layers=2), STACKED[3])}
    missed = [m.text for m in BUG_MODELS if id(m) not in seen]
    assert missed == []
