"""Flax (JAX) recurrent cells <-> canonical: ``flax.linen`` and ``flax.nnx``
``SimpleCell``, ``LSTMCell``, ``OptimizedLSTMCell``, ``GRUCell``, run through
``RNN`` / ``Bidirectional`` (``flax/linen/recurrent.py``, ``flax/nnx/nn/recurrent.py``).

``flax_layout.py`` holds the parameter layout (kernels ``(in, out)``, which biases each
class has) and the converters flax <-> canonical; they are re-exported here.

Carries: LSTM ``(c, h)`` (c first), else ``h``; ``Bidirectional`` takes and returns
``(forward, backward)`` and concatenates outputs [forward, backward] with the backward
output realigned to input time. Inputs are batch-major unless ``time_major=True``.
JAX computes in float32 unless x64 is enabled; for ``dtype="float64"`` the harness
enables it for the duration of the check.
"""
from __future__ import annotations

import contextlib
from typing import Mapping

import numpy as np

from rnnsym.frameworks import (DIRECTION_NAMES, Capabilities, Config, ContractError, Harness,
                               OutputError, UsageError, canonical_param_shapes, check_shape,
                               per_direction, split_directions)
# the layout and converters, re-exported: rnnsym.frameworks.flax is where users import them from
from rnnsym.frameworks.flax_layout import (  # noqa: F401
    CLASS_CELLS, DEFAULT_CLASSES, GATES, NATIVE_HIDDEN_BIAS, canonical_to_flax,
    flax_param_shapes, flax_to_canonical, layout)


# ------------------------------------------------------------------------------------------
# the harness


def _modules(api: str):
    if api == "nnx":
        from flax import nnx
        return nnx
    import flax.linen as nn
    return nn


@contextlib.contextmanager
def _x64(enabled: bool):
    import jax
    before = jax.config.jax_enable_x64
    if enabled and not before:
        jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        if enabled and not before:
            jax.config.update("jax_enable_x64", False)


def _nest(flat: Mapping[str, np.ndarray]) -> dict:
    tree: dict = {}
    for path, value in flat.items():
        node = tree
        *parents, leaf = path.split("/")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def _flatten(tree, prefix=()) -> dict:
    """Nested parameter dicts -> {"a/b": leaf}; a key that holds "/" itself stays quoted
    ("'a/b'"), so that a flat name cannot pass for a nested one."""
    out = {}
    for key, value in tree.items():
        path = prefix + (repr(key) if "/" in str(key) else str(key),)
        if isinstance(value, Mapping):
            out.update(_flatten(value, path))
        else:
            out["/".join(path)] = value
    return out


