"""rnnsym.unroll: the nested, chain and element-wise forms, their sizes, printing and limits."""
import time

import numpy as np
import pytest
import sympy as sp

from rnnsym.cells import elman, gru, lstm, parse_cell
from rnnsym.printing.latex import latex
from rnnsym.printing.text import text
from rnnsym.unroll import UnrollError, UnrollTooLarge, tree_size, unroll

CELLS = {"elman": elman, "elman_readout": lambda: elman(readout=True), "lstm": lstm, "gru": gru,
         "lstm_peep_proj": lambda: lstm(peepholes=True, projection=True),
         "gru_before": lambda: gru(reset="before")}
SIZES = {"d_h": 2, "d_in": 1}
SIGMA, TANH = r"\sigma", r"\tanh"


# --- exact text -----------------------------------------------------------------------------
def test_elman_chain_latex():
    assert unroll(elman(), 2).latex() == "\n".join([
        r"\begin{aligned}",
        r"h_{1} &= \tanh\left(W_{xh} x_{1} + W_{hh} h_{0} + b_{h}\right) \\",
        r"h_{2} &= \tanh\left(W_{xh} x_{2} + W_{hh} h_{1} + b_{h}\right)",
        r"\end{aligned}"])


def test_elman_chain_text_with_readout():
    assert unroll(elman(readout=True), 2, "chain").text() == "\n".join([
        "h[1] = tanh(W_xh @ x[1] + W_hh @ h[0] + b_h)",
        "y[1] = W_hy @ h[1] + b_y",
        "h[2] = tanh(W_xh @ x[2] + W_hh @ h[1] + b_h)",
        "y[2] = W_hy @ h[2] + b_y"])


def test_elman_nested_latex():
    u = unroll(elman(readout=True), 2, "nested")
    assert [label for label, _ in u.equations] == ["h[2]", "y[2]"]
    inner = r"\tanh\left(W_{xh} x_{1} + W_{hh} h_{0} + b_{h}\right)"
    h2 = rf"\tanh\left(W_{{xh}} x_{{2}} + W_{{hh}} {inner} + b_{{h}}\right)"
    assert u.latex() == "\n".join([r"\begin{aligned}", rf"h_{{2}} &= {h2} \\",
                                   rf"y_{{2}} &= W_{{hy}} {h2} + b_{{y}}", r"\end{aligned}"])


def test_elman_elementwise_latex():
    assert unroll(elman(), 2, "elementwise", SIZES).latex() == "\n".join([
        r"\begin{aligned}",
        r"h_{1,0} &= \tanh\left(W_{xh,0,0} x_{1,0} + W_{hh,0,0} h_{0,0} + W_{hh,0,1} h_{0,1} + b_{h,0}\right) \\",
        r"h_{1,1} &= \tanh\left(W_{xh,1,0} x_{1,0} + W_{hh,1,0} h_{0,0} + W_{hh,1,1} h_{0,1} + b_{h,1}\right) \\",
        r"h_{2,0} &= \tanh\left(W_{xh,0,0} x_{2,0} + W_{hh,0,0} h_{1,0} + W_{hh,0,1} h_{1,1} + b_{h,0}\right) \\",
        r"h_{2,1} &= \tanh\left(W_{xh,1,0} x_{2,0} + W_{hh,1,0} h_{1,0} + W_{hh,1,1} h_{1,1} + b_{h,1}\right)",
        r"\end{aligned}"])


def test_elman_elementwise_text():
    assert unroll(elman(), 1, "elementwise", SIZES).text().splitlines()[0] == \
        "h[1][0] = tanh(W_xh[0,0]*x[1][0] + W_hh[0,0]*h[0][0] + W_hh[0,1]*h[0][1] + b_h[0])"


def test_lstm_chain_latex():
    def gate(act, g, t):
        return (rf"{act}\left(W_{{x{g}}} x_{{{t}}} + W_{{h{g}}} h_{{{t - 1}}} + b_{{x{g}}} "
                rf"+ b_{{h{g}}}\right)")

    lines = []
    for t in (1, 2):
        lines.append(rf"c_{{{t}}} &= {gate(SIGMA, 'f', t)} \odot c_{{{t - 1}}} + "
                     rf"{gate(SIGMA, 'i', t)} \odot {gate(TANH, 'g', t)}")
        lines.append(rf"h_{{{t}}} &= {gate(SIGMA, 'o', t)} \odot \tanh\left(c_{{{t}}}\right)")
    assert unroll(lstm(), 2).latex() == \
        "\\begin{aligned}\n" + " \\\\\n".join(lines) + "\n\\end{aligned}"


