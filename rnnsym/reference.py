"""Hand-written reference forward passes for Elman RNN, LSTM and GRU layers, and for minGRU,
minLSTM, IndRNN, SRU, QRNN and the layer-norm LSTM.

These are the independent "second opinion" that rnnsym's generated code is tested
against, so this module imports nothing but NumPy and shares no code with the rest
of rnnsym. Style follows Karpathy's min-char-rnn: one plain loop over time, one
line per quantity, written to be read and copied.

Conventions (every function here)
---------------------------------
x        (T, B, d_in)  time-major input; T = 0 is allowed
state    dict of row-batched (B, d) arrays: {"h": ...} or {"h": ..., "c": ...};
         state0=None means zeros
weights  math orientation: W_xh is (d_h, d_in) and is applied as x_t @ W_xh.T
biases   1-D, (d_h,)
returns  (outputs, final_state), outputs is (T, B, d)
dtype    a floating x keeps its dtype (float32 in -> float32 out, computed in
         float32); parameters and state are cast to it. Other x is used as float64.
Bad names or shapes raise ValueError, e.g.
    W_hh: expected shape (d_h, d_h) = (5, 5), got (5, 3)
"""
import numpy as np


def sigmoid(u):
    """Logistic 1 / (1 + exp(-u)), elementwise, same shape and float dtype as u.

    Stable for every finite u: exp only ever sees -|u|, so it cannot overflow, and
    |u| is capped just below -log(tiny) (86.3 for float32, 707.4 for float64) so it
    cannot underflow either. Past the cap the result is within 4e-38 (float32) /
    7e-308 (float64) of the exact value.
    """
    u = np.asarray(u)
    if u.dtype.kind != "f":
        u = u.astype(np.float64)
    cap = -np.log(np.finfo(u.dtype).tiny) - 1
    e = np.exp(-np.minimum(np.abs(u), cap))               # exp(-|u|), in (0, 1]
    return np.where(u >= 0, 1 / (1 + e), e / (1 + e))


ACTIVATIONS = {
    "tanh": np.tanh,
    "relu": lambda u: np.maximum(u, 0),
    "sigmoid": sigmoid,
    "identity": lambda u: u,
}


def _fmt(items):
    """(5, 3) -> '(5, 3)', (5,) -> '(5,)', ('d_h',) -> '(d_h,)'."""
    return "(" + ", ".join(map(str, items)) + ("," if len(items) == 1 else "") + ")"


def _prepare(params, x, state0, param_shapes, state_shapes, sizes_from):
    """Check names and shapes, cast to x's float dtype and fill in a zero state.

    param_shapes / state_shapes map a name to its shape in symbols, e.g.
    {"W_xh": ("d_h", "d_in")}; sizes_from maps each size symbol other than T, B and
    d_in to the parameter whose first axis defines it, e.g. {"d_h": "W_xh"}.
    Returns (params, x, state, sizes) with every array in one float dtype.
    """
    missing = sorted(set(param_shapes) - set(params))
    unknown = sorted(set(params) - set(param_shapes))
    if missing or unknown:
        raise ValueError(f"params: missing {missing}, unknown {unknown}; "
                         f"expected exactly {sorted(param_shapes)}")
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"x: expected shape (T, B, d_in), got {_fmt(x.shape)}")
    sizes = dict(zip(("T", "B", "d_in"), x.shape))
    for symbol, name in sizes_from.items():
        if name in params and np.ndim(params[name]) > 0:
            sizes[symbol] = np.shape(params[name])[0]

    def check(label, value, symbols):
        want = tuple(sizes.get(s, "?") for s in symbols)
        if np.shape(value) != want:
            raise ValueError(f"{label}: expected shape {_fmt(symbols)} = {_fmt(want)}, "
                             f"got {_fmt(np.shape(value))}")

    for name, symbols in param_shapes.items():
        check(name, params[name], symbols)
    if state0 is not None:
        if not isinstance(state0, dict) or set(state0) != set(state_shapes):
            got = sorted(state0) if isinstance(state0, dict) else type(state0).__name__
            raise ValueError(f"state0: expected a dict with keys {sorted(state_shapes)}, got {got}")
        for name, symbols in state_shapes.items():
            check(f"state0[{name!r}]", state0[name], symbols)

    dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
    params = {name: np.asarray(value, dtype=dtype) for name, value in params.items()}
    if state0 is None:
        state = {name: np.zeros(tuple(sizes[s] for s in symbols), dtype)
                 for name, symbols in state_shapes.items()}
    else:
        state = {name: np.array(state0[name], dtype=dtype) for name in state_shapes}
    return params, x.astype(dtype, copy=False), state, sizes


