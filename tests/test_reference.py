"""rnnsym.reference against torch (float64), scalar loops and hand-derived numbers."""
import math

import numpy as np
import pytest
import torch

from rnnsym.reference import (
    elman_forward, gru_forward, lstm_forward, seed_elman_forward_per_sample, sigmoid,
)

D_IN, D_H, D_OUT, D_PROJ, B = 3, 5, 2, 4, 3      # all distinct on purpose
TOL = 1e-12


def rand(rng, *shape, scale=0.5):
    return scale * rng.standard_normal(shape)


def elman_params(rng, readout=True):
    p = {"W_xh": rand(rng, D_H, D_IN), "W_hh": rand(rng, D_H, D_H), "b_h": rand(rng, D_H)}
    if readout:
        p.update(W_hy=rand(rng, D_OUT, D_H), b_y=rand(rng, D_OUT))
    return p


def lstm_params(rng, *, peepholes=False, coupled=False, projection=False, scale=0.5):
    d_r = D_PROJ if projection else D_H
    p = {}
    for g in ("igo" if coupled else "ifgo"):
        p.update({f"W_x{g}": rand(rng, D_H, D_IN, scale=scale), f"W_h{g}": rand(rng, D_H, d_r, scale=scale),
                  f"b_x{g}": rand(rng, D_H, scale=scale), f"b_h{g}": rand(rng, D_H, scale=scale)})
        if peepholes and g != "g":
            p[f"p_{g}"] = rand(rng, D_H, scale=scale)
    if projection:
        p["W_hr"] = rand(rng, D_PROJ, D_H, scale=scale)
    return p


def gru_params(rng):
    p = {}
    for g in "rzn":
        p.update({f"W_x{g}": rand(rng, D_H, D_IN), f"W_h{g}": rand(rng, D_H, D_H),
                  f"b_x{g}": rand(rng, D_H), f"b_h{g}": rand(rng, D_H)})
    return p


def set_torch_weights(module, p, gates, projection=False):
    """Gate blocks stacked along rows, torch's gate order; two bias vectors."""
    cat = lambda prefix: torch.from_numpy(np.concatenate([p[f"{prefix}{g}"] for g in gates]))
    with torch.no_grad():
        module.weight_ih_l0.copy_(cat("W_x"))
        module.weight_hh_l0.copy_(cat("W_h"))
        module.bias_ih_l0.copy_(cat("b_x"))
        module.bias_hh_l0.copy_(cat("b_h"))
        if projection:
            module.weight_hr_l0.copy_(torch.from_numpy(p["W_hr"]))


# ------------------------------------------------------------------ scalar oracles
# One sample, one unit, one Python float at a time: no matrices, no NumPy math.

def sig(u):
    return 1 / (1 + math.exp(-u))


def dot(row, vec):
    return sum(a * b for a, b in zip(row, vec))


def scalar_elman(p, x, h0, phi):
    T, nb, _ = x.shape
    ys, hs = np.zeros((T, nb, D_H)), np.zeros((nb, D_H))
    for b in range(nb):
        h = list(h0[b])
        for t in range(T):
            h = [phi(dot(p["W_xh"][k], x[t, b]) + dot(p["W_hh"][k], h) + p["b_h"][k]) for k in range(D_H)]
            ys[t, b] = h
        hs[b] = h
    return ys, hs


