"""ONNX ``W``, ``R``, ``B``, ``P`` <-> rnnsym's canonical parameters, and torch/Keras through them.

ONNX stacks the gate blocks of one direction on axis 1 and the directions on axis 0::

    W  [D, G*H, I]     gate blocks: LSTM i, o, f, c; GRU z, r, h; RNN one block
    R  [D, G*H, H]     same gate order, applied as Ht-1 @ R.T
    B  [D, 2*G*H]      [Wb (all gates), Rb (all gates)]; zeros when absent
    P  [D, 3*H]        LSTM peepholes i, o, f; zeros when absent

Canonical (README, "rnnsym's canonical NumPy convention"): one dict per direction, gate letters
LSTM ``i, f, g, o`` (ONNX ``c`` is ``g``), GRU ``r, z, n`` (ONNX ``h`` is ``n``), Elman ``h``.
Orientation is the same (``x @ W.T``), so conversion only renames and reorders blocks:

- RNN: canonical Elman has one bias, ``b_h = Wb + Rb``; the inverse writes ``b_h`` into ``Wb``
  and zeros into ``Rb``.
- GRU/LSTM: ``b_x{g} = Wb[g]``, ``b_h{g} = Rb[g]`` (lossless); ``p_i, p_o, p_f = P``.
- LSTM ``input_forget=1`` (coupled gates, ``f = 1 - i``): the f blocks of W, R, B and P are not
  used; the canonical coupled cell has no f parameters, the inverse writes zeros there.

Multi-direction stacking is ``params[direction]`` here and ``params[layer][direction]`` in
:mod:`rnnsym.frameworks.layers`; one ONNX node is one layer. torch and Keras weights go through
this canonical form in :mod:`rnnsym.frameworks.onnx.convert` (frameworks sit above ONNX).
"""
from __future__ import annotations

import numpy as np

from rnnsym.onnx.attributes import OnnxError

#: ONNX gate order in canonical letters
ONNX_ORDER = {"RNN": ("h",), "GRU": ("z", "r", "n"), "LSTM": ("i", "o", "f", "g")}
PEEPHOLE_ORDER = ("i", "o", "f")
CELL = {"RNN": "elman", "GRU": "gru", "LSTM": "lstm"}
OP = {"elman": "RNN", "rnn": "RNN", "gru": "GRU", "lstm": "LSTM"}


def expect_shape(name: str, value, shape: tuple, symbols: str) -> np.ndarray:
    """``value`` as an array of ``shape``; OnnxError naming the input otherwise."""
    arr = np.asarray(value)
    if arr.shape != tuple(shape):
        raise OnnxError(f"input {name}: expected shape {symbols} = {tuple(shape)}, "
                        f"got {arr.shape}")
    return arr


def onnx_to_canonical(op: str, W, R, B=None, P=None, *, input_forget: bool = False,
                      dtype=np.float64) -> list[dict]:
    """ONNX weights of one node -> canonical ``params[direction]``."""
    order = ONNX_ORDER[op]
    G = len(order)
    W, R = np.asarray(W), np.asarray(R)
    if W.ndim != 3:
        raise OnnxError(f"input W: expected shape [num_directions, {G}*hidden_size, input_size],"
                        f" got {W.shape}")
    D, GH, I = W.shape
    if GH % G:
        raise OnnxError(f"input W: axis 1 must be {G}*hidden_size, got {GH}")
    H = GH // G
    R = expect_shape("R", R, (D, G * H, H), f"[num_directions, {G}*hidden_size, hidden_size]")
    B = np.zeros((D, 2 * G * H)) if B is None else \
        expect_shape("B", B, (D, 2 * G * H), f"[num_directions, {2 * G}*hidden_size]")
    if P is not None:
        if op != "LSTM":
            raise OnnxError(f"input P: peepholes exist for LSTM only, not {op}")
        P = expect_shape("P", P, (D, 3 * H), "[num_directions, 3*hidden_size]")
    out = []
    for d in range(D):
        def block(arr, k):
            return np.asarray(arr[d, k * H:(k + 1) * H], dtype=dtype)
        if op == "RNN":
            out.append({"W_xh": block(W, 0), "W_hh": block(R, 0),
                        "b_h": block(B, 0) + block(B, 1)})
            continue
        p = {}
        for k, g in enumerate(order):
            if input_forget and g == "f":
                continue
            p[f"W_x{g}"] = block(W, k)
            p[f"W_h{g}"] = block(R, k)
            p[f"b_x{g}"] = block(B, k)
            p[f"b_h{g}"] = block(B, G + k)
        if P is not None:
            for k, g in enumerate(PEEPHOLE_ORDER):
                if not (input_forget and g == "f"):
                    p[f"p_{g}"] = block(P, k)
        out.append(p)
    return out


def canonical_to_onnx(op: str, params, *, dtype=np.float32) -> dict[str, np.ndarray]:
    """Canonical ``params[direction]`` -> ``{"W", "R", "B"}`` (+ ``"P"`` when the params have
    peepholes). Blocks absent from the params (a coupled LSTM's f) are written as zeros."""
    order = ONNX_ORDER[op]
    Ws, Rs, Bs, Ps = [], [], [], []
    for p in params:
        if op == "RNN":
            Ws.append(p["W_xh"])
            Rs.append(p["W_hh"])
            Bs.append(np.concatenate([p["b_h"], np.zeros_like(p["b_h"])]))
            continue
        ref = p[f"W_x{order[0]}"]
        H, I = ref.shape

        def get(name, shape):
            return np.asarray(p[name]) if name in p else np.zeros(shape)
        Ws.append(np.concatenate([get(f"W_x{g}", (H, I)) for g in order]))
        Rs.append(np.concatenate([get(f"W_h{g}", (H, H)) for g in order]))
        Bs.append(np.concatenate([get(f"b_x{g}", (H,)) for g in order] +
                                 [get(f"b_h{g}", (H,)) for g in order]))
        if "p_i" in p:
            Ps.append(np.concatenate([get(f"p_{g}", (H,)) for g in PEEPHOLE_ORDER]))
    out = {"W": np.stack(Ws), "R": np.stack(Rs), "B": np.stack(Bs)}
    if Ps:
        out["P"] = np.stack(Ps)
    return {k: np.asarray(v, dtype=dtype) for k, v in out.items()}