def test_gru_chain_latex():
    def gate(act, g, t):
        return (rf"{act}\left(W_{{x{g}}} x_{{{t}}} + W_{{h{g}}} h_{{{t - 1}}} + b_{{x{g}}} "
                rf"+ b_{{h{g}}}\right)")

    lines = [rf"h_{{{t}}} &= \left(1 - {gate(SIGMA, 'z', t)}\right) \odot "
             rf"\tanh\left(W_{{xn}} x_{{{t}}} + b_{{xn}} + {gate(SIGMA, 'r', t)} \odot "
             rf"\left(W_{{hn}} h_{{{t - 1}}} + b_{{hn}}\right)\right) + "
             rf"{gate(SIGMA, 'z', t)} \odot h_{{{t - 1}}}" for t in (1, 2)]
    assert unroll(gru(), 2).latex() == "\\begin{aligned}\n" + " \\\\\n".join(lines) + "\n\\end{aligned}"


# --- the per-step template prints what the expressions print ---------------------------------
@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("form", ["chain", "nested"])
def test_printed_text_is_the_equations(name, form):
    u = unroll(CELLS[name](), 3, form)
    latex_lines = u.latex().splitlines()[1:-1]
    text_lines = u.text().splitlines()
    assert len(latex_lines) == len(text_lines) == len(u.equations)
    for (label, rhs), lx, tx in zip(u.equations, latex_lines, text_lines):
        assert lx.removesuffix(r" \\").split(" &= ", 1)[1] == latex(rhs)
        assert tx == f"{label} = {text(rhs)}"


# --- sizes ----------------------------------------------------------------------------------
def _naive_size(expr):
    if isinstance(expr, sp.MatrixSymbol):
        return 1
    return 1 + sum(_naive_size(a) for a in expr.args if isinstance(a, sp.Expr))


@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("form", ["chain", "nested"])
def test_size_is_the_tree_size(name, form):
    u = unroll(CELLS[name](), 3, form)
    assert u.size == sum(_naive_size(rhs) for _, rhs in u.equations)


def test_growth():
    def sizes(cell, form):
        return [unroll(cell, n, form).size for n in (2, 3, 4)]

    a, b, c = sizes(elman(), "nested")
    assert b - a == c - b                                  # linear
    for cell in (lstm(), gru()):
        a, b, c = sizes(cell, "nested")
        assert b > 3 * a and c > 3 * b                     # exponential
        a, b, c = sizes(cell, "chain")
        assert b - a == c - b                              # linear


def test_tree_size_shares_memo_across_a_deep_dag():
    h = unroll(parse_cell("h = tanh(W @ h + U @ x)"), 2000, "nested").equations[0][1]
    assert tree_size(h) == 2000 * 7 + 1                # tanh, +, 2 products, W, U, x; h[0]


# --- limits ---------------------------------------------------------------------------------
@pytest.mark.parametrize("cell", [lstm, gru])
def test_nested_refuses_beyond_the_limit(cell):
    start = time.perf_counter()
    with pytest.raises(UnrollTooLarge, match=r"exceeds the limit of 200,000 nodes .*--form chain"):
        unroll(cell(), 10_000, "nested")
    assert time.perf_counter() - start < 1


def test_limit_is_adjustable():
    with pytest.raises(UnrollTooLarge, match="limit of 100 nodes"):
        unroll(elman(), 20, "nested", limit=100)


def test_elman_nested_to_1000_steps():
    u = unroll(elman(), 1000, "nested")
    tex, txt = u.latex(), u.text()
    assert tex.startswith(r"\begin{aligned}" + "\nh_{1000} &= \\tanh\\left(W_{xh} x_{1000} + W_{hh} \\tanh")
    assert tex.count(r"\tanh") == 1000 and tex.count("x_{1}") == 1 and "h_{0}" in tex
    assert txt.count("tanh(") == 1000 and txt.endswith("h[0] + b_h)" + " + b_h)" * 999)


