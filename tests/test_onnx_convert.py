"""ONNX <-> canonical converters, torch/Keras through them, and rnnsym.onnx.run against
onnxruntime on handcrafted models, one attribute at a time."""
import numpy as np
import onnxruntime as ort
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import rnnsym.onnx as ro
from rnnsym.frameworks.onnx import build_model
from rnnsym.frameworks.onnx import convert as fo
from rnnsym.testing import strategies as rst

G = {"RNN": 1, "GRU": 3, "LSTM": 4}


@given(op=st.sampled_from(["RNN", "GRU", "LSTM"]), D=st.sampled_from([1, 2]),
       dims=rst.distinct_sizes(["I", "H"]), seed=st.integers(0, 2**16))
def test_onnx_canonical_round_trip(op, D, dims, seed):
    rng = np.random.default_rng(seed)
    I, H = dims["I"], dims["H"]
    W = rng.standard_normal((D, G[op] * H, I)).astype(np.float32)
    R = rng.standard_normal((D, G[op] * H, H)).astype(np.float32)
    B = rng.standard_normal((D, 2 * G[op] * H)).astype(np.float32)
    P = rng.standard_normal((D, 3 * H)).astype(np.float32) if op == "LSTM" else None
    back = ro.canonical_to_onnx(op, ro.onnx_to_canonical(op, W, R, B, P))
    np.testing.assert_array_equal(back["W"], W)
    np.testing.assert_array_equal(back["R"], R)
    if op == "RNN":   # one canonical bias: Wb + Rb, written back into Wb
        np.testing.assert_allclose(back["B"][:, :H], B[:, :H] + B[:, H:], rtol=1e-6)
        np.testing.assert_array_equal(back["B"][:, H:], 0)
    else:
        np.testing.assert_array_equal(back["B"], B)
    if P is not None:
        np.testing.assert_array_equal(back["P"], P)


def test_gate_orders():
    H, I = 2, 3
    W = np.arange(4 * H * I, dtype=np.float32).reshape(1, 4 * H, I)
    p = ro.onnx_to_canonical("LSTM", W, np.zeros((1, 4 * H, H)))[0]
    for k, g in enumerate("iofg"):             # ONNX i, o, f, c
        np.testing.assert_array_equal(p[f"W_x{g}"], W[0, k * H:(k + 1) * H])
    Wg = W[:, :3 * H]
    q = ro.onnx_to_canonical("GRU", Wg, np.zeros((1, 3 * H, H)))[0]
    for k, g in enumerate("zrn"):              # ONNX z, r, h
        np.testing.assert_array_equal(q[f"W_x{g}"], Wg[0, k * H:(k + 1) * H])


@pytest.mark.parametrize("cell, bidirectional", [("lstm", False), ("lstm", True),
                                                 ("gru", False), ("gru", True),
                                                 ("rnn", True)])
def test_torch_through_onnx_equals_torch(cell, bidirectional):
    torch.manual_seed(3)
    T, N, I, H = 5, 2, 3, 4
    module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cell](
        I, H, bidirectional=bidirectional)
    values = {k: v.detach().numpy() for k, v in module.state_dict().items()}
    attrs, weights = fo.torch_to_onnx(cell, values, bidirectional=bidirectional)
    x = np.random.default_rng(1).standard_normal((T, N, I)).astype(np.float32)
    with torch.no_grad():
        out, state = module(torch.from_numpy(x))
    h_n = (state[0] if cell == "lstm" else state).numpy()
    outputs = ["Y", "Y_h", "Y_c"] if cell == "lstm" else ["Y", "Y_h"]
    inputs = {"X": x, **weights}
    model = build_model(ro.convert.OP[cell], attrs, inputs, outputs)
    got = ro.run(model, list(inputs.values()))
    D = 2 if bidirectional else 1
    np.testing.assert_allclose(got[0].transpose(0, 2, 1, 3).reshape(T, N, D * H), out.numpy(),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got[1], h_n, rtol=1e-5, atol=1e-6)
    if cell == "lstm":
        np.testing.assert_allclose(got[2], state[1].numpy(), rtol=1e-5, atol=1e-6)
    back = fo.onnx_to_torch(ro.convert.OP[cell], weights["W"][:1], weights["R"][:1],
                            weights["B"][:1])
    np.testing.assert_allclose(back["weight_ih_l0"], values["weight_ih_l0"], rtol=1e-6)


def test_torch_gru_needs_linear_before_reset():
    with pytest.raises(ro.OnnxError, match="linear_before_reset: torch.nn.GRU needs 1, got 0"):
        fo.onnx_to_torch("GRU", np.zeros((1, 6, 3)), np.zeros((1, 6, 2)), linear_before_reset=0)


def test_keras_weights_through_onnx():
    rng = np.random.default_rng(4)
    I, H = 3, 5
    weights = {"kernel": rng.standard_normal((I, 3 * H)), "recurrent_kernel":
               rng.standard_normal((H, 3 * H)), "bias": rng.standard_normal((2, 3 * H))}
    attrs, onnx_w = fo.keras_to_onnx("gru", weights, reset_after=True)
    assert attrs["linear_before_reset"] == 1
    back = fo.onnx_to_keras("GRU", onnx_w["W"], onnx_w["R"], onnx_w["B"], linear_before_reset=1)[0]
    for k in weights:
        np.testing.assert_allclose(back[k], weights[k], rtol=1e-6)


