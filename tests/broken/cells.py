"""Every built-in cell beyond the framework trio, written by hand another way, and broken once.

For each entry of :data:`CASES`: ``(cell, variant, correct, broken, edit)``; the correct one is
written differently from the generated code (fused or split GEMMs, another operation order,
another state layout), the broken one differs by one edit of the equations, and ``edit`` is a
substring of the diagnosis the checker must print. Functions follow the canonical convention
(``fn(params, x, state0) -> (outputs, final_state)``); the torch modules follow the cell API
(``forward(x_t, state) -> new_state`` or ``(output, new_state)``).
"""
import numpy as np
import torch


def _sigmoid(a):
    return 0.5 * (1 + np.tanh(0.5 * a))


def _stable_sigmoid(a):
    """e^min(a,0) / (1 + e^-|a|): no 0 where the gate underflows (minLSTM divides by f + i)."""
    return np.exp(np.minimum(a, 0)) / (1 + np.exp(-np.abs(a)))


def _zeros(x, d):
    return np.zeros((x.shape[1], d), x.dtype)


def _layernorm(u, g, b, eps=1e-5):
    mean = u.mean(-1, keepdims=True)
    var = ((u - mean) ** 2).mean(-1, keepdims=True)
    return (u - mean) / np.sqrt(var + eps) * g + b


# --- minGRU: both Linear layers as one fused GEMM, h += z * (n - h) ---------------------------
def mingru(p, x, state0=None, bug=False):
    d = p["W_xz"].shape[0]
    W = np.concatenate([p["W_xz"], p["W_xn"]])          # (2 d_h, d_in): one GEMM for all steps
    b = np.concatenate([p["b_z"], p["b_n"]])
    u = x @ W.T + b
    h = _zeros(x, d) if state0 is None else state0["h"]
    out = []
    for t in range(len(x)):
        z, n = _sigmoid(u[t, :, :d]), u[t, :, d:]
        h = n + z * (h - n) if bug else h + z * (n - h)
        out.append(h)
    return np.stack(out), {"h": h}


def mingru_bug(p, x, state0=None):
    return mingru(p, x, state0, bug=True)


# --- minLSTM: one GEMM, i' = 1 - f' computed as i / (f + i) -----------------------------------
def minlstm(p, x, state0=None, bug=False):
    d = p["W_xf"].shape[0]
    W = np.concatenate([p["W_xf"], p["W_xi"], p["W_xn"]])
    b = np.concatenate([p["b_f"], p["b_i"], 0 * p["b_n"] if bug else p["b_n"]])
    u = x @ W.T + b
    h = _zeros(x, d) if state0 is None else state0["h"]
    out = []
    for t in range(len(x)):
        f, i = _stable_sigmoid(u[t, :, :d]), _stable_sigmoid(u[t, :, d:2 * d])
        n = u[t, :, 2 * d:]
        s = f + i
        h = (f * h + i * n) / s
        out.append(h)
    return np.stack(out), {"h": h}


def minlstm_bug(p, x, state0=None):
    return minlstm(p, x, state0, bug=True)


# --- IndRNN: the input GEMM for all steps first ------------------------------------------------
def indrnn(p, x, state0=None, act=np.tanh):
    u = x @ p["W_xh"].T + p["b_h"]
    h = _zeros(x, p["w_hh"].shape[0]) if state0 is None else state0["h"]
    out = []
    for t in range(len(x)):
        h = act(p["w_hh"] * h + u[t])
        out.append(h)
    return np.stack(out), {"h": h}


def indrnn_relu(p, x, state0=None):
    return indrnn(p, x, state0, act=lambda a: np.maximum(a, 0))


def indrnn_relu_bug(p, x, state0=None):        # tanh where it claims relu
    return indrnn(p, x, state0, act=np.tanh)