def _elman_shapes(params):
    """Parameter shapes of an Elman layer; the readout W_hy, b_y is optional."""
    shapes = {"W_xh": ("d_h", "d_in"), "W_hh": ("d_h", "d_h"), "b_h": ("d_h",)}
    if "W_hy" in params or "b_y" in params:
        shapes.update(W_hy=("d_out", "d_h"), b_y=("d_out",))
    return shapes


def _lstm_shapes(peepholes, coupled, projection):
    """The gates, the size of h (d_r: d_proj with projection, else d_h) and the parameter shapes
    of an LSTM layer with these options."""
    gates = "igo" if coupled else "ifgo"
    d_r = "d_proj" if projection else "d_h"
    shapes = {}
    for gate in gates:
        shapes.update({f"W_x{gate}": ("d_h", "d_in"), f"W_h{gate}": ("d_h", d_r),
                       f"b_x{gate}": ("d_h",), f"b_h{gate}": ("d_h",)})
        if peepholes and gate != "g":
            shapes[f"p_{gate}"] = ("d_h",)
    if projection:
        shapes["W_hr"] = ("d_proj", "d_h")
    return gates, d_r, shapes


def _gru_shapes():
    """Parameter shapes of a GRU layer."""
    shapes = {}
    for gate in "rzn":
        shapes.update({f"W_x{gate}": ("d_h", "d_in"), f"W_h{gate}": ("d_h", "d_h"),
                       f"b_x{gate}": ("d_h",), f"b_h{gate}": ("d_h",)})
    return shapes


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


# --- backward passes (BPTT) ------------------------------------------------------------------
# Each runs its own forward pass, keeping every step's values in dicts keyed by t (min-char-rnn's
# lossFun: xs, hs, ...), then walks t = T-1 ... 0 with the chain rule, one line per quantity.
# d_outputs is dL/d(outputs) (T, B, d); d_final_state is dL/d(final state) (a dict, optional).
# They return (d_params, d_x, d_state0) with the shapes of params, x and the state.

def _upstream(d_outputs, d_final_state, outputs, state):
    """The upstream gradients in the forward's dtype, zeros for an omitted final state."""
    d_outputs = np.asarray(d_outputs)
    if d_outputs.shape != outputs.shape:
        raise ValueError(f"d_outputs: expected shape (T, B, d) = {_fmt(outputs.shape)}, "
                         f"got {_fmt(d_outputs.shape)}")
    d_final_state = d_final_state or {}
    d_state = {}
    for name, value in state.items():
        g = d_final_state.get(name, np.zeros_like(value))
        if np.shape(g) != value.shape:
            raise ValueError(f"d_final_state[{name!r}]: expected shape {_fmt(value.shape)}, "
                             f"got {_fmt(np.shape(g))}")
        d_state[name] = np.array(g, dtype=value.dtype)
    return d_outputs.astype(outputs.dtype, copy=False), d_state