def scalar_lstm(p, x, h0, c0, *, peepholes=False, coupled=False, projection=False, clip=None):
    cl = (lambda u: min(max(u, -clip), clip)) if clip is not None else (lambda u: u)
    T, nb, _ = x.shape
    d_r = D_PROJ if projection else D_H
    ys, hs, cs = np.zeros((T, nb, d_r)), np.zeros((nb, d_r)), np.zeros((nb, D_H))
    for b in range(nb):
        h, c = list(h0[b]), list(c0[b])
        for t in range(T):
            def pre(g, k, cell=None):
                a = dot(p[f"W_x{g}"][k], x[t, b]) + dot(p[f"W_h{g}"][k], h) + p[f"b_x{g}"][k] + p[f"b_h{g}"][k]
                return a + (p[f"p_{g}"][k] * cell[k] if peepholes and cell is not None else 0.0)
            i = [sig(cl(pre("i", k, c))) for k in range(D_H)]
            f = [1 - i[k] if coupled else sig(cl(pre("f", k, c))) for k in range(D_H)]
            g = [math.tanh(cl(pre("g", k))) for k in range(D_H)]
            c_new = [f[k] * c[k] + i[k] * g[k] for k in range(D_H)]
            o = [sig(cl(pre("o", k, c_new))) for k in range(D_H)]
            m = [o[k] * math.tanh(cl(c_new[k])) for k in range(D_H)]
            h = [dot(p["W_hr"][r], m) for r in range(D_PROJ)] if projection else m
            c = c_new
            ys[t, b] = h
        hs[b], cs[b] = h, c
    return ys, hs, cs


def scalar_gru_before(p, x, h0):
    T, nb, _ = x.shape
    ys, hs = np.zeros((T, nb, D_H)), np.zeros((nb, D_H))
    for b in range(nb):
        h = list(h0[b])
        for t in range(T):
            gate = lambda g, k: dot(p[f"W_x{g}"][k], x[t, b]) + dot(p[f"W_h{g}"][k], h) + p[f"b_x{g}"][k] + p[f"b_h{g}"][k]
            r = [sig(gate("r", k)) for k in range(D_H)]
            z = [sig(gate("z", k)) for k in range(D_H)]
            rh = [r[j] * h[j] for j in range(D_H)]
            n = [math.tanh(dot(p["W_xn"][k], x[t, b]) + dot(p["W_hn"][k], rh) + p["b_xn"][k] + p["b_hn"][k])
                 for k in range(D_H)]
            h = [(1 - z[k]) * n[k] + z[k] * h[k] for k in range(D_H)]
            ys[t, b] = h
        hs[b] = h
    return ys, hs


# ------------------------------------------------------------------ Elman

@pytest.mark.parametrize("T", [1, 2, 7])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("readout", [True, False])
def test_elman_matches_torch(T, activation, readout):
    rng = np.random.default_rng(T)
    p, x, h0 = elman_params(rng, readout), rand(rng, T, B, D_IN, scale=1), rand(rng, B, D_H)
    rnn = torch.nn.RNN(D_IN, D_H, nonlinearity=activation, dtype=torch.float64)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.from_numpy(p["W_xh"]))
        rnn.weight_hh_l0.copy_(torch.from_numpy(p["W_hh"]))
        rnn.bias_ih_l0.copy_(torch.from_numpy(p["b_h"]))
        rnn.bias_hh_l0.zero_()
        hs, h_n = rnn(torch.from_numpy(x), torch.from_numpy(h0)[None])
        want = torch.nn.functional.linear(hs, torch.from_numpy(p["W_hy"]), torch.from_numpy(p["b_y"])) if readout else hs

    out, state = elman_forward(p, x, {"h": h0}, activation=activation)
    assert out.shape == (T, B, D_OUT if readout else D_H)
    np.testing.assert_allclose(out, want.numpy(), rtol=0, atol=TOL)
    np.testing.assert_allclose(state["h"], h_n[0].numpy(), rtol=0, atol=TOL)


@pytest.mark.parametrize("activation, phi", [("sigmoid", sig), ("identity", lambda u: u)])
def test_elman_sigmoid_identity_match_scalar_loop(activation, phi):
    rng = np.random.default_rng(1)
    p, x, h0 = elman_params(rng, readout=False), rand(rng, 4, B, D_IN, scale=1), rand(rng, B, D_H)
    want_y, want_h = scalar_elman(p, x, h0, phi)
    out, state = elman_forward(p, x, {"h": h0}, activation=activation)
    np.testing.assert_allclose(out, want_y, rtol=0, atol=TOL)
    np.testing.assert_allclose(state["h"], want_h, rtol=0, atol=TOL)


