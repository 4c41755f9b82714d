"""Keras 3 ``SimpleRNN/LSTM/GRU`` (+ ``Bidirectional``) <-> canonical.

Keras runs on the backend ``KERAS_BACKEND`` names (torch, jax, tensorflow or numpy;
torch if unset: it is set here before keras is imported, and keras fixes it at import,
so one process checks one backend). The harness name says which, e.g.
``keras.layers.GRU [KERAS_BACKEND=jax]``. Layout (``keras/src/layers/rnn/*.py``), one layer::

    kernel            (d_in, G*u)    applied as x @ kernel        (= W_x.T)
    recurrent_kernel  (u, G*u)       applied as h @ recurrent_kernel
    bias              (G*u,)         SimpleRNN, LSTM, GRU(reset_after=False)
                      (2, 3u)        GRU(reset_after=True): row 0 input, row 1 recurrent

Gate blocks: LSTM ``i|f|c|o`` (= canonical i, f, g, o, no reordering);
GRU ``z|r|h`` (canonical r, z, n: blocks 0 and 1 swap). Biases:

- SimpleRNN: ``b_h = bias``.
- LSTM: one bias, ``b_x{g} = bias[g]``, ``b_h{g} = 0``; inverse puts ``b_x + b_h``.
- GRU reset_after=True: ``b_x = bias[0]``, ``b_h = bias[1]`` (lossless) and the
  canonical GRU with reset="after".
- GRU reset_after=False: ``b_x = bias``, ``b_h = 0`` and reset="before" (where only
  ``b_x + b_h`` matters, so the inverse ``bias = b_x + b_h`` is exact in effect).
- use_bias=False: canonical biases are zeros.

Input/output are batch-major ``(B, T, ·)``. ``Bidirectional(merge_mode="concat")``
concatenates [forward, backward] on the features with the backward output realigned
to input time; with ``return_state`` its states are the forward ones, then the
backward ones.

Variable lengths: a right-padded boolean mask ``(B, T)``, passed as ``mask=`` or made by
a ``Masking(0.0)`` layer from zero padding. A masked step repeats the previous output
and state (``zero_output_for_mask=False``); the returned state is the last valid
one. ``Bidirectional`` forces ``zero_output_for_mask=True`` when returning sequences,
so its outputs past each length are zeros (its backward layer meets the padding
first and starts at ``len-1``).
"""
from __future__ import annotations

import contextlib
import os

import numpy as np

from rnnsym.frameworks import (DIRECTION_NAMES, Capabilities, Config, Harness,
                               OutputError, check_shape, per_direction, split_directions,
                               torch_single_thread)

GATES = {"elman": ("h",), "lstm": tuple("ifgo"), "gru": tuple("rzn")}
#: canonical gate -> index of its block in Keras' kernel
KERAS_BLOCK = {"elman": {"h": 0}, "lstm": {"i": 0, "f": 1, "g": 2, "o": 3},
               "gru": {"z": 0, "r": 1, "n": 2}}
LAYER_NAMES = {"elman": "SimpleRNN", "lstm": "LSTM", "gru": "GRU"}


def _keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras
    return keras


def keras_backend() -> str:
    """The backend keras runs on in this process (imports keras)."""
    return _keras().backend.backend()


def keras_weight_shapes(cell: str, *, input_size: int, units: int, use_bias: bool = True,
                        reset_after: bool = True) -> dict[str, tuple]:
    """Weight names -> shapes of one Keras layer, in ``layer.weights`` order."""
    G = len(GATES[cell])
    shapes = {"kernel": (input_size, G * units), "recurrent_kernel": (units, G * units)}
    if use_bias:
        shapes["bias"] = (2, 3 * units) if cell == "gru" and reset_after else (G * units,)
    return shapes


def keras_to_canonical(cell: str, weights, *, use_bias: bool = True,
                       reset_after: bool = True) -> dict[str, np.ndarray]:
    """One Keras layer's {"kernel", "recurrent_kernel", ["bias"]} -> canonical dict."""
    kernel = np.asarray(weights["kernel"], np.float64)
    recurrent = np.asarray(weights["recurrent_kernel"], np.float64)
    G = len(GATES[cell])
    units = recurrent.shape[0]
    if use_bias:
        bias = np.asarray(weights["bias"], np.float64)
        b_in, b_rec = (bias[0], bias[1]) if bias.ndim == 2 else (bias, np.zeros(G * units))
    else:
        b_in = b_rec = np.zeros(G * units)

    def block(arr, gate):
        k = KERAS_BLOCK[cell][gate]
        return arr[..., k * units:(k + 1) * units]

    if cell == "elman":
        return {"W_xh": kernel.T, "W_hh": recurrent.T, "b_h": b_in + b_rec}
    p = {}
    for g in GATES[cell]:
        p[f"W_x{g}"] = block(kernel, g).T
        p[f"W_h{g}"] = block(recurrent, g).T
        p[f"b_x{g}"] = block(b_in, g)
        p[f"b_h{g}"] = block(b_rec, g)
    return p