def elman_backward(params, x, state0, d_outputs, d_final_state=None, *, activation="tanh"):
    """Gradients of an Elman layer (see elman_forward), by backpropagation through time.

        forward:   a_t = x_t W_xh.T + h_{t-1} W_hh.T + b_h;  h_t = phi(a_t);  y_t = h_t W_hy.T + b_y
        backward:  dh_t = dy_t W_hy + (what step t+1 sends back)     (dy_t = d_outputs[t])
                   da_t = dh_t * phi'(a_t)        tanh: 1 - h_t**2, sigmoid: h_t (1 - h_t),
                                                  relu: [h_t > 0], identity: 1
                   dW_xh += da_t.T x_t;  dW_hh += da_t.T h_{t-1};  db_h += sum over the batch
                   dx_t = da_t W_xh;  sent back to h_{t-1}: da_t W_hh
    """
    shapes = _elman_shapes(params)
    p, x, state, n = _prepare(params, x, state0, shapes, {"h": ("B", "d_h")},
                              {"d_h": "W_xh", "d_out": "W_hy"})
    readout = "W_hy" in p
    phi = ACTIVATIONS[activation]
    hs = {-1: state["h"]}                                         # hidden states, by step
    for t in range(n["T"]):
        hs[t] = phi(x[t] @ p["W_xh"].T + hs[t - 1] @ p["W_hh"].T + p["b_h"])
    outputs = np.stack([hs[t] @ p["W_hy"].T + p["b_y"] if readout else hs[t]
                        for t in range(n["T"])]) if n["T"] else np.zeros(
                            (0, n["B"], n["d_out"] if readout else n["d_h"]), x.dtype)
    dys, d_state = _upstream(d_outputs, d_final_state, outputs, {"h": hs[n["T"] - 1]})

    d = {name: np.zeros_like(value) for name, value in p.items()}
    dx = np.zeros_like(x)
    dh_next = d_state["h"]                           # what step t+1 sends back to h_t
    for t in reversed(range(n["T"])):
        if readout:
            d["W_hy"] += dys[t].T @ hs[t]
            d["b_y"] += dys[t].sum(axis=0)
            dh = dys[t] @ p["W_hy"] + dh_next
        else:
            dh = dys[t] + dh_next
        h = hs[t]
        if activation == "tanh":
            da = dh * (1 - h * h)                    # backprop through tanh
        elif activation == "sigmoid":
            da = dh * h * (1 - h)
        elif activation == "relu":
            da = dh * (h > 0)
        else:
            da = dh
        d["W_xh"] += da.T @ x[t]
        d["W_hh"] += da.T @ hs[t - 1]
        d["b_h"] += da.sum(axis=0)
        dx[t] = da @ p["W_xh"]
        dh_next = da @ p["W_hh"]
    return d, dx, {"h": dh_next}


