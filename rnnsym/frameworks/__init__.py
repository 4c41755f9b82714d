"""Framework adapters: converters between framework layouts and rnnsym's canonical one.

One module per framework (``torch``, ``torch_cell``, ``keras``, ``flax``, ``torch_onnx``,
``onnx/``) plus ``user`` (``--variant`` options, the function harness), ``loading`` (importing a
user's ``MODULE:NAME`` / ``file.py:NAME``), ``layers`` (the canonical multi-layer /
bidirectional driver) and ``registry`` (every target name -> its harness factory; on top, nothing
imports it). Each framework module has explicit, tested converters (``*_to_canonical`` /
``canonical_to_*``) and a *harness* the checker drives.

This file holds what they share:

``Config``
    one point of the space the checker explores: cell, sizes and options.
``Harness``
    the interface between the checker and a target: which options it supports,
    the shapes of its own parameters, the conversion of those parameters to the
    canonical convention, and one run on canonical inputs.
``Flat`` outputs
    every run (target or oracle) is reported as a dict of arrays in one layout::

        "output"  (T, B, D, d_out)      last layer's sequence output, per direction
        "h_n"     (L, D, B, d_out)      final hidden state of every layer/direction
        "c_n"     (L, D, B, d_h)        final cell state (LSTM only)

    (``D`` = num_directions, ``L`` = num_layers, ``d_out`` = d_proj or d_h).

May import :mod:`rnnsym.onnx` and the symbolic layers below it (cells, shapes, codegen); never
:mod:`rnnsym.conformance`, :mod:`rnnsym.testing` or the CLI, which drive these harnesses.
"""
from __future__ import annotations

import contextlib
import dataclasses
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Mapping

import numpy as np

from rnnsym.errors import RnnsymError, Unsupported, UsageError  # noqa: F401 - re-exported
from rnnsym.frameworks.layers import num_directions

CELLS = ("elman", "lstm", "gru")
CELL_ALIASES = {"elman": "elman", "rnn": "elman", "simplernn": "elman", "lstm": "lstm", "gru": "gru"}


class ContractError(UsageError):
    """The target does not fit the contract it is checked against: constructor
    arguments, parameter names or parameter shapes."""


class OutputError(RnnsymError, AssertionError):
    """The target ran but returned something of the wrong structure, shape or dtype.
    ``kind`` is the failure kind the checker reports: "wrong shape" (structure and shape)
    or "wrong dtype"."""

    def __init__(self, message: str, kind: str = "wrong shape"):
        super().__init__(message)
        self.kind = kind


def canonical_cell(cell: str) -> str:
    """'rnn' / 'elman' / 'SimpleRNN' -> 'elman'; raises UsageError for unknown cells."""
    try:
        return CELL_ALIASES[str(cell).lower()]
    except KeyError:
        raise UsageError(f"cell: expected one of elman|rnn, lstm, gru, got {cell!r}") from None


