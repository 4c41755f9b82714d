"""One ONNX RNN/GRU/LSTM node evaluated with rnnsym's compiled symbolic cells.

Layers, top to bottom:

- :func:`evaluate` validates the inputs, applies ``layout``, converts ``W/R/B/P`` to canonical
  parameters (:mod:`rnnsym.onnx.convert`), and runs every direction over every group of samples
  that share a sequence length;
- :func:`direction_cell` builds the per-direction step as a symbolic cell
  (``rnnsym.builtin``) from the attributes and compiles it (``rnnsym.compile``): the step is the
  generated NumPy code of the cell, nothing else;
- :func:`_direction_forward` runs one direction, the reverse one time-aligned with the input.

Where the spec is silent or ambiguous, :class:`~rnnsym.onnx.readings.Readings` says which
reading is used (:mod:`rnnsym.onnx.readings`).

Fixed by the spec text and implemented as such: ``Y`` is ``[L, D, N, H]`` (``[N, L, D, H]`` for
layout 1) with the reverse direction time-aligned with ``X``; the reverse direction of sample b
starts at ``sequence_lens[b] - 1``; ``Y_h`` is the state after the last valid step (the reverse
direction's after ``X[0]``); absent ``B``, ``P``, ``initial_h``, ``initial_c`` are zeros.
"""
from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

import numpy as np

from rnnsym.onnx.attributes import Attributes, OnnxError
from rnnsym.onnx.convert import expect_shape, onnx_to_canonical
from rnnsym.onnx.readings import Readings


def direction_cell(attrs: Attributes, direction: int, *, peepholes: bool,
                   clip_before_h: bool = True):
    """The symbolic cell (``rnnsym.builtin``) of one direction of this node."""
    from rnnsym.cells import builtin

    specs = attrs.activations[direction]
    if attrs.op == "RNN":
        return builtin("elman", activation=specs[0], clip=attrs.clip)
    if attrs.op == "GRU":
        return builtin("gru", reset="after" if attrs.linear_before_reset else "before",
                       activations=specs, clip=attrs.clip)
    return builtin("lstm", peepholes=peepholes, coupled=bool(attrs.input_forget), clip=attrs.clip,
                   activations=specs, clip_before_h=clip_before_h)


@lru_cache(maxsize=512)
def _compiled_forward(attrs: Attributes, direction: int, peepholes: bool, clip_before_h: bool):
    from rnnsym.codegen.compile import compile_cell
    cell = direction_cell(attrs, direction, peepholes=peepholes, clip_before_h=clip_before_h)
    return compile_cell(cell).forward


def _key(attrs: Attributes) -> Attributes:
    return replace(attrs, given=())


