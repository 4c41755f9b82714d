"""Multi-layer and bidirectional RNNs in rnnsym's canonical convention.

A *stack* is ``num_layers`` layers of ``num_directions`` (1 or 2) independent
single-direction layers. Everything here is plain NumPy and framework-free; the
framework converters (``torch``, ``keras``, later ONNX) translate to and from these
nested structures, and the checker's oracle runs the reference cells through
:func:`stack_forward`.

Nesting (``L`` = num_layers, ``D`` = num_directions, direction 0 = forward, 1 = reverse)::

    params[layer][direction]  canonical parameter dict of one layer/direction
    state[layer][direction]   canonical state dict ({"h"} or {"h", "c"}) or None

Semantics (the same as ``torch.nn.RNN/LSTM/GRU``, ONNX ``bidirectional`` and Keras
``Bidirectional(merge_mode="concat")``)::

    inp = x                                                   # (T, B, d_in)
    for layer in range(L):
        fwd, state_f = forward(params[layer][0], inp,       state0[layer][0])
        bwd, state_b = forward(params[layer][1], inp[::-1], state0[layer][1])
        bwd = bwd[::-1]                                       # realign with input time
        inp = concat([fwd, bwd], axis=-1)                     # (T, B, D * d_out)
    return inp, [[state_f, state_b], ...]

The reverse direction's output at time ``t`` is the one computed after it has seen
``x[T-1], ..., x[t]``; its final state is the one after seeing ``x[0]`` (i.e. it
goes with ``outputs[0]``, not ``outputs[-1]``).

With ``lengths`` (variable-length batches, torch ``PackedSequence`` / ONNX
``sequence_lens``): sample ``b`` only uses ``x[:lengths[b], b]``; its outputs past
its length are zero, its final state is the one after its last valid step, and the
reverse direction starts at ``lengths[b] - 1``.
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np

LayerForward = Callable[[Mapping, np.ndarray, "Mapping | None"], "tuple[np.ndarray, dict]"]
Nested = Sequence[Sequence[Mapping]]


def num_directions(bidirectional: bool) -> int:
    """1 for a forward-only stack, 2 for a bidirectional one."""
    return 2 if bidirectional else 1


def direction_forward(forward: LayerForward, params, x, state0=None, *, reverse=False):
    """Run one direction of one layer; the reverse direction's outputs are realigned
    with input time (``outputs[t]`` belongs to ``x[t]``)."""
    if not reverse:
        return forward(params, x, state0)
    outputs, final = forward(params, x[::-1], state0)
    return outputs[::-1], final


def _check_nesting(label, nested, num_layers, num_dirs):
    if len(nested) != num_layers or any(len(layer) != num_dirs for layer in nested):
        got = [len(layer) for layer in nested]
        raise ValueError(f"{label}: expected {num_layers} layers x {num_dirs} directions, "
                         f"got {len(nested)} layers with {got} directions")


def stack_forward(forward: LayerForward, params: Nested, x, state0: "Nested | None" = None,
                  *, lengths=None):
    """Run a stack of layers (see the module docstring for the nesting).

    forward  single-layer, single-direction forward in the canonical convention,
             ``forward(params, x, state0) -> (outputs (T, B, d_out), final_state)``
    params   ``params[layer][direction]``; D = len(params[0]) is 1 or 2
    x        (T, B, d_in)
    state0   ``state0[layer][direction]`` (a state dict or None), or None for zeros
    lengths  optional (B,) ints in [1, T]: per-sample valid lengths
    Returns ``(outputs (T, B, D * d_out), final[layer][direction])``.
    """
    num_layers = len(params)
    if num_layers == 0:
        raise ValueError("params: expected at least one layer, got 0")
    num_dirs = len(params[0])
    if num_dirs not in (1, 2):
        raise ValueError(f"params[0]: expected 1 or 2 directions, got {num_dirs}")
    _check_nesting("params", params, num_layers, num_dirs)
    if state0 is not None:
        _check_nesting("state0", state0, num_layers, num_dirs)
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"x: expected shape (T, B, d_in), got {x.shape}")
    if lengths is not None:
        return _stack_forward_lengths(forward, params, x, state0, np.asarray(lengths))

    inp, final = x, []
    for layer in range(num_layers):
        outs, states = [], []
        for direction in range(num_dirs):
            s0 = None if state0 is None else state0[layer][direction]
            out, state = direction_forward(forward, params[layer][direction], inp, s0,
                                           reverse=direction == 1)
            outs.append(out)
            states.append(state)
        inp = np.concatenate(outs, axis=-1)
        final.append(states)
    return inp, final


def _stack_forward_lengths(forward, params, x, state0, lengths):
    T, B = x.shape[:2]
    if lengths.shape != (B,) or np.any(lengths < 1) or np.any(lengths > T):
        raise ValueError(f"lengths: expected shape ({B},) with values in [1, {T}], got {lengths!r}")
    per_sample = []
    for b in range(B):
        s0 = None if state0 is None else [[{k: v[b:b + 1] for k, v in s.items()} for s in layer]
                                          for layer in state0]
        per_sample.append(stack_forward(forward, params, x[:lengths[b], b:b + 1], s0))
    width = per_sample[0][0].shape[-1]
    outputs = np.zeros((T, B, width), dtype=per_sample[0][0].dtype)
    for b, (out, _) in enumerate(per_sample):
        outputs[:lengths[b], b] = out[:, 0]
    final = [[{k: np.concatenate([ps[1][layer][d][k] for ps in per_sample], axis=0)
               for k in per_sample[0][1][layer][d]}
              for d in range(len(params[0]))]
             for layer in range(len(params))]
    return outputs, final


def split_directions(outputs, num_dirs: int):
    """(T, B, D * d) -> list of D arrays (T, B, d): [forward, reverse]."""
    outputs = np.asarray(outputs)
    if outputs.shape[-1] % num_dirs:
        raise ValueError(f"outputs: last axis {outputs.shape[-1]} is not divisible by "
                         f"num_directions={num_dirs}")
    return np.split(outputs, num_dirs, axis=-1)


def layer_input_sizes(d_in: int, d_out: int, num_layers: int, num_dirs: int) -> list[int]:
    """Input width of every layer: d_in for layer 0, D * d_out after that."""
    return [d_in] + [num_dirs * d_out] * (num_layers - 1)
