"""rnnsym.jacobian: step Jacobians (exact LaTeX, and numerically against finite differences of
the generated step, for every built-in cell) and the chain ∂h_N/∂h_0."""
import time

import numpy as np
import pytest
import sympy as sp

import rnnsym
from rnnsym.cells import elman, gru, lstm, parse_cell
from rnnsym.cells.nodes import Activation, Chunk, Diag, HadamardQuotient, LayerNorm
from rnnsym.codegen.files import GENERATED, generated_cell
from rnnsym.gradients.nodes import ActGrad, InvStd
from rnnsym.jacobian import (
    JacobianError,
    MeanMatrix,
    chain_jacobian,
    latex,
    step_jacobian,
    text,
)

D_IN, D_H = 2, 3                     # distinct on purpose


def test_elman_tanh_latex():
    block = step_jacobian(elman()).blocks[("h", "h")]
    assert latex(block) == r"\operatorname{diag}\left(1 - h_{t} \odot h_{t}\right) W_{hh}"
    assert text(block) == "diag(1 - h[t] * h[t]) @ W_hh"


@pytest.mark.parametrize("activation, expected", [
    ("sigmoid", r"\operatorname{diag}\left(h_{t} \odot \left(1 - h_{t}\right)\right) W_{hh}"),
    ("relu", r"\operatorname{diag}\left(\mathbb{1}\left[h_{t} > 0\right]\right) W_{hh}"),
    # the backward's f', in terms of the output: elu'(u) = 1 where u >= 0, else e^u = h_t + alpha
    ("elu", (r"\operatorname{diag}\left(\mathbb{1}\left[h_{t} \ge 0\right] + \left(h_{t} + 1.0\right) "
             r"\mathbb{1}\left[h_{t} < 0\right]\right) W_{hh}")),
])
def test_elman_other_activations_latex(activation, expected):
    assert latex(step_jacobian(elman(activation)).blocks[("h", "h")]) == expected


def test_step_jacobian_latex_block():
    assert step_jacobian(elman()).latex() == (
        "\\begin{aligned}\n\\frac{\\partial h_{t}}{\\partial h_{t-1}} &= "
        "\\operatorname{diag}\\left(1 - h_{t} \\odot h_{t}\\right) W_{hh}\n\\end{aligned}")


def test_lstm_has_four_blocks_and_the_cell_path():
    j = step_jacobian(lstm())
    assert list(j.blocks) == [("c", "c"), ("c", "h"), ("h", "c"), ("h", "h")]
    assert latex(j.blocks[("c", "c")]) == r"\operatorname{diag}\left(f_{t}\right)"
    assert text(j.blocks[("h", "c")]) == "diag(o[t]) @ diag(1 - tanh(c[t]) * tanh(c[t])) @ diag(f[t])"


def test_product_of_two_dependent_factors_is_refused():
    with pytest.raises(JacobianError, match="only its last factor may depend on h"):
        step_jacobian(parse_cell("h = tanh((W @ h) @ (U @ h))"))


# --- numerically ----------------------------------------------------------------------------
def _sigmoid(u):
    return 1 / (1 + np.exp(-u))


def _step(name, p, x, state, reset="after"):
    """One NumPy step: every quantity of the step, by name (column vectors)."""
    h = state["h"]
    if name == "elman":
        return {"h": np.tanh(p["W_xh"] @ x + p["W_hh"] @ h + p["b_h"])}
    if name == "gru":
        pre = {g: p[f"W_x{g}"] @ x + p[f"W_h{g}"] @ h + p[f"b_x{g}"] + p[f"b_h{g}"] for g in "rz"}
        r, z = _sigmoid(pre["r"]), _sigmoid(pre["z"])
        if reset == "after":
            n = np.tanh(p["W_xn"] @ x + p["b_xn"] + r * (p["W_hn"] @ h + p["b_hn"]))
        else:
            n = np.tanh(p["W_xn"] @ x + p["W_hn"] @ (r * h) + p["b_xn"] + p["b_hn"])
        return {"r": r, "z": z, "n": n, "h": (1 - z) * n + z * h}
    pre = {g: p[f"W_x{g}"] @ x + p[f"W_h{g}"] @ h + p[f"b_x{g}"] + p[f"b_h{g}"] for g in "ifgo"}
    i, f, g, o = _sigmoid(pre["i"]), _sigmoid(pre["f"]), np.tanh(pre["g"]), _sigmoid(pre["o"])
    c = f * state["c"] + i * g
    return {"i": i, "f": f, "g": g, "o": o, "c": c, "h": o * np.tanh(c)}


