"""The oracle of sequence targets (:mod:`rnnsym.frameworks.sequence`): the cell's generated
forward (``rnnsym.compile``), float64, run head by head on a case in the canonical layout.

Output head ``h`` reads head ``h // G`` of an input with ``heads / G`` heads (torch's
``repeat_interleave``); each segment of a packed variable-length case runs alone from its own
initial state.
"""
from __future__ import annotations

import numpy as np

from rnnsym.cells import builtin
from rnnsym.codegen.compile import compile_cell
from rnnsym.frameworks.sequence import SequenceCase


def cell_module(cell: str, options: dict):
    """The compiled module (``forward``, ``STATE_SHAPES``, ...) of built-in ``cell``."""
    return compile_cell(builtin(cell, **options), backward=False)


def head_inputs(case: SequenceCase, h: int) -> dict:
    """The time-major inputs ``(T, B, d)`` that output head ``h`` reads."""
    x = {}
    for name, a in case.inputs.items():
        a = np.asarray(a, np.float64)
        group = case.heads // a.shape[2]
        col = a[:, :, h // group]
        x[name] = np.moveaxis(col if col.ndim == 3 else col[..., None], 1, 0)
    return x


def expected(case: SequenceCase, cell_options: dict = None):
    """``(output (B, T, heads, d_out), final_state {name: (B, heads) + shape})``, float64."""
    module = cell_module(case.cell, cell_options or {})
    outs, finals = [], []
    for h in range(case.heads):
        params = {k: np.asarray(v, np.float64)[h] for k, v in case.params.items()}
        x = head_inputs(case, h)
        s0 = None if case.state0 is None else {
            k: np.asarray(v, np.float64)[:, h] for k, v in case.state0.items()}
        if case.cu_seqlens is None:
            with np.errstate(all="ignore"):
                out, final = module.forward(params, x, s0)
        else:
            out, final = _varlen(module, params, x, s0, case.cu_seqlens)
        outs.append(np.moveaxis(out, 0, 1))           # (B, T, d_out)
        finals.append(final)
    output = np.stack(outs, axis=2)
    final = {k: np.stack([f[k] for f in finals], axis=1) for k in finals[0]}
    return output, final


def _varlen(module, params, x, s0, cu_seqlens):
    """Each segment of a packed batch (B == 1) alone: outputs concatenated along time, one
    final state per segment."""
    pieces, finals = [], []
    for n, (a, b) in enumerate(zip(cu_seqlens[:-1], cu_seqlens[1:])):
        seg = {k: v[a:b] for k, v in x.items()}
        init = None if s0 is None else {k: v[n:n + 1] for k, v in s0.items()}
        with np.errstate(all="ignore"):
            out, final = module.forward(params, seg, init)
        pieces.append(out)
        finals.append(final)
    return (np.concatenate(pieces, axis=0),
            {k: np.concatenate([f[k] for f in finals], axis=0) for k in finals[0]})
