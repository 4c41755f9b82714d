"""Forward passes of the recent cells: minGRU, minLSTM, IndRNN, SRU, QRNN, layer-norm LSTM."""
import numpy as np

from rnnsym.reference._common import ACTIVATIONS, _fmt, _prepare, sigmoid


# Recent cells: minGRU, minLSTM, IndRNN, SRU, QRNN, layer-norm LSTM. Same conventions as above;
# each docstring names the paper (or file) and the equations it follows.

def mingru_forward(params, x, state0=None):
    """minGRU, sequential mode (Feng et al. 2024, "Were RNNs All We Needed?", §3.1, sequential mode).

        z = sigmoid(x W_xz.T + b_z)               update gate: reads x only
        n = x W_xn.T + b_n                        candidate h~: no tanh
        h = (1 - z) * h_prev + z * n              hidden state

    params  W_xz, W_xn (d_h, d_in), b_z, b_n (d_h,)
    x       (T, B, d_in);  state0 {"h": (B, d_h)} or None
    Returns outputs (T, B, d_h) -- the h_t -- and the final state {"h"}.
    """
    shapes = {"W_xz": ("d_h", "d_in"), "b_z": ("d_h",), "W_xn": ("d_h", "d_in"), "b_n": ("d_h",)}
    p, x, state, n = _prepare(params, x, state0, shapes, {"h": ("B", "d_h")}, {"d_h": "W_xz"})
    h = state["h"]
    outputs = np.zeros((n["T"], n["B"], n["d_h"]), x.dtype)
    for t in range(n["T"]):
        z = sigmoid(x[t] @ p["W_xz"].T + p["b_z"])              # update gate (B, d_h)
        cand = x[t] @ p["W_xn"].T + p["b_n"]                    # candidate (B, d_h)
        h = (1 - z) * h + z * cand                              # hidden state
        outputs[t] = h
    return outputs, {"h": h}


def minlstm_forward(params, x, state0=None):
    """minLSTM, sequential mode (Feng et al. 2024, §3.2, sequential mode).

        f = sigmoid(x W_xf.T + b_f)               forget gate: reads x only
        i = sigmoid(x W_xi.T + b_i)               input gate
        f_n, i_n = f / (f + i), i / (f + i)       normalised so that f_n + i_n = 1
        n = x W_xn.T + b_n                        candidate h~: no tanh
        h = f_n * h_prev + i_n * n                hidden state

    params  W_xf, W_xi, W_xn (d_h, d_in), b_f, b_i, b_n (d_h,)
    x       (T, B, d_in);  state0 {"h": (B, d_h)} or None
    Returns outputs (T, B, d_h) -- the h_t -- and the final state {"h"}.
    """
    shapes = {}
    for g in "fin":
        shapes.update({f"W_x{g}": ("d_h", "d_in"), f"b_{g}": ("d_h",)})
    p, x, state, n = _prepare(params, x, state0, shapes, {"h": ("B", "d_h")}, {"d_h": "W_xf"})
    h = state["h"]
    outputs = np.zeros((n["T"], n["B"], n["d_h"]), x.dtype)
    for t in range(n["T"]):
        f = sigmoid(x[t] @ p["W_xf"].T + p["b_f"])              # forget gate
        i = sigmoid(x[t] @ p["W_xi"].T + p["b_i"])              # input gate
        total = f + i
        cand = x[t] @ p["W_xn"].T + p["b_n"]                    # candidate
        h = (f / total) * h + (i / total) * cand                # hidden state
        outputs[t] = h
    return outputs, {"h": h}


