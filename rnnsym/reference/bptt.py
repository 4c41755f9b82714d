"""Backward passes (backpropagation through time) of the classic layers, min-char-rnn style."""
import numpy as np

from rnnsym.reference._common import (ACTIVATIONS, _elman_shapes, _fmt,
                                      _gru_shapes, _lstm_shapes, _prepare, sigmoid)


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
