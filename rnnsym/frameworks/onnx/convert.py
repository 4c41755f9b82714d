"""torch and Keras weights <-> ONNX ``W/R/B``, through rnnsym's canonical parameters.

The ONNX side (:func:`rnnsym.onnx.convert.canonical_to_onnx` / ``onnx_to_canonical``) and each
framework's side (:mod:`rnnsym.frameworks.torch`, :mod:`rnnsym.frameworks.keras`) are tested
converters of their own; these compose them, one layer (one ONNX node) at a time.
"""
from __future__ import annotations

import numpy as np

from rnnsym.frameworks.keras import canonical_to_keras, keras_to_canonical
from rnnsym.frameworks.torch import canonical_to_torch, torch_to_canonical
from rnnsym.onnx.attributes import OnnxError
from rnnsym.onnx.convert import CELL, OP, canonical_to_onnx, onnx_to_canonical


def torch_to_onnx(cell: str, values, *, bidirectional: bool = False, bias: bool = True,
                  layer: int = 0, dtype=np.float32) -> tuple[dict, dict]:
    """One layer of a ``torch.nn.RNN/GRU/LSTM`` (its ``state_dict`` as arrays) -> ONNX
    ``(attributes, {"W", "R", "B"})``: GRU gets ``linear_before_reset=1`` (torch resets after
    the matmul), a relu RNN needs ``activations=["Relu"]`` from the caller (torch's
    ``nonlinearity`` is not in its parameters). ``proj_size`` has no ONNX equivalent."""
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
    reset_after = bool(linear_before_reset)
    return [{k: np.asarray(v, dtype) for k, v in
             canonical_to_keras(CELL[op], p, reset_after=reset_after).items()}
            for p in onnx_to_canonical(op, W, R, B)]
