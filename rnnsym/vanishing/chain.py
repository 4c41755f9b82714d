"""Exact ``∂s_t/∂s_0`` along a trajectory: the forward-mode chain over the cell's equations
(and every step's Jacobian from the generated backward, for the cross-check)."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import sympy as sp
from sympy import MatAdd, MatMul, MatrixSymbol, OneMatrix
from sympy.matrices.expressions import HadamardProduct

from rnnsym.cells.cell import Cell, split_name
from rnnsym.cells.nodes import ACTIVATIONS, Activation
from rnnsym.codegen.compile import compile_cell
from rnnsym.shapes import derive


class GradientsError(ValueError):
    """Bad input to the gradient analysis (weights, sizes, radii, steps)."""


# --- numbers for one activation ------------------------------------------------------------
def _np_sigmoid(u):
    return np.exp(np.minimum(u, 0)) / (1 + np.exp(-np.abs(u)))


@lru_cache(maxsize=None)
def _activation_functions(name: str, params: tuple):
    """``(f, f')`` as NumPy functions, from the activation's scalar SymPy form (ours, never user
    text) and SymPy's derivative of it; a constant derivative broadcasts to the argument."""
    u = sp.Dummy("u", real=True)
    expr = ACTIVATIONS[name].scalar(u, *params)
    modules = [{"sigmoid": _np_sigmoid}, "numpy"]
    f = sp.lambdify(u, expr, modules=modules)
    df = sp.lambdify(u, sp.diff(expr, u), modules=modules)
    return (lambda v: np.broadcast_to(f(v), np.shape(v)) * 1.0,
            lambda v: np.broadcast_to(df(v), np.shape(v)) * 1.0)


# --- forward mode over one step ------------------------------------------------------------
class _Evaluator:
    """Values and tangents of one step's quantities: values are ``(B, d)`` rows (parameter
    vectors ``(d,)``), tangents ``(B, d, D)`` or ``None`` where zero."""

    def __init__(self, cell: Cell, params: dict):
        self.cell = cell
        self.params = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}

    def step(self, inputs: dict, prev: dict) -> dict:
        """``{quantity: (value, tangent)}`` for every quantity of the step; ``inputs`` maps an
        input name to its ``(B, d)`` value, ``prev`` a state name to ``(value, tangent)``."""
        env = {f"{k}[t]": (v, None) for k, v in inputs.items()}
        env.update({f"{k}[t-1]": vt for k, vt in prev.items()})
        out = {}
        for eq in self.cell.equations:
            env[eq.lhs.name] = out[eq.name] = self._eval(eq.rhs, env)
        return out

    def _eval(self, expr, env):
        if isinstance(expr, MatrixSymbol):
            if expr.name in env:
                return env[expr.name]
            return self.params[split_name(expr.name)[0]], None
        if isinstance(expr, OneMatrix):
            return 1.0, None
        if isinstance(expr, MatAdd):
            parts = [self._eval(a, env) for a in expr.args]
            return sum(v for v, _ in parts), _sum(d for _, d in parts)
        if isinstance(expr, MatMul):
            coeff, mats = expr.as_coeff_matrices()
            v, d = self._eval(mats[-1], env)
            m = float(coeff)
            for a in mats[:-1]:
                av, ad = self._eval(a, env)
                if ad is not None:
                    raise GradientsError(f"cannot differentiate the product {expr}: only its last "
                                         "factor may depend on a state")
                m = m * av if np.ndim(m) == 0 else m @ av
            if np.ndim(m) == 0:
                return m * v, None if d is None else m * d
            return v @ m.T, None if d is None else np.matmul(m, d)
        if isinstance(expr, HadamardProduct):
            parts = [self._eval(a, env) for a in expr.args]
            value = np.prod(np.broadcast_arrays(*(v for v, _ in parts)), axis=0)
            terms = []
            for i, (_, d) in enumerate(parts):
                if d is not None:
                    others = [v for j, (v, _) in enumerate(parts) if j != i]
                    terms.append(np.prod(np.broadcast_arrays(*others), axis=0)[..., None] * d)
            return value, _sum(terms)
        if isinstance(expr, Activation):
            u, du = self._eval(expr.arg, env)
            f, df = _activation_functions(expr.name, tuple(float(p) for p in expr.params))
            return f(u), None if du is None else df(u)[..., None] * du
        raise GradientsError(f"cannot differentiate {type(expr).__name__} `{expr}`")


