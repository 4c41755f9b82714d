"""Hypothesis strategies for RNN cells: distinct sizes, parameters, inputs, states.

Values are drawn as a seed plus a magnitude and filled in with NumPy: every entry
different (equal entries would hide swapped gates or transposed blocks), cheap for
hundreds of entries, and shrinking goes to small sizes, magnitude 1 and seed 0.

All strategies take the dtype of the arrays they return (default float64) and are
generic in the cell: pass the cell name and the options its parameters depend on
(``projection`` for the LSTM).

>>> from hypothesis import given
>>> @given(dims=distinct_sizes(["T", "B", "d_in", "d_h"]), data=st.data())
... def test_gru(dims, data):
...     params = data.draw(params_for("gru", dims), label="params")
...     x = data.draw(inputs(dims), label="x")
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from rnnsym.frameworks import canonical_param_shapes, state_shapes  # noqa: F401 - part of the API

#: Magnitudes of parameters; the first is the shrink target. With inputs up to 100
#: the large ones give |pre-activation| > 100 (saturated gates, overflowing exp).
WEIGHT_MAGNITUDES = (1.0, 0.1, 3.0, 30.0)
#: Magnitudes of inputs and initial states.
INPUT_MAGNITUDES = (1.0, 0.01, 10.0, 100.0)


@st.composite
def distinct_sizes(draw, names: Sequence[str] = ("T", "B", "d_in", "d_h"), *,
                   min_value: int = 1, max_value: int = 6) -> dict:
    """A dict name -> size, all sizes pairwise distinct.

    names      the sizes to draw, default ("T", "B", "d_in", "d_h")
    min_value  smallest size, default 1
    max_value  largest size, default 6; must leave room for len(names) distinct values
    If both "d_h" and "d_proj" are drawn, d_proj < d_h (PyTorch requires it).
    """
    names = list(names)
    if max_value - min_value + 1 < len(names):
        raise InvalidArgument(f"max_value={max_value} leaves no room for {len(names)} distinct "
                              f"sizes from min_value={min_value}")
    values = draw(st.lists(st.integers(min_value, max_value), min_size=len(names),
                           max_size=len(names), unique=True))
    sizes = dict(zip(names, values))
    if "d_h" in sizes and "d_proj" in sizes and sizes["d_proj"] > sizes["d_h"]:
        sizes["d_h"], sizes["d_proj"] = sizes["d_proj"], sizes["d_h"]
    return sizes


@st.composite
def float_arrays(draw, shapes: Mapping[str, tuple], dtype=np.float64, *,
                 magnitudes: Sequence[float] = WEIGHT_MAGNITUDES) -> dict:
    """A dict name -> array of the given shapes, entries uniform in [-m, m] with one
    magnitude m drawn from ``magnitudes`` (first = shrink target) and one seed."""
    scale = draw(st.sampled_from(tuple(magnitudes)), label="magnitude")
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    return {name: (scale * rng.uniform(-1, 1, size=shape)).astype(dtype)
            for name, shape in shapes.items()}


def params_for(cell: str, dims: Mapping[str, int], dtype=np.float64, *,
               magnitudes: Sequence[float] = WEIGHT_MAGNITUDES, **options):
    """Canonical parameter dict of one layer of ``cell`` (see canonical_param_shapes).

    options  projection=True (LSTM, needs dims["d_proj"]), peepholes=True (LSTM);
             other cell options (activation, reset) don't change parameters and are
             accepted and ignored so callers can pass a cell's whole option dict.
    """
    shapes = canonical_param_shapes(cell, dims, projection=options.get("projection", False),
                                    peepholes=options.get("peepholes", False))
    return float_arrays(shapes, dtype, magnitudes=magnitudes)


def inputs(dims: Mapping[str, int], dtype=np.float64, *,
           magnitudes: Sequence[float] = INPUT_MAGNITUDES):
    """Canonical time-major input x of shape (T, B, d_in)."""
    shape = (dims["T"], dims["B"], dims["d_in"])
    return float_arrays({"x": shape}, dtype, magnitudes=magnitudes).map(lambda d: d["x"])


def states(cell: str, dims: Mapping[str, int], dtype=np.float64, *, projection: bool = False,
           magnitudes: Sequence[float] = (1.0, 0.1, 10.0)):
    """Canonical state dict {"h": (B, d_out)} or {"h", "c"} (LSTM)."""
    return float_arrays(state_shapes(cell, dims, projection=projection), dtype,
                        magnitudes=magnitudes)


def stacked_states(cell: str, dims: Mapping[str, int], num_layers: int, num_dirs: int,
                   dtype=np.float64, *, projection: bool = False,
                   magnitudes: Sequence[float] = (1.0, 0.1, 10.0)):
    """Flat initial state of a stack: {"h": (L, D, B, d_out), "c": (L, D, B, d_h)}."""
    shapes = {k: (num_layers, num_dirs) + s
              for k, s in state_shapes(cell, dims, projection=projection).items()}
    return float_arrays(shapes, dtype, magnitudes=magnitudes)


def target_values(shapes: Mapping[str, tuple], dtype=np.float64, *,
                  magnitudes: Sequence[float] = WEIGHT_MAGNITUDES):
    """Values for a target's own parameters, by name (e.g. torch's weight_ih_l0)."""
    return float_arrays(shapes, dtype, magnitudes=magnitudes)