def canonical_to_keras(cell: str, params, *, use_bias: bool = True,
                       reset_after: bool = True) -> dict[str, np.ndarray]:
    """Canonical dict -> one Keras layer's weights (inverse of keras_to_canonical;
    LSTM and reset-before GRU sum b_x + b_h into Keras' single bias)."""
    if cell == "elman":
        out = {"kernel": params["W_xh"].T, "recurrent_kernel": params["W_hh"].T}
        if use_bias:
            out["bias"] = params["b_h"]
        return out
    order = sorted(GATES[cell], key=lambda g: KERAS_BLOCK[cell][g])
    out = {"kernel": np.concatenate([params[f"W_x{g}"].T for g in order], axis=1),
           "recurrent_kernel": np.concatenate([params[f"W_h{g}"].T for g in order], axis=1)}
    if use_bias:
        b_in = np.concatenate([params[f"b_x{g}"] for g in order])
        b_rec = np.concatenate([params[f"b_h{g}"] for g in order])
        out["bias"] = np.stack([b_in, b_rec]) if cell == "gru" and reset_after else b_in + b_rec
    return out


class KerasHarness(Harness):
    """``keras.layers.SimpleRNN/LSTM/GRU(return_sequences=True, return_state=True)``,
    wrapped in ``Bidirectional`` for two directions. One layer (stack Keras layers
    yourself); variants: ``activation`` (SimpleRNN), ``reset`` (GRU ``reset_after``).
    Variable-length batches: a ``mask=`` argument or a ``Masking`` layer in front."""

    #: how variable lengths are fed -> whether they must be sorted (longest first)
    length_modes = {"mask argument": False, "Masking layer": False}
    #: Keras 3.15.1 drops a Masking layer's mask when ``initial_state`` is passed too
    #: (``Layer.__call__`` only fills ``mask`` in for a single tensor argument): the
    #: whole padding is processed as valid. Known, so by default the harness passes
    #: ``mask=`` explicitly in that combination; True checks it as is (the check then
    #: reports "lengths/mask ignored", see tests/test_check_lengths.py).
    masking_layer_with_initial_state = False

    def __init__(self, cell: str):
        self.cell = cell
        self.backend = keras_backend()
        self.name = f"keras.layers.{LAYER_NAMES[cell]} [KERAS_BACKEND={self.backend}]"
        self.environment = {"KERAS_BACKEND": self.backend}
        variants = {}
        if cell == "elman":
            variants["activation"] = ("tanh", "relu")
        if cell == "gru":
            variants["reset"] = ("after", "before")
        self.capabilities = Capabilities(bidirectional=(False, True), bias=(True, False),
                                         initial_state=(False, True), variants=variants)

    def _reset_after(self, config: Config) -> bool:
        return config.options.get("reset", "after") == "after"

    def session(self):
        return torch_single_thread() if self.backend == "torch" else contextlib.nullcontext()

    def param_shapes(self, config: Config) -> dict:
        one = keras_weight_shapes(self.cell, input_size=config.d_in, units=config.d_h,
                                  use_bias=config.bias, reset_after=self._reset_after(config))
        return per_direction(one, config.bidirectional)

    def _split(self, config: Config, values) -> list[dict]:
        return split_directions(values, config.bidirectional)

    def to_canonical(self, config: Config, values) -> list:
        return [[keras_to_canonical(self.cell, w, use_bias=config.bias,
                                    reset_after=self._reset_after(config))
                 for w in self._split(config, values)]]

    def build(self, config: Config):
        keras = _keras()
        kwargs = dict(units=config.d_h, return_sequences=True, return_state=True,
                      use_bias=config.bias, dtype=config.dtype)
        if self.cell == "elman":
            kwargs["activation"] = config.options.get("activation", "tanh")
        if self.cell == "gru":
            kwargs["reset_after"] = self._reset_after(config)
        layer = getattr(keras.layers, LAYER_NAMES[self.cell])(**kwargs)
        if config.bidirectional:
            layer = keras.layers.Bidirectional(layer, merge_mode="concat", dtype=config.dtype)
        layer.build((config.B, config.T, config.d_in))
        return layer

    def _directions(self, layer, config: Config) -> list:
        if config.bidirectional:
            return [layer.forward_layer, layer.backward_layer]
        return [layer]

    def check_contract(self, config: Config) -> None:
        self.build(config)

    def padded_length(self, lengths, T: int) -> int:
        """A layer that ignores its mask runs all T steps."""
        return T

    def length_padding(self, config: Config) -> str:
        """Outputs past a length: the last valid output repeated, zeros under
        Bidirectional (see the module docstring)."""
        return "zero" if config.bidirectional else "repeat"

    def _loaded(self, config: Config, values):
        """The layer for ``config`` with ``values`` written into it, and its variables by the
        values' names (``kernel``, or ``forward/kernel`` under Bidirectional)."""
        layer = self.build(config)
        names = list(keras_weight_shapes(self.cell, input_size=config.d_in, units=config.d_h,
                                         use_bias=config.bias,
                                         reset_after=self._reset_after(config)))
        variables = {}
        for d, (sub, weights) in enumerate(zip(self._directions(layer, config),
                                               self._split(config, values))):
            sub.set_weights([weights[n] for n in names])
            prefix = f"{DIRECTION_NAMES[d]}/" if config.bidirectional else ""
            variables.update({prefix + n: v for n, v in zip(names, sub.weights)})
        return layer, variables

    def _initial_state(self, config: Config, state0) -> list:
        """Flat ``state0`` -> Keras' ``initial_state`` list: per direction h (and c)."""
        keys = ["h", "c"] if self.cell == "lstm" else ["h"]
        return [np.asarray(state0[k][0, d], config.dtype) for d in range(config.D)
                for k in keys]

    def _flat(self, config: Config, result: list) -> dict:
        """The layer's outputs (NumPy) -> flat outputs, shapes checked."""
        n_states = 2 if self.cell == "lstm" else 1
        if len(result) != 1 + n_states * config.D:
            raise OutputError(f"layer returned {len(result)} tensors, expected "
                              f"{1 + n_states * config.D}")
        c = config
        out = check_shape("output", result[0], (c.B, c.T, c.D * c.d_h), "(B, T, D*units)", c)
        states = [check_shape(f"state {i}", s, (c.B, c.d_h), "(B, units)", c)
                  for i, s in enumerate(result[1:])]
        flat = {"output": out.transpose(1, 0, 2).reshape(c.T, c.B, c.D, c.d_h),
                "h_n": np.stack(states[0::n_states])[None]}
        if self.cell == "lstm":
            flat["c_n"] = np.stack(states[1::n_states])[None]
        return flat

    def run(self, config: Config, values, x, state0, lengths=None, length_mode=None):
        keras = _keras()
        layer, _ = self._loaded(config, values)
        inp = np.ascontiguousarray(np.asarray(x).transpose(1, 0, 2)).astype(config.dtype)
        kwargs = {}
        if state0 is not None:
            kwargs["initial_state"] = self._initial_state(config, state0)
        if lengths is not None:
            mask = np.arange(config.T)[None, :] < np.asarray(lengths)[:, None]
            if length_mode == "Masking layer" and (state0 is None or
                                                   self.masking_layer_with_initial_state):
                inp = np.where(mask[:, :, None], inp, 0).astype(config.dtype)
                inp = keras.layers.Masking(0.0, dtype=config.dtype)(inp)
            else:
                kwargs["mask"] = mask
        result = [keras.ops.convert_to_numpy(r) for r in layer(inp, **kwargs)]
        return self._flat(config, result)

    # --- gradients (--gradients) ---------------------------------------------------------
    #: one layer (Keras has no stacks), both directions, variable lengths (a mask)
    supports_gradients = gradient_bidirectional = gradient_lengths = True

    def no_gradients_reason(self, variant: dict):
        """Why this backend cannot give gradients, or None."""
        if self.backend not in _DIFFERENTIATE:
            return (f"--gradients on Keras needs a backend with automatic differentiation "
                    f"(torch, tensorflow or jax); KERAS_BACKEND={self.backend} has none")
        return None

    def gradients(self, config: Config, values, x, state0, upstream, lengths=None,
                  length_mode=None):
        """``(flat outputs, gradients)`` of ``L = Σ upstream ⊙ outputs``, differentiated by the
        backend itself (torch autograd, ``tf.GradientTape``, ``jax.vjp`` of
        ``layer.stateless_call``): the weights' by their Keras names (``param:NAME``,
        ``param:forward/NAME`` under Bidirectional), the input's ``x`` (T, B, d_in), the
        initial state's ``h0``/``c0`` (1, D, B, units); one layer (``--gradients``). With
        ``lengths`` the layer gets ``mask=`` (as :meth:`run` passes it beside an initial
        state, which a gradient check always gives: a Masking layer's mask would be dropped)."""
        layer, variables = self._loaded(config, values)
        c = config
        inp = np.ascontiguousarray(np.asarray(x).transpose(1, 0, 2)).astype(c.dtype)
        init = self._initial_state(c, state0)
        up_out = np.ascontiguousarray(np.reshape(upstream["output"], (c.T, c.B, c.D * c.d_h))
                                      .transpose(1, 0, 2)).astype(c.dtype)
        keys = ["h", "c"] if self.cell == "lstm" else ["h"]
        up_states = [np.asarray(upstream[f"{k}_n"][0, d], c.dtype) for d in range(c.D)
                     for k in keys]
        mask = None if lengths is None else \
            np.arange(c.T)[None, :] < np.asarray(lengths)[:, None]
        result, g_vars, g_x, g_init = _DIFFERENTIATE[self.backend](
            layer, list(variables.values()), inp, init, up_out, up_states, mask)
        flat = self._flat(c, result)
        grads = {f"param:{n}": np.asarray(g, np.float64) for n, g in zip(variables, g_vars)}
        grads["x"] = np.asarray(g_x, np.float64).transpose(1, 0, 2)
        for i, k in enumerate(keys):
            grads[f"{k}0"] = np.stack([np.asarray(g_init[d * len(keys) + i], np.float64)
                                       for d in range(c.D)])[None]
        return flat, grads