# --- SRU: the paper's parallel form (one GEMM for W, W_f, W_r over all steps) ------------------
def sru(p, x, state0=None, bug=False, rescale=False):
    d = p["W_xc"].shape[0]
    U = x @ np.concatenate([p["W_xc"], p["W_xf"], p["W_xr"]]).T
    c = _zeros(x, d) if state0 is None else state0["c"]
    out = []
    for t in range(len(x)):
        wx, uf, ur = U[t, :, :d], U[t, :, d:2 * d], U[t, :, 2 * d:]
        f = _sigmoid(uf + p["v_f"] * c + p["b_f"])
        c_prev = c
        c = f * (c - wx) + wx
        r = _sigmoid(ur + p["v_r"] * (c if bug else c_prev) + p["b_r"])
        out.append(r * c + (1 - r) * x[t] * (np.sqrt(3) if rescale else 1))
    return np.stack(out), {"c": c}


def sru_bug(p, x, state0=None):
    return sru(p, x, state0, bug=True)


def sru_rescale(p, x, state0=None):
    return sru(p, x, state0, rescale=True)


# --- QRNN: the window-2 convolution as one GEMM on [x_{t-1}, x_t] ------------------------------
def qrnn(p, x, state0=None, pooling="fo", bug=False):
    d_in = p["W_z1"].shape[1]
    d = p["W_z1"].shape[0]
    gates = "zfo" if pooling == "fo" else "zf"
    taps = {g: ("2", "1") if bug and g == "z" else ("1", "2") for g in gates}
    W = np.concatenate([np.concatenate([p[f"W_{g}{taps[g][0]}"], p[f"W_{g}{taps[g][1]}"]], axis=1)
                        for g in gates])
    xp = _zeros(x, d_in) if state0 is None else state0["xp"]
    state = (_zeros(x, d) if state0 is None else state0["h" if pooling == "f" else "c"])
    out = []
    for t in range(len(x)):
        u = np.concatenate([xp, x[t]], axis=1) @ W.T
        z, f = np.tanh(u[:, :d]), _sigmoid(u[:, d:2 * d])
        state = f * state + (1 - f) * z
        out.append(state if pooling == "f" else _sigmoid(u[:, 2 * d:]) * state)
        xp = x[t]
    final = {"h": state} if pooling == "f" else {"c": state}
    final["xp"] = xp
    return np.stack(out), final


def qrnn_f(p, x, state0=None):
    return qrnn(p, x, state0, pooling="f")


def qrnn_f_bug(p, x, state0=None):             # the convolution's taps exchanged
    return qrnn(p, x, state0, pooling="f", bug=True)


# --- LSTM variants: fused 4-gate GEMM --------------------------------------------------------
def lstm(p, x, state0=None, peepholes=False, coupled=False, clip=None, forget_bias=0.0,
         bug=None):
    gates = "igo" if coupled else "ifgo"
    d = p["W_hi"].shape[0]
    W = np.concatenate([np.concatenate([p[f"W_x{g}"], p[f"W_h{g}"]], axis=1) for g in gates])
    b = np.concatenate([p[f"b_x{g}"] + p[f"b_h{g}"] for g in gates])
    h = _zeros(x, d) if state0 is None else state0["h"]
    c = _zeros(x, d) if state0 is None else state0["c"]
    clip_ = (lambda a: a) if clip is None else (lambda a: np.clip(a, -clip, clip))
    out = []
    for t in range(len(x)):
        u = np.concatenate([x[t], h], axis=1) @ W.T + b
        blocks = dict(zip(gates, np.split(u, len(gates), axis=1)))
        if peepholes:
            blocks["i"] = blocks["i"] + p["p_i"] * c
            if not coupled:
                blocks["f"] = blocks["f"] + p["p_f"] * c
        i = _sigmoid(clip_(blocks["i"]))
        f = i if bug == "coupled" else (1 - i) if coupled else \
            _sigmoid(clip_(blocks["f"] + (0 if bug == "forget_bias" else forget_bias)))
        g = np.tanh(blocks["g"] if bug == "clip" else clip_(blocks["g"]))
        c_prev, c = c, f * c + i * g
        uo = blocks["o"] + (p["p_o"] * (c_prev if bug == "peepholes" else c) if peepholes else 0)
        h = _sigmoid(clip_(uo)) * np.tanh(clip_(c))
        out.append(h)
    return np.stack(out), {"h": h, "c": c}