class FlaxHarness(Harness):
    """A Flax cell class run by ``RNN`` (``Bidirectional`` for two directions), one layer.

    ``api`` is "linen" or "nnx"; ``cls`` the cell class (a Flax one or a subclass with
    its parameter names). Variants: ``activation`` (SimpleCell ``activation_fn``) and,
    for GRU, ``hidden_bias``: the class's own ("n" linen, "none" nnx) checks Flax's
    math on Flax's parameters; ``hidden_bias=rzn`` checks the claim that the class
    computes PyTorch's GRU: parameters are drawn in the canonical (PyTorch) set and
    ported with ``canonical_to_flax(strict=False)``.

    Variable lengths go in as ``seq_lengths`` (the carry returned is the last valid one;
    a reverse direction flips each sequence within its length). Flax documents the outputs
    past a length as not zeroed, i.e. unspecified, so the harness zeroes them before the
    comparison: what is checked is every valid output and the final carry.
    """

    #: how variable lengths are fed -> whether they must be sorted (longest first)
    length_modes = {"seq_lengths": False}

    def __init__(self, cls, api: str, cell: str, name: str | None = None,
                 cls_name: str | None = None):
        self.cls, self.api, self.cell = cls, api, cell
        self.cls_name = cls_name or cls.__name__
        if CLASS_CELLS.get(self.cls_name) != cell:
            raise UsageError(f"flax: {api}.{self.cls_name} is not a {cell} cell (cells: "
                             + ", ".join(f"{c} -> {k}" for c, k in CLASS_CELLS.items()) + ")")
        self.name = name or f"flax.{api}.{self.cls_name}"
        variants, allowed = {}, {}
        if cell == "elman":
            variants["activation"] = allowed["activation"] = ("tanh", "relu")
        if cell == "gru":
            native = NATIVE_HIDDEN_BIAS[api]
            variants["hidden_bias"], allowed["hidden_bias"] = (native,), (native, "rzn")
        self.capabilities = Capabilities(
            bidirectional=(False, True), bias=(True,), batch_first=(False, True),
            initial_state=(False, True), variants=variants, allowed=allowed)
        self._compiled: dict = {}

    # -- parameters -------------------------------------------------------------------------
    def _claims_torch(self, config: Config) -> bool:
        return self.cell == "gru" and config.options.get("hidden_bias") == "rzn"

    def _one_shapes(self, config: Config) -> dict:
        if self._claims_torch(config):
            return canonical_param_shapes("gru", {"d_in": config.d_in, "d_h": config.d_h})
        return flax_param_shapes(self.api, self.cls_name, input_size=config.d_in,
                                 features=config.d_h)

    def param_shapes(self, config: Config) -> dict:
        one = self._one_shapes(config)
        return per_direction(one, config.bidirectional)

    def _split(self, config: Config, values) -> list[dict]:
        return split_directions(values, config.bidirectional)

    def to_canonical(self, config: Config, values) -> list:
        if self._claims_torch(config):
            return [[{k: np.asarray(v, np.float64) for k, v in one.items()}
                     for one in self._split(config, values)]]
        return [[flax_to_canonical(self.api, self.cls_name, one)
                 for one in self._split(config, values)]]

    def _flax_values(self, config: Config, values) -> list[dict]:
        """Per direction, the values to write into the Flax cell."""
        ones = self._split(config, values)
        if self._claims_torch(config):
            return [canonical_to_flax(self.api, self.cls_name, one, strict=False)
                    for one in ones]
        return ones

    # -- building ---------------------------------------------------------------------------
    def session(self):
        return contextlib.nullcontext()

    def _cell_kwargs(self, config: Config) -> dict:
        mod = _modules(self.api)
        kwargs = {"param_dtype": getattr(np, config.dtype)}
        if self.cell == "elman":
            kwargs["activation_fn"] = getattr(mod, config.options.get("activation", "tanh"))
        return kwargs

    def _make(self, config: Config):
        """The module and a jitted ``run(params, x, carry) -> (carry, outputs)``, cached
        per structure (jax caches the compiled code per shape)."""
        key = (config.d_in, config.d_h, config.bidirectional, config.batch_first,
               config.dtype, config.variant)
        if key in self._compiled:
            return self._compiled[key]
        import jax
        mod = _modules(self.api)
        time_major = not config.batch_first
        kwargs = self._cell_kwargs(config)
        try:
            if self.api == "linen":
                def rnn():
                    return mod.RNN(self.cls(features=config.d_h, **kwargs),
                                   time_major=time_major, return_carry=True)
                module = (mod.Bidirectional(rnn(), rnn(), time_major=time_major,
                                            return_carry=True)
                          if config.bidirectional else rnn())

                def apply(params, rest, x, carry, lengths=None):
                    return module.apply({"params": params}, x, initial_carry=carry,
                                        seq_lengths=lengths)
                x0 = np.zeros((2, 1, config.d_in) if time_major else (1, 2, config.d_in),
                              config.dtype)
                tree = jax.eval_shape(module.init, jax.random.key(0), x0)["params"]
                rest = None
            else:
                rngs = mod.Rngs(0)

                def rnn():
                    return mod.RNN(self.cls(config.d_in, config.d_h, rngs=rngs, **kwargs),
                                   time_major=time_major, return_carry=True)
                module = (mod.Bidirectional(rnn(), rnn(), time_major=time_major,
                                            return_carry=True)
                          if config.bidirectional else rnn())
                graph, params, rest = mod.split(module, mod.Param, ...)
                tree = mod.to_pure_dict(params)

                def apply(pure, rest, x, carry, lengths=None):
                    state = mod.State(params)
                    mod.replace_by_pure_dict(state, pure)
                    return mod.merge(graph, state, rest)(x, initial_carry=carry,
                                                         seq_lengths=lengths)
            shapes = {k: tuple(v.shape) for k, v in _flatten(tree).items()}
        except Exception as exc:  # noqa: BLE001 - a class that cannot be built
            raise ContractError(f"{self.name}: building RNN({self.cls_name}(features="
                                f"{config.d_h})) raised {type(exc).__name__}: {exc}") from exc
        expected = {}
        for d in (DIRECTION_NAMES if config.bidirectional else (None,)):
            for n, s in flax_param_shapes(self.api, self.cls_name, input_size=config.d_in,
                                          features=config.d_h).items():
                expected[f"{d}/{n}" if d else n] = s
        got = {_value_name(k): s for k, s in shapes.items()}
        if got != expected:
            missing = sorted(set(expected) - set(got))
            unexpected = sorted(set(got) - set(expected))
            wrong = sorted(k for k in set(got) & set(expected) if got[k] != expected[k])
            raise ContractError(f"{self.name}(features={config.d_h}) on d_in={config.d_in}: "
                                f"parameters missing {missing}, unexpected {unexpected}, "
                                f"wrong shapes {[(k, got[k], expected[k]) for k in wrong]}")
        entry = (jax.jit(apply), rest)
        self._compiled[key] = entry
        return entry

    def check_contract(self, config: Config) -> None:
        with _x64(config.dtype == "float64"):
            self._make(config)

    def _tree(self, config: Config, values) -> dict:
        """Per-direction Flax values -> the parameter tree the module takes."""
        ones = self._flax_values(config, values)
        cast = [{k: np.asarray(v, config.dtype) for k, v in one.items()} for one in ones]
        if config.bidirectional:
            return {f"{d}_rnn": {"cell": _nest(one)} for d, one in zip(DIRECTION_NAMES, cast)}
        return {"cell": _nest(cast[0])}

    # -- running ----------------------------------------------------------------------------
    def _inputs(self, config: Config, x, state0):
        """Canonical x and flat state0 -> the RNN's input and initial carry (None: none)."""
        c = config
        inp = np.asarray(x, c.dtype)
        if c.batch_first:
            inp = inp.transpose(1, 0, 2)
        carry = None
        if state0 is not None:
            def one(d):
                h = np.asarray(state0["h"][0, d], c.dtype)
                return (np.asarray(state0["c"][0, d], c.dtype), h) if self.cell == "lstm" \
                    else h
            carry = (one(0), one(1)) if c.bidirectional else one(0)
        return np.ascontiguousarray(inp), carry

    def run(self, config: Config, values, x, state0, lengths=None, length_mode=None):
        c = config
        with _x64(c.dtype == "float64"):
            fn, rest = self._make(c)
            inp, carry = self._inputs(c, x, state0)
            result = fn(self._tree(c, values), rest, inp, carry, _lengths(lengths))
            import jax
            result = jax.tree_util.tree_map(np.asarray, result)
        return self._flat(c, result, lengths)

    def _flat(self, config: Config, result, lengths=None) -> dict:
        """The RNN's ``(carry, outputs)`` -> flat outputs, structure and shapes checked; with
        ``lengths``, the outputs past each (unspecified in Flax) zeroed."""
        c = config
        if not (isinstance(result, (tuple, list)) and len(result) == 2):
            raise OutputError(f"RNN returned {type(result).__name__}, expected (carry, outputs)")
        carry_out, outputs = result
        shape = (c.B, c.T, c.D * c.d_h) if c.batch_first else (c.T, c.B, c.D * c.d_h)
        sym = "(B, T, D*features)" if c.batch_first else "(T, B, D*features)"
        out = check_shape("outputs", outputs, shape, sym, c)
        if c.batch_first:
            out = out.transpose(1, 0, 2)
        carries = list(carry_out) if c.bidirectional else [carry_out]
        hs, cs = [], []
        for d, one in enumerate(carries):
            if self.cell == "lstm":
                if not (isinstance(one, (tuple, list)) and len(one) == 2):
                    raise OutputError(f"carry {d}: expected (c, h), got {type(one).__name__}")
                cs.append(check_shape(f"carry {d} c", one[0], (c.B, c.d_h), "(B, features)", c))
                one = one[1]
            hs.append(check_shape(f"carry {d} h", one, (c.B, c.d_h), "(B, features)", c))
        out = out.reshape(c.T, c.B, c.D, c.d_h)
        if lengths is not None:
            out = np.where(_valid(lengths, c.T)[:, :, None, None], out, 0)
        flat = {"output": out, "h_n": np.stack(hs)[None]}
        if self.cell == "lstm":
            flat["c_n"] = np.stack(cs)[None]
        return flat

    # -- gradients (--gradients) ----------------------------------------------------------
    #: one layer (RNN / Bidirectional), both directions, seq_lengths
    supports_gradients = gradient_bidirectional = gradient_lengths = True

    def no_gradients_reason(self, variant: dict):
        """Why gradients cannot be checked under ``variant``, or None."""
        if variant.get("hidden_bias") == "rzn":
            return ("--gradients under --variant hidden_bias=rzn: the parameters are PyTorch's, "
                    "ported to Flax's set lossily, so their gradients are not the Flax cell's; "
                    "check the native variant (leave out --variant)")
        return None

    def gradients(self, config: Config, values, x, state0, upstream, lengths=None,
                  length_mode=None):
        """``(flat outputs, gradients)`` of ``L = Σ upstream ⊙ outputs`` by ``jax.vjp`` of the
        jitted RNN: the parameters' by their names here (``param:NAME``, e.g. ``ir/kernel``,
        ``forward/ir/kernel`` under Bidirectional), the input's ``x`` (T, B, d_in), the
        initial carry's ``h0``/``c0`` (1, D, B, features). With ``lengths``, the outputs
        past each are left out of ``L`` (unspecified in Flax, zeroed in the flat outputs)."""
        import jax
        c = config
        with _x64(c.dtype == "float64"):
            fn, rest = self._make(c)
            inp, carry = self._inputs(c, x, state0)
            result, vjp = jax.vjp(lambda tree, xs, h: fn(tree, rest, xs, h, _lengths(lengths)),
                                  self._tree(c, values), inp, carry)
            up_out = np.reshape(upstream["output"], (c.T, c.B, c.D * c.d_h))
            if lengths is not None:
                up_out = np.where(_valid(lengths, c.T)[:, :, None], up_out, 0)
            if c.batch_first:
                up_out = up_out.transpose(1, 0, 2)
            leaves = []                 # the carry's leaves: per direction (c, h) or h
            for d in range(c.D):
                if self.cell == "lstm":
                    leaves.append(upstream["c_n"][0, d])
                leaves.append(upstream["h_n"][0, d])
            carry_cot = jax.tree_util.tree_unflatten(
                jax.tree_util.tree_structure(result[0]),
                [np.asarray(v, c.dtype) for v in leaves])
            g_tree, g_x, g_carry = vjp(type(result)((carry_cot,
                                                     np.asarray(up_out, c.dtype))))
            result = jax.tree_util.tree_map(np.asarray, result)
        flat = self._flat(c, result, lengths)
        grads = {f"param:{_value_name(k)}": np.asarray(v, np.float64)
                 for k, v in _flatten(g_tree).items()}
        g_x = np.asarray(g_x, np.float64)
        grads["x"] = g_x.transpose(1, 0, 2) if c.batch_first else g_x
        per_dir = list(g_carry) if c.bidirectional else [g_carry]
        if self.cell == "lstm":
            grads["c0"] = np.stack([np.asarray(one[0], np.float64) for one in per_dir])[None]
            per_dir = [one[1] for one in per_dir]
        grads["h0"] = np.stack([np.asarray(one, np.float64) for one in per_dir])[None]
        return flat, grads