def _activation(name, u, params):
    if name == "tanh":
        return np.tanh(u)
    if name == "sigmoid":
        return _sigmoid(u)
    if name == "relu":
        return np.maximum(u, 0)
    if name == "clip":
        return np.clip(u, -params[0], params[0])
    raise KeyError(name)


def _evaluate(expr, values):
    """A matrix expression of rnnsym nodes, numerically (a small independent interpreter):
    vectors are columns; in a product, ``mean`` averages what follows over its rows."""
    if isinstance(expr, sp.MatrixSymbol):
        return values[expr.name]
    if isinstance(expr, sp.OneMatrix):
        return 1.0
    if not isinstance(expr, sp.MatrixExpr):
        return float(expr)
    if isinstance(expr, sp.MatMul):
        coeff, mats = expr.as_coeff_matrices()
        out = _evaluate(mats[-1], values)
        for m in reversed(mats[:-1]):
            if isinstance(m, MeanMatrix):
                out = np.broadcast_to(out.mean(axis=0), out.shape)
            elif not isinstance(m, sp.Identity):
                out = _evaluate(m, values) @ out
        return float(coeff) * out
    args = [_evaluate(a, values) if isinstance(a, sp.MatrixExpr) else None for a in expr.args]
    if isinstance(expr, sp.MatAdd):
        return sum(args)
    if isinstance(expr, sp.HadamardProduct):
        return np.prod(np.broadcast_arrays(*args), axis=0)
    if isinstance(expr, HadamardQuotient):
        return args[0] / args[1]
    if isinstance(expr, Diag):
        return np.diag(args[0][:, 0])
    if isinstance(expr, Activation):
        return _activation(expr.name, args[1], [float(p) for p in expr.params])
    if isinstance(expr, ActGrad):
        y = _evaluate(expr.y, values)
        return {"relu": lambda: y > 0, "clip": lambda: np.abs(y) < float(expr.params[0])}[expr.name]() * 1.0
    if isinstance(expr, (LayerNorm, InvStd)):
        u = args[0]
        inv = 1 / np.sqrt(u.var(axis=0) + float(expr.eps))
        if isinstance(expr, InvStd):
            return np.broadcast_to(inv, u.shape)
        out = (u - u.mean(axis=0)) * inv
        return out * (1 if expr.gain is None else args[1]) + (0 if expr.bias is None else args[2])
    if isinstance(expr, Chunk):
        n = args[0].shape[0] // expr.count
        return args[0][expr.index * n:(expr.index + 1) * n]
    raise TypeError(type(expr).__name__)


@pytest.mark.parametrize("name, cell", [("elman", elman()), ("gru", gru()),
                                        ("gru_before", gru(reset="before")), ("lstm", lstm())])