def lstm_peepholes(p, x, s=None):
    return lstm(p, x, s, peepholes=True)


def lstm_peepholes_bug(p, x, s=None):          # the output gate peeks at c[t-1]
    return lstm(p, x, s, peepholes=True, bug="peepholes")


def lstm_coupled(p, x, s=None):
    return lstm(p, x, s, coupled=True)


def lstm_coupled_bug(p, x, s=None):            # f = i instead of 1 - i
    return lstm(p, x, s, coupled=True, bug="coupled")


def lstm_clip(p, x, s=None):
    return lstm(p, x, s, clip=0.5)


def lstm_clip_bug(p, x, s=None):               # the candidate's input not clipped
    return lstm(p, x, s, clip=0.5, bug="clip")


def lstm_forget_bias(p, x, s=None):            # TensorFlow's LSTMCell(forget_bias=1)
    return lstm(p, x, s, forget_bias=1.0)


def lstm_forget_bias_bug(p, x, s=None):        # forget_bias forgotten
    return lstm(p, x, s, forget_bias=1.0, bug="forget_bias")


# --- GRU as dm-haiku: z weights the candidate, fused gates ------------------------------------
def gru_haiku(p, x, state0=None, bug=False):
    d = p["W_hr"].shape[0]
    Wx = np.concatenate([p["W_xr"], p["W_xz"], p["W_xn"]])
    bx = np.concatenate([p["b_xr"], p["b_xz"], p["b_xn"]])
    Wh = np.concatenate([p["W_hr"], p["W_hz"], p["W_hn"]])
    bh = np.concatenate([p["b_hr"], p["b_hz"], p["b_hn"]])
    h = _zeros(x, d) if state0 is None else state0["h"]
    out = []
    for t in range(len(x)):
        a, r_ = x[t] @ Wx.T + bx, h @ Wh.T + bh
        r = _sigmoid(a[:, :d] + r_[:, :d])
        z = _sigmoid(a[:, d:2 * d] + r_[:, d:2 * d])
        n = np.tanh(a[:, 2 * d:] + r * r_[:, 2 * d:])
        h = (n + z * (h - n)) if bug else (h + z * (n - h))
        out.append(h)
    return np.stack(out), {"h": h}


def gru_haiku_bug(p, x, state0=None):          # PyTorch's convention under haiku's claim
    return gru_haiku(p, x, state0, bug=True)


# --- torch modules following the cell API ------------------------------------------------------
class LayerNormLSTMCell(torch.nn.Module):
    """PyTorch's benchmarks/fastrnns/custom_lstms.py LayerNormLSTMCell, as written there
    (parameters weight_ih, weight_hh, layernorm_i/h/c; forward(input, (hx, cx)) ->
    (hy, (hy, cy))); ``BUG`` swaps the blocks of g and o (a chunk read in the wrong order)."""

    BUG = False

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.weight_ih = torch.nn.Parameter(torch.randn(4 * hidden_size, input_size))
        self.weight_hh = torch.nn.Parameter(torch.randn(4 * hidden_size, hidden_size))
        self.layernorm_i = torch.nn.LayerNorm(4 * hidden_size)
        self.layernorm_h = torch.nn.LayerNorm(4 * hidden_size)
        self.layernorm_c = torch.nn.LayerNorm(hidden_size)

    def forward(self, input, state):
        hx, cx = state
        igates = self.layernorm_i(torch.mm(input, self.weight_ih.t()))
        hgates = self.layernorm_h(torch.mm(hx, self.weight_hh.t()))
        gates = igates + hgates
        if self.BUG:
            ingate, forgetgate, outgate, cellgate = gates.chunk(4, 1)
        else:
            ingate, forgetgate, cellgate, outgate = gates.chunk(4, 1)
        ingate = torch.sigmoid(ingate)
        forgetgate = torch.sigmoid(forgetgate)
        cellgate = torch.tanh(cellgate)
        outgate = torch.sigmoid(outgate)
        cy = self.layernorm_c((forgetgate * cx) + (ingate * cellgate))
        hy = outgate * torch.tanh(cy)
        return hy, (hy, cy)