@dataclass(frozen=True)
class Config:
    """One configuration: sizes and options of a single checked example.

    Sizes ``T, B, d_in, d_h, d_proj`` are drawn distinct from one another so that a
    swapped axis or transposed weight cannot go unnoticed. ``d_proj = 0`` means no
    LSTM projection. ``variant`` holds the cell's math options as sorted
    ``(name, value)`` pairs: ``activation`` (elman), ``reset`` (gru).
    """

    cell: str
    T: int
    B: int
    d_in: int
    d_h: int
    d_proj: int = 0
    num_layers: int = 1
    bidirectional: bool = False
    bias: bool = True
    batch_first: bool = False
    initial_state: bool = False
    unbatched: bool = False
    dtype: str = "float32"
    variant: tuple = ()

    @property
    def D(self) -> int:
        return num_directions(self.bidirectional)

    @property
    def d_out(self) -> int:
        return self.d_proj or self.d_h

    @property
    def options(self) -> dict:
        return dict(self.variant)

    def replace(self, **changes) -> "Config":
        return dataclasses.replace(self, **changes)

    def flat_shapes(self) -> dict[str, tuple]:
        """Shapes of the flat outputs (see the module docstring)."""
        shapes = {"output": (self.T, self.B, self.D, self.d_out),
                  "h_n": (self.num_layers, self.D, self.B, self.d_out)}
        if self.cell == "lstm":
            shapes["c_n"] = (self.num_layers, self.D, self.B, self.d_h)
        return shapes

    def sizes(self) -> dict[str, int]:
        """Named sizes, used to explain shapes in terms of T, B, d_in, ..."""
        names = {"T": self.T, "B": self.B, "d_in": self.d_in, "d_h": self.d_h}
        if self.d_proj:
            names["d_proj"] = self.d_proj
        return names

    def describe(self) -> str:
        """One line: 'gru T=3 B=1 d_in=2 d_h=4 layers=2 bidirectional bias ...'."""
        parts = [self.cell] + [f"{k}={v}" for k, v in self.sizes().items()]
        parts.append(f"layers={self.num_layers}")
        parts.append("bidirectional" if self.bidirectional else "unidirectional")
        parts.append("bias" if self.bias else "no-bias")
        if self.batch_first:
            parts.append("batch_first")
        if self.unbatched:
            parts.append("unbatched")
        parts.append("initial-state" if self.initial_state else "zero-state")
        parts += [f"{k}={v}" for k, v in self.variant]
        parts.append(self.dtype)
        return " ".join(parts)

    def coverage_key(self) -> tuple:
        """The options of this config without its sizes (for coverage counts)."""
        return (self.num_layers, self.bidirectional, self.bias, self.batch_first,
                self.initial_state, self.unbatched, bool(self.d_proj), self.variant)


@dataclass
class Capabilities:
    """What a harness can vary. Each entry is the tuple of values it supports."""

    num_layers: tuple = (1,)
    bidirectional: tuple = (False,)
    bias: tuple = (True, False)
    batch_first: tuple = (False,)
    initial_state: tuple = (False, True)
    unbatched: tuple = (False,)
    projection: tuple = (False,)
    variants: dict = field(default_factory=dict)   # option -> values explored by default
    allowed: dict = field(default_factory=dict)    # option -> values accepted by --variant