# How each backend differentiates ``L = <up_out, output> + Σ <up_state, state>`` through a
# layer: ``(layer, variables, x, initial states, up_out, up_states, mask or None) ->
# (outputs as NumPy, gradient per variable, gradient of x, gradient per initial state)``; an
# unconnected input's gradient is zeros.
def _torch_gradients(layer, variables, inp, init, up_out, up_states, mask):
    import torch
    xt = torch.from_numpy(inp).requires_grad_(True)
    hx = [torch.from_numpy(np.ascontiguousarray(s)).requires_grad_(True) for s in init]
    tensors = [v.value for v in variables]
    for t in tensors:
        t.grad = None
    with torch.enable_grad():
        result = layer(xt, initial_state=hx, **({} if mask is None else {"mask": mask}))
        loss = sum((r * torch.from_numpy(u)).sum()
                   for r, u in zip(result, [up_out] + up_states))
        loss.backward()

    def grad(t):
        return np.zeros(tuple(t.shape)) if t.grad is None else t.grad.detach().cpu().numpy()
    return ([r.detach().cpu().numpy() for r in result], [grad(t) for t in tensors], grad(xt),
            [grad(h) for h in hx])


def _tensorflow_gradients(layer, variables, inp, init, up_out, up_states, mask):
    import tensorflow as tf
    xt = tf.constant(inp)
    hx = [tf.constant(s) for s in init]
    tensors = [v.value for v in variables]
    with tf.GradientTape() as tape:
        tape.watch([xt] + hx + tensors)
        result = layer(xt, initial_state=hx, **({} if mask is None else {"mask": mask}))
        loss = tf.add_n([tf.reduce_sum(r * u) for r, u in zip(result, [up_out] + up_states)])
    g = tape.gradient(loss, [xt] + hx + tensors)
    g = [np.zeros(tuple(t.shape)) if d is None else np.asarray(d)
         for t, d in zip([xt] + hx + tensors, g)]
    return [np.asarray(r) for r in result], g[1 + len(hx):], g[0], g[1:1 + len(hx)]