class LayerNormLSTMCellBug(LayerNormLSTMCell):
    BUG = True


LNLSTM_MAP = ("W_x=weight_ih,W_h=weight_hh,g_x=layernorm_i.weight,b_x=layernorm_i.bias,"
              "g_h=layernorm_h.weight,b_h=layernorm_h.bias,g_c=layernorm_c.weight,"
              "b_c=layernorm_c.bias")


class SimpleRNN(torch.nn.Module):
    """The seed tutorial's Elman RNN with a readout y = W_hy h + b_y: three Linear layers
    (the recurrent one carries the bias); ``BUG`` reads the readout off h[t-1]."""

    BUG = False

    def __init__(self, input_size, hidden_size, output_size):
        super().__init__()
        self.i2h = torch.nn.Linear(input_size, hidden_size, bias=False)
        self.h2h = torch.nn.Linear(hidden_size, hidden_size)
        self.h2o = torch.nn.Linear(hidden_size, output_size)

    def forward(self, x, h):
        h_new = torch.tanh(self.i2h(x) + self.h2h(h))
        return self.h2o(h if self.BUG else h_new), h_new


class SimpleRNNBug(SimpleRNN):
    BUG = True


SIMPLE_RNN_MAP = "W_xh=i2h.weight,W_hh=h2h.weight,b_h=h2h.bias,W_hy=h2o.weight,b_y=h2o.bias"


class IndRNNCell(torch.nn.Module):
    """IndRNN with its weight stored transposed (``(d_in, d_h)``, mapped ``W_xh=weight.T``)."""

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(input_size, hidden_size))
        self.u = torch.nn.Parameter(torch.randn(hidden_size))
        self.b = torch.nn.Parameter(torch.randn(hidden_size))

    def forward(self, x, h):
        return torch.relu(x @ self.weight + self.u * h + self.b)


class IndRNNCellDetached(IndRNNCell):
    """Right forward; the state is detached before every step (truncated BPTT by accident)."""

    def forward(self, x, h):
        return super().forward(x, h.detach())


#: (cell, variant, correct, broken, substring of the broken one's diagnosis)
CASES = [
    ("mingru", None, mingru, mingru_bug, "z and 1 - z exchanged in h"),
    ("minlstm", None, minlstm, minlstm_bug, "the bias b_n left out"),
    ("indrnn", "activation=relu", indrnn_relu, indrnn_relu_bug, "tanh instead of relu in h"),
    ("indrnn", "activation=tanh", indrnn, indrnn_relu, "relu instead of tanh in h"),
    ("sru", None, sru, sru_bug, "c[t] instead of c[t-1] in r"),
    ("sru", "rescale=true", sru_rescale, sru, "the factor sqrt(3) left out in h"),
    ("qrnn", "pooling=f", qrnn_f, qrnn_f_bug, "W_z1 and W_z2 exchanged"),
    ("lstm", "peepholes=true", lstm_peepholes, lstm_peepholes_bug,
     "c[t-1] instead of c[t] in o"),
    ("lstm", "coupled=true", lstm_coupled, lstm_coupled_bug, "i and 1 - i exchanged in f"),
    ("lstm", "clip=0.5", lstm_clip, lstm_clip_bug, "the clip left out in g"),
    ("lstm", "forget_bias=1", lstm_forget_bias, lstm_forget_bias_bug,
     "a term left out of f"),
    ("gru", "update_gate=new", gru_haiku, gru_haiku_bug, "z and 1 - z exchanged in h"),
]


def qrnn_fo(p, x, state0=None):
    return qrnn(p, x, state0, pooling="fo")


def qrnn_fo_bug(p, x, state0=None):
    return qrnn(p, x, state0, pooling="fo", bug=True)


CASES.append(("qrnn", "pooling=fo", qrnn_fo, qrnn_fo_bug, "W_z1 and W_z2 exchanged"))