@pytest.mark.parametrize("readout", [True, False])
@pytest.mark.parametrize("with_state", [True, False])
def test_seed_per_sample_matches_batched(readout, with_state):
    rng = np.random.default_rng(2)
    p, x = elman_params(rng, readout), rand(rng, 6, B, D_IN, scale=1)
    state0 = {"h": rand(rng, B, D_H)} if with_state else None
    out_seed, st_seed = seed_elman_forward_per_sample(p, x, state0)
    out, st = elman_forward(p, x, state0)
    assert out_seed.shape == out.shape == (6, B, D_OUT if readout else D_H)
    np.testing.assert_allclose(out_seed, out, rtol=0, atol=TOL)
    np.testing.assert_allclose(st_seed["h"], st["h"], rtol=0, atol=TOL)


# ------------------------------------------------------------------ LSTM

@pytest.mark.parametrize("T", [1, 2, 7])
@pytest.mark.parametrize("projection", [False, True])
@pytest.mark.parametrize("with_state", [True, False])
def test_lstm_matches_torch(T, projection, with_state):
    rng = np.random.default_rng(10 + T)
    d_r = D_PROJ if projection else D_H
    p, x = lstm_params(rng, projection=projection), rand(rng, T, B, D_IN, scale=1)
    h0, c0 = (rand(rng, B, d_r), rand(rng, B, D_H)) if with_state else (np.zeros((B, d_r)), np.zeros((B, D_H)))
    lstm = torch.nn.LSTM(D_IN, D_H, proj_size=D_PROJ if projection else 0, dtype=torch.float64)
    set_torch_weights(lstm, p, "ifgo", projection)
    with torch.no_grad():
        hs, (h_n, c_n) = lstm(torch.from_numpy(x), (torch.from_numpy(h0)[None], torch.from_numpy(c0)[None]))

    out, state = lstm_forward(p, x, {"h": h0, "c": c0} if with_state else None, projection=projection)
    assert out.shape == (T, B, d_r) and state["h"].shape == (B, d_r) and state["c"].shape == (B, D_H)
    np.testing.assert_allclose(out, hs.numpy(), rtol=0, atol=TOL)
    np.testing.assert_allclose(state["h"], h_n[0].numpy(), rtol=0, atol=TOL)
    np.testing.assert_allclose(state["c"], c_n[0].numpy(), rtol=0, atol=TOL)
    # the scalar oracle used for the variants below agrees with torch too
    want_y, _, want_c = scalar_lstm(p, x, h0, c0, projection=projection)
    np.testing.assert_allclose(want_y, hs.numpy(), rtol=0, atol=TOL)
    np.testing.assert_allclose(want_c, c_n[0].numpy(), rtol=0, atol=TOL)


@pytest.mark.parametrize("peepholes", [False, True])
@pytest.mark.parametrize("coupled", [False, True])
@pytest.mark.parametrize("projection", [False, True])
@pytest.mark.parametrize("clip", [None, 0.6])
def test_lstm_variants_match_scalar_loop(peepholes, coupled, projection, clip):
    rng = np.random.default_rng(20)
    opts = dict(peepholes=peepholes, coupled=coupled, projection=projection)
    d_r = D_PROJ if projection else D_H
    p = lstm_params(rng, scale=1.5, **opts)                # large enough that the clip binds
    x, h0, c0 = rand(rng, 5, B, D_IN, scale=2), rand(rng, B, d_r), rand(rng, B, D_H, scale=3)
    want_y, want_h, want_c = scalar_lstm(p, x, h0, c0, clip=clip, **opts)
    out, state = lstm_forward(p, x, {"h": h0, "c": c0}, clip=clip, **opts)
    np.testing.assert_allclose(out, want_y, rtol=0, atol=TOL)
    np.testing.assert_allclose(state["h"], want_h, rtol=0, atol=TOL)
    np.testing.assert_allclose(state["c"], want_c, rtol=0, atol=TOL)
    if clip is not None:                                   # the clip really changed something
        assert np.abs(out - lstm_forward(p, x, {"h": h0, "c": c0}, **opts)[0]).max() > 1e-3


