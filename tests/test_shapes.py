"""Shape tables: concrete sizes, the gufunc signature, validating arrays."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

from rnnsym.cells import elman, gru, lstm
from rnnsym.shapes import ArrayShapeError, ShapeError, derive


def test_concrete_needs_every_free_dimension():
    with pytest.raises(ShapeError, match="give a size for d_in"):
        derive(elman()).concrete(d_h=3)


@given(data=st.data())
def test_signature_drives_hypothesis_shapes(data):
    """The derived signature is a valid gufunc signature whose core dims are the cell's."""
    sig = derive(gru()).signature()
    shapes = data.draw(mutually_broadcastable_shapes(signature=sig, max_dims=0, max_side=6))
    params = dict(zip(gru().params, shapes.input_shapes))
    d_h, d_in = params["W_xr"]
    assert params["W_hn"] == (d_h, d_h) and params["b_hz"] == (d_h,)
    assert shapes.input_shapes[-2:] == ((d_in,), (d_h,)) and shapes.result_shape == (d_h,)


def test_validate_names_each_wrong_array_with_symbols_and_numbers():
    t = derive(lstm())
    p = {k: np.zeros(s) for k, s in t.concrete(d_in=3, d_h=5).items() if k in lstm().params}
    assert t.validate(p) == {"d_h": 5, "d_in": 3}
    p["W_hf"] = np.zeros((5, 3))     # swapped with an input weight: d_h × d_in
    del p["b_xo"]
    p["W_extra"] = np.zeros(2)
    with pytest.raises(ArrayShapeError) as e:
        t.validate(p)
    msg = str(e.value)
    assert "W_hf: expected shape (d_h, d_h) = (5, 5), got (5, 3)" in msg
    assert "missing parameter(s): b_xo" in msg and "unknown parameter(s): W_extra" in msg
