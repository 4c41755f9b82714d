"""The oracle of sequence targets (:mod:`rnnsym.frameworks.sequence`): the cell's generated
forward (``rnnsym.compile``), float64, run head by head on a case in the canonical layout.

Output head ``h`` reads head ``h // G`` of an input with ``heads / G`` heads (torch's
``repeat_interleave``); each segment of a packed variable-length case runs alone from its own
initial state.

Two readings serve the checker's diagnoses and tolerance (``rnnsym.conformance.sequence_*``):
``groups="tile"`` reads head ``h % (heads / G)`` instead (torch's ``repeat``, the bug class
"repeat instead of repeat_interleave"), and ``state_noise(S) -> S`` runs the recurrence one
step at a time with ``state_noise`` applied to every new state (the rounding of the update
itself, for the tolerance's probes).
"""
from __future__ import annotations

import numpy as np

from rnnsym.cells import builtin
from rnnsym.codegen.compile import compile_cell
from rnnsym.frameworks.sequence import SequenceCase


def cell_module(cell: str, options: dict):
    """The compiled module (``forward``, ``STATE_SHAPES``, ...) of built-in ``cell``."""
    return compile_cell(builtin(cell, **options), backward=False)


def input_head(h: int, heads: int, n: int, groups: str = "interleave") -> int:
    """The head of an input with ``n`` heads that output head ``h`` (of ``heads``) reads:
    ``h // (heads / n)`` (``repeat_interleave``) or, with ``groups="tile"``, ``h % n``."""
    if groups == "tile":
        return h % n
    return h // (heads // n)


def head_inputs(case: SequenceCase, h: int, groups: str = "interleave") -> dict:
    """The time-major inputs ``(T, B, d)`` that output head ``h`` reads."""
    x = {}
    for name, a in case.inputs.items():
        a = np.asarray(a, np.float64)
        col = a[:, :, input_head(h, case.heads, a.shape[2], groups)]
        x[name] = np.moveaxis(col if col.ndim == 3 else col[..., None], 1, 0)
    return x


def expected(case: SequenceCase, cell_options: dict = None, *, groups: str = "interleave",
             state_noise=None):
    """``(output (B, T, heads, d_out), final_state {name: (B, heads) + shape})``, float64.

    groups       "interleave" (the convention) or "tile" (a diagnosis: ``repeat``)
    state_noise  ``f(state dict) -> state dict`` applied after every step (tolerance probes)
    """
    module = cell_module(case.cell, cell_options or {})
    forward = module.forward if state_noise is None else _stepwise(module.forward, state_noise)
    if not case.params and case.cu_seqlens is None:
        return _folded(forward, case, groups)
    outs, finals = [], []
    for h in range(case.heads):
        params = {k: np.asarray(v, np.float64)[h] for k, v in case.params.items()}
        x = head_inputs(case, h, groups)
        s0 = None if case.state0 is None else {
            k: np.asarray(v, np.float64)[:, h] for k, v in case.state0.items()}
        if case.cu_seqlens is None:
            with np.errstate(all="ignore"):
                out, final = forward(params, x, s0)
        else:
            out, final = _varlen(forward, params, x, s0, case.cu_seqlens)
        outs.append(np.moveaxis(out, 0, 1))           # (B, T, d_out)
        finals.append(final)
    output = np.stack(outs, axis=2)
    final = {k: np.stack([f[k] for f in finals], axis=1) for k in finals[0]}
    return output, final


def _folded(forward, case: SequenceCase, groups: str):
    """A cell without parameters: every head at once, heads folded into the batch
    (row ``h * B + b``); the same numbers as head by head, one call instead of ``heads``."""
    B, H = case.B, case.heads
    per_head = [head_inputs(case, h, groups) for h in range(H)]
    x = {k: np.concatenate([p[k] for p in per_head], axis=1) for k in per_head[0]}
    s0 = None if case.state0 is None else {
        k: np.concatenate([np.asarray(v, np.float64)[:, h] for h in range(H)], axis=0)
        for k, v in case.state0.items()}
    with np.errstate(all="ignore"):
        out, final = forward({}, x, s0)
    T = out.shape[0]
    output = np.moveaxis(out.reshape((T, H, B) + out.shape[2:]), 0, 2)   # (H, B, T, d)
    output = np.moveaxis(output, 0, 2)                                    # (B, T, H, d)
    final = {k: np.moveaxis(v.reshape((H, B) + v.shape[1:]), 0, 1) for k, v in final.items()}
    return output, final


def _stepwise(forward, noise):
    """``forward`` run one step at a time, ``noise`` applied to each new state."""
    def run(params, x, s0=None):
        T = next(iter(x.values())).shape[0]
        if T == 0:
            return forward(params, x, s0)
        state, outs = s0, []
        for t in range(T):
            out, state = forward(params, {k: v[t:t + 1] for k, v in x.items()}, state)
            state = noise(state)
            outs.append(out)
        return np.concatenate(outs, axis=0), state
    return run


def _varlen(forward, params, x, s0, cu_seqlens):
    """Each segment of a packed batch (B == 1) alone: outputs concatenated along time, one
    final state per segment."""
    pieces, finals = [], []
    for n, (a, b) in enumerate(zip(cu_seqlens[:-1], cu_seqlens[1:])):
        seg = {k: v[a:b] for k, v in x.items()}
        init = None if s0 is None else {k: v[n:n + 1] for k, v in s0.items()}
        with np.errstate(all="ignore"):
            out, final = forward(params, seg, init)
        pieces.append(out)
        finals.append(final)
    return (np.concatenate(pieces, axis=0),
            {k: np.concatenate([f[k] for f in finals], axis=0) for k in finals[0]})