def test_step_jacobian_matches_finite_differences(name, cell):
    kind, reset = name.split("_")[0], "before" if name.endswith("before") else "after"
    rng = np.random.default_rng(1)
    sizes = {"d_in": D_IN, "d_h": D_H}
    shapes = cell.shapes().concrete(**sizes)
    p = {k: 0.7 * rng.standard_normal(shapes[k] if len(shapes[k]) == 2 else (shapes[k][0], 1))
         for k in cell.params}
    x = rng.standard_normal((D_IN, 1))
    state = {s: rng.standard_normal((D_H, 1)) for s in cell.states}
    now = _step(kind, p, x, state, reset)
    values = {**p, "x[t]": x, **{f"{s}[t-1]": v for s, v in state.items()},
              **{f"{q}[t]": v for q, v in now.items()}}

    eps = 1e-6
    for (s, wrt), block in step_jacobian(cell).blocks.items():
        fd = np.zeros((D_H, D_H))
        for j in range(D_H):
            plus = {k: v.copy() for k, v in state.items()}
            minus = {k: v.copy() for k, v in state.items()}
            plus[wrt][j] += eps
            minus[wrt][j] -= eps
            fd[:, j] = ((_step(kind, p, x, plus, reset)[s] - _step(kind, p, x, minus, reset)[s])
                        / (2 * eps))[:, 0]
        np.testing.assert_allclose(_evaluate(block, values), fd, atol=1e-8,
                                   err_msg=f"d{s}[t]/d{wrt}[t-1] of {name}")


@pytest.mark.parametrize("name", list(GENERATED))
def test_every_builtin_cell_matches_finite_differences(name):
    """Every block ∂s_t/∂s'_{t-1} of every built-in cell, evaluated, equals central differences
    of the generated step (float64, eps 1e-6); sizes distinct (d_in=2, d_h=3, d_out=4, others 5).
    The interpreter first runs the cell's equations and must agree with the generated step."""
    cell = generated_cell(name)
    table = rnnsym.shapes(cell)
    sizes = {str(d): {"d_in": 2, "d_h": 3, "d_out": 4}.get(str(d), 5) for d in table.dims}
    shapes = table.concrete(**sizes)
    rng = np.random.default_rng(7)
    params = {k: 0.5 * rng.standard_normal(shapes[k]) for k in cell.params}
    x = rng.standard_normal(shapes[cell.inputs[0]])
    state = {s: rng.standard_normal(shapes[s]) for s in cell.states}

    def column(v):
        return v.reshape(-1, 1) if v.ndim == 1 else v

    values = {**{k: column(v) for k, v in params.items()}, f"{cell.inputs[0]}[t]": column(x),
              **{f"{s}[t-1]": column(v) for s, v in state.items()}}
    for eq in cell.equations:
        values[eq.lhs.name] = _evaluate(eq.rhs, values)
    step = rnnsym.compile(cell).step

    def run(st):
        return step(params, x[None], {k: v[None] for k, v in st.items()})

    new = run(state)
    for s in cell.states:
        np.testing.assert_allclose(values[f"{s}[t]"][:, 0], new[s][0], rtol=1e-12, atol=1e-14)
    eps = 1e-6
    blocks = step_jacobian(cell).blocks
    assert list(blocks) == [(s, p) for s in cell.states for p in cell.states]
    for (s, wrt), block in blocks.items():
        fd = np.zeros((len(state[s]), len(state[wrt])))
        for j in range(len(state[wrt])):
            plus = {k: v.copy() for k, v in state.items()}
            minus = {k: v.copy() for k, v in state.items()}
            plus[wrt][j] += eps
            minus[wrt][j] -= eps
            fd[:, j] = (run(plus)[s][0] - run(minus)[s][0]) / (2 * eps)
        got = np.zeros_like(fd) if isinstance(block, sp.ZeroMatrix) else \
            np.eye(len(fd)) if isinstance(block, sp.Identity) else _evaluate(block, values)
        np.testing.assert_allclose(got, fd, rtol=1e-6, atol=1e-8, err_msg=f"d{s}[t]/d{wrt}[t-1] of {name}")


def test_layernorm_and_division_print():
    """lnlstm's ∂c_t/∂c_{t-1} is layer norm's Jacobian times diag(f_t); minLSTM's is diag(f_n)."""
    block = text(step_jacobian(generated_cell("lnlstm")).blocks[("c", "c")])
    u = "f[t] * c[t-1] + i[t] * g[t]"
    s = f"diag(1/std({u}, 1/100000))"
    assert block == (f"(diag(g_c) @ {s} - diag(g_c) @ mean @ {s} - diag(g_c * layernorm({u})) @ mean @ "
                     f"diag(layernorm({u})) @ {s}) @ diag(f[t])")
    assert text(step_jacobian(generated_cell("minlstm")).blocks[("h", "h")]) == "diag(f_n[t])"
    d = text(step_jacobian(parse_cell("h = tanh(W @ h) / (1 + U @ h)")).blocks[("h", "h")])
    assert d == ("diag(1 / (1 + U @ h[t-1])) @ diag(1 - tanh(W @ h[t-1]) * tanh(W @ h[t-1])) @ W"
                 " - diag(tanh(W @ h[t-1]) / ((1 + U @ h[t-1]) * (1 + U @ h[t-1]))) @ U")