def test_user_cell_whose_sum_starts_with_the_state_nests_deeply():
    # SymPy's constructors would re-validate shapes down the nesting (RecursionError near 300)
    u = unroll(parse_cell("h = tanh(W @ h + U @ x)"), 1000, "nested")
    assert u.text().startswith("h[1000] = tanh(W @ tanh(W @ tanh(")


def test_lstm_chain_10000_steps_is_fast():
    start = time.perf_counter()
    u = unroll(lstm(), 10_000)
    tex = u.latex()
    assert time.perf_counter() - start < 1.5
    assert tex.count("\n") == 2 * 10_000 + 1 and r"h_{10000} &= " in tex
    assert u.size == 10_000 * unroll(lstm(), 1).size


# --- element-wise, numerically --------------------------------------------------------------
def _sigmoid(u):
    return 1 / (1 + np.exp(-u))


def _numpy_run(name, p, xs, state):
    """A plain loop; returns every state at every step, like the chain's labels."""
    out = {}
    for t, x in enumerate(xs, start=1):
        h = state["h"]
        if name == "elman":
            state = {"h": np.tanh(p["W_xh"] @ x + p["W_hh"] @ h + p["b_h"])}
        elif name == "gru":
            pre = {g: p[f"W_x{g}"] @ x + p[f"W_h{g}"] @ h + p[f"b_x{g}"] + p[f"b_h{g}"] for g in "rz"}
            r, z = _sigmoid(pre["r"]), _sigmoid(pre["z"])
            n = np.tanh(p["W_xn"] @ x + p["b_xn"] + r * (p["W_hn"] @ h + p["b_hn"]))
            state = {"h": (1 - z) * n + z * h}
        else:
            pre = {g: p[f"W_x{g}"] @ x + p[f"W_h{g}"] @ h + p[f"b_x{g}"] + p[f"b_h{g}"] for g in "ifgo"}
            c = _sigmoid(pre["f"]) * state["c"] + _sigmoid(pre["i"]) * np.tanh(pre["g"])
            state = {"c": c, "h": _sigmoid(pre["o"]) * np.tanh(c)}
        for s, v in state.items():
            for i, vi in enumerate(v):
                out[f"{s}[{t}][{i}]"] = vi
    return out


@pytest.mark.parametrize("name", ["elman", "gru", "lstm"])
def test_elementwise_matches_numpy(name):
    cell, steps = CELLS[name](), 3
    u = unroll(cell, steps, "elementwise", SIZES)
    rng = np.random.default_rng(0)
    shapes = cell.shapes().concrete(**SIZES)
    p = {k: rng.standard_normal(shapes[k]) for k in cell.params}
    xs = rng.standard_normal((steps, 1))
    state = {s: rng.standard_normal(2) for s in cell.states}

    values = {}                                    # scalar symbol name -> number
    for k, v in p.items():
        for idx in np.ndindex(v.shape):
            values[f"{k}[{','.join(map(str, idx))}]"] = v[idx]
    for t, x in enumerate(xs, start=1):
        values[f"x[{t}][0]"] = x[0]
    for s, v in state.items():
        values.update({f"{s}[0][{i}]": vi for i, vi in enumerate(v)})
    for label, rhs in u.equations:                 # chain order: each reads only earlier labels
        values[label] = float(rhs.evalf(subs={sym: values[sym.name] for sym in rhs.free_symbols}))

    expected = _numpy_run(name, p, xs, state)
    assert [label for label, _ in u.equations] == list(expected)
    np.testing.assert_allclose([values[k] for k in expected], list(expected.values()), rtol=1e-12)


# --- errors ---------------------------------------------------------------------------------
def test_elementwise_names_missing_and_unknown_sizes():
    with pytest.raises(UnrollError, match=r"give a size for d_in .*--sizes d_h=2,d_in=2"):
        unroll(elman(), 2, "elementwise", {"d_h": 2})
    with pytest.raises(UnrollError, match="d_x is not a dimension"):
        unroll(elman(), 2, "elementwise", {"d_h": 2, "d_in": 1, "d_x": 3})


@pytest.mark.parametrize("steps", [0, -1, 2.0, True])
def test_bad_steps(steps):
    with pytest.raises(UnrollError, match="steps must be a positive integer"):
        unroll(elman(), steps)


def test_bad_form():
    with pytest.raises(UnrollError, match="unknown form 'tree'; choose one of nested, chain, elementwise"):
        unroll(elman(), 2, "tree")