def evaluate(attrs: Attributes, X, W, R, B=None, sequence_lens=None, initial_h=None,
             initial_c=None, P=None, *, readings: Readings = Readings(), wrap=None) -> dict:
    """All outputs of the node, in float64: ``{"Y", "Y_h"}`` (+ ``"Y_c"`` for LSTM), in the
    node's layout. ``wrap(forward) -> forward`` replaces each direction's step function (the
    checker's tolerance probes). Raises OnnxError naming the input and the expected shape."""
    op, D, layout = attrs.op, attrs.num_directions, attrs.layout
    X = np.asarray(X)
    seq = "[batch_size, seq_length, input_size]" if layout else \
        "[seq_length, batch_size, input_size]"
    if X.ndim != 3:
        raise OnnxError(f"input X: expected shape {seq}, got {X.shape}")
    X = np.asarray(X, np.float64)
    if layout:
        X = X.transpose(1, 0, 2)
    T, N, I = X.shape
    W = np.asarray(W)
    if W.ndim != 3 or W.shape[0] != D or W.shape[2] != I:
        G = attrs.gates
        raise OnnxError(f"input W: expected shape [num_directions, {G}*hidden_size, input_size] "
                        f"= ({D}, {G}*H, {I}) (direction={attrs.direction!r}), got {W.shape}")
    params = onnx_to_canonical(op, W, R, B, P, input_forget=bool(attrs.input_forget))
    H = np.shape(R)[-1]
    if attrs.hidden_size is not None and attrs.hidden_size != H:
        raise OnnxError(f"{op} attribute hidden_size={attrs.hidden_size} does not match input R "
                        f"of shape {np.shape(R)} (hidden_size {H})")

    def state(name, value):
        if value is None:
            return np.zeros((D, N, H))
        if layout:
            value = expect_shape(name, value, (N, D, H),
                                 "[batch_size, num_directions, hidden_size]").transpose(1, 0, 2)
        return np.asarray(expect_shape(name, value, (D, N, H),
                                       "[num_directions, batch_size, hidden_size]"), np.float64)

    h0 = state("initial_h", initial_h)
    c0 = state("initial_c", initial_c) if op == "LSTM" else None
    if initial_c is not None and op != "LSTM":
        raise OnnxError(f"input initial_c: exists for LSTM only, not {op}")
    lengths = _lengths(sequence_lens, T, N)

    Y = np.zeros((T, D, N, H))
    Y_h = np.zeros((D, N, H))
    Y_c = np.zeros((D, N, H)) if op == "LSTM" else None
    for d in range(D):
        forward = _compiled_forward(_key(attrs), d, P is not None, readings.clip_before_h)
        if wrap is not None:
            forward = wrap(forward)
        reverse = attrs.direction == "reverse" or d == 1
        for length in np.unique(lengths):
            idx = np.flatnonzero(lengths == length)
            s0 = {"h": h0[d, idx]}
            if c0 is not None:
                s0["c"] = c0[d, idx]
            if length == 0:
                final = s0 if readings.empty_state == "initial" else \
                    {k: np.zeros_like(v) for k, v in s0.items()}
            else:
                out, final = _direction_forward(forward, params[d], X[:length, idx], s0,
                                                reverse=reverse)
                Y[:length, d, idx] = out
            Y_h[d, idx] = final["h"]
            if Y_c is not None:
                Y_c[d, idx] = final["c"]
            if readings.y_past_length == "hold" and length < T:
                Y[length:, d, idx] = (s0["h"] if reverse else final["h"])[None]
    outputs = {"Y": Y, "Y_h": Y_h}
    if Y_c is not None:
        outputs["Y_c"] = Y_c
    if layout:
        outputs = {k: (v.transpose(2, 0, 1, 3) if k == "Y" else v.transpose(1, 0, 2))
                   for k, v in outputs.items()}
    return outputs


def next_layer_input(Y, layout: int = 0) -> np.ndarray:
    """A node's ``Y`` as the ``X`` of the next node of a stack: ``[seq, num_dir, batch, hidden]``
    -> ``[seq, batch, num_dir * hidden]`` (the directions side by side, forward first, as
    ``torch.onnx.export`` writes it: ``Transpose(perm=[0, 2, 1, 3])`` + ``Reshape([0, 0, -1])``);
    with ``layout=1`` ``[batch, seq, num_dir, hidden]`` -> ``[batch, seq, num_dir * hidden]``."""
    Y = np.asarray(Y)
    if Y.ndim != 4:
        raise OnnxError(f"Y: expected 4 axes [seq_length, num_directions, batch_size, "
                        f"hidden_size], got shape {Y.shape}")
    if not layout:
        Y = Y.transpose(0, 2, 1, 3)
    return Y.reshape(Y.shape[0], Y.shape[1], -1)


def _direction_forward(forward, params, x, state0, *, reverse: bool):
    """One direction over ``x`` (T, N, I); the reverse one reads ``x`` backwards and its
    outputs are realigned with input time (``Y[t]`` belongs to ``X[t]``)."""
    if not reverse:
        return forward(params, x, state0)
    outputs, final = forward(params, x[::-1], state0)
    return outputs[::-1], final


def _lengths(sequence_lens, T: int, N: int) -> np.ndarray:
    if sequence_lens is None:
        return np.full(N, T)
    lens = np.asarray(sequence_lens)
    if lens.shape != (N,):
        raise OnnxError(f"input sequence_lens: expected shape [batch_size] = ({N},), "
                        f"got {lens.shape}")
    if not np.issubdtype(lens.dtype, np.integer):
        raise OnnxError(f"input sequence_lens: expected int32 values, got dtype {lens.dtype}")
    if np.any(lens < 0) or np.any(lens > T):
        raise OnnxError(f"input sequence_lens: expected values in [0, seq_length={T}], "
                        f"got {lens.tolist()}")
    return lens.astype(np.int64)