# --- the chain ------------------------------------------------------------------------------
def test_elman_chain_latex():
    def j(t):
        return rf"J_{{{t}}} &= \operatorname{{diag}}\left(1 - h_{{{t}}} \odot h_{{{t}}}\right) W_{{hh}}"

    norm_w = r"\left\| W_{hh} \right\|"
    assert chain_jacobian(elman(), 3).latex().splitlines() == [
        r"\begin{aligned}",
        r"\frac{\partial h_{3}}{\partial h_{0}} &= J_{3} J_{2} J_{1} \\",
        j(3) + r" \\", j(2) + r" \\", j(1) + r" \\",
        r"\left\| \frac{\partial h_{3}}{\partial h_{0}} \right\| &\le \prod_{t=1}^{3} "
        r"\left\| \operatorname{diag}\left(1 - h_{t} \odot h_{t}\right) \right\| \, " + norm_w
        + rf" \le {norm_w}^{{3}} \quad \text{{vanishes if }} {norm_w} < 1"
        + rf"\text{{, can explode only if }} {norm_w} > 1",
        r"\end{aligned}"]


def test_elman_sigmoid_chain_bound_has_a_quarter():
    assert (r"\le \left(\tfrac{1}{4} \left\| W_{hh} \right\|\right)^{5}"
            in chain_jacobian(elman("sigmoid"), 5).latex())


def test_elman_chain_text():
    assert chain_jacobian(elman(), 5).text().splitlines() == [
        "dh[5]/dh[0] = J[5] @ J[4] @ ... @ J[1]",
        *(f"J[{t}] = diag(1 - h[{t}] * h[{t}]) @ W_hh" for t in range(5, 0, -1)),
        "||dh[5]/dh[0]|| <= prod(t=1..5) ||diag(1 - h[t] * h[t])|| ||W_hh||"]


def test_lstm_chain_is_a_block_product():
    lines = chain_jacobian(lstm(), 2).latex().splitlines()
    assert lines[1] == r"\frac{\partial \left(c_{2}, h_{2}\right)}{\partial \left(c_{0}, h_{0}\right)} &= J_{2} J_{1} \\"
    assert lines[2].startswith(r"J_{2} &= \begin{pmatrix} \operatorname{diag}\left(f_{2}\right) & ")
    assert r"\operatorname{diag}\left(c_{0}\right)" in lines[3]
    assert lines[4] == (r"\left\| \frac{\partial \left(c_{2}, h_{2}\right)}{\partial \left(c_{0}, "
                        r"h_{0}\right)} \right\| &\le \prod_{t=1}^{2} \left\| J_{t} \right\|")
    assert chain_jacobian(lstm(), 1).text().splitlines()[1].startswith("J[1] = [[diag(f[1]), ")


def test_gru_chain_uses_the_general_bound():
    assert chain_jacobian(gru(), 2).text().splitlines()[-1] == "||dh[2]/dh[0]|| <= prod(t=1..2) ||J[t]||"


def test_long_chain_is_fast():
    start = time.perf_counter()
    tex = chain_jacobian(lstm(), 1000).latex()
    assert time.perf_counter() - start < 1
    assert tex.count(r"\begin{pmatrix}") == 1000


@pytest.mark.parametrize("steps", [0, 1.5])
def test_bad_steps(steps):
    with pytest.raises(JacobianError, match="steps must be a positive integer"):
        chain_jacobian(elman(), steps)