class Harness:
    """Interface between the checker and one target (see subclasses): every hook and
    capability the checker uses is declared here, with its default; a subclass overrides
    what its target has.

    name          what is checked, for reports ("torch.nn.GRU")
    cell          "elman" | "lstm" | "gru"
    capabilities  a Capabilities: the options it can vary
    default_dtype the dtype it is checked in unless asked for another
    environment   process settings its behaviour depends on
    length_modes  ways it takes variable-length batches (none: fixed lengths only), with
                  ``padded_length`` / ``length_padding`` describing its convention
    gradients     ``supports_gradients`` and the space ``gradients()`` covers:
                  ``gradient_stacks``, ``gradient_bidirectional``, ``gradient_lengths``
    """

    name = "?"
    cell = "?"
    capabilities = Capabilities()
    #: the dtype it is checked in unless --dtype says otherwise
    default_dtype: str = "float32"
    #: process settings the target's behaviour depends on, e.g. {"KERAS_BACKEND": "jax"}:
    #: the report names them and the replay command sets them
    environment: dict = {}
    #: each way the target takes per-sample lengths ("packed, unsorted") -> whether it needs
    #: them sorted longest first; empty: fixed-length batches only
    length_modes: dict = {}
    #: whether :meth:`gradients` is implemented (``check --gradients``)
    supports_gradients: bool = False
    #: the part of the space :meth:`gradients` covers beyond one layer, one direction and
    #: fixed lengths: stacks of layers, both directions, per-sample lengths
    gradient_stacks: bool = False
    gradient_bidirectional: bool = False
    gradient_lengths: bool = False

    def param_shapes(self, config: Config) -> dict[str, tuple]:
        """Target's own parameter names -> shapes for this config."""
        raise NotImplementedError

    def to_canonical(self, config: Config, values: Mapping[str, np.ndarray]) -> list:
        """Target-layout values -> canonical ``params[layer][direction]`` (float64)."""
        raise NotImplementedError

    def run(self, config: Config, values, x, state0) -> dict[str, np.ndarray]:
        """Build the target for ``config``, write ``values`` into its parameters,
        run it on canonical ``x (T, B, d_in)`` and flat ``state0`` (or None) and
        return flat outputs (module docstring), converted from the target's layout."""
        raise NotImplementedError

    def check_contract(self, config: Config) -> None:
        """The contract check: raise ContractError if the target cannot be built for
        ``config`` or its parameters don't have the expected names and shapes. (A harness
        written against the older name, overriding ``probe``, has that one called.)"""
        if type(self).probe is not Harness.probe:
            warnings.warn(f"{type(self).__name__}.probe: the contract check is now called "
                          "check_contract (rename the method)", DeprecationWarning, stacklevel=2)
            return self.probe(config)
        raise NotImplementedError

    def probe(self, config: Config) -> None:
        """Deprecated: :meth:`check_contract` (the old name of the contract check; "probe"
        also named the feature survey and the ONNX attribute survey)."""
        warnings.warn("Harness.probe is deprecated: call check_contract", DeprecationWarning,
                      stacklevel=2)
        return self.check_contract(config)

    def session(self):
        """Context manager around a whole check run (e.g. thread settings)."""
        return contextlib.nullcontext()

    def padded_length(self, lengths, T: int) -> int:
        """How many steps the target would run if it ignored the lengths (a diagnosis
        variant): all ``T`` by default."""
        return T

    def length_padding(self, config: Config) -> str:
        """The target's convention for outputs past a length: "zero" (default) or "repeat"
        (the last valid output)."""
        return "zero"

    def gradients(self, config: Config, values, x, state0, upstream, lengths=None,
                  length_mode=None):
        """``(flat outputs, gradients)`` of ``L = Σ upstream ⊙ outputs`` (keys ``param:NAME``,
        ``x``, ``h0``/``c0``; ``rnnsym.conformance.gradients``), every array handed to the target
        in ``config.dtype``. Only where ``supports_gradients``."""
        raise NotImplementedError(f"{self.name}: no gradients")

    def no_gradients_reason(self, variant: dict):
        """Why ``--gradients`` cannot be checked for this target and ``variant`` (a usage
        error), or None."""
        return None

    def gradient_source(self) -> str:
        """What computes the target's gradients, where the report should name it (a
        function's backward: which one was found), else ''."""
        return ""

    def unsupported(self, exc: BaseException) -> bool:
        """Whether an exception of the target means "this feature is not supported" (and
        not a failure): ``NotImplementedError`` (``Unsupported`` included) by default; a
        framework harness adds its framework's own not-supported errors."""
        return isinstance(exc, NotImplementedError)


