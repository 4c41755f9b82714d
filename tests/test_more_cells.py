"""The recent built-in cells (minGRU, minLSTM, IndRNN, SRU, QRNN, layer-norm LSTM): their
hand-written references against independent restatements, their derived shapes and LaTeX.

That the generated modules equal these references is tested, with Hypothesis, in
test_generated_properties.py (every entry of codegen.files.GENERATED).
"""
import math

import numpy as np
import pytest
import torch

import rnnsym
from rnnsym import reference
from rnnsym.cells import builtin

D_IN, D_H, T, B = 3, 5, 4, 2          # distinct on purpose
TOL = 1e-12


def rand(rng, *shape, scale=0.5):
    return scale * rng.standard_normal(shape)


def params_of(name, rng, **options):
    """Random parameters of the shapes rnnsym derives for the built-in cell."""
    cell = builtin(name, **options)
    dims = {"d_in": D_IN, "d_h": D_H} if len(rnnsym.shapes(cell).dims) == 2 else {"d_h": D_H}
    shapes = rnnsym.shapes(cell).concrete(**dims)
    return {p: rand(rng, *shapes[p]) for p in cell.params}


def sig(u):
    return 1 / (1 + math.exp(-u))


def dot(row, vec):
    return sum(a * b for a, b in zip(row, vec))


