"""The vanishing/exploding picture: ``‖∂h_t/∂h_0‖₂`` for t = 1..N along a trajectory.

The state trajectory is the generated code's (``rnnsym.compile(cell)``, one ``step`` per t).
The Jacobian ``∂s_t/∂s_0`` of the whole state vector ``s = (c, h, …)`` is carried along it in
forward mode: every quantity of the step is evaluated with its tangent, ``∂q_t/∂s_0``, by the
chain rule over rnnsym's nodes (the rules of :mod:`rnnsym.jacobian`, applied to numbers):

* ``A u`` (A a parameter) → ``A ∂u``;  a sum → the sum of the tangents;
* ``a ⊙ b`` → ``diag(b) ∂a + diag(a) ∂b``;  ``f(u)`` → ``diag(f'(u)) ∂u``;
* the previous state ``s'_{t-1}`` → its block of ``∂s_{t-1}/∂s_0`` (the identity at t = 1).

So ``∂s_t/∂s_0 = J_t ∂s_{t-1}/∂s_0`` without forming ``J_t``; exact up to rounding.
:func:`step_jacobians` gets every ``J_t`` from one batched call of the generated backward
instead (identity upstream rows); the tests check that both agree. The forward-mode chain stays
the route used: it was faster side by side (LSTM, d_h = 32, 100 steps: 0.31 s vs 0.47 s,
median of 3) and needs no backward rule, so it covers every cell the forward does. ``f`` and
``f'`` of every activation come from its scalar SymPy form in ``ACTIVATIONS`` (differentiated
by SymPy), so a user-defined cell with any activation works. The product is renormalized each
step and its scale kept as a base-10 logarithm, so that ``1e-400`` and ``1e+400`` are reported,
not 0 and inf.

Random weights: PyTorch's default initialization (every entry ``U(-1/√d_h, 1/√d_h)``), then
each recurrent matrix (a parameter multiplying a previous state, ``W_hh``, LSTM ``W_h{i,f,g,o}``,
GRU ``W_h{r,z,n}``) rescaled to spectral radius r (its largest singular value if not square).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import sympy as sp
from sympy import MatAdd, MatMul, MatrixSymbol, OneMatrix
from sympy.matrices.expressions import HadamardProduct

from rnnsym.cells.cell import Cell, split_name
from rnnsym.cells.nodes import ACTIVATIONS, Activation
from rnnsym.codegen.compile import compile_cell
from rnnsym.codegen.generator import module_name
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


# --- weights ---------------------------------------------------------------------------------
def recurrent_params(cell: Cell) -> tuple[str, ...]:
    """Parameters that multiply a previous state: ``A`` in a product ``A … u`` where ``u``
    contains some ``s[t-1]`` (``W_hh``; LSTM ``W_h*``; GRU ``W_h*``, also ``W_hn (r ⊙ h)``)."""
    prevs = {f"{s}[t-1]" for s in cell.states}
    found = []
    for eq in cell.equations:
        for node in sp.preorder_traversal(eq.rhs):
            if isinstance(node, MatMul):
                _, mats = node.as_coeff_matrices()
                if any(a.name in prevs for a in mats[-1].atoms(MatrixSymbol)):
                    for a in mats[:-1]:
                        if isinstance(a, MatrixSymbol) and a.name in cell.params and a.name not in found:
                            found.append(a.name)
    return tuple(p for p in cell.params if p in found)


def spectral_radius(m) -> float:
    """Largest ``|eigenvalue|`` of a square matrix, largest singular value otherwise."""
    m = np.asarray(m, dtype=np.float64)
    if m.shape[0] == m.shape[1]:
        return float(np.max(np.abs(np.linalg.eigvals(m))))
    return float(np.linalg.norm(m, 2))


def scale_recurrent(cell: Cell, params: dict, radius: float) -> dict:
    """A copy of ``params`` with every recurrent matrix rescaled to spectral radius ``radius``."""
    if not np.isfinite(radius) or radius < 0:
        raise GradientsError(f"radius must be a finite number ≥ 0, got {radius}")
    out = dict(params)
    for p in recurrent_params(cell):
        rho = spectral_radius(params[p])
        if rho == 0:
            raise GradientsError(f"{p} has spectral radius 0: it cannot be rescaled to {radius}")
        out[p] = np.asarray(params[p], dtype=np.float64) * (radius / rho)
    return out


def default_sizes(cell: Cell, sizes: dict | None = None) -> dict:
    """Every free dimension: ``sizes`` where given, else 32 for ``d_h`` and 16 for the rest."""
    table = derive(cell)
    table.check_determined()
    sizes = dict(sizes or {})
    names = [str(d) for d in table.dims]
    unknown = [k for k in sizes if k not in names]
    if unknown:
        raise GradientsError(f"unknown dimension(s) {', '.join(unknown)} for {cell.name} "
                             f"(free dimensions: {', '.join(names)})")
    bad = {k: v for k, v in sizes.items() if isinstance(v, bool) or not isinstance(v, int) or v < 1}
    if bad:
        raise GradientsError(f"sizes must be positive integers, got {bad}")
    return {d: sizes.get(d, 32 if d == "d_h" else 16) for d in names}


def random_params(cell: Cell, sizes: dict, rng: np.random.Generator, radius: float | None = None,
                  fill: dict | None = None) -> dict:
    """PyTorch's default initialization, every entry ``U(-1/√d_h, 1/√d_h)`` (d = the first
    state's size), the parameters in ``fill`` set to a constant (``{"b_xf": 1.0}``), then the
    recurrent matrices rescaled to ``radius`` (if given)."""
    shapes = derive(cell).concrete(**sizes)
    k = 1.0 / np.sqrt(shapes[cell.states[0]][0])
    params = {p: rng.uniform(-k, k, size=shapes[p]) for p in cell.params}
    for p, v in (fill or {}).items():
        if p not in params:
            raise GradientsError(f"{p!r} is not a parameter of {cell.name} (parameters: "
                                 f"{', '.join(cell.params)})")
        params[p] = np.full(shapes[p], float(v))
    return params if radius is None else scale_recurrent(cell, params, radius)


def load_params(cell: Cell, source) -> dict:
    """Parameters from a ``.npz`` file (or a mapping) in the canonical names, validated: every
    missing, unknown or wrongly shaped one is named with its expected shape."""
    if isinstance(source, dict):
        arrays = dict(source)
    else:
        try:
            with np.load(source, allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files}
        except (OSError, ValueError) as e:
            raise GradientsError(f"cannot read weights from {source}: {e}") from None
    table = derive(cell)
    table.validate(arrays)
    bad = [k for k, v in arrays.items() if not np.issubdtype(np.asarray(v).dtype, np.number)]
    if bad:
        raise GradientsError(f"{', '.join(bad)}: expected numbers, got "
                             + ", ".join(str(np.asarray(arrays[k]).dtype) for k in bad))
    return {k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()}


# --- curves for the command line -----------------------------------------------------------------
@dataclass
class Curve:
    """``log10 ‖∂h_t/∂h_0‖₂`` for t = 1..N of one cell and one set of weights."""

    label: str
    cell: Cell
    log10: np.ndarray                 # (N,)
    radius: float | None = None
    params: dict = field(default_factory=dict, repr=False)


def curves(cells, steps: int, radii=(1.0,), sizes: dict | None = None, seed: int = 0,
           weights=None, fill: dict | None = None) -> list[Curve]:
    """One curve per cell and radius. Weights are drawn (seeded) per cell, once, and rescaled
    to each radius, so the curves of one cell differ only in the radius; ``weights`` (one cell:
    a path or mapping) replaces the draw (rescaled only when ``radii`` is given). The input is
    ``x_t ~ N(0, 1)`` for one sequence, the initial state zero."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise GradientsError(f"steps must be a positive integer, got {steps!r}")
    cells = list(cells)
    if weights is not None and len(cells) != 1:
        raise GradientsError("weights belong to one cell: give exactly one CELL with weights")
    fill = dict(fill or {})
    for p in fill:
        if not any(p in c.params for c in cells):
            raise GradientsError(f"{p!r} is not a parameter of "
                                 + ", ".join(c.name for c in cells))
    out = []
    for cell in cells:
        rng = np.random.default_rng(seed)
        if weights is not None:
            base = load_params(cell, weights)
            sz = derive(cell).infer_sizes(base)
            for p in fill:
                if p in cell.params:
                    base[p] = np.full(np.shape(base[p]), float(fill[p]))
        else:
            sz = default_sizes(cell, sizes)
            base = random_params(cell, sz, rng, fill={p: v for p, v in fill.items() if p in cell.params})
        x = rng.standard_normal((steps, 1, sz[str(derive(cell).shape(cell.inputs[0])[0])]))
        for r in (radii if (weights is None or radii) else (None,)):
            params = base if r is None else scale_recurrent(cell, base, r)
            label = module_name(cell) + "".join(f" {p}={v:g}" for p, v in fill.items()
                                                if p in cell.params)
            label += "" if r is None else f" r={r:g}"
            out.append(Curve(label, cell, log_norms(cell, params, x)[:, 0], r, params))
    return out