def _lengths(lengths):
    return None if lengths is None else np.asarray(lengths, np.int32)


def _valid(lengths, T: int) -> np.ndarray:
    """(T, B) booleans: step t is within sample b's length."""
    return np.arange(T)[:, None] < np.asarray(lengths)[None, :]


def _value_name(path: str) -> str:
    """A parameter's path in the module's tree -> its name here: ``cell/ir/kernel`` ->
    ``ir/kernel``, ``forward_rnn/cell/ir/kernel`` -> ``forward/ir/kernel``."""
    return (path.replace("forward_rnn/", "forward/").replace("backward_rnn/", "backward/")
            .replace("/cell/", "/").removeprefix("cell/"))


# ------------------------------------------------------------------------------------------
# resolution


def is_flax_class(obj) -> bool:
    """A class from flax (or a subclass of one), without importing flax."""
    return isinstance(obj, type) and any(
        (getattr(k, "__module__", "") or "").startswith("flax.") for k in obj.__mro__)


def flax_harness(target, cell: str) -> FlaxHarness:
    """``"flax"`` / ``"flax-linen"`` (flax.linen's SimpleCell, LSTMCell, GRUCell),
    ``"flax-nnx"`` (flax.nnx's), or a Flax cell class."""
    if isinstance(target, str):
        api = "nnx" if target.lower() == "flax-nnx" else "linen"
        try:
            mod = _modules(api)
        except ImportError as exc:
            raise UsageError(f"target {target}: flax is not installed ({exc})") from exc
        return FlaxHarness(getattr(mod, DEFAULT_CLASSES[cell]), api, cell)
    api = "nnx" if any((getattr(k, "__module__", "") or "").startswith("flax.nnx")
                       for k in target.__mro__) else "linen"
    base = next((k.__name__ for k in target.__mro__ if k.__name__ in CLASS_CELLS
                 and (k.__module__ or "").startswith("flax.")), None)
    if base is None:
        raise UsageError(f"{target.__qualname__}: a Flax class, but not one of "
                         f"{', '.join(CLASS_CELLS)} or a subclass of one")
    return FlaxHarness(target, api, cell, name=f"{target.__module__}.{target.__qualname__}",
                       cls_name=base)


def make_harness(spec: str, cell: str, options) -> FlaxHarness:
    """The flax, flax-linen, flax-nnx target's factory (rnnsym.frameworks.registry)."""
    return flax_harness(spec, cell)


__all__ = ["layout", "flax_param_shapes", "flax_to_canonical", "canonical_to_flax",
           "FlaxHarness", "flax_harness", "is_flax_class"]
