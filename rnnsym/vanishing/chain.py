"""Exact ``∂s_t/∂s_0`` along a trajectory: every step's Jacobian ``J_t`` from the generated
backward (the gradients' rules, compiled), multiplied up."""
from __future__ import annotations

import numpy as np

from rnnsym.cells.cell import Cell
from rnnsym.codegen.compile import compile_cell
from rnnsym.errors import RnnsymError
from rnnsym.shapes import derive


class GradientsError(RnnsymError, ValueError):
    """Bad input to the gradient analysis (weights, sizes, radii, steps)."""


# --- the chain along a trajectory ------------------------------------------------------------
def _state_sizes(cell: Cell, params: dict) -> dict:
    table = derive(cell)
    sizes = table.validate(params)
    dims = table.concrete(**{**{str(d): 1 for d in table.dims}, **sizes})
    return {s: dims[s][0] for s in cell.states}


def _chain(cell: Cell, params: dict, x, state0=None):
    """Yield ``(t, P_t, log10 scale_t, offsets, sizes)`` for t = 1..T, where ``∂s_t/∂s_0 =
    P_t · 10**scale_t``, ``P_t`` is ``{state: (B, d_state, D)}`` and the columns are the states of
    ``s_0`` in order, state s at ``offsets[s]:offsets[s] + sizes[s]``."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 3:
        raise GradientsError(f"x: expected shape (T, B, d_in), got {x.shape}")
    if len(cell.inputs) != 1:
        raise GradientsError(f"cell {cell.name} has inputs {', '.join(cell.inputs)}: the "
                             "analysis drives one input")
    T, B = x.shape[:2]
    sizes = _state_sizes(cell, params)
    module = compile_cell(cell)
    state0 = {k: np.asarray(v, dtype=np.float64) for k, v in (state0 or {}).items()}
    offsets, o = {}, 0
    for s in cell.states:
        offsets[s], o = o, o + sizes[s]
    states = [{s: state0.get(s, np.zeros((B, sizes[s]))) for s in cell.states}]
    for t in range(T):
        states.append(module.step(params, x[t], states[-1]))   # the generated code's trajectory
    P = np.broadcast_to(np.eye(o), (B, o, o))
    log_scale = np.zeros(B)
    for t0 in range(0, T, _CHUNK):
        J = step_jacobians(cell, params, x[t0:t0 + _CHUNK], states[t0:t0 + _CHUNK + 1])
        for t in range(len(J)):
            P = J[t] @ P
            scale = np.abs(P).max(axis=(1, 2))
            scale = np.where((scale > 0) & np.isfinite(scale), scale, 1.0)
            P = P / scale[:, None, None]
            log_scale = log_scale + np.log10(scale)
            yield t0 + t + 1, {s: P[:, offsets[s]:offsets[s] + sizes[s]] for s in cell.states}, \
                log_scale, offsets, sizes


#: steps per call of the generated backward (its batch is steps × samples × state units)
_CHUNK = 64


def step_jacobians(cell: Cell, params: dict, x, states: list) -> np.ndarray:
    """Every step's ``J_t = ∂s_t/∂s_{t-1}`` along a trajectory in ONE call of the generated
    backward: for t = 1..T, each sample and each unit k of the state vector, a batch row runs
    one step from ``states[t-1]`` with the upstream gradient ``e_k`` on the new state, so
    ``d_state0`` of that row is row k of ``J_t``. ``x`` is ``(T, B, d_in)`` and ``states`` the
    T+1 state dicts of ``(B, d)`` arrays (returns ``(T, B, D, D)``), or ``(T, d_in)`` and
    ``(d,)`` for one sample (returns ``(T, D, D)``); the states in ``cell.states`` order."""
    x = np.asarray(x, np.float64)
    one = x.ndim == 2
    if one:
        x, states = x[:, None], [{s: np.asarray(v)[None] for s, v in st.items()} for st in states]
    module = compile_cell(cell)
    sizes = {s: np.shape(states[0][s])[-1] for s in cell.states}
    D, (T, B) = sum(sizes.values()), x.shape[:2]
    xs = np.repeat(x.reshape(T * B, -1), D, axis=0)[None]                  # (1, T*B*D, d_in)
    s0 = {s: np.repeat(np.concatenate([st[s] for st in states[:-1]]), D, axis=0)
          for s in cell.states}
    outputs, _, cache = module.forward(params, xs, s0, return_cache=True)
    eye, d_final, o = np.eye(D), {}, 0
    for s in cell.states:
        d_final[s] = np.tile(eye[:, o:o + sizes[s]], (T * B, 1))
        o += sizes[s]
    zeros = {k: np.zeros_like(v) for k, v in outputs.items()} if isinstance(outputs, dict) \
        else np.zeros_like(outputs)
    try:
        _, _, d_s0 = module.backward(params, cache, zeros, d_final)
    except NotImplementedError as e:
        raise GradientsError(f"cell {cell.name}: {e}") from None
    rows = np.concatenate([d_s0[s] for s in cell.states], axis=1)           # (T*B*D, D)
    return rows.reshape(T, D, D) if one else rows.reshape(T, B, D, D)


def analysed_state(cell: Cell, state: str | None = None) -> str:
    """The state whose ``∂s_t/∂s_0`` is reported: ``state``, else ``h``, else the first."""
    if state is None:
        return "h" if "h" in cell.states else cell.states[0]
    if state not in cell.states:
        raise GradientsError(f"{state!r} is not a state of {cell.name} (states: "
                             f"{', '.join(cell.states)})")
    return state


def state_jacobians(cell: Cell, params: dict, x, state0=None, state: str | None = None):
    """``∂s_t/∂s_0`` for t = 1..T as an array ``(T, B, d_s, d_s)`` (s = ``h`` by default);
    entries beyond float64's range are 0 or inf (use :func:`log_norms` for long runs)."""
    s = analysed_state(cell, state)
    out = []
    for _, tangent, log_scale, offsets, sizes in _chain(cell, params, x, state0):
        block = tangent[s][:, :, offsets[s]:offsets[s] + sizes[s]]
        with np.errstate(over="ignore", under="ignore"):
            out.append(block * (10.0 ** log_scale)[:, None, None])
    return np.array(out)


def log_norms(cell: Cell, params: dict, x, state0=None, state: str | None = None) -> np.ndarray:
    """``log10 ‖∂s_t/∂s_0‖₂`` (spectral norm) for t = 1..T, shape ``(T, B)``; s = ``h`` by
    default. ``-inf`` where the Jacobian is exactly zero (e.g. every relu unit off)."""
    s = analysed_state(cell, state)
    out = []
    for _, tangent, log_scale, offsets, sizes in _chain(cell, params, x, state0):
        block = tangent[s][:, :, offsets[s]:offsets[s] + sizes[s]]
        norm = np.linalg.norm(block, ord=2, axis=(1, 2))
        with np.errstate(divide="ignore"):
            out.append(np.log10(norm) + log_scale)
    return np.array(out)