def _jax_gradients(layer, variables, inp, init, up_out, up_states, mask):
    import jax
    import jax.numpy as jnp
    trainable = list(layer.trainable_variables)
    non_trainable = [v.value for v in layer.non_trainable_variables]

    def f(tv, x, hs):
        out, _ = layer.stateless_call(tv, non_trainable, x, initial_state=list(hs),
                                      **({} if mask is None else {"mask": mask}))
        return list(out)
    result, vjp = jax.vjp(f, [v.value for v in trainable], jnp.asarray(inp),
                          [jnp.asarray(s) for s in init])
    cot = [jnp.asarray(u, r.dtype) for r, u in zip(result, [up_out] + up_states)]
    g_tv, g_x, g_hs = vjp(cot)
    index = {id(v): i for i, v in enumerate(trainable)}
    return ([np.asarray(r) for r in result], [np.asarray(g_tv[index[id(v)]]) for v in variables],
            np.asarray(g_x), [np.asarray(g) for g in g_hs])


_DIFFERENTIATE = {"torch": _torch_gradients, "tensorflow": _tensorflow_gradients,
                  "jax": _jax_gradients}


def keras_harness(cell: str) -> KerasHarness:
    return KerasHarness(cell)


def make_harness(spec: str, cell: str, options) -> KerasHarness:
    """The keras target's factory (rnnsym.frameworks.registry)."""
    return keras_harness(cell)
