"""The layer-norm, elementwise-division and chunk nodes: text form, printers, shapes, code."""
import numpy as np
import pytest
import sympy as sp
import torch

import rnnsym
from rnnsym.cells import DefinitionError, parse_cell
from rnnsym.cells.nodes import HadamardQuotient, LayerNorm, chunk, divide, layernorm
from rnnsym.cells.cell import make_cell, now, param, prev
from rnnsym.shapes import ShapeConflict, derive

LN_LSTM_TEXT = """a = layernorm(W_x @ x, g_x, b_x) + layernorm(W_h @ h, g_h, b_h)
i = sigmoid(chunk(a, 0, 4)); f = sigmoid(chunk(a, 1, 4)); g = tanh(chunk(a, 2, 4)); o = sigmoid(chunk(a, 3, 4))
c = layernorm(f * c + i * g, g_c, b_c)
h = o * tanh(c)"""


def test_text_round_trip_and_nodes():
    cell = parse_cell("u = layernorm(W @ x, g, b, 0.001) + layernorm(V @ h); m = u / (u + h) + 1 / h;"
                      " h = tanh(chunk(K @ x, 1, 3)) * m + h / 2 + layernorm(h, g2)")
    u = cell.equation("u").rhs
    first, second = u.args
    assert isinstance(first, LayerNorm) and first.eps == sp.Rational(1, 1000)
    assert first.gain == param("g") and first.bias == param("b")
    assert isinstance(second, LayerNorm) and second.gain is None and second.eps == sp.Rational(1, 100000)
    m = cell.equation("m").rhs
    assert all(isinstance(t, HadamardQuotient) for t in m.args)
    assert cell.text().splitlines() == [
        "u[t] = layernorm(W @ x[t], g, b, 1/1000) + layernorm(V @ h[t-1])",
        "m[t] = u[t] / (u[t] + h[t-1]) + 1 / h[t-1]",
        "h[t] = tanh(chunk(K @ x[t], 1, 3)) * m[t] + 1/2*h[t-1] + layernorm(h[t-1], g2)"]
    again = parse_cell(cell.text().replace("[t-1]", "").replace("[t]", ""))
    assert again.text() == cell.text()


def test_python_builders_match_text():
    h, x = prev("h"), now("x")
    py = make_cell("mine", "mine", [("h", "state", divide(
        layernorm(chunk(param("W") @ x, 0, 2), param("g"), param("b")), h))])
    assert py.text() == parse_cell("h = layernorm(chunk(W @ x, 0, 2), g, b) / h").text()


def test_latex_of_the_new_nodes():
    cell = parse_cell(LN_LSTM_TEXT + "\nq = f / (f + i)")
    tex = cell.latex()
    assert r"a_{t} &= \operatorname{LN}_{g_{x}, b_{x}}\left(W_{x} x_{t}\right) + " \
           r"\operatorname{LN}_{g_{h}, b_{h}}\left(W_{h} h_{t-1}\right)" in tex
    assert r"i_{t} &= \sigma\left(\operatorname{chunk}_{0, 4}\left(a_{t}\right)\right)" in tex
    assert r"q_{t} &= f_{t} \oslash \left(f_{t} + i_{t}\right)" in tex