def lstm_backward(params, x, state0, d_outputs, d_final_state=None, *, peepholes=False,
                  coupled=False, projection=False, clip=None):
    """Gradients of an LSTM layer (see lstm_forward for the equations and options), by BPTT.

    With u the clipped pre-activations (clip is the identity without clip):
        dh = dy + (from t+1);  projection: dm = dh W_hr, dW_hr += dh.T m, else dm = dh
        do = dm * tanh(cl(c));  dc = (from t+1) + dm * o * (1 - tanh(cl(c))**2) [|c| < clip]
        dc += dao * p_o   (output peephole: o reads the new c)
        di = dc * g;  dg = dc * i;  df = dc * c_prev   (coupled: di -= df, since f = 1 - i)
        da_gate = d_gate * gate (1 - gate) (sigmoid) or dg * (1 - g**2) (tanh), times [|u| < clip]
        sent back: c_prev gets dc * f + dai * p_i + daf * p_f; h_prev gets sum of da W_h.
    """
    if clip is not None and not clip > 0:
        raise ValueError(f"clip: expected a positive number or None, got {clip!r}")
    gates, d_r, shapes = _lstm_shapes(peepholes, coupled, projection)
    p, x, state, n = _prepare(params, x, state0, shapes, {"h": ("B", d_r), "c": ("B", "d_h")},
                              {"d_h": "W_xi", "d_proj": "W_hr"})
    cl = (lambda u: np.clip(u, -clip, clip)) if clip is not None else (lambda u: u)
    inside = (lambda u: np.abs(u) < clip) if clip is not None else (lambda u: 1)  # clip'
    zero = np.zeros(n["d_h"], x.dtype)
    p_i, p_f, p_o = p.get("p_i", zero), p.get("p_f", zero), p.get("p_o", zero)

    # forward, keeping every step (u_*: pre-activations before the clip)
    hs, cs = {-1: state["h"]}, {-1: state["c"]}
    u, i, f, g, o, m = {}, {}, {}, {}, {}, {}
    for t in range(n["T"]):
        h, c = hs[t - 1], cs[t - 1]
        u[t, "i"] = x[t] @ p["W_xi"].T + h @ p["W_hi"].T + p_i * c + p["b_xi"] + p["b_hi"]
        i[t] = sigmoid(cl(u[t, "i"]))
        if coupled:
            f[t] = 1 - i[t]
        else:
            u[t, "f"] = x[t] @ p["W_xf"].T + h @ p["W_hf"].T + p_f * c + p["b_xf"] + p["b_hf"]
            f[t] = sigmoid(cl(u[t, "f"]))
        u[t, "g"] = x[t] @ p["W_xg"].T + h @ p["W_hg"].T + p["b_xg"] + p["b_hg"]
        g[t] = np.tanh(cl(u[t, "g"]))
        cs[t] = f[t] * c + i[t] * g[t]
        u[t, "o"] = x[t] @ p["W_xo"].T + h @ p["W_ho"].T + p_o * cs[t] + p["b_xo"] + p["b_ho"]
        o[t] = sigmoid(cl(u[t, "o"]))
        m[t] = o[t] * np.tanh(cl(cs[t]))                     # h before the projection
        hs[t] = m[t] @ p["W_hr"].T if projection else m[t]
    outputs = np.stack([hs[t] for t in range(n["T"])]) if n["T"] else \
        np.zeros((0, n["B"], n[d_r]), x.dtype)
    dys, d_state = _upstream(d_outputs, d_final_state, outputs,
                             {"h": hs[n["T"] - 1], "c": cs[n["T"] - 1]})

    d = {name: np.zeros_like(value) for name, value in p.items()}
    dx = np.zeros_like(x)
    dh_next, dc_next = d_state["h"], d_state["c"]
    for t in reversed(range(n["T"])):
        dh = dys[t] + dh_next
        if projection:
            d["W_hr"] += dh.T @ m[t]
            dm = dh @ p["W_hr"]
        else:
            dm = dh
        tc = np.tanh(cl(cs[t]))
        do = dm * tc
        dao = do * o[t] * (1 - o[t]) * inside(u[t, "o"])          # through sigmoid and clip
        dc = dc_next + dm * o[t] * (1 - tc * tc) * inside(cs[t]) + dao * p_o
        di = dc * g[t]
        dg = dc * i[t]
        df = dc * cs[t - 1]
        if coupled:
            di = di - df                                           # f = 1 - i
        dai = di * i[t] * (1 - i[t]) * inside(u[t, "i"])
        dag = dg * (1 - g[t] * g[t]) * inside(u[t, "g"])
        da = {"i": dai, "g": dag, "o": dao}
        if not coupled:
            da["f"] = df * f[t] * (1 - f[t]) * inside(u[t, "f"])
        dh_prev = np.zeros_like(hs[t - 1])
        for gate in gates:
            d[f"W_x{gate}"] += da[gate].T @ x[t]
            d[f"W_h{gate}"] += da[gate].T @ hs[t - 1]
            d[f"b_x{gate}"] += da[gate].sum(axis=0)
            d[f"b_h{gate}"] += da[gate].sum(axis=0)
            dx[t] += da[gate] @ p[f"W_x{gate}"]
            dh_prev += da[gate] @ p[f"W_h{gate}"]
        dc_prev = dc * f[t] + dai * p_i
        if peepholes:
            d["p_i"] += (dai * cs[t - 1]).sum(axis=0)
            d["p_o"] += (dao * cs[t]).sum(axis=0)
            if not coupled:
                d["p_f"] += (da["f"] * cs[t - 1]).sum(axis=0)
                dc_prev += da["f"] * p_f
        dh_next, dc_next = dh_prev, dc_prev
    return d, dx, {"h": dh_next, "c": dc_next}


