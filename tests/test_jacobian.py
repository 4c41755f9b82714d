"""rnnsym.jacobian: step Jacobians (exact LaTeX, and numerically against finite differences)
and the chain ∂h_N/∂h_0."""
import time

import numpy as np
import pytest
import sympy as sp

from rnnsym.cells import elman, gru, lstm, parse_cell
from rnnsym.cells.nodes import Activation, Diag
from rnnsym.jacobian import ActivationDerivative, JacobianError, Step, chain_jacobian, step_jacobian
from rnnsym.printing.latex import latex
from rnnsym.printing.text import text

D_IN, D_H = 2, 3                     # distinct on purpose


def test_elman_tanh_latex():
    block = step_jacobian(elman()).blocks[("h", "h")]
    assert latex(block) == r"\operatorname{diag}\left(1 - h_{t} \odot h_{t}\right) W_{hh}"
    assert text(block) == "diag(1 - h[t] * h[t]) @ W_hh"


@pytest.mark.parametrize("activation, expected", [
    ("sigmoid", r"\operatorname{diag}\left(h_{t} \odot \left(1 - h_{t}\right)\right) W_{hh}"),
    ("relu", r"\operatorname{diag}\left(\operatorname{step}\left(h_{t}\right)\right) W_{hh}"),
    ("elu", r"\operatorname{diag}\left(\operatorname{elu}_{1.0}'\left(W_{xh} x_{t} + W_{hh} h_{t-1} "
            r"+ b_{h}\right)\right) W_{hh}"),
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


_ACT = {"tanh": np.tanh, "sigmoid": _sigmoid}


def _evaluate(expr, values):
    """A matrix expression of rnnsym nodes, numerically (a small independent interpreter)."""
    if isinstance(expr, sp.MatrixSymbol):
        return values[expr.name]
    if isinstance(expr, sp.OneMatrix):
        return 1.0
    if isinstance(expr, sp.Identity):
        return np.eye(len(values["h[t-1]"]))
    if isinstance(expr, sp.MatAdd):
        return sum(_evaluate(a, values) for a in expr.args)
    if isinstance(expr, sp.HadamardProduct):
        return np.prod([_evaluate(a, values) for a in expr.args], axis=0)
    if isinstance(expr, sp.MatMul):
        coeff, mats = expr.as_coeff_matrices()
        out = float(coeff) * _evaluate(mats[0], values)
        for m in mats[1:]:
            out = out @ _evaluate(m, values)
        return out
    if isinstance(expr, Diag):
        return np.diag(_evaluate(expr.arg, values)[:, 0])
    if isinstance(expr, Activation):
        return _ACT[expr.name](_evaluate(expr.arg, values))
    if isinstance(expr, Step):
        return (_evaluate(expr.arg, values) > 0).astype(float)
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


def test_activation_derivative_node_prints():
    d = ActivationDerivative(Activation("scaledtanh", sp.MatrixSymbol("u", 3, 1), 2, 3))
    assert latex(d) == r"\operatorname{scaledtanh}_{2, 3}'\left(u\right)"
    assert text(d) == "scaledtanh'(u, 2, 3)"
    assert d.shape == (3, 1)


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