def _sum(items):
    items = [d for d in items if d is not None]
    return sum(items[1:], items[0]) if items else None


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
    T, B = x.shape[:2]
    sizes = _state_sizes(cell, params)
    module = compile_cell(cell)
    state0 = {k: np.asarray(v, dtype=np.float64) for k, v in (state0 or {}).items()}
    D = sum(sizes.values())
    offsets, o = {}, 0
    for s in cell.states:
        offsets[s], o = o, o + sizes[s]
    tangent = {}
    for s in cell.states:
        eye = np.zeros((B, sizes[s], D))
        eye[:, np.arange(sizes[s]), offsets[s] + np.arange(sizes[s])] = 1
        tangent[s] = eye
    state = {s: state0.get(s, np.zeros((B, sizes[s]))) for s in cell.states}
    if len(cell.inputs) != 1:
        raise GradientsError(f"cell {cell.name} has inputs {', '.join(cell.inputs)}: the "
                             "analysis drives one input")
    input_name = cell.inputs[0]
    evaluator = _Evaluator(cell, params)
    log_scale = np.zeros(B)
    for t in range(T):
        out = evaluator.step({input_name: x[t]}, {s: (state[s], tangent[s]) for s in cell.states})
        state = module.step(params, x[t], state)         # the generated code's trajectory
        tangent = {s: (out[s][1] if out[s][1] is not None else np.zeros((B, sizes[s], D)))
                   for s in cell.states}
        scale = np.max([np.abs(p).max(axis=(1, 2)) for p in tangent.values()], axis=0)
        scale = np.where((scale > 0) & np.isfinite(scale), scale, 1.0)
        tangent = {s: p / scale[:, None, None] for s, p in tangent.items()}
        log_scale = log_scale + np.log10(scale)
        yield t + 1, tangent, log_scale, offsets, sizes


def step_jacobians(cell: Cell, params: dict, x, states: list) -> np.ndarray:
    """Every step's ``J_t = ∂s_t/∂s_{t-1}`` along a trajectory in ONE call of the generated
    backward: for t = 1..T and each unit k of the state vector, a batch row runs one step
    from ``states[t-1]`` (one sample) with the upstream gradient ``e_k`` on the new state,
    so ``d_state0`` of that row is row k of ``J_t``. ``x`` is (T, d_in), ``states`` the T+1
    state dicts of one sample; returns (T, D, D), the states in ``cell.states`` order."""
    module = compile_cell(cell)
    sizes = {s: np.shape(states[0][s])[-1] for s in cell.states}
    D, T = sum(sizes.values()), len(x)
    xs = np.repeat(np.asarray(x, np.float64), D, axis=0)[None]          # (1, T*D, d_in)
    s0 = {s: np.repeat(np.stack([st[s] for st in states[:-1]]), D, axis=0) for s in cell.states}
    outputs, _, cache = module.forward(params, xs, s0, return_cache=True)
    eye, d_final, o = np.eye(D), {}, 0
    for s in cell.states:
        d_final[s] = np.tile(eye[:, o:o + sizes[s]], (T, 1))
        o += sizes[s]
    _, _, d_s0 = module.backward(params, cache, np.zeros_like(outputs), d_final)
    rows = np.concatenate([d_s0[s] for s in cell.states], axis=1)       # (T*D, D)
    return rows.reshape(T, D, D)


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
