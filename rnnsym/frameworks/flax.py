"""Flax (JAX) recurrent cells <-> canonical: ``flax.linen`` and ``flax.nnx``
``SimpleCell``, ``LSTMCell``, ``OptimizedLSTMCell``, ``GRUCell``, run through
``RNN`` / ``Bidirectional`` (``flax/linen/recurrent.py``, ``flax/nnx/nn/recurrent.py``).

Kernels are ``(in, out)``, applied as ``x @ kernel`` (= canonical ``W.T``). One layer's
parameters, by path (``u`` = features)::

    linen SimpleCell       i/kernel (d_in, u)  i/bias (u,)  h/kernel (u, u)
    nnx   SimpleCell       dense_i/kernel      dense_i/bias dense_h/kernel
    linen LSTMCell,        i{i,f,g,o}/kernel (d_in, u)      h{i,f,g,o}/kernel (u, u)
      OptimizedLSTMCell                                     h{i,f,g,o}/bias (u,)
    nnx   LSTMCell         the same with ``if_`` for ``if``
    nnx   OptimizedLSTMCell dense_i/kernel (d_in, 4u)  dense_h/kernel (u, 4u)  dense_h/bias (4u,)
                           blocks i|f|g|o (not loadable from nnx.LSTMCell's names)
    linen GRUCell          i{r,z,n}/kernel  i{r,z,n}/bias  h{r,z,n}/kernel  hn/bias
    nnx   GRUCell          dense_i/kernel (d_in, 3u)  dense_i/bias (3u,)  dense_h/kernel (u, 3u)
                           blocks r|z|n

The math is PyTorch's (LSTM gates i, f, g, o; GRU with the reset applied after the
recurrent matmul) with fewer bias vectors. LSTM: one bias per gate, ``b_x{g} = 0``,
``b_h{g} = h{g}/bias``; the inverse puts ``b_x + b_h`` there (exact in effect).
GRU: ``b_x{g} = i{g}/bias``; linen has the recurrent bias of the candidate only
(rnnsym ``gru(hidden_bias="n")``: ``b_hr``, ``b_hz`` would only add to ``b_xr``,
``b_xz``), nnx has none at all (``gru(hidden_bias="none")``: ``n = tanh(W_xn x + b_xn
+ r ⊙ (W_hn h))``, although its docstring says ``+ b_hn``; google/flax#5594). So a
PyTorch GRU converts into linen exactly and into nnx only when ``b_hn = 0``.

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

GATES = {"elman": ("h",), "lstm": tuple("ifgo"), "gru": tuple("rzn")}
#: the class each cell is checked with by default
DEFAULT_CLASSES = {"elman": "SimpleCell", "lstm": "LSTMCell", "gru": "GRUCell"}
CLASS_CELLS = {"SimpleCell": "elman", "LSTMCell": "lstm", "OptimizedLSTMCell": "lstm",
               "GRUCell": "gru"}
#: GRUCell's recurrent biases (rnnsym's gru(hidden_bias=...)) per API
NATIVE_HIDDEN_BIAS = {"linen": "n", "nnx": "none"}


# ------------------------------------------------------------------------------------------
# layout: where each canonical block lives


def layout(api: str, cls_name: str) -> dict:
    """Canonical name -> (flax path, block index or None, transpose) for one cell, plus
    ``"_blocks"``: flax path -> number of gate blocks stacked on its last axis.

    Canonical names are those of rnnsym's cell with Flax's own biases (GRU:
    ``hidden_bias`` "n" for linen, "none" for nnx; LSTM: ``b_h{g}`` only).
    """
    if api not in ("linen", "nnx") or cls_name not in CLASS_CELLS:
        raise UsageError(f"flax: no layout for {api}.{cls_name} (known: "
                         f"{', '.join(CLASS_CELLS)} in flax.linen and flax.nnx)")
    cell = CLASS_CELLS[cls_name]
    gates = GATES[cell]
    out: dict = {}
    fused = api == "nnx" and cls_name in ("OptimizedLSTMCell", "GRUCell")
    if cell == "elman":
        i, h = ("dense_i", "dense_h") if api == "nnx" else ("i", "h")
        out = {"W_xh": (f"{i}/kernel", None), "W_hh": (f"{h}/kernel", None),
               "b_h": (f"{i}/bias", None)}
    elif fused:
        for k, g in enumerate(gates):
            out[f"W_x{g}"] = ("dense_i/kernel", k)
            out[f"W_h{g}"] = ("dense_h/kernel", k)
            if cell == "lstm":
                out[f"b_h{g}"] = ("dense_h/bias", k)
            else:
                out[f"b_x{g}"] = ("dense_i/bias", k)
    else:
        for g in gates:
            xname = "if_" if (api == "nnx" and g == "f") else f"i{g}"
            out[f"W_x{g}"] = (f"{xname}/kernel", None)
            out[f"W_h{g}"] = (f"h{g}/kernel", None)
            if cell == "lstm":
                out[f"b_h{g}"] = (f"h{g}/bias", None)
            else:
                out[f"b_x{g}"] = (f"i{g}/bias", None)
        if cell == "gru":
            out["b_hn"] = ("hn/bias", None)
    blocks = {}
    for path, k in out.values():
        blocks[path] = len(gates) if k is not None else 1
    out["_blocks"] = blocks
    return out


def flax_param_shapes(api: str, cls_name: str, *, input_size: int, features: int) -> dict:
    """Flax parameter paths of one cell -> shapes (sorted by path, as Flax stores them)."""
    lay = layout(api, cls_name)
    shapes = {}
    for name, (path, _k) in _entries(lay):
        n = lay["_blocks"][path]
        if "/bias" in path:
            shapes[path] = (n * features,)
        else:
            rows = input_size if name.startswith("W_x") else features
            shapes[path] = (rows, n * features)
    return dict(sorted(shapes.items()))


def _entries(lay: dict):
    return [(name, where) for name, where in lay.items() if name != "_blocks"]


def _block(arr: np.ndarray, k, n: int) -> np.ndarray:
    if k is None:
        return arr
    width = arr.shape[-1] // n
    return arr[..., k * width:(k + 1) * width]


def flax_to_canonical(api: str, cls_name: str, values: Mapping[str, np.ndarray],
                      *, hidden_bias: str | None = None) -> dict[str, np.ndarray]:
    """One cell's Flax parameters -> canonical dict (float64).

    GRU: the parameters of ``gru(hidden_bias=...)``: by default the class's own ("n"
    linen, "none" nnx); ``hidden_bias="rzn"`` gives PyTorch's set with zeros where
    Flax has no bias. LSTM: ``b_x{g}`` are zeros.
    """
    lay = layout(api, cls_name)
    cell = CLASS_CELLS[cls_name]
    out = {}
    for name, (path, k) in _entries(lay):
        arr = _block(np.asarray(values[path], np.float64), k, lay["_blocks"][path])
        out[name] = arr if arr.ndim == 1 else arr.T
    if cell == "lstm":
        for g in GATES["lstm"]:
            out[f"b_x{g}"] = np.zeros_like(out[f"b_h{g}"])
    if cell == "gru":
        want = hidden_bias or NATIVE_HIDDEN_BIAS[api]
        zeros = np.zeros_like(out["b_xr"])
        for g in GATES["gru"]:
            if g in want.replace("none", ""):
                out.setdefault(f"b_h{g}", zeros)
            else:
                bias = out.pop(f"b_h{g}", None)
                if bias is not None and np.any(bias):
                    raise ValueError(f"flax_to_canonical: b_h{g} is not zero and has no place "
                                     f"in gru(hidden_bias={want!r})")
    return out


def canonical_to_flax(api: str, cls_name: str, params: Mapping[str, np.ndarray], *,
                      strict: bool = True) -> dict[str, np.ndarray]:
    """Canonical dict -> one cell's Flax parameters (inverse of flax_to_canonical).

    Biases that only add are summed into Flax's one bias (LSTM ``b_x + b_h``; GRU
    ``b_xr + b_hr``, ``b_xz + b_hz``). A non-zero ``b_hn`` has no place in nnx's
    GRUCell: ``strict`` raises ValueError, ``strict=False`` drops it (what a port
    that maps names one to one does; the checker shows what that costs).
    """
    lay = layout(api, cls_name)
    cell = CLASS_CELLS[cls_name]
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    if cell == "lstm":
        p = {**p, **{f"b_h{g}": p.get(f"b_x{g}", 0) + p.get(f"b_h{g}", 0) for g in "ifgo"}}
    if cell == "gru":
        for g in "rz":
            if f"b_h{g}" in p:
                p[f"b_x{g}"] = p[f"b_x{g}"] + p.pop(f"b_h{g}")
        if "b_hn" in p and "b_hn" not in lay:
            b_hn = p.pop("b_hn")
            if strict and np.any(b_hn):
                raise ValueError(f"canonical_to_flax: {api}.{cls_name} has no recurrent bias "
                                 "b_hn (n = tanh(W_xn x + b_xn + r*(W_hn h)), "
                                 "google/flax#5594); b_hn must be zero, got "
                                 f"{np.array2string(b_hn, precision=4)}")
        if "b_hn" in lay and "b_hn" not in p:
            p["b_hn"] = np.zeros_like(p["b_xn"])
    parts: dict[str, list] = {}
    for name, (path, k) in _entries(lay):
        value = p[name] if p[name].ndim == 1 else p[name].T
        parts.setdefault(path, [None] * lay["_blocks"][path])[k or 0] = value
    return {path: np.concatenate(blocks, axis=-1) for path, blocks in sorted(parts.items())}


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
    """

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

                def apply(params, rest, x, carry):
                    return module.apply({"params": params}, x, initial_carry=carry)
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

                def apply(pure, rest, x, carry):
                    state = mod.State(params)
                    mod.replace_by_pure_dict(state, pure)
                    return mod.merge(graph, state, rest)(x, initial_carry=carry)
            shapes = {k: tuple(v.shape) for k, v in _flatten(tree).items()}
        except Exception as exc:  # noqa: BLE001 - a class that cannot be built
            raise ContractError(f"{self.name}: building RNN({self.cls_name}(features="
                                f"{config.d_h})) raised {type(exc).__name__}: {exc}") from exc
        expected = {}
        for d in (DIRECTION_NAMES if config.bidirectional else (None,)):
            for n, s in flax_param_shapes(self.api, self.cls_name, input_size=config.d_in,
                                          features=config.d_h).items():
                expected[f"{d}/{n}" if d else n] = s
        got = {k.replace("forward_rnn/", "forward/").replace("backward_rnn/", "backward/")
               .replace("/cell/", "/").removeprefix("cell/"): s for k, s in shapes.items()}
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

    def probe(self, config: Config) -> None:
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
    def run(self, config: Config, values, x, state0):
        c = config
        with _x64(c.dtype == "float64"):
            fn, rest = self._make(c)
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
            result = fn(self._tree(c, values), rest, np.ascontiguousarray(inp), carry)
            import jax
            result = jax.tree_util.tree_map(np.asarray, result)
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
        flat = {"output": out.reshape(c.T, c.B, c.D, c.d_h), "h_n": np.stack(hs)[None]}
        if self.cell == "lstm":
            flat["c_n"] = np.stack(cs)[None]
        return flat


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


__all__ = ["layout", "flax_param_shapes", "flax_to_canonical", "canonical_to_flax",
           "FlaxHarness", "flax_harness", "is_flax_class"]
