"""Keras 3 <-> canonical converters and the keras harness (torch backend)."""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from rnnsym.frameworks import Config  # noqa: E402
from rnnsym.frameworks.keras import (canonical_to_keras, keras_harness,  # noqa: E402
                                     keras_to_canonical, keras_weight_shapes)
from rnnsym.frameworks.torch import canonical_to_torch  # noqa: E402
from rnnsym.testing import strategies as rst  # noqa: E402
from rnnsym.testing.assertions import assert_allclose  # noqa: E402

LAYERS = {"elman": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM, "gru": keras.layers.GRU}


@pytest.mark.parametrize("cell,reset_after", [("elman", True), ("lstm", True), ("gru", True),
                                              ("gru", False)])
@pytest.mark.parametrize("use_bias", [True, False])
def test_weight_shapes_match_keras(cell, reset_after, use_bias):
    kw = {"reset_after": reset_after} if cell == "gru" else {}
    layer = LAYERS[cell](5, use_bias=use_bias, **kw)
    layer.build((3, 2, 4))
    want = [tuple(w.shape) for w in layer.weights]
    got = list(keras_weight_shapes(cell, input_size=4, units=5, use_bias=use_bias,
                                   reset_after=reset_after).values())
    assert got == want, f"keras_weight_shapes={got}, but should be {want} [{cell}({kw})]"


def _random_params(cell, rng, dims):
    return {k: rng.uniform(-1, 1, s) for k, s in rst.canonical_param_shapes(cell, dims).items()}


@pytest.mark.parametrize("cell", ["elman", "gru"])
def test_round_trip_is_exact_where_keras_keeps_both_biases(cell):
    p = _random_params(cell, np.random.default_rng(0), {"d_in": 4, "d_h": 5})
    back = keras_to_canonical(cell, canonical_to_keras(cell, p))
    for k in p:
        assert_allclose(k, back[k], p[k], rtol=0, atol=0, call=cell)


def test_gru_gate_blocks_are_reordered_zrh():
    p = _random_params("gru", np.random.default_rng(0), {"d_in": 4, "d_h": 5})
    kernel = canonical_to_keras("gru", p)["kernel"]
    assert_allclose("kernel[:, z block]", kernel[:, :5], p["W_xz"].T, rtol=0, atol=0)
    assert_allclose("kernel[:, r block]", kernel[:, 5:10], p["W_xr"].T, rtol=0, atol=0)


def test_lstm_single_bias_is_the_sum():
    p = _random_params("lstm", np.random.default_rng(0), {"d_in": 4, "d_h": 5})
    bias = canonical_to_keras("lstm", p)["bias"]
    assert_allclose("bias[f block]", bias[5:10], p["b_xf"] + p["b_hf"], rtol=1e-15, atol=0)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_keras_and_torch_agree_through_canonical(cell):
    """The verified cross-framework conversions (reference notes B.5), via canonical."""
    rng = np.random.default_rng(3)
    p = _random_params(cell, rng, {"d_in": 4, "d_h": 5})
    if cell == "lstm":                      # Keras has one bias: put it all on the input side
        p.update({f"b_x{g}": p[f"b_x{g}"] + p[f"b_h{g}"] for g in "ifgo"})
        p.update({f"b_h{g}": 0 * p[f"b_h{g}"] for g in "ifgo"})
    x = rng.uniform(-1, 1, (3, 2, 4))
    module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](4, 5).double()
    with torch.no_grad():
        for name, value in canonical_to_torch(cell, [[p]]).items():
            getattr(module, name).copy_(torch.from_numpy(value))
        want = module(torch.from_numpy(x))[0].numpy()
    layer = LAYERS[cell](5, return_sequences=True)
    layer.build((2, 3, 4))
    layer.set_weights(list(canonical_to_keras(cell, p).values()))
    got = keras.ops.convert_to_numpy(layer(x.transpose(1, 0, 2).astype("float32")))
    assert_allclose("keras output", got.transpose(1, 0, 2), want, rtol=1e-5, atol=1e-5, call=cell)


def test_bidirectional_harness_names_and_states():
    h = keras_harness("lstm")
    config = Config("lstm", T=2, B=3, d_in=4, d_h=5, bidirectional=True, initial_state=True)
    names = list(h.param_shapes(config))
    assert names[:3] == ["forward/kernel", "forward/recurrent_kernel", "forward/bias"]
    rng = np.random.default_rng(0)
    values = {n: rng.uniform(-1, 1, s).astype("float32") for n, s in h.param_shapes(config).items()}
    state0 = {k: rng.uniform(-1, 1, (1, 2, 3, 5)).astype("float32") for k in "hc"}
    got = h.run(config, values, rng.uniform(-1, 1, (2, 3, 4)).astype("float32"), state0)
    assert {k: v.shape for k, v in got.items()} == config.flat_shapes()
    # reverse direction's final state goes with output at t=0
    assert_allclose("h_n reverse", got["h_n"][0, 1], got["output"][0, :, 1], rtol=0, atol=0)
