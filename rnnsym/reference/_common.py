"""What every reference shares: the stable sigmoid, the activations by name, and the
checks of names and shapes (errors name the parameter, its shape in symbols and numbers,
and what was given)."""
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