# --- references against independent restatements ---------------------------------------------
def test_mingru_and_minlstm_against_scalar_loops():
    """One unit, one Python float at a time, straight from the paper's Algorithms 1 and 3."""
    rng = np.random.default_rng(1)
    x, h0 = rand(rng, T, B, D_IN), rand(rng, B, D_H)
    pg, pl = params_of("mingru", rng), params_of("minlstm", rng)
    out_g, _ = reference.mingru_forward(pg, x, {"h": h0})
    out_l, fin_l = reference.minlstm_forward(pl, x, {"h": h0})
    for b in range(B):
        hg, hl = list(h0[b]), list(h0[b])
        for t in range(T):
            for k in range(D_H):
                z = sig(dot(pg["W_xz"][k], x[t, b]) + pg["b_z"][k])
                hg[k] = (1 - z) * hg[k] + z * (dot(pg["W_xn"][k], x[t, b]) + pg["b_n"][k])
                f = sig(dot(pl["W_xf"][k], x[t, b]) + pl["b_f"][k])
                i = sig(dot(pl["W_xi"][k], x[t, b]) + pl["b_i"][k])
                hl[k] = f / (f + i) * hl[k] + i / (f + i) * (dot(pl["W_xn"][k], x[t, b]) + pl["b_n"][k])
            np.testing.assert_allclose(out_g[t, b], hg, rtol=TOL, atol=TOL)
            np.testing.assert_allclose(out_l[t, b], hl, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(fin_l["h"], out_l[-1], rtol=0, atol=0)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_indrnn_is_elman_with_a_diagonal_recurrent_matrix(activation):
    rng = np.random.default_rng(2)
    p = params_of("indrnn", rng)
    x, h0 = rand(rng, T, B, D_IN, scale=2.0), rand(rng, B, D_H)
    got, fin = reference.indrnn_forward(p, x, {"h": h0}, activation=activation)
    want, _ = reference.elman_forward({"W_xh": p["W_xh"], "W_hh": np.diag(p["w_hh"]), "b_h": p["b_h"]},
                                      x, {"h": h0}, activation=activation)
    np.testing.assert_allclose(got, want, rtol=TOL, atol=TOL)
    assert (got >= 0).all() if activation == "relu" else (got < 0).any()


def test_sru_against_scalar_loops_and_its_highway():
    rng = np.random.default_rng(3)
    p = params_of("sru", rng)
    x, c0 = rand(rng, T, B, D_H), rand(rng, B, D_H)
    out, fin = reference.sru_forward(p, x, {"c": c0})
    assert set(fin) == {"c"}
    for b in range(B):
        c = list(c0[b])
        for t in range(T):
            for k in range(D_H):
                f = sig(dot(p["W_xf"][k], x[t, b]) + p["v_f"][k] * c[k] + p["b_f"][k])
                r = sig(dot(p["W_xr"][k], x[t, b]) + p["v_r"][k] * c[k] + p["b_r"][k])   # old c
                c[k] = f * c[k] + (1 - f) * dot(p["W_xc"][k], x[t, b])
                assert abs(out[t, b, k] - (r * c[k] + (1 - r) * x[t, b, k])) <= TOL
    # the reset gate closed (b_r → -inf): h is the input itself
    shut = dict(p, b_r=np.full(D_H, -800.0), v_r=np.zeros(D_H), W_xr=np.zeros((D_H, D_H)))
    np.testing.assert_array_equal(reference.sru_forward(shut, x)[0], x)
    with pytest.raises(ValueError, match=r"x: expected shape \(T, B, d_h\) = \(T, B, 5\)"):
        reference.sru_forward(p, np.zeros((T, B, D_IN)))


@pytest.mark.parametrize("pooling", ["f", "fo"])
def test_qrnn_against_the_masked_convolution_then_pooling(pooling):
    """The paper's parallel form: Z, F, O for all steps at once from the zero-padded sequence
    (a width-2 masked convolution), then the pooling recurrence."""
    rng = np.random.default_rng(4)
    p = params_of("qrnn", rng, pooling=pooling)
    x = rand(rng, T, B, D_IN)
    shifted = np.concatenate([np.zeros((1, B, D_IN)), x[:-1]])          # x_{t-1}, x_0 = 0
    conv = {g: shifted @ p[f"W_{g}1"].T + x @ p[f"W_{g}2"].T for g in ("zfo" if pooling == "fo" else "zf")}
    Z, F = np.tanh(conv["z"]), 1 / (1 + np.exp(-conv["f"]))
    s, want = np.zeros((B, D_H)), []
    for t in range(T):
        s = F[t] * s + (1 - F[t]) * Z[t]
        want.append(s / (1 + np.exp(-conv["o"][t])) if pooling == "fo" else s)
    out, fin = reference.qrnn_forward(p, x, pooling=pooling)
    np.testing.assert_allclose(out, np.array(want), rtol=TOL, atol=TOL)
    np.testing.assert_array_equal(fin["xp"], x[-1])
    # running in two pieces carries x_{t-1} across the cut
    out1, mid = reference.qrnn_forward(p, x[:2], pooling=pooling)
    out2, _ = reference.qrnn_forward(p, x[2:], mid, pooling=pooling)
    np.testing.assert_allclose(np.concatenate([out1, out2]), out, rtol=TOL, atol=TOL)


class TorchLayerNormLSTMCell(torch.nn.Module):
    """PyTorch's benchmarks/fastrnns/custom_lstms.py LayerNormLSTMCell, forward restated line by
    line (torch.jit and the benchmark's helpers left out): decompose=True is its own LayerNorm
    (input - mu) / sigma * weight + bias, sigma = std(unbiased=False)."""

    def __init__(self, input_size, hidden_size, decompose=False):
        super().__init__()
        self.weight_ih = torch.nn.Parameter(torch.randn(4 * hidden_size, input_size))
        self.weight_hh = torch.nn.Parameter(torch.randn(4 * hidden_size, hidden_size))
        self.decompose = decompose
        self.layernorm_i = torch.nn.LayerNorm(4 * hidden_size)
        self.layernorm_h = torch.nn.LayerNorm(4 * hidden_size)
        self.layernorm_c = torch.nn.LayerNorm(hidden_size)

    def ln(self, module, u):
        if not self.decompose:
            return module(u)
        mu, sigma = u.mean(-1, keepdim=True), u.std(-1, keepdim=True, unbiased=False)
        return (u - mu) / sigma * module.weight + module.bias

    def forward(self, input, state):
        hx, cx = state
        igates = self.ln(self.layernorm_i, torch.mm(input, self.weight_ih.t()))
        hgates = self.ln(self.layernorm_h, torch.mm(hx, self.weight_hh.t()))
        gates = igates + hgates
        ingate, forgetgate, cellgate, outgate = gates.chunk(4, 1)
        ingate, forgetgate = torch.sigmoid(ingate), torch.sigmoid(forgetgate)
        cellgate, outgate = torch.tanh(cellgate), torch.sigmoid(outgate)
        cy = self.ln(self.layernorm_c, (forgetgate * cx) + (ingate * cellgate))
        hy = outgate * torch.tanh(cy)
        return hy, (hy, cy)


@pytest.mark.parametrize("decompose", [False, True])
def test_lnlstm_equals_pytorch_layernorm_lstm_cell(decompose):
    rng = np.random.default_rng(5)
    p = params_of("lnlstm", rng)
    x, h0, c0 = rand(rng, T, B, D_IN), rand(rng, B, D_H), rand(rng, B, D_H)
    cell = TorchLayerNormLSTMCell(D_IN, D_H, decompose).double()
    names = {"weight_ih": "W_x", "weight_hh": "W_h", "layernorm_i.weight": "g_x",
             "layernorm_i.bias": "b_x", "layernorm_h.weight": "g_h", "layernorm_h.bias": "b_h",
             "layernorm_c.weight": "g_c", "layernorm_c.bias": "b_c"}
    with torch.no_grad():
        for tname, value in cell.named_parameters():
            value.copy_(torch.from_numpy(p[names[tname]]))
        state = (torch.from_numpy(h0), torch.from_numpy(c0))
        want = []
        for t in range(T):
            out, state = cell(torch.from_numpy(x[t]), state)
            want.append(out.numpy())
    got, fin = reference.lnlstm_forward(p, x, {"h": h0, "c": c0}, eps=0.0 if decompose else 1e-5)
    np.testing.assert_allclose(got, np.array(want), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fin["c"], state[1].numpy(), rtol=1e-12, atol=1e-12)
    if not decompose:     # the generated module too (eps 1e-5 is the generated variant)
        import importlib.util
        from pathlib import Path
        path = Path(__file__).resolve().parents[1] / "generated" / "lnlstm.py"
        spec = importlib.util.spec_from_file_location("generated_lnlstm", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        np.testing.assert_allclose(mod.forward(p, x, {"h": h0, "c": c0})[0], np.array(want),
                                   rtol=1e-12, atol=1e-12)


def test_lnlstm_reference_names_a_wrong_stacked_size():
    p = params_of("lnlstm", np.random.default_rng(0))
    p = {k: (v[:3 * D_H] if k in ("W_x", "W_h", "g_x", "b_x", "g_h", "b_h") else v) for k, v in p.items()}
    with pytest.raises(ValueError, match=r"W_x: expected shape \(4 d_h, d_in\) = \(20, 3\), got \(15, 3\)"):
        reference.lnlstm_forward(p, np.zeros((1, 1, D_IN)))


# --- derived shapes and LaTeX -------------------------------------------------------------------
SHAPES = {
    "mingru": {"W_xz": "d_h × d_in", "b_z": "d_h", "W_xn": "d_h × d_in", "b_n": "d_h"},
    "minlstm": {"W_xf": "d_h × d_in", "b_f": "d_h", "W_xi": "d_h × d_in", "b_i": "d_h",
                "W_xn": "d_h × d_in", "b_n": "d_h"},
    "indrnn": {"W_xh": "d_h × d_in", "w_hh": "d_h", "b_h": "d_h"},
    "sru": {"W_xf": "d_h × d_h", "v_f": "d_h", "b_f": "d_h", "W_xc": "d_h × d_h", "W_xr": "d_h × d_h",
            "v_r": "d_h", "b_r": "d_h"},
    "qrnn": {f"W_{g}{k}": "d_h × d_in" for g in "zfo" for k in "12"},
    "lnlstm": {"W_x": "4*d_h × d_in", "g_x": "4*d_h", "b_x": "4*d_h", "W_h": "4*d_h × d_h",
               "g_h": "4*d_h", "b_h": "4*d_h", "g_c": "d_h", "b_c": "d_h"},
}

LATEX = {
    "mingru": r"h_{t} &= \left(1 - z_{t}\right) \odot h_{t-1} + z_{t} \odot n_{t}",
    "minlstm": r"f_{n,t} &= f_{t} \oslash \left(f_{t} + i_{t}\right)",
    "indrnn": r"h_{t} &= \operatorname{relu}\left(W_{xh} x_{t} + w_{hh} \odot h_{t-1} + b_{h}\right)",
    "sru": r"h_{t} &= r_{t} \odot c_{t} + \left(1 - r_{t}\right) \odot x_{t}",
    "qrnn": r"z_{t} &= \tanh\left(W_{z1} xp_{t-1} + W_{z2} x_{t}\right)",
    "lnlstm": r"c_{t} &= \operatorname{LN}_{g_{c}, b_{c}}\left(f_{t} \odot c_{t-1} + i_{t} \odot g_{t}\right)",
}


@pytest.mark.parametrize("name", list(SHAPES))
def test_derived_shapes_and_latex(name):
    cell = builtin(name)
    rows = {n: s for n, role, s in rnnsym.shapes(cell).rows_table() if role == "parameter"}
    assert rows == SHAPES[name]
    lines = [line.removesuffix(r" \\") for line in cell.latex().splitlines()]
    assert LATEX[name] in lines, "\n".join(lines)


def test_cells_command_lists_every_builtin(capsys):
    from rnnsym.cli import main
    assert main(["cells"]) == 0
    out = capsys.readouterr().out
    for name in ("mingru", "minlstm", "indrnn", "sru", "qrnn", "lnlstm"):
        assert f"\n{name}" in out, name
    assert "f_n[t] = f[t] / (f[t] + i[t])" in out
    assert "--pooling f|fo" in out