# ------------------------------------------------------------------------------------------
# against onnxruntime, attribute by attribute (ORT_READINGS: its reading of the open points)


def _ort(model, inputs):
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    return session.run(None, {i.name: v for i, v in zip(session.get_inputs(), inputs)})


ALL = ["Relu", "Tanh", "Sigmoid", "Affine", "LeakyRelu", "ThresholdedRelu", "ScaledTanh",
       "HardSigmoid", "Elu", "Softsign", "Softplus"]
PARAMS = {"Affine": 2, "LeakyRelu": 1, "ThresholdedRelu": 1, "ScaledTanh": 2, "HardSigmoid": 2,
          "Elu": 1}
PARAMS.update({a: 0 for a in ALL if a not in PARAMS})
CASES = [
    *[("RNN", ro.activation_attributes("RNN", [[(a.lower(), 0.7, 0.3)[:1 + PARAMS[a]]]]), {})
      for a in ALL],
    ("GRU", {"activations": ["HardSigmoid", "ScaledTanh"], "activation_alpha": [0.3, 0.8],
             "activation_beta": [0.4, 1.2]}, {}),
    ("LSTM", {"activations": ["LeakyRelu", "Softsign", "Elu"], "activation_alpha": [0.2, 0.9]},
     {"P"}),
    ("LSTM", {"clip": 0.4}, {"B"}),
    ("GRU", {"clip": 0.3, "linear_before_reset": 1}, {"B"}),
    ("RNN", {"clip": 0.2}, {}),
    ("LSTM", {"input_forget": 1}, {"P", "initial_c"}),
    ("LSTM", {}, {"sequence_lens", "initial_h", "initial_c"}),
    ("GRU", {"direction": "reverse"}, {"sequence_lens", "initial_h"}),
    ("LSTM", {"direction": "bidirectional"}, {"sequence_lens", "B", "P", "initial_h"}),
    ("RNN", {"direction": "bidirectional", "activations": ["Relu", "Tanh"]},
     {"initial_h", "sequence_lens"}),
]


@pytest.mark.parametrize("op, attrs, extra", CASES,
                         ids=[f"{op}-{'-'.join(map(str, a.values()))}-{'+'.join(sorted(e))}"
                              for op, a, e in CASES])
def test_run_matches_onnxruntime(op, attrs, extra):
    rng = np.random.default_rng(7)
    T, N, I, H = 4, 3, 2, 5
    D = 2 if attrs.get("direction") == "bidirectional" else 1
    f = np.float32
    inputs = {"X": rng.uniform(-2, 2, (T, N, I)).astype(f),
              "W": rng.uniform(-1, 1, (D, G[op] * H, I)).astype(f),
              "R": rng.uniform(-1, 1, (D, G[op] * H, H)).astype(f)}
    optional = {"B": lambda: rng.uniform(-1, 1, (D, 2 * G[op] * H)).astype(f),
                "sequence_lens": lambda: np.array([2, 0, 4], np.int32),
                "initial_h": lambda: rng.uniform(-1, 1, (D, N, H)).astype(f),
                "initial_c": lambda: rng.uniform(-1, 1, (D, N, H)).astype(f),
                "P": lambda: rng.uniform(-1, 1, (D, 3 * H)).astype(f)}
    order = ro.INPUTS[op]
    inputs.update({k: optional[k]() for k in order if k in extra})
    inputs = {k: inputs[k] for k in order if k in inputs}
    outputs = ro.OUTPUTS[op]
    model = build_model(op, {"hidden_size": H, **attrs}, inputs, outputs)
    expected = _ort(model, list(inputs.values()))
    got = ro.run(model, list(inputs.values()), readings=ro.ORT_READINGS)
    for name, g, e in zip(outputs, got, expected):
        np.testing.assert_allclose(g, e, rtol=2e-5, atol=2e-6, err_msg=name)


def test_open_points_have_two_readings():
    """clip before h(C_t), Y_h at length 0, Y past the length: both readings are offered."""
    rng = np.random.default_rng(0)
    X = rng.uniform(-3, 3, (3, 2, 2))
    inputs = {"X": X, "W": rng.uniform(-2, 2, (1, 16, 2)), "R": rng.uniform(-1, 1, (1, 16, 4)),
              "sequence_lens": np.array([0, 2]), "initial_h": np.ones((1, 2, 4)),
              "initial_c": 3 * np.ones((1, 2, 4))}
    spec = ro.evaluate_node("LSTM", {"clip": 0.5}, inputs)
    ortlike = ro.evaluate_node("LSTM", {"clip": 0.5}, inputs, readings=ro.ORT_READINGS)
    assert np.all(spec["Y_h"][0, 0] == 1) and np.all(ortlike["Y_h"][0, 0] == 0)
    assert not np.allclose(spec["Y_h"][0, 1], ortlike["Y_h"][0, 1])   # clip before h(C_t)
    hold = ro.evaluate_node("LSTM", {}, inputs, readings=ro.Readings(y_past_length="hold"))
    np.testing.assert_array_equal(hold["Y"][2, 0, 1], hold["Y_h"][0, 1])
    assert np.all(ro.evaluate_node("LSTM", {}, inputs)["Y"][2:, 0, 1] == 0)
