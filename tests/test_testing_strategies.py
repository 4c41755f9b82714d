"""The public Hypothesis strategies and assertion helpers (rnnsym.testing)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from rnnsym import reference
from rnnsym.testing import assert_conforms
from rnnsym.testing import strategies as rst
from rnnsym.testing.assertions import Mismatch, assert_allclose, compare_flat, fmt_index

FAST = settings(max_examples=20, deadline=None)


@FAST
@given(dims=rst.distinct_sizes(["T", "B", "d_in", "d_h", "d_proj"]))
def test_sizes_are_distinct_and_projection_is_smaller(dims):
    assert len(set(dims.values())) == 5
    assert dims["d_proj"] < dims["d_h"]


def test_distinct_sizes_validates_its_range():
    @settings(max_examples=1, database=None)
    @given(rst.distinct_sizes(["a", "b", "c", "d"], max_value=3))
    def draw(sizes):
        pass

    with pytest.raises(InvalidArgument, match="max_value=3 leaves no room for 4"):
        draw()


@FAST
@given(cell=st.sampled_from(["elman", "lstm", "gru"]),
       dims=rst.distinct_sizes(["T", "B", "d_in", "d_h"]), data=st.data())
def test_params_for_feeds_the_reference(cell, dims, data):
    params = data.draw(rst.params_for(cell, dims, np.float32), label="params")
    x = data.draw(rst.inputs(dims, np.float32), label="x")
    assert all(v.dtype == np.float32 for v in params.values())
    forward = {"elman": reference.elman_forward, "lstm": reference.lstm_forward,
               "gru": reference.gru_forward}[cell]
    out, state = forward(params, x)
    assert out.shape == (dims["T"], dims["B"], dims["d_h"])


@FAST
@given(dims=rst.distinct_sizes(["T", "B", "d_in", "d_h", "d_proj"]), data=st.data())
def test_lstm_projection_params_and_states(dims, data):
    params = data.draw(rst.params_for("lstm", dims, projection=True))
    assert params["W_hr"].shape == (dims["d_proj"], dims["d_h"])
    assert params["W_hi"].shape == (dims["d_h"], dims["d_proj"])
    state = data.draw(rst.states("lstm", dims, projection=True))
    assert state["h"].shape == (dims["B"], dims["d_proj"]) and state["c"].shape == (dims["B"], dims["d_h"])


def test_values_reach_large_magnitudes():
    seen = []

    @settings(max_examples=60, deadline=None, database=None)
    @given(x=rst.inputs({"T": 2, "B": 3, "d_in": 4}))
    def collect(x):
        seen.append(np.abs(x).max())

    collect()
    assert max(seen) > 50 and min(seen) < 0.02


def test_assert_allclose_message_shape():
    with pytest.raises(AssertionError) as info:
        assert_allclose("out", np.array([[1.0, 2.0]]), np.array([[1.0, 2.5]]), rtol=0, atol=1e-3,
                        call="gru_forward", kw={"T": 3})
    message = str(info.value)
    assert message.startswith("out[0, 1]=2.0, but should be 2.5")
    assert message.endswith("[gru_forward(T=3)]")


def test_compare_flat_names_time_direction_and_layer():
    expected = {"output": np.zeros((3, 1, 2, 1)), "h_n": np.zeros((1, 2, 1, 1))}
    got = {"output": expected["output"].copy(), "h_n": expected["h_n"].copy()}
    got["output"][2, 0, 1, 0] = 1.0
    tol = {k: np.full(v.shape, 1e-6) for k, v in expected.items()}
    (m,) = compare_flat(expected, got, tol)
    assert isinstance(m, Mismatch) and m.where == "output[t=2, b=0, direction=reverse, k=0]"
    assert m.message("gru(T=3)").startswith("output[t=2, b=0, direction=reverse, k=0]=1, but "
                                            "should be 0")
    assert fmt_index("h_n", (1, 0, 2, 3)) == "h_n[layer=1, direction=forward, b=2, k=3]"


def test_assert_conforms_raises_with_the_report(tmp_path):
    with pytest.raises(AssertionError, match="reset applied before the matmul"):
        from pathlib import Path
        target = Path(__file__).parent / "broken" / "functions.py"
        assert_conforms(f"{target}:gru_reset_before", cell="gru", examples=20, seed=0)
    assert assert_conforms("torch", cell="gru", examples=5, seed=0).passed