def _fmt(log10v: float) -> str:
    """``10**log10v`` as ``1.234e-05``, also beyond float64's range."""
    if np.isnan(log10v):
        return "nan"
    if log10v == -np.inf:
        return "0"
    if log10v == np.inf:
        return "inf"
    e = int(np.floor(log10v))
    m = 10 ** (log10v - e)
    if m >= 9.9995:
        m, e = m / 10, e + 1
    return f"{m:.3f}e{e:+03d}"


def table(curves_: list[Curve], every: int | None = None) -> str:
    """The text table: one row per step shown (every step up to 20, else about 20 rows and the
    last), one column per curve."""
    n = len(curves_[0].log10)
    every = every or max(1, -(-n // 20))
    ts = [t for t in range(1, n + 1) if t == 1 or t % every == 0 or t == n]
    width = max(11, *(len(c.label) for c in curves_))
    lines = ["‖∂h_t/∂h_0‖₂", "t".rjust(5) + "".join(c.label.rjust(width + 2) for c in curves_)]
    for t in ts:
        lines.append(f"{t:5d}" + "".join(_fmt(c.log10[t - 1]).rjust(width + 2) for c in curves_))
    return "\n".join(lines)


def plot(curves_: list[Curve], path: str, title: str | None = None) -> None:
    """Log-scale curves into ``path`` (.png or .svg), byte-stable: no dates or versions in the
    file, fixed SVG ids. Needs matplotlib (``pip install 'rnnsym[plot]'``)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    suffix = str(path).rsplit(".", 1)[-1].lower()
    if suffix not in ("png", "svg"):
        raise GradientsError(f"--plot: the file must end in .png or .svg, got {path}")
    colors = {}
    styles = ["-", "--", ":", "-."]
    radii: dict = {}
    with matplotlib.rc_context({"svg.hashsalt": "rnnsym", "svg.fonttype": "none",
                                "font.size": 9}):
        fig, ax = plt.subplots(figsize=(6.4, 4.0))
        for c in curves_:
            color = colors.setdefault(c.cell.name + c.cell.title, f"C{len(colors)}")
            style = styles[radii.setdefault(c.radius, len(radii)) % len(styles)]
            t = np.arange(1, len(c.log10) + 1)
            with np.errstate(over="ignore", under="ignore"):
                ax.semilogy(t, 10.0 ** np.clip(c.log10, -300, 300), style, color=color,
                            label=c.label, linewidth=1.4)
        ax.set_xlabel("t (steps back)")
        ax.set_ylabel(r"$\|\partial h_t / \partial h_0\|_2$")
        ax.set_title(title or "gradient norm through time (random weights, recurrent matrix "
                     "at spectral radius r)", fontsize=9)
        ax.grid(True, which="major", linewidth=0.4, alpha=0.5)
        ax.legend(fontsize=8, ncol=2)
        fig.tight_layout()
        meta = {"Date": None, "Creator": None} if suffix == "svg" else {"Software": None}
        fig.savefig(path, format=suffix, metadata=meta)
        plt.close(fig)
