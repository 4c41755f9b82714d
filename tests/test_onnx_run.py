"""rnnsym.onnx.run: ONNX's own backend node tests for RNN/GRU/LSTM, and clear errors."""
import warnings

import numpy as np
import onnx
import pytest
from onnx import helper

import rnnsym.onnx as ro
from rnnsym.onnx import OnnxError


def _backend_cases():
    from onnx.backend.test.loader import load_model_tests
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        cases = load_model_tests(kind="node")
    return [c for c in cases if c.model.graph.node[0].op_type in ("RNN", "GRU", "LSTM")]


BACKEND = _backend_cases()


def test_all_eighteen_backend_cases_are_loaded():
    assert len(BACKEND) == 18
    assert {c.model.graph.node[0].op_type for c in BACKEND} == {"RNN", "GRU", "LSTM"}


@pytest.mark.parametrize("case", BACKEND, ids=[c.name for c in BACKEND])
def test_backend_node_case(case):
    inputs, expected = case.data_sets[0]
    got = ro.run(case.model, inputs)
    node = case.model.graph.node[0]
    assert [g is None for g in got] == [not name for name in node.output]
    present = [g for g in got if g is not None]
    assert len(present) == len(expected)
    for g, e in zip(present, expected):
        assert g.dtype == e.dtype and g.shape == e.shape
        np.testing.assert_allclose(g, e, rtol=case.rtol, atol=case.atol)


def test_backend_case_runs_from_bytes_and_path(tmp_path):
    case = next(c for c in BACKEND if c.name == "test_gru_bidirectional")
    inputs, expected = case.data_sets[0]
    path = tmp_path / "model.onnx"
    onnx.save(case.model, path)
    for model in (case.model.SerializeToString(), str(path), path):
        np.testing.assert_allclose(ro.run(model, inputs)[1], expected[1], rtol=1e-3, atol=1e-7)


# ------------------------------------------------------------------------------------------
# errors name the attribute/input and the expected vs given value


def _model(op, inputs=("X", "W", "R"), outputs=("Y", "Y_h"), opset=22, **attrs):
    node = helper.make_node(op, list(inputs), list(outputs), **attrs)
    f = onnx.TensorProto.FLOAT
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info(n, f, None) for n in inputs if n],
        [helper.make_tensor_value_info(n, f, None) for n in outputs if n])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _rnn_inputs(T=3, N=2, I=4, H=5, G=1, D=1):
    rng = np.random.default_rng(0)
    return [rng.standard_normal(s).astype(np.float32)
            for s in [(T, N, I), (D, G * H, I), (D, G * H, H)]]


@pytest.mark.parametrize("attrs, message", [
    ({"direction": "sideways"}, "attribute direction: expected one of forward, reverse, "
                                "bidirectional, got 'sideways'"),
    ({"activations": ["Gelu"]}, "slot f: expected one of Relu, Tanh"),
    ({"activations": ["Tanh", "Tanh"]}, "activations: expected 1 names"),
    ({"layout": 2}, "attribute layout: expected one of (0, 1), got 2"),
    ({"clip": -1.0}, "attribute clip: expected a threshold > 0, got -1.0"),
    ({"output_sequence": 1}, "unsupported attribute 'output_sequence' (opset 1 only"),
    ({"linear_before_reset": 1}, "RNN: unsupported attribute 'linear_before_reset'"),
    ({"hidden_size": 7}, "hidden_size=7 does not match input R"),
    ({"activations": ["Tanh"], "activation_alpha": [0.5]},
     "1 values given but only 0 of the activations ['Tanh'] take one"),
])
def test_bad_attributes_are_named(attrs, message):
    with pytest.raises(OnnxError) as info:
        ro.run(_model("RNN", **attrs), _rnn_inputs())
    assert message in str(info.value)


def test_unsupported_op_and_bad_inputs_are_named():
    with pytest.raises(OnnxError, match="expected one of RNN, GRU, LSTM, LinearAttention, CausalConvWithState .* got Conv"):
        ro.run(_model("Conv"), _rnn_inputs())
    X, W, R = _rnn_inputs()
    with pytest.raises(OnnxError, match=r"input R: expected shape .* = \(1, 5, 5\), got \(1, 5, 4\)"):
        ro.run(_model("RNN"), [X, W, R[:, :, :4]])
    with pytest.raises(OnnxError, match=r"input W: .*direction='bidirectional'.*got \(1, 5, 4\)"):
        ro.run(_model("RNN", direction="bidirectional"), [X, W, R])
    with pytest.raises(OnnxError, match=r"sequence_lens: expected values in \[0, seq_length=3\], "
                                        r"got \[4, 1\]"):
        ro.run(_model("RNN", inputs=("X", "W", "R", "", "L")),
               [X, W, R, np.array([4, 1], np.int32)])
    with pytest.raises(OnnxError, match="inputs: expected 3 arrays"):
        ro.run(_model("RNN"), [X, W])
    with pytest.raises(OnnxError, match="layout: exists from opset 14, model opset 13"):
        ro.run(_model("RNN", opset=13, layout=0), [X, W, R])


def test_alpha_beta_are_consumed_by_the_activations_that_take_them():
    attrs = ro.parse_attributes("LSTM", {"activations": ["HardSigmoid", "Tanh", "LeakyRelu"],
                                         "activation_alpha": [0.3, 0.02],
                                         "activation_beta": [0.6]})
    assert attrs.activations == ((("hardsigmoid", 0.3, 0.6), "tanh", ("leakyrelu", 0.02)),)
    positional = ro.parse_attributes("LSTM", {"activations": ["HardSigmoid", "Tanh", "LeakyRelu"],
                                              "activation_alpha": [0.3, 9.0, 0.02]},
                                     alpha_order="positional")
    assert positional.activations == ((("hardsigmoid", 0.3, 0.5), "tanh", ("leakyrelu", 0.02)),)
    defaults = ro.parse_attributes("GRU", {"activations": ["Affine", "Elu", "ScaledTanh", "Tanh"],
                                           "direction": "bidirectional"})
    assert defaults.activations == ((("affine", 1.0, 0.0), ("elu", 1.0)),
                                    (("scaledtanh", 1.0, 1.0), "tanh"))


def test_activation_attributes_round_trip():
    specs = ((("hardsigmoid", 0.3, 0.6), "tanh", ("leakyrelu", 0.02)),
             ("sigmoid", ("scaledtanh", 0.7, 1.1), "softplus"))
    onnx_attrs = ro.activation_attributes("LSTM", specs)
    assert onnx_attrs["activations"][:3] == ["HardSigmoid", "Tanh", "LeakyRelu"]
    back = ro.parse_attributes("LSTM", {**onnx_attrs, "direction": "bidirectional"})
    assert back.activations == specs
