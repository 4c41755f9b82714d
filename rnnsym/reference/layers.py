"""Forward passes of the classic layers: Elman (and the seed's per-sample loop), LSTM, GRU."""
import numpy as np

from rnnsym.reference._common import (ACTIVATIONS, _elman_shapes,
                                      _gru_shapes, _lstm_shapes, _prepare, sigmoid)


def elman_forward(params, x, state0=None, *, activation="tanh"):
    """Elman / SimpleRNN layer, batched.

        h_t = phi(x_t @ W_xh.T + h_{t-1} @ W_hh.T + b_h)
        y_t = h_t @ W_hy.T + b_y                    (only if params has W_hy, b_y)

    params     W_xh (d_h, d_in), W_hh (d_h, d_h), b_h (d_h,),
               optional readout W_hy (d_out, d_h), b_y (d_out,)
    x          (T, B, d_in);  state0 {"h": (B, d_h)} or None
    activation phi, one of "tanh", "relu", "sigmoid", "identity"
    Returns outputs (T, B, d_out) -- the y_t, or (T, B, d_h) -- the h_t when there
    is no readout -- and the final state {"h": (B, d_h)}.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation: expected one of {sorted(ACTIVATIONS)}, got {activation!r}")
    phi = ACTIVATIONS[activation]
    shapes = _elman_shapes(params)
    p, x, state, n = _prepare(params, x, state0, shapes, {"h": ("B", "d_h")},
                              {"d_h": "W_xh", "d_out": "W_hy"})
    readout = "W_hy" in p
    h = state["h"]                                               # hidden state (B, d_h)
    outputs = np.zeros((n["T"], n["B"], n["d_out"] if readout else n["d_h"]), x.dtype)
    for t in range(n["T"]):
        h = phi(x[t] @ p["W_xh"].T + h @ p["W_hh"].T + p["b_h"])  # hidden state (B, d_h)
        outputs[t] = h @ p["W_hy"].T + p["b_y"] if readout else h  # output (B, d_out)
    return outputs, {"h": h}


def lstm_forward(params, x, state0=None, *, peepholes=False, coupled=False,
                 projection=False, clip=None):
    """LSTM layer with PyTorch/ONNX semantics: gates i, f, g, o, two biases per gate.

        i = sigmoid(x W_xi.T + h W_hi.T + p_i * c_prev + b_xi + b_hi)   input gate
        f = sigmoid(x W_xf.T + h W_hf.T + p_f * c_prev + b_xf + b_hf)   forget gate
            (coupled: f = 1 - i, and there is no W_xf, W_hf, b_xf, b_hf, p_f)
        g = tanh(x W_xg.T + h W_hg.T + b_xg + b_hg)                      candidate cell
        c = f * c_prev + i * g                                           cell state
        o = sigmoid(x W_xo.T + h W_ho.T + p_o * c + b_xo + b_ho)         output gate
        h = o * tanh(c)              (projection: h = (o * tanh(c)) @ W_hr.T)

    The output peephole looks at the new c (ONNX). Peephole terms only with
    peepholes=True. clip (ONNX cell clip): every activation input -- the gate
    pre-activations and the c inside tanh(c) -- is clipped to [-clip, clip]; the
    carried cell state c itself is not clipped. (onnxruntime 1.32 clips only the
    four gate pre-activations, not the c inside tanh(c); onnx.reference ignores clip.)

    params  W_x{i,f,g,o} (d_h, d_in), W_h{i,f,g,o} (d_h, d_r), b_x{i,f,g,o},
            b_h{i,f,g,o} (d_h,), with peepholes p_{i,f,o} (d_h,), with projection
            W_hr (d_proj, d_h). d_r is d_proj with projection, else d_h.
    x       (T, B, d_in);  state0 {"h": (B, d_r), "c": (B, d_h)} or None
    Returns outputs (T, B, d_r) -- the h_t -- and the final state {"h", "c"}.
    """
    if clip is not None and not clip > 0:
        raise ValueError(f"clip: expected a positive number or None, got {clip!r}")
    gates, d_r, shapes = _lstm_shapes(peepholes, coupled, projection)
    p, x, state, n = _prepare(params, x, state0, shapes, {"h": ("B", d_r), "c": ("B", "d_h")},
                              {"d_h": "W_xi", "d_proj": "W_hr"})

    cl = (lambda u: np.clip(u, -clip, clip)) if clip is not None else (lambda u: u)
    p_i, p_f, p_o = p.get("p_i", 0), p.get("p_f", 0), p.get("p_o", 0)  # 0: no peephole
    h, c = state["h"], state["c"]                      # hidden (B, d_r), cell (B, d_h)
    outputs = np.zeros((n["T"], n["B"], n[d_r]), x.dtype)
    for t in range(n["T"]):
        x_t = x[t]
        i = sigmoid(cl(x_t @ p["W_xi"].T + h @ p["W_hi"].T + p_i * c + p["b_xi"] + p["b_hi"]))  # input
        if coupled:
            f = 1 - i                                                        # forget gate
        else:
            f = sigmoid(cl(x_t @ p["W_xf"].T + h @ p["W_hf"].T + p_f * c + p["b_xf"] + p["b_hf"]))  # forget
        g = np.tanh(cl(x_t @ p["W_xg"].T + h @ p["W_hg"].T + p["b_xg"] + p["b_hg"]))  # candidate
        c = f * c + i * g                                                    # cell state
        o = sigmoid(cl(x_t @ p["W_xo"].T + h @ p["W_ho"].T + p_o * c + p["b_xo"] + p["b_ho"]))  # output, new c
        h = o * np.tanh(cl(c))                                               # hidden state
        if projection:
            h = h @ p["W_hr"].T                                 # projected hidden (B, d_proj)
        outputs[t] = h
    return outputs, {"h": h, "c": c}


def gru_forward(params, x, state0=None, *, reset="after"):
    """GRU layer, gates r, z, n, two biases per gate.

        r = sigmoid(x W_xr.T + h W_hr.T + b_xr + b_hr)                   reset gate
        z = sigmoid(x W_xz.T + h W_hz.T + b_xz + b_hz)                   update gate
        n = tanh(x W_xn.T + b_xn + r * (h W_hn.T + b_hn))     reset="after"  (PyTorch,
            Keras default, ONNX linear_before_reset=1)
        n = tanh(x W_xn.T + (r * h) W_hn.T + b_xn + b_hn)     reset="before" (Cho et al.,
            ONNX default)
        h = (1 - z) * n + z * h_prev                                     hidden state

    params  W_x{r,z,n} (d_h, d_in), W_h{r,z,n} (d_h, d_h), b_x{r,z,n}, b_h{r,z,n} (d_h,)
    x       (T, B, d_in);  state0 {"h": (B, d_h)} or None
    Returns outputs (T, B, d_h) -- the h_t -- and the final state {"h": (B, d_h)}.
    """
    if reset not in ("after", "before"):
        raise ValueError(f"reset: expected 'after' or 'before', got {reset!r}")
    shapes = _gru_shapes()
    p, x, state, n = _prepare(params, x, state0, shapes, {"h": ("B", "d_h")}, {"d_h": "W_xr"})

    h = state["h"]                                               # hidden state (B, d_h)
    outputs = np.zeros((n["T"], n["B"], n["d_h"]), x.dtype)
    for t in range(n["T"]):
        x_t = x[t]
        r = sigmoid(x_t @ p["W_xr"].T + h @ p["W_hr"].T + p["b_xr"] + p["b_hr"])  # reset gate
        z = sigmoid(x_t @ p["W_xz"].T + h @ p["W_hz"].T + p["b_xz"] + p["b_hz"])  # update gate
        if reset == "after":
            a_n = x_t @ p["W_xn"].T + p["b_xn"] + r * (h @ p["W_hn"].T + p["b_hn"])
        else:
            a_n = x_t @ p["W_xn"].T + (r * h) @ p["W_hn"].T + p["b_xn"] + p["b_hn"]
        n_t = np.tanh(a_n)                                       # candidate (B, d_h)
        h = (1 - z) * n_t + z * h                                # hidden state (B, d_h)
        outputs[t] = h
    return outputs, {"h": h}


def seed_elman_forward_per_sample(params, x, state0=None):
    """The seed tutorial's SimpleRNN, unbatched: loops over samples and time, column
    vectors and np.dot, tanh. Baseline for the "seed-style per-sample loop" benchmark.

        h = tanh(np.dot(W_xh, x) + np.dot(W_hh, h) + b_h)     x (d_in, 1), h (d_h, 1)
        y = np.dot(W_hy, h) + b_y                              (only with W_hy, b_y)

    Same parameters, shapes and return contract as elman_forward(activation="tanh").
    """
    shapes = _elman_shapes(params)
    p, x, state, n = _prepare(params, x, state0, shapes, {"h": ("B", "d_h")},
                              {"d_h": "W_xh", "d_out": "W_hy"})
    readout = "W_hy" in p
    W_xh, W_hh, b_h = p["W_xh"], p["W_hh"], p["b_h"].reshape(-1, 1)
    outputs = np.zeros((n["T"], n["B"], n["d_out"] if readout else n["d_h"]), x.dtype)
    h_final = np.zeros((n["B"], n["d_h"]), x.dtype)
    for b in range(n["B"]):
        h = state["h"][b].reshape(-1, 1)                         # hidden state (d_h, 1)
        for t in range(n["T"]):
            xs = x[t, b].reshape(-1, 1)                          # input (d_in, 1)
            h = np.tanh(np.dot(W_xh, xs) + np.dot(W_hh, h) + b_h)  # hidden state (d_h, 1)
            y = np.dot(p["W_hy"], h) + p["b_y"].reshape(-1, 1) if readout else h  # output
            outputs[t, b] = y[:, 0]
        h_final[b] = h[:, 0]
    return outputs, {"h": h_final}