@pytest.mark.parametrize("text, message", [
    ("h = layernorm(h, 2, b)", "gain g and bias b are vectors"),
    ("h = layernorm(h, g, b, c, 0.1)", "gain g and bias b are vectors"),
    ("h = layernorm(2) + h", "first argument must be a vector"),
    ("h = layernorm(h, g, b, -1)", "eps must be a number >= 0"),
    ("h = layernorm(h, eps=1)", "keyword"),
    ("h = tanh(chunk(h, 4, 4))", "0 <= k < n"),
    ("h = tanh(chunk(h, k, 4))", "chunk(u, k, n)"),
    ("h = tanh(chunk(h, 0))", "chunk(u, k, n)"),
    ("h = h / 0", "division by zero"),
])
def test_bad_calls_say_how_to_call(text, message):
    with pytest.raises(DefinitionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_cell(text)


def test_chunk_scales_rows_and_reports_conflicts():
    table = derive(parse_cell(LN_LSTM_TEXT))
    shapes = {p: tuple(map(str, table.shape(p))) for p in ("W_x", "g_x", "W_h", "g_c", "a", "i")}
    assert shapes == {"W_x": ("4*d_h", "d_in"), "g_x": ("4*d_h",), "W_h": ("4*d_h", "d_h"),
                      "g_c": ("d_h",), "a": ("4*d_h",), "i": ("d_h",)}
    assert table.concrete(d_h=3, d_in=2)["W_h"] == (12, 3)
    # x has d_in rows, the state d_h: chunking x in two would need d_in = 2*d_h
    with pytest.raises(ShapeConflict, match=r"would need d_in = 2\*d_h"):
        derive(parse_cell("h = tanh(chunk(x, 0, 2) + h)"))
    with pytest.raises(ShapeConflict, match="the gain g must have the shape of"):
        derive(parse_cell("h = tanh(h + g + W @ layernorm(x, g, b))"))


def _ln_lstm_params(rng, d_in, d_h):
    shapes = derive(parse_cell(LN_LSTM_TEXT)).concrete(d_in=d_in, d_h=d_h)
    return {p: rng.standard_normal(shapes[p]) for p in ("W_x", "g_x", "b_x", "W_h", "g_h", "b_h",
                                                        "g_c", "b_c")}


def test_generated_layernorm_equals_torch_layer_norm():
    """The generated NumPy of a text-defined LN-LSTM against torch.nn.functional.layer_norm,
    written out step by step (an independent second implementation)."""
    rng = np.random.default_rng(3)
    d_in, d_h, T, B = 2, 3, 4, 5
    p = _ln_lstm_params(rng, d_in, d_h)
    x = rng.standard_normal((T, B, d_in))
    out, state = rnnsym.compile(parse_cell(LN_LSTM_TEXT)).forward(p, x)
    t = {k: torch.from_numpy(v) for k, v in p.items()}
    ln = torch.nn.functional.layer_norm
    h = c = torch.zeros(B, d_h, dtype=torch.float64)
    for k in range(T):
        xt = torch.from_numpy(x[k])
        gates = ln(xt @ t["W_x"].T, (4 * d_h,), t["g_x"], t["b_x"]) \
            + ln(h @ t["W_h"].T, (4 * d_h,), t["g_h"], t["b_h"])
        i, f, g, o = gates.chunk(4, 1)
        c = ln(torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g), (d_h,), t["g_c"], t["b_c"])
        h = torch.sigmoid(o) * torch.tanh(c)
        np.testing.assert_allclose(out[k], h.numpy(), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(state["c"], c.numpy(), rtol=1e-12, atol=1e-13)


def test_generated_code_checks_stacked_sizes():
    forward = rnnsym.compile(parse_cell(LN_LSTM_TEXT)).forward
    p = _ln_lstm_params(np.random.default_rng(0), 2, 3)
    for k in ("W_x", "g_x", "b_x", "W_h", "g_h", "b_h"):       # 3*d_h rows instead of 4*d_h
        p[k] = p[k][:9]
    with pytest.raises(ValueError, match=r"expected 4\*d_h = 12 \(d_h = 3\), got 9"):
        forward(p, np.zeros((1, 1, 2)))


def test_elementwise_unroll_of_the_new_nodes_equals_generated():
    from rnnsym.unroll import unroll
    cell = parse_cell("a = layernorm(W @ x, g, b) + layernorm(V @ h); q = sigmoid(chunk(a, 1, 2));"
                      " h = q / (q + 1) * h + chunk(a, 0, 2)")
    dims = {"d_in": 2, "d_h": 3}
    shapes = derive(cell).concrete(**dims)
    rng = np.random.default_rng(5)
    p = {k: rng.uniform(-1, 1, shapes[k]) for k in cell.params}
    x = rng.uniform(-1, 1, (2, 1, 2))
    h0 = rng.uniform(-1, 1, (1, 3))
    values = {f"{k}[{','.join(map(str, i))}]": v[i] for k, v in p.items() for i in np.ndindex(v.shape)}
    values.update({f"x[{t + 1}][{i}]": x[t, 0, i] for t in range(2) for i in range(2)})
    values.update({f"h[0][{i}]": h0[0, i] for i in range(3)})
    for label, rhs in unroll(cell, 2, "elementwise", dims).equations:
        values[label] = float(rhs.xreplace({s: sp.Float(values[s.name], 30)
                                            for s in rhs.free_symbols}).evalf(20))
    out, _ = rnnsym.compile(cell).forward(p, x, {"h": h0})
    want = [[values[f"h[{t + 1}][{i}]"] for i in range(3)] for t in range(2)]
    np.testing.assert_allclose(out[:, 0], want, rtol=1e-12)
