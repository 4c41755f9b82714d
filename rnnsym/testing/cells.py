"""Strategies for any symbolic cell (built-in or user-defined): sizes and parameters drawn from
the shapes rnnsym derives, so they fit whatever the equations say."""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from rnnsym.shapes import derive
from rnnsym.testing.strategies import INPUT_MAGNITUDES, WEIGHT_MAGNITUDES, float_arrays


@st.composite
def cell_sizes(draw, cell, *, max_value: int = 8, max_T: int = 8, max_B: int = 5) -> dict:
    """``T`` (0..max_T), ``B`` (1..max_B) and the cell's free dimensions, pairwise distinct
    (square shapes hide swapped weights)."""
    dims = [str(d) for d in derive(cell).dims]
    values = draw(st.lists(st.integers(1, max_value), min_size=len(dims), max_size=len(dims),
                           unique=True), label="dims")
    sizes = dict(zip(dims, values))
    if "d_proj" in sizes and sizes["d_proj"] > sizes["d_h"]:   # PyTorch requires d_proj < d_h
        sizes["d_h"], sizes["d_proj"] = sizes["d_proj"], sizes["d_h"]
    sizes["T"] = draw(st.integers(0, max_T), label="T")
    sizes["B"] = draw(st.integers(1, max_B), label="B")
    return sizes


def cell_params(cell, sizes: dict, dtype=np.float64, *, magnitudes=WEIGHT_MAGNITUDES):
    """Parameter dict for ``cell`` at ``sizes``, with small to saturating magnitudes."""
    shapes = derive(cell).concrete(**{k: v for k, v in sizes.items() if k not in ("T", "B")})
    return float_arrays({p: shapes[p] for p in cell.params}, dtype, magnitudes=magnitudes)


def cell_inputs(cell, sizes: dict, dtype=np.float64, *, magnitudes=INPUT_MAGNITUDES):
    """``x`` of shape (T, B, d_in) and an initial state dict, as ``(x, state0)``."""
    table = derive(cell)
    dims = {k: v for k, v in sizes.items() if k not in ("T", "B")}
    shapes = {"x": (sizes["T"], sizes["B"]) + tuple(table.concrete(**dims)[cell.inputs[0]])}
    for s in cell.states:
        shapes[f"state:{s}"] = (sizes["B"],) + tuple(table.concrete(**dims)[s])
    return float_arrays(shapes, dtype, magnitudes=magnitudes).map(
        lambda d: (d["x"], {k[6:]: v for k, v in d.items() if k.startswith("state:")}))
