"""torch <-> canonical converters and the torch harness."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnsym.conformance.oracle import oracle_flat
from rnnsym.conformance.tolerance import backward_error_tolerance
from rnnsym.frameworks import Config, ContractError, OutputError
from rnnsym.frameworks.torch import (canonical_to_torch, state_from_torch, state_to_torch,
                                     torch_harness, torch_param_shapes, torch_to_canonical)
from rnnsym.testing import strategies as rst
from rnnsym.testing.assertions import assert_allclose, assert_flat_close

FAST = settings(max_examples=10, deadline=None)
MODULES = {"elman": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}


SHAPE_CASES = [(cell, 1, False, True, 0) for cell in MODULES] + \
    [(cell, 3, True, False, 0) for cell in MODULES] + [("lstm", 2, True, True, 2)]


@pytest.mark.parametrize("cell,layers,bidirectional,bias,proj", SHAPE_CASES)
def test_param_shapes_match_torch(cell, layers, bidirectional, bias, proj):
    kw = dict(num_layers=layers, bias=bias, bidirectional=bidirectional)
    module = MODULES[cell](3, 5, **kw, **({"proj_size": proj} if proj else {}))
    want = {n: tuple(p.shape) for n, p in module.named_parameters()}
    got = torch_param_shapes(cell, input_size=3, hidden_size=5, proj_size=proj, **kw)
    assert got == want, f"torch_param_shapes={got}, but should be {want} [{cell}({kw})]"


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
def test_cell_api_param_shapes_match_torch(cell):
    module = getattr(torch.nn, {"elman": "RNNCell", "lstm": "LSTMCell", "gru": "GRUCell"}[cell])(3, 5)
    want = {n: tuple(p.shape) for n, p in module.named_parameters()}
    assert torch_param_shapes(cell, input_size=3, hidden_size=5, cell_api=True) == want


@FAST
@given(cell=st.sampled_from(["elman", "lstm", "gru"]), layers=st.integers(1, 3),
       bidirectional=st.booleans(), dims=rst.distinct_sizes(["d_in", "d_h"]), data=st.data())
def test_canonical_round_trip(cell, layers, bidirectional, dims, data):
    D = 2 if bidirectional else 1
    nested = []
    for k in range(layers):
        d = {**dims, "d_in": dims["d_in"] if k == 0 else D * dims["d_h"]}
        nested.append([data.draw(rst.params_for(cell, d)) for _ in range(D)])
    back = torch_to_canonical(cell, canonical_to_torch(cell, nested), num_layers=layers,
                              bidirectional=bidirectional)
    for k in range(layers):
        for d in range(D):
            for name, value in nested[k][d].items():
                assert_allclose(f"params[{k}][{d}][{name!r}]", back[k][d][name], value,
                                rtol=0, atol=0, call=cell)


def test_elman_biases_are_summed():
    values = {"weight_ih_l0": np.ones((2, 3)), "weight_hh_l0": np.ones((2, 2)),
              "bias_ih_l0": np.array([1.0, 2.0]), "bias_hh_l0": np.array([10.0, 20.0])}
    params = torch_to_canonical("elman", values)
    assert_allclose("b_h", params[0][0]["b_h"], [11.0, 22.0], rtol=0, atol=0)


def test_state_index_is_layer_times_D_plus_direction():
    torch_layout = np.arange(6 * 2 * 3).reshape(6, 2, 3)       # (L*D, B, d), L=3, D=2
    flat = state_from_torch(torch_layout, 3, 2)
    assert np.array_equal(flat[2, 1], torch_layout[2 * 2 + 1])
    assert np.array_equal(state_to_torch({"h": flat})["h"], torch_layout)


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_torch_module_matches_oracle_through_converters(cell, dtype):
    rng = np.random.default_rng(1)
    config = Config(cell, T=4, B=3, d_in=2, d_h=5, d_proj=1 if cell == "lstm" else 0,
                    num_layers=2, bidirectional=True, batch_first=True, initial_state=True,
                    dtype=dtype)
    harness = torch_harness(cell)
    values = {n: rng.uniform(-1, 1, s).astype(dtype) for n, s in harness.param_shapes(config).items()}
    x = rng.uniform(-1, 1, (4, 3, 2)).astype(dtype)
    state0 = {"h": rng.uniform(-1, 1, (2, 2, 3, config.d_out)).astype(dtype)}
    if cell == "lstm":
        state0["c"] = rng.uniform(-1, 1, (2, 2, 3, 5)).astype(dtype)
    got = harness.run(config, values, x, state0)
    params = harness.to_canonical(config, values)

    def run(p, xx, s, wrap=None):
        return oracle_flat(config, p, xx, s, wrap=wrap)

    expected = run(params, x, state0)
    tol = backward_error_tolerance(config, run, params, x, state0, expected)
    assert_flat_close(expected, got, tol.arrays, call=config.describe())


def test_contract_errors_name_the_parameter():
    class Wrong(torch.nn.Module):
        def __init__(self, input_size, hidden_size, **kw):
            super().__init__()
            self.weight_ih_l0 = torch.nn.Parameter(torch.zeros(3 * hidden_size, input_size))
            self.weight_hh_l0 = torch.nn.Parameter(torch.zeros(3 * hidden_size, input_size))
            self.bias_ih_l0 = torch.nn.Parameter(torch.zeros(3 * hidden_size))
            self.bias_hh_l0 = torch.nn.Parameter(torch.zeros(3 * hidden_size))

    from rnnsym.frameworks.torch import TorchHarness
    config = Config("gru", T=2, B=3, d_in=4, d_h=5)
    with pytest.raises(ContractError, match=r"weight_hh_l0: expected shape \(3\*d_h, d_out\) "
                                            r"= \(15, 5\), got \(15, 4\)"):
        TorchHarness(Wrong, "gru").check_contract(config)


def test_output_shape_errors_use_symbols():
    from rnnsym.frameworks.torch import TorchHarness

    class Transposed(torch.nn.GRU):
        def forward(self, input, hx=None):
            out, h = super().forward(input, hx)
            return out.transpose(0, 1), h

    config = Config("gru", T=2, B=3, d_in=4, d_h=5)
    values = {n: np.zeros(s, np.float32) for n, s in torch_param_shapes(
        "gru", input_size=4, hidden_size=5).items()}
    with pytest.raises(OutputError, match=r"output: expected shape \(T, B, D\*d_out\) = "
                                          r"\(2, 3, 5\), got \(3, 2, 5\) = \(B, T, d_h\)"):
        TorchHarness(Transposed, "gru").run(config, values, np.zeros((2, 3, 4), np.float32), None)