def unit_lstm(**nonzero):
    """d_in = d_h = 1 LSTM parameters, all zero except those given."""
    names = [f"{w}{g}" for g in "ifgo" for w in ("W_x", "W_h", "b_x", "b_h")]
    return {n: np.full((1, 1) if n.startswith("W") else (1,), nonzero.get(n, 0.0)) for n in names}


def test_lstm_clip_hand_numbers():
    # gate pre-activations 100 and c = 5.x are clipped to 0.5; the carried c is not
    p = unit_lstm(b_xi=100.0, b_xg=100.0)
    out, state = lstm_forward(p, np.zeros((1, 1, 1)), {"h": np.zeros((1, 1)), "c": np.full((1, 1), 10.0)}, clip=0.5)
    c = 0.5 * 10 + sig(0.5) * math.tanh(0.5)               # f = sig(0), i = sig(0.5), g = tanh(0.5)
    assert state["c"][0, 0] == pytest.approx(c, abs=TOL)
    assert out[0, 0, 0] == pytest.approx(0.5 * math.tanh(0.5), abs=TOL)   # o = sig(0), tanh(clip(c))


def test_lstm_output_peephole_sees_new_cell_hand_numbers():
    p = unit_lstm(b_xg=1.0)
    p.update(p_i=np.zeros(1), p_f=np.zeros(1), p_o=np.ones(1))
    out, state = lstm_forward(p, np.zeros((1, 1, 1)), None, peepholes=True)
    c = 0.5 * math.tanh(1.0)                               # c_prev = 0, i = sig(0), g = tanh(1)
    assert state["c"][0, 0] == pytest.approx(c, abs=TOL)
    assert out[0, 0, 0] == pytest.approx(sig(c) * math.tanh(c), abs=TOL)  # old c would give sig(0)


def test_lstm_coupled_hand_numbers():
    p = {k: v for k, v in unit_lstm(b_xi=math.log(3.0), b_xg=1.0).items() if "f" not in k}
    out, state = lstm_forward(p, np.zeros((1, 1, 1)), {"h": np.zeros((1, 1)), "c": np.full((1, 1), 2.0)},
                              coupled=True)
    c = 0.25 * 2.0 + 0.75 * math.tanh(1.0)                 # i = sig(log 3) = 0.75, f = 1 - i
    assert state["c"][0, 0] == pytest.approx(c, abs=TOL)
    assert out[0, 0, 0] == pytest.approx(0.5 * math.tanh(c), abs=TOL)


# ------------------------------------------------------------------ GRU

@pytest.mark.parametrize("T", [1, 2, 7])
@pytest.mark.parametrize("with_state", [True, False])
def test_gru_after_matches_torch(T, with_state):
    rng = np.random.default_rng(30 + T)
    p, x = gru_params(rng), rand(rng, T, B, D_IN, scale=1)
    h0 = rand(rng, B, D_H) if with_state else np.zeros((B, D_H))
    gru = torch.nn.GRU(D_IN, D_H, dtype=torch.float64)
    set_torch_weights(gru, p, "rzn")
    with torch.no_grad():
        hs, h_n = gru(torch.from_numpy(x), torch.from_numpy(h0)[None])

    out, state = gru_forward(p, x, {"h": h0} if with_state else None)   # reset="after" is the default
    np.testing.assert_allclose(out, hs.numpy(), rtol=0, atol=TOL)
    np.testing.assert_allclose(state["h"], h_n[0].numpy(), rtol=0, atol=TOL)


def test_gru_before_matches_scalar_loop():
    rng = np.random.default_rng(40)
    p, x, h0 = gru_params(rng), rand(rng, 6, B, D_IN, scale=1), rand(rng, B, D_H)
    want_y, want_h = scalar_gru_before(p, x, h0)
    out, state = gru_forward(p, x, {"h": h0}, reset="before")
    np.testing.assert_allclose(out, want_y, rtol=0, atol=TOL)
    np.testing.assert_allclose(state["h"], want_h, rtol=0, atol=TOL)
    assert np.abs(out - gru_forward(p, x, {"h": h0}, reset="after")[0]).max() > 1e-3


# ------------------------------------------------------------------ all layers

