"""ONNX ``CausalConvWithState`` (opset 27): a depthwise causal 1-D convolution that carries its
last ``k - 1`` inputs, in float64.

    output, present_state = input (B, C, L), weight (C, 1, k), bias? (C), past_state? (B, C, k-1)

Per sample ``b`` and channel ``c``, the carried window ``x = past_state[b, c]`` (zeros when
absent) followed by ``input[b, c]`` (length ``k - 1 + L``)::

    y[t] = bias[c] + sum_{j < k} weight[c, 0, j] * x[t + j]        t = 0 .. L-1
    output[b, c, t] = y[t]                  (activation "none")
                    = y[t] * sigmoid(y[t])  ("silu" or "swish", the same function)
    present_state[b, c] = x[-(k-1):]        (the last k-1 of the window: past values too
                                             when L < k - 1)

so ``weight[c, 0, k-1]`` multiplies the current input, ``weight[c, 0, 0]`` the oldest (the
ONNX ``Conv`` orientation: a cross-correlation).
"""
from __future__ import annotations

import numpy as np

from rnnsym.onnx.attributes import OnnxError

ACTIVATIONS = ("none", "silu", "swish")
INPUTS = ("input", "weight", "bias", "past_state")
OUTPUTS = ("output", "present_state")


def parse_attributes(attributes: dict) -> str:
    """-> the activation name."""
    unknown = sorted(set(attributes) - {"activation"})
    if unknown:
        raise OnnxError(f"CausalConvWithState attribute {unknown[0]}: unknown (known: "
                        "activation)")
    act = attributes.get("activation", "none")
    act = act.decode() if isinstance(act, bytes) else str(act)
    if act not in ACTIVATIONS:
        raise OnnxError(f"CausalConvWithState attribute activation: expected one of "
                        f"{', '.join(ACTIVATIONS)}, got {act!r}")
    return act


def evaluate(activation: str, input, weight, bias=None, past_state=None) -> dict:
    """``{"output": (B, C, L), "present_state": (B, C, k-1)}`` in float64. Raises OnnxError
    naming the input, the expected shape and what was given."""
    x = np.asarray(input)
    if x.ndim != 3:
        raise OnnxError(f"input input: expected shape (B, C, L), got {x.shape}")
    B, C, L = x.shape
    w = np.asarray(weight)
    if w.ndim != 3 or w.shape[:2] != (C, 1) or w.shape[2] < 1:
        raise OnnxError(f"input weight: expected shape (C, 1, k) = ({C}, 1, k) with k >= 1, "
                        f"got {w.shape}")
    k = w.shape[2]
    if bias is not None and np.shape(bias) != (C,):
        raise OnnxError(f"input bias: expected shape (C,) = ({C},), got {np.shape(bias)}")
    if past_state is None:
        past = np.zeros((B, C, k - 1))
    else:
        past = np.asarray(past_state, np.float64)
        if past.shape != (B, C, k - 1):
            raise OnnxError(f"input past_state: expected shape (B, C, k-1) = "
                            f"({B}, {C}, {k - 1}), got {past.shape}")
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    bias = np.zeros(C) if bias is None else np.asarray(bias, np.float64)

    out = np.zeros((B, C, L))
    present = np.zeros((B, C, k - 1))
    for b in range(B):
        for c in range(C):
            window = np.concatenate([past[b, c], x[b, c]])
            for t in range(L):
                y = bias[c] + w[c, 0] @ window[t:t + k]
                out[b, c, t] = y / (1 + np.exp(-y)) if activation != "none" else y
            present[b, c] = window[len(window) - (k - 1):]
    return {"output": out, "present_state": present}
