"""Canonical NumPy-convention functions (``fn(params, x, state0) -> (outputs, state)``):
a correct GRU, a reset-before GRU that claims reset-after, an Elman RNN and a broken
Elman RNN that drops its bias."""
import numpy as np


def _sigmoid(a):
    return 0.5 * (1 + np.tanh(0.5 * a))


def gru(params, x, state0=None, reset="after"):
    p = params
    h = np.zeros((x.shape[1], p["W_hr"].shape[0]), x.dtype) if state0 is None else state0["h"]
    outputs = []
    for x_t in x:
        r = _sigmoid(x_t @ p["W_xr"].T + p["b_xr"] + h @ p["W_hr"].T + p["b_hr"])
        z = _sigmoid(x_t @ p["W_xz"].T + p["b_xz"] + h @ p["W_hz"].T + p["b_hz"])
        if reset == "after":
            n = np.tanh(x_t @ p["W_xn"].T + p["b_xn"] + r * (h @ p["W_hn"].T + p["b_hn"]))
        else:
            n = np.tanh(x_t @ p["W_xn"].T + p["b_xn"] + (r * h) @ p["W_hn"].T + p["b_hn"])
        h = n + z * (h - n)
        outputs.append(h)
    return np.stack(outputs), {"h": h}


def gru_reset_before(params, x, state0=None):
    return gru(params, x, state0, reset="before")


def elman(params, x, state0=None):
    h = np.zeros((x.shape[1], params["W_hh"].shape[0]), x.dtype) if state0 is None \
        else state0["h"]
    outputs = []
    for x_t in x:
        h = np.tanh(params["b_h"] + h @ params["W_hh"].T + x_t @ params["W_xh"].T)
        outputs.append(h)
    return np.stack(outputs), {"h": h}


def elman_no_bias(params, x, state0=None):
    return elman({**params, "b_h": 0 * params["b_h"]}, x, state0)