def all_layers(rng):
    """(name, forward, params, options, {state name: shape}, output width)."""
    return [
        ("elman", elman_forward, elman_params(rng), {}, {"h": (B, D_H)}, D_OUT),
        ("elman-relu", elman_forward, elman_params(rng, False), {"activation": "relu"}, {"h": (B, D_H)}, D_H),
        ("seed", seed_elman_forward_per_sample, elman_params(rng), {}, {"h": (B, D_H)}, D_OUT),
        ("lstm", lstm_forward, lstm_params(rng, peepholes=True, projection=True),
         {"peepholes": True, "projection": True, "clip": 3.0}, {"h": (B, D_PROJ), "c": (B, D_H)}, D_PROJ),
        ("lstm-coupled", lstm_forward, lstm_params(rng, coupled=True), {"coupled": True},
         {"h": (B, D_H), "c": (B, D_H)}, D_H),
        ("gru", gru_forward, gru_params(rng), {}, {"h": (B, D_H)}, D_H),
        ("gru-before", gru_forward, gru_params(rng), {"reset": "before"}, {"h": (B, D_H)}, D_H),
    ]


@pytest.mark.parametrize("index", range(7))
def test_empty_sequence_returns_initial_state(index):
    rng = np.random.default_rng(50)
    name, forward, p, opts, shapes, d_y = all_layers(rng)[index]
    x = np.zeros((0, B, D_IN))
    state0 = {k: rand(rng, *s) for k, s in shapes.items()}
    out, state = forward(p, x, state0, **opts)
    assert out.shape == (0, B, d_y) and out.dtype == np.float64
    assert set(state) == set(shapes)
    for k in shapes:
        np.testing.assert_array_equal(state[k], state0[k])
    out, state = forward(p, x, None, **opts)
    assert out.shape == (0, B, d_y)
    for k, s in shapes.items():
        np.testing.assert_array_equal(state[k], np.zeros(s))


@pytest.mark.parametrize("index", range(7))
def test_float32_in_float32_out(index):
    rng = np.random.default_rng(60)
    name, forward, p, opts, shapes, d_y = all_layers(rng)[index]
    x64 = rand(rng, 5, B, D_IN, scale=1)
    state0 = {k: rand(rng, *s) for k, s in shapes.items()}
    out32, st32 = forward(p, x64.astype(np.float32), state0, **opts)      # float64 params and state
    out64, st64 = forward(p, x64, state0, **opts)
    assert out32.dtype == np.float32 and out64.dtype == np.float64
    assert all(st32[k].dtype == np.float32 for k in shapes)
    np.testing.assert_allclose(out32, out64, rtol=0, atol=1e-5)
    for k in shapes:
        np.testing.assert_allclose(st32[k], st64[k], rtol=0, atol=1e-5)


@pytest.mark.parametrize("index", range(7))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_saturating_inputs_never_overflow(index, dtype):
    rng = np.random.default_rng(70)
    name, forward, p, opts, shapes, d_y = all_layers(rng)[index]
    x = (1e4 * np.sign(rand(rng, 4, B, D_IN))).astype(dtype)
    # gates saturate to ~1e-38 / ~1e-308; products of those may underflow, which is harmless
    with np.errstate(all="raise", under="ignore"):
        out, state = forward(p, x, None, **opts)
    assert out.dtype == dtype and np.isfinite(out).all()


# ------------------------------------------------------------------ sigmoid

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_is_stable_and_keeps_dtype(dtype):
    u = np.array([-1e4, -1e3, -100.0, -30.0, -1.0, 0.0, 1.0, 30.0, 100.0, 1e3, 1e4], dtype=dtype)
    with np.errstate(all="raise"):
        s = sigmoid(u)
    assert s.dtype == dtype
    assert s[5] == 0.5 and s[-1] == 1.0 and 0 <= s[0] < 1e-37
    assert np.all(np.diff(s) >= 0) and np.all((s >= 0) & (s <= 1))
    exact = np.array([0.0 if v < -700 else 1 / (1 + math.exp(-float(v))) for v in u])
    np.testing.assert_allclose(s, exact, rtol=1e-6 if dtype == np.float32 else 1e-15, atol=1e-37)


