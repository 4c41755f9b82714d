"""The canonical multi-layer / bidirectional driver (rnnsym.frameworks.layers)."""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from rnnsym import reference
from rnnsym.frameworks.layers import layer_input_sizes, split_directions, stack_forward
from rnnsym.testing import strategies as rst
from rnnsym.testing.assertions import assert_allclose

FAST = settings(max_examples=15, deadline=None)


@FAST
@given(dims=rst.distinct_sizes(["T", "B", "d_in", "d_h"]), data=st.data())
def test_single_forward_layer_is_the_cell(dims, data):
    params = data.draw(rst.params_for("gru", dims), label="params")
    x = data.draw(rst.inputs(dims), label="x")
    out, final = stack_forward(reference.gru_forward, [[params]], x)
    want, want_state = reference.gru_forward(params, x)
    assert_allclose("outputs", out, want, rtol=0, atol=0, call="stack_forward", kw=dims)
    assert_allclose("h_n", final[0][0]["h"], want_state["h"], rtol=0, atol=0)


@FAST
@given(dims=rst.distinct_sizes(["T", "B", "d_in", "d_h"], min_value=2), data=st.data())
def test_reverse_direction_sees_flipped_input_and_is_realigned(dims, data):
    fwd = data.draw(rst.params_for("elman", dims), label="fwd")
    bwd = data.draw(rst.params_for("elman", dims), label="bwd")
    x = data.draw(rst.inputs(dims), label="x")
    out, final = stack_forward(reference.elman_forward, [[fwd, bwd]], x)
    f, b = split_directions(out, 2)
    rev, rev_state = reference.elman_forward(bwd, x[::-1])
    assert_allclose("reverse outputs", b, rev[::-1], rtol=0, atol=0, kw=dims)
    # the reverse final state goes with outputs[0], not outputs[-1]
    assert_allclose("reverse h_n", final[0][1]["h"], b[0], rtol=0, atol=0, kw=dims)
    # a case telling outputs[0] from outputs[-1] apart (a saturated tanh can make them equal)
    assume(not np.allclose(b[0], b[-1]))
    assert not np.allclose(final[0][1]["h"], b[-1])


@FAST
@given(dims=rst.distinct_sizes(["T", "B", "d_in", "d_h"]), data=st.data())
def test_layer_one_takes_concatenated_directions(dims, data):
    d1 = {**dims, "d_in": 2 * dims["d_h"]}
    layer0 = [data.draw(rst.params_for("lstm", dims)) for _ in range(2)]
    layer1 = [data.draw(rst.params_for("lstm", d1)) for _ in range(2)]
    x = data.draw(rst.inputs(dims), label="x")
    out, final = stack_forward(reference.lstm_forward, [layer0, layer1], x)
    mid, _ = stack_forward(reference.lstm_forward, [layer0], x)
    want, want_final = stack_forward(reference.lstm_forward, [layer1], mid)
    assert_allclose("outputs", out, want, rtol=0, atol=0, kw=dims)
    assert len(final) == 2 and set(final[1][1]) == {"h", "c"}


def test_lengths_mask_each_sample():
    rng = np.random.default_rng(0)
    dims = {"T": 4, "B": 3, "d_in": 2, "d_h": 5}
    p = [[{k: rng.uniform(-1, 1, s) for k, s in
           rst.canonical_param_shapes("gru", dims).items()} for _ in range(2)]]
    x = rng.uniform(-1, 1, (4, 3, 2))
    out, final = stack_forward(reference.gru_forward, p, x, lengths=[4, 1, 2])
    assert np.all(out[1:, 1] == 0) and np.all(out[2:, 2] == 0)
    alone, alone_final = stack_forward(reference.gru_forward, p, x[:2, 2:3])
    assert_allclose("sample 2", out[:2, 2], alone[:, 0], rtol=0, atol=0)
    assert_allclose("sample 2 h_n", final[0][1]["h"][2], alone_final[0][1]["h"][0], rtol=0, atol=0)


def test_bad_nesting_names_the_argument():
    with pytest.raises(ValueError, match=r"state0: expected 1 layers x 1 directions"):
        stack_forward(reference.gru_forward, [[{}]], np.zeros((1, 1, 1)), [[None, None]])
    with pytest.raises(ValueError, match=r"x: expected shape \(T, B, d_in\)"):
        stack_forward(reference.gru_forward, [[{}]], np.zeros((1, 1)))


def test_layer_input_sizes():
    assert layer_input_sizes(3, 5, 3, 2) == [3, 10, 10]
    assert layer_input_sizes(3, 5, 1, 1) == [3]
