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
:mod:`rnnsym.frameworks.layers`; one ONNX node is one layer.
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


# ------------------------------------------------------------------------------------------
# frameworks, through the canonical convention


def torch_to_onnx(cell: str, values, *, bidirectional: bool = False, bias: bool = True,
                  layer: int = 0, dtype=np.float32) -> tuple[dict, dict]:
    """One layer of a ``torch.nn.RNN/GRU/LSTM`` (its ``state_dict`` as arrays) -> ONNX
    ``(attributes, {"W", "R", "B"})``: GRU gets ``linear_before_reset=1`` (torch resets after
    the matmul), a relu RNN needs ``activations=["Relu"]`` from the caller (torch's
    ``nonlinearity`` is not in its parameters). ``proj_size`` has no ONNX equivalent."""
    from rnnsym.frameworks.torch import torch_to_canonical

    cell = cell.lower().replace("rnn", "elman")
    if any(k.startswith("weight_hr") for k in values):
        raise OnnxError("torch LSTM proj_size > 0 has no ONNX LSTM equivalent")
    suffix = f"_l{layer}"
    mine = {k.replace(suffix, "_l0"): v for k, v in values.items()
            if k.endswith(suffix) or k.endswith(suffix + "_reverse")}
    params = torch_to_canonical(cell, mine, num_layers=1, bidirectional=bidirectional,
                                bias=bias)[0]
    op = OP[cell]
    attrs = {"hidden_size": params[0][next(iter(params[0]))].shape[0],
             "direction": "bidirectional" if bidirectional else "forward"}
    if op == "GRU":
        attrs["linear_before_reset"] = 1
    return attrs, canonical_to_onnx(op, params, dtype=dtype)


def onnx_to_torch(op: str, W, R, B=None, *, linear_before_reset: int = 1, layer: int = 0,
                  dtype=np.float32) -> dict[str, np.ndarray]:
    """ONNX weights -> torch parameter arrays of one layer (``weight_ih_l{layer}``, ...). A GRU
    must have ``linear_before_reset=1``: torch cannot express the reset-before variant."""
    from rnnsym.frameworks.torch import canonical_to_torch

    if op == "GRU" and not linear_before_reset:
        raise OnnxError("GRU attribute linear_before_reset: torch.nn.GRU needs 1, got 0")
    params = onnx_to_canonical(op, W, R, B)
    named = canonical_to_torch(CELL[op], [params])
    return {k.replace("_l0", f"_l{layer}"): np.asarray(v, dtype) for k, v in named.items()}


def keras_to_onnx(cell: str, weights, *, use_bias: bool = True, reset_after: bool = True,
                  backward=None, dtype=np.float32) -> tuple[dict, dict]:
    """A Keras ``SimpleRNN/GRU/LSTM`` layer's weights {"kernel", "recurrent_kernel", "bias"} (and
    ``backward``: the backward layer's, for ``Bidirectional``) -> ONNX ``(attributes, inputs)``.
    GRU ``reset_after=True`` is ``linear_before_reset=1``. Keras' ``go_backwards`` output is in
    processing order; ONNX ``reverse`` aligns it with input time (flip one to get the other)."""
    from rnnsym.frameworks.keras import keras_to_canonical

    cell = cell.lower().replace("simplernn", "elman").replace("rnn", "elman")
    params = [keras_to_canonical(cell, weights, use_bias=use_bias, reset_after=reset_after)]
    if backward is not None:
        params.append(keras_to_canonical(cell, backward, use_bias=use_bias,
                                         reset_after=reset_after))
    op = OP[cell]
    attrs = {"hidden_size": np.asarray(weights["recurrent_kernel"]).shape[0],
             "direction": "bidirectional" if backward is not None else "forward"}
    if op == "GRU":
        attrs["linear_before_reset"] = int(reset_after)
    return attrs, canonical_to_onnx(op, params, dtype=dtype)


def onnx_to_keras(op: str, W, R, B=None, *, linear_before_reset: int = 0,
                  dtype=np.float32) -> list[dict]:
    """ONNX weights -> one Keras weight dict per direction ({"kernel", "recurrent_kernel",
    "bias"}); a GRU's ``reset_after`` is ``bool(linear_before_reset)``."""
    from rnnsym.frameworks.keras import canonical_to_keras

    reset_after = bool(linear_before_reset)
    return [{k: np.asarray(v, dtype) for k, v in
             canonical_to_keras(CELL[op], p, reset_after=reset_after).items()}
            for p in onnx_to_canonical(op, W, R, B)]