def gru_backward(params, x, state0, d_outputs, d_final_state=None, *, reset="after",
                 constant=()):
    """Gradients of a GRU layer (see gru_forward), by backpropagation through time.

        dh = dy + (from t+1);  dn = dh * (1 - z);  dz = dh * (h_prev - n)
        dan = dn * (1 - n**2);  daz = dz * z (1 - z)
        reset="after":  dr = dan * (h_prev W_hn.T + b_hn);  dW_hn += (dan * r).T h_prev
        reset="before": dr = (dan W_hn) * h_prev;           dW_hn += dan.T (r * h_prev)
        dar = dr * r (1 - r);  sent back to h_prev: dh * z + dar W_hr + daz W_hz + the n path

    constant: gates ("r", "z") held constant in the backward, i.e. the gradients of a forward
    that detaches them in the step (r.detach()); a diagnosis variant, not a GRU's gradient.
    """
    if reset not in ("after", "before"):
        raise ValueError(f"reset: expected 'after' or 'before', got {reset!r}")
    shapes = _gru_shapes()
    p, x, state, n_ = _prepare(params, x, state0, shapes, {"h": ("B", "d_h")}, {"d_h": "W_xr"})

    hs = {-1: state["h"]}
    r, z, n, hn = {}, {}, {}, {}                     # hn: h_prev W_hn.T + b_hn (reset after)
    for t in range(n_["T"]):
        h = hs[t - 1]
        r[t] = sigmoid(x[t] @ p["W_xr"].T + h @ p["W_hr"].T + p["b_xr"] + p["b_hr"])
        z[t] = sigmoid(x[t] @ p["W_xz"].T + h @ p["W_hz"].T + p["b_xz"] + p["b_hz"])
        if reset == "after":
            hn[t] = h @ p["W_hn"].T + p["b_hn"]
            n[t] = np.tanh(x[t] @ p["W_xn"].T + p["b_xn"] + r[t] * hn[t])
        else:
            n[t] = np.tanh(x[t] @ p["W_xn"].T + (r[t] * h) @ p["W_hn"].T + p["b_xn"] + p["b_hn"])
        hs[t] = (1 - z[t]) * n[t] + z[t] * h
    outputs = np.stack([hs[t] for t in range(n_["T"])]) if n_["T"] else \
        np.zeros((0, n_["B"], n_["d_h"]), x.dtype)
    dys, d_state = _upstream(d_outputs, d_final_state, outputs, {"h": hs[n_["T"] - 1]})

    d = {name: np.zeros_like(value) for name, value in p.items()}
    dx = np.zeros_like(x)
    dh_next = d_state["h"]
    for t in reversed(range(n_["T"])):
        h_prev = hs[t - 1]
        dh = dys[t] + dh_next
        dn = dh * (1 - z[t])
        dz = dh * (h_prev - n[t])
        dan = dn * (1 - n[t] * n[t])                           # backprop through tanh
        daz = dz * z[t] * (1 - z[t])                           # through sigmoid
        dh_prev = dh * z[t]
        if reset == "after":
            dr = dan * hn[t]
            dhn = dan * r[t]                                   # into h_prev W_hn.T + b_hn
            d["W_hn"] += dhn.T @ h_prev
            d["b_hn"] += dhn.sum(axis=0)
            dh_prev += dhn @ p["W_hn"]
        else:
            drh = dan @ p["W_hn"]                              # into r * h_prev
            dr = drh * h_prev
            d["W_hn"] += dan.T @ (r[t] * h_prev)
            d["b_hn"] += dan.sum(axis=0)
            dh_prev += drh * r[t]
        dar = dr * r[t] * (1 - r[t])
        if "r" in constant:
            dar = np.zeros_like(dar)
        if "z" in constant:
            daz = np.zeros_like(daz)
        d["W_xn"] += dan.T @ x[t]
        d["b_xn"] += dan.sum(axis=0)
        dx[t] = dan @ p["W_xn"]
        for gate, da in (("r", dar), ("z", daz)):
            d[f"W_x{gate}"] += da.T @ x[t]
            d[f"W_h{gate}"] += da.T @ h_prev
            d[f"b_x{gate}"] += da.sum(axis=0)
            d[f"b_h{gate}"] += da.sum(axis=0)
            dx[t] += da @ p[f"W_x{gate}"]
            dh_prev += da @ p[f"W_h{gate}"]
        dh_next = dh_prev
    return d, dx, {"h": dh_next}


# ---------------------------------------------------------------------------------------------
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
