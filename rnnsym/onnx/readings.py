"""The points the ONNX spec leaves open, their readings, and which of them matter for a node.

``clip_before_h``  (LSTM) True (default, the spec's text: clip "is applied to the input of
                   activations", h is one): ``Ht = ot ⊙ h(clip(Ct))``. False: onnxruntime's
                   reading, ``Ht = ot ⊙ h(Ct)`` (microsoft/onnxruntime#27224).
``y_past_length``  the spec says nothing about ``Y[t]`` for ``t >= sequence_lens[b]``.
                   "zero" (default, onnxruntime): zeros. "hold": the state carried through the
                   padding (Keras-style masking): the forward direction repeats its last state,
                   the reverse direction (which meets the padding first) its initial state.
``empty_state``    ``Y_h``/``Y_c`` of a sequence of length 0, which has no "last output".
                   "initial" (default; the state after the last valid step is the state after
                   zero steps): ``initial_h``/``initial_c``. "zero": onnxruntime's zeros.
``alpha_order``    how ``activation_alpha/beta`` are distributed (:mod:`rnnsym.onnx.attributes`):
                   "used" (default, onnxruntime) or "positional".
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from rnnsym.onnx.attributes import ALPHA_ORDERS, OnnxError, parse_attributes

Y_PAST_LENGTH = ("zero", "hold")
EMPTY_STATE = ("initial", "zero")


@dataclass(frozen=True)
class Readings:
    """The reading of each point the spec leaves open (module docstring); defaults: the spec's
    text where it has one, onnxruntime's behaviour where it has none."""

    clip_before_h: bool = True
    y_past_length: str = "zero"
    empty_state: str = "initial"
    alpha_order: str = "used"

    def __post_init__(self):
        if self.y_past_length not in Y_PAST_LENGTH:
            raise OnnxError(f"y_past_length: expected one of {Y_PAST_LENGTH}, "
                            f"got {self.y_past_length!r}")
        if self.empty_state not in EMPTY_STATE:
            raise OnnxError(f"empty_state: expected one of {EMPTY_STATE}, "
                            f"got {self.empty_state!r}")
        if self.alpha_order not in ALPHA_ORDERS:
            raise OnnxError(f"alpha_order: expected 'used' or 'positional', "
                            f"got {self.alpha_order!r}")

    def replace(self, **changes) -> "Readings":
        return replace(self, **changes)


ORT_READINGS = Readings(clip_before_h=False, y_past_length="zero", empty_state="zero",
                        alpha_order="used")

#: the open points of the spec, their readings (rnnsym's default first) and what they say
OPEN = {
    "clip_before_h": ((True, False), "LSTM clip before h(C_t)"),
    "y_past_length": (Y_PAST_LENGTH, "Y past each sequence length"),
    "empty_state": (EMPTY_STATE, "Y_h/Y_c for sequence length 0"),
    "alpha_order": (ALPHA_ORDERS, "activation_alpha/beta distribution"),
}
#: each reading in words
READING_TEXT = {
    ("clip_before_h", True): "clip applied to the input of h(C_t) too (the spec's text)",
    ("clip_before_h", False): "no clip before h(C_t) (onnxruntime's reading, "
                              "microsoft/onnxruntime#27224)",
    ("y_past_length", "zero"): "Y = 0 past each length (onnxruntime)",
    ("y_past_length", "hold"): "Y past each length holds the carried state (Keras masking)",
    ("empty_state", "initial"): "Y_h = initial_h for length 0 (state after zero steps)",
    ("empty_state", "zero"): "Y_h = 0 for length 0 (onnxruntime)",
    ("alpha_order", "used"): "alpha/beta consumed by the activations that take them "
                             "(onnxruntime)",
    ("alpha_order", "positional"): "alpha/beta given positionally, one per activation slot",
}


def open_points(op: str, attributes: dict, inputs: dict, outputs) -> list[str]:
    """The open points whose reading can change the requested ``outputs`` of this node
    (``attributes`` as ONNX values, ``inputs`` the present ones by name)."""
    points = []
    if op == "LSTM" and "clip" in attributes:
        points.append("clip_before_h")
    lens = inputs.get("sequence_lens")
    X = inputs["X"]
    T = X.shape[1] if attributes.get("layout") else X.shape[0]
    if lens is not None and "Y" in outputs and np.any(lens < T):
        points.append("y_past_length")
    if lens is not None and np.any(lens == 0) and set(outputs) & {"Y_h", "Y_c"}:
        points.append("empty_state")
    if {"activation_alpha", "activation_beta"} & set(attributes):
        try:
            used = parse_attributes(op, attributes, alpha_order="used")
            positional = parse_attributes(op, attributes, alpha_order="positional")
            if used.activations != positional.activations:
                points.append("alpha_order")
        except OnnxError:
            pass
    return points