def indrnn_forward(params, x, state0=None, *, activation="relu"):
    """IndRNN (Li et al. 2018): each unit has one recurrent weight, its own.

        h = phi(x W_xh.T + w_hh * h_prev + b_h)   phi: relu (the paper), tanh, sigmoid, identity

    params  W_xh (d_h, d_in), w_hh (d_h,), b_h (d_h,)
    x       (T, B, d_in);  state0 {"h": (B, d_h)} or None
    Returns outputs (T, B, d_h) and the final state {"h"}.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation: expected one of {sorted(ACTIVATIONS)}, got {activation!r}")
    phi = ACTIVATIONS[activation]
    shapes = {"W_xh": ("d_h", "d_in"), "w_hh": ("d_h",), "b_h": ("d_h",)}
    p, x, state, n = _prepare(params, x, state0, shapes, {"h": ("B", "d_h")}, {"d_h": "W_xh"})
    h = state["h"]
    outputs = np.zeros((n["T"], n["B"], n["d_h"]), x.dtype)
    for t in range(n["T"]):
        h = phi(x[t] @ p["W_xh"].T + p["w_hh"] * h + p["b_h"])  # elementwise recurrence
        outputs[t] = h
    return outputs, {"h": h}


def sru_forward(params, x, state0=None):
    """SRU (Lei et al. 2018, "Simple Recurrent Units for Highly Parallelizable Recurrence",
    §2). The highway adds x to h, so d_in = d_h.

        f = sigmoid(x W_xf.T + v_f * c_prev + b_f)     forget gate
        c = f * c_prev + (1 - f) * (x W_xc.T)          cell state
        r = sigmoid(x W_xr.T + v_r * c_prev + b_r)     reset gate (reads the OLD c)
        h = r * c + (1 - r) * x                        highway

    params  W_xf, W_xc, W_xr (d_h, d_h), v_f, b_f, v_r, b_r (d_h,)
    x       (T, B, d_h);  state0 {"c": (B, d_h)} or None (h is not carried)
    Returns outputs (T, B, d_h) -- the h_t -- and the final state {"c"}.
    """
    shapes = {"W_xf": ("d_h", "d_h"), "v_f": ("d_h",), "b_f": ("d_h",), "W_xc": ("d_h", "d_h"),
              "W_xr": ("d_h", "d_h"), "v_r": ("d_h",), "b_r": ("d_h",)}
    p, x, state, n = _prepare(params, x, state0, shapes, {"c": ("B", "d_h")}, {"d_h": "W_xf"})
    if n["d_in"] != n["d_h"]:
        raise ValueError(f"x: expected shape (T, B, d_h) = (T, B, {n['d_h']}) (the highway adds "
                         f"x to h), got {_fmt(x.shape)}")
    c = state["c"]
    outputs = np.zeros((n["T"], n["B"], n["d_h"]), x.dtype)
    for t in range(n["T"]):
        f = sigmoid(x[t] @ p["W_xf"].T + p["v_f"] * c + p["b_f"])   # forget gate
        r = sigmoid(x[t] @ p["W_xr"].T + p["v_r"] * c + p["b_r"])   # reset gate, old c
        c = f * c + (1 - f) * (x[t] @ p["W_xc"].T)                  # cell state
        outputs[t] = r * c + (1 - r) * x[t]                         # highway output h
    return outputs, {"c": c}


def qrnn_forward(params, x, state0=None, *, pooling="fo"):
    """QRNN, convolution window 2 (Bradbury et al. 2017, "Quasi-Recurrent Neural Networks",
    §2, window k = 2). The state "xp" is the previous input x_{t-1} (zeros before the first step: the
    masked convolution's left padding).

        z = tanh(x_prev W_z1.T + x W_z2.T)             candidate
        f = sigmoid(x_prev W_f1.T + x W_f2.T)          forget gate
        f-pooling:   h = f * h_prev + (1 - f) * z
        fo-pooling:  o = sigmoid(x_prev W_o1.T + x W_o2.T);  c = f * c_prev + (1 - f) * z;
                     h = o * c

    params  W_{z,f}{1,2} (d_h, d_in), and W_o1, W_o2 for fo-pooling
    x       (T, B, d_in);  state0 {"h" (f) or "c" (fo): (B, d_h), "xp": (B, d_in)} or None
    Returns outputs (T, B, d_h) -- the h_t -- and the final state.
    """
    if pooling not in ("f", "fo"):
        raise ValueError(f"pooling: expected 'f' or 'fo', got {pooling!r}")
    shapes = {f"W_{g}{k}": ("d_h", "d_in") for g in ("zfo" if pooling == "fo" else "zf") for k in "12"}
    carried = "c" if pooling == "fo" else "h"
    p, x, state, n = _prepare(params, x, state0, shapes, {carried: ("B", "d_h"), "xp": ("B", "d_in")},
                              {"d_h": "W_z1"})
    s, x_prev = state[carried], state["xp"]
    outputs = np.zeros((n["T"], n["B"], n["d_h"]), x.dtype)
    for t in range(n["T"]):
        z = np.tanh(x_prev @ p["W_z1"].T + x[t] @ p["W_z2"].T)          # candidate
        f = sigmoid(x_prev @ p["W_f1"].T + x[t] @ p["W_f2"].T)          # forget gate
        s = f * s + (1 - f) * z                                          # h (f) or c (fo)
        if pooling == "fo":
            o = sigmoid(x_prev @ p["W_o1"].T + x[t] @ p["W_o2"].T)      # output gate
            outputs[t] = o * s
        else:
            outputs[t] = s
        x_prev = x[t]
    return outputs, {carried: s, "xp": np.array(x_prev)}


def layer_norm(u, gain, bias, eps):
    """(u - mean) / sqrt(var + eps) * gain + bias over the last axis (biased variance), as
    torch.nn.LayerNorm."""
    mean = u.mean(axis=-1, keepdims=True)
    var = ((u - mean) ** 2).mean(axis=-1, keepdims=True)
    return (u - mean) / np.sqrt(var + eps) * gain + bias


def lnlstm_forward(params, x, state0=None, *, eps=1e-5):
    """Layer-norm LSTM as PyTorch's LayerNormLSTMCell (benchmarks/fastrnns/custom_lstms.py).

        gates = LN_x(x W_x.T) + LN_h(h_prev W_h.T)     (B, 4 d_h): i | f | g | o stacked,
                                                         each LN over all 4 d_h features
        i, f, g, o = sigmoid, sigmoid, tanh, sigmoid of the four blocks
        c = LN_c(f * c_prev + i * g)                   cell state, normalised
        h = o * tanh(c)

    LN_x(u) = layer_norm(u, g_x, b_x, eps), etc. No other biases.
    params  W_x (4 d_h, d_in), W_h (4 d_h, d_h), g_x, b_x, g_h, b_h (4 d_h,), g_c, b_c (d_h,)
    x       (T, B, d_in);  state0 {"c": (B, d_h), "h": (B, d_h)} or None
    Returns outputs (T, B, d_h) -- the h_t -- and the final state {"c", "h"}.
    """
    shapes = {"W_x": ("d_4h", "d_in"), "g_x": ("d_4h",), "b_x": ("d_4h",), "W_h": ("d_4h", "d_h"),
              "g_h": ("d_4h",), "b_h": ("d_4h",), "g_c": ("d_h",), "b_c": ("d_h",)}
    p, x, state, n = _prepare(params, x, state0, shapes, {"c": ("B", "d_h"), "h": ("B", "d_h")},
                              {"d_4h": "W_x", "d_h": "g_c"})
    d = n["d_h"]
    if n["d_4h"] != 4 * d:
        raise ValueError(f"W_x: expected shape (4 d_h, d_in) = ({4 * d}, {n['d_in']}), "
                         f"got {_fmt(p['W_x'].shape)}")
    c, h = state["c"], state["h"]
    outputs = np.zeros((n["T"], n["B"], d), x.dtype)
    for t in range(n["T"]):
        gates = (layer_norm(x[t] @ p["W_x"].T, p["g_x"], p["b_x"], eps)
                 + layer_norm(h @ p["W_h"].T, p["g_h"], p["b_h"], eps))
        i = sigmoid(gates[:, 0 * d:1 * d])                              # input gate
        f = sigmoid(gates[:, 1 * d:2 * d])                              # forget gate
        g = np.tanh(gates[:, 2 * d:3 * d])                              # candidate
        o = sigmoid(gates[:, 3 * d:4 * d])                              # output gate
        c = layer_norm(f * c + i * g, p["g_c"], p["b_c"], eps)          # cell state
        h = o * np.tanh(c)                                              # hidden state
        outputs[t] = h
    return outputs, {"c": c, "h": h}