@contextlib.contextmanager
def torch_single_thread():
    """Run torch on one thread, restoring the previous setting afterwards. The
    checker's examples are tiny; on a busy 2-core machine torch's thread pool costs
    up to 0.4 s per LSTM call (oneDNN), one thread 0.3 ms. Results are unaffected
    beyond summation order, which the tolerance allows for."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


# ----------------------------------------------------------------------------------------
# shapes and states


def canonical_param_shapes(cell: str, dims: Mapping[str, int], *,
                           projection: bool = False, peepholes: bool = False) -> dict:
    """Canonical parameter names -> shapes for one layer of ``cell``, read off the shapes rnnsym
    derives from the symbolic cell (so strategies and cells cannot disagree).

    dims  needs d_in, d_h, and d_proj when ``projection`` (LSTM).
    """
    if cell not in CELLS:
        raise ValueError(f"cell={cell!r}: expected one of elman, lstm, gru")
    if projection and cell != "lstm":
        raise ValueError(f"projection=True is only defined for lstm, got cell={cell!r}")
    params, table = _derived(cell, projection, peepholes)
    shapes = table.concrete(**{str(d): dims[str(d)] for d in table.dims})
    return {p: shapes[p] for p in params}


@lru_cache(maxsize=None)
def _derived(cell: str, projection: bool, peepholes: bool):
    from rnnsym.cells import builtin
    from rnnsym.shapes import derive
    options = {"projection": projection, "peepholes": peepholes} if cell == "lstm" else {}
    symbolic = builtin(cell, **options)
    return symbolic.params, derive(symbolic)


def state_shapes(cell: str, dims: Mapping[str, int], *, projection: bool = False) -> dict:
    """Canonical state names -> shapes (B, d): {"h"} or {"h", "c"}."""
    d_out = dims["d_proj"] if projection else dims["d_h"]
    shapes = {"h": (dims["B"], d_out)}
    if cell == "lstm":
        shapes["c"] = (dims["B"], dims["d_h"])
    return shapes



def shape_in_symbols(shape, sizes: Mapping[str, int]) -> str:
    """(3, 5, 2) with sizes {"T": 3, "B": 5} -> '(T, B, 2)': names a size where unique."""
    by_value: dict[int, list[str]] = {}
    for name, value in sizes.items():
        by_value.setdefault(value, []).append(name)
    parts = []
    for n in shape:
        names = by_value.get(n, [])
        parts.append(names[0] if len(names) == 1 else str(n))
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


def check_shape(label: str, value, expected: tuple, symbols: str, config: Config) -> np.ndarray:
    """Return ``value`` as an array; raise OutputError naming the expected shape in
    symbols and numbers and the one given (in symbols where they are unambiguous), or
    (kind "wrong dtype") if its dtype is not the one the target was run in."""
    arr = np.asarray(value)
    if arr.shape != tuple(expected):
        raise OutputError(f"{label}: expected shape {symbols} = {tuple(expected)}, got "
                          f"{tuple(arr.shape)} = {shape_in_symbols(arr.shape, config.sizes())}")
    return check_dtype(label, arr, config)


def check_dtype(label: str, value, config: Config) -> np.ndarray:
    """Return ``value`` as an array; raise OutputError (kind "wrong dtype") unless its dtype
    is the one the target was run in (``config.dtype``)."""
    arr = np.asarray(value)
    if arr.dtype != np.dtype(config.dtype):
        raise OutputError(f"{label}: expected dtype {config.dtype} (the input's), got {arr.dtype}",
                          kind="wrong dtype")
    return arr


#: prefixes of the two directions' parameters where a framework names them ("forward/kernel")
DIRECTION_NAMES = ("forward", "backward")


def per_direction(one: Mapping[str, tuple], bidirectional: bool) -> dict:
    """One direction's parameter shapes -> the layer's: "forward/NAME", "backward/NAME"."""
    if not bidirectional:
        return dict(one)
    return {f"{d}/{n}": s for d in DIRECTION_NAMES for n, s in one.items()}


def split_directions(values: Mapping[str, np.ndarray], bidirectional: bool) -> list[dict]:
    """Inverse of per_direction on values: one dict per direction, names unprefixed."""
    if not bidirectional:
        return [dict(values)]
    return [{n.split("/", 1)[1]: v for n, v in values.items() if n.startswith(d + "/")}
            for d in DIRECTION_NAMES]


def nest_state(flat: "Mapping[str, np.ndarray] | None", num_layers: int, num_dirs: int):
    """Flat {"h": (L, D, B, d), ...} -> state[layer][direction] = {"h": (B, d), ...}."""
    if flat is None:
        return None
    return [[{k: v[layer, d] for k, v in flat.items()} for d in range(num_dirs)]
            for layer in range(num_layers)]


def flatten_state(nested) -> dict[str, np.ndarray]:
    """state[layer][direction] = {"h": (B, d)} -> {"h_n": (L, D, B, d), "c_n": ...}."""
    keys = nested[0][0].keys()
    return {f"{k}_n": np.stack([np.stack([s[k] for s in layer]) for layer in nested])
            for k in keys}


def flat_outputs(outputs, final_nested, num_dirs: int) -> dict[str, np.ndarray]:
    """Stack outputs (T, B, D*d) and final[layer][direction] into the flat layout."""
    outputs = np.asarray(outputs)
    T, B, width = outputs.shape
    flat = {"output": outputs.reshape(T, B, num_dirs, width // num_dirs)}
    flat.update(flatten_state(final_nested))
    return flat