# ------------------------------------------------------------------ validation

def _bad(rng, kind):
    """(forward, params, x, state0, options) with one thing wrong."""
    x = rand(rng, 4, B, D_IN)
    e, ls, g = elman_params(rng), lstm_params(rng), gru_params(rng)
    lp = lstm_params(rng, projection=True)
    return {
        "W_hh": (elman_forward, {**e, "W_hh": np.zeros((5, 3))}, x, None, {}),
        "b_h": (elman_forward, {**e, "b_h": np.zeros(4)}, x, None, {}),
        "W_xh": (elman_forward, {**e, "W_xh": np.zeros((5, 4))}, x, None, {}),
        "W_hy": (seed_elman_forward_per_sample, {**e, "W_hy": np.zeros((2, 4))}, x, None, {}),
        "missing": (elman_forward, {k: v for k, v in e.items() if k != "b_y"}, x, None, {}),
        "unknown": (gru_forward, {**g, "W_zz": np.zeros((5, 5))}, x, None, {}),
        "x": (elman_forward, e, x[0], None, {}),
        "state_h": (elman_forward, e, x, {"h": np.zeros((3, 4))}, {}),
        "state_keys": (lstm_forward, ls, x, {"h": np.zeros((3, 5))}, {}),
        "W_hi": (lstm_forward, {**lp, "W_hi": np.zeros((5, 5))}, x, None, {"projection": True}),
        "state_proj": (lstm_forward, lp, x, {"h": np.zeros((3, 5)), "c": np.zeros((3, 5))}, {"projection": True}),
        "coupled": (lstm_forward, ls, x, None, {"coupled": True}),
        "peephole": (lstm_forward, {**ls, "p_i": np.zeros(5), "p_f": np.zeros(5)}, x, None, {"peepholes": True}),
        "W_hn": (gru_forward, {**g, "W_hn": np.zeros((5, 3))}, x, None, {}),
        "activation": (elman_forward, e, x, None, {"activation": "softsign"}),
        "reset": (gru_forward, g, x, None, {"reset": "middle"}),
        "clip": (lstm_forward, ls, x, None, {"clip": 0.0}),
    }[kind]


BAD = {
    "W_hh": r"W_hh: expected shape \(d_h, d_h\) = \(5, 5\), got \(5, 3\)",
    "b_h": r"b_h: expected shape \(d_h,\) = \(5,\), got \(4,\)",
    "W_xh": r"W_xh: expected shape \(d_h, d_in\) = \(5, 3\), got \(5, 4\)",
    "W_hy": r"W_hy: expected shape \(d_out, d_h\) = \(2, 5\), got \(2, 4\)",
    "missing": r"params: missing \['b_y'\], unknown \[\]",
    "unknown": r"params: missing \[\], unknown \['W_zz'\]",
    "x": r"x: expected shape \(T, B, d_in\), got \(3, 3\)",
    "state_h": r"state0\['h'\]: expected shape \(B, d_h\) = \(3, 5\), got \(3, 4\)",
    "state_keys": r"state0: expected a dict with keys \['c', 'h'\], got \['h'\]",
    "W_hi": r"W_hi: expected shape \(d_h, d_proj\) = \(5, 4\), got \(5, 5\)",
    "state_proj": r"state0\['h'\]: expected shape \(B, d_proj\) = \(3, 4\), got \(3, 5\)",
    "coupled": r"unknown \['W_hf', 'W_xf', 'b_hf', 'b_xf'\]",
    "peephole": r"missing \['p_o'\]",
    "W_hn": r"W_hn: expected shape \(d_h, d_h\) = \(5, 5\), got \(5, 3\)",
    "activation": r"activation: expected one of .*'tanh'.*got 'softsign'",
    "reset": r"reset: expected 'after' or 'before', got 'middle'",
    "clip": r"clip: expected a positive number or None, got 0.0",
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_input_names_the_culprit(kind):
    forward, p, x, state0, opts = _bad(np.random.default_rng(80), kind)
    with pytest.raises(ValueError, match=BAD[kind]):
        forward(p, x, state0, **opts)
