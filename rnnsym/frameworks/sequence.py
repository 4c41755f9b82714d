"""Sequence targets: implementations of a matrix-state linear recurrence over a whole sequence
(Gated DeltaNet, GLA, DeltaNet, linear attention, Mamba-1, Mamba-2, mLSTM), as the libraries
people run ship them: chunked prefill kernels, recurrent loops, one-step decode functions.

A sequence target is a :class:`SequenceTarget`: the rnnsym built-in cell it computes (with the
cell's options), its heads layout, and one or more :class:`Path` s, each a way the same model
runs the recurrence (``"chunked"``, ``"recurrent"``, ``"step"``). The checker
(:mod:`rnnsym.conformance.sequence`) draws a :class:`SequenceCase` in the canonical layout below, runs
each path on it and compares with rnnsym's oracle (the cell's generated forward, float64) and
with the properties chunked kernels must satisfy (chunk-size invariance, split and carry, the
initial state honoured, decode after prefill, variable-length batches, grouped heads).

Canonical layout of a case (NumPy, float64 values; the path casts to ``case.dtype``):

- ``inputs[name]``: batch-major with heads apart, ``(B, T, H_name, d)`` for a vector input of
  the cell and ``(B, T, H_name)`` for one number per step (``g``, ``beta``, ``dt``, ``i``,
  ``f``). ``H_name`` is the number of heads of that input: the output has ``case.heads``
  heads; an input with fewer heads ``H_name = heads / G`` serves ``G`` output heads, output
  head ``h`` reading input head ``h // G`` (torch's ``repeat_interleave``, ONNX's grouped
  query attention; not ``repeat``/``tile``).
- ``params[name]``: per head, ``(heads,) + shape`` (Mamba-2's ``A``, ``D``, ``dt_bias``:
  ``(heads, 1)``; Mamba-1's ``A``: ``(heads, d_in, d_state)`` with heads = channel blocks).
- ``state0``: ``None`` (zeros) or ``{state: (B, heads) + state shape}``, e.g. ``S`` as
  ``(B, heads, d_k, d_v)``: rows are keys, as the cells (and fla, Qwen3-Next) keep it.
- the output: ``(B, T, heads, d_out)``; the final state like ``state0``.
- ``cu_seqlens``: for a packed variable-length batch, ``B == 1`` and the offsets
  ``(0, n_1, n_1 + n_2, ..., T)``; each segment starts from its own initial state
  (``state0`` then has one row per segment) and the final state has one row per segment.

A path's ``run(case, chunk_size)`` converts the case to the target's layout and dtype, calls
the target and returns ``(output, final_state)`` converted back: float64 NumPy in the canonical
layout (``final_state`` ``None`` where the path returns none). It raises
:class:`rnnsym.errors.Unsupported` for what the path does not take (a dtype, varlen, an initial
state) so that the checker reports it as such, never as a mismatch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

#: what a path may declare it takes (the checker exercises a property only where declared)
FEATURES = ("initial_state", "final_state", "chunk_size", "varlen", "groups")
#: how a path computes: a chunked algorithm's error model differs from a sequential loop's
ALGORITHMS = ("chunked", "sequential", "parallel")


@dataclass(frozen=True)
class SequenceCase:
    """One batch in the canonical layout (see the module docstring)."""

    cell: str                                  # an rnnsym built-in: "gated_deltanet", "mamba2", ...
    heads: int                                 # heads of the output
    inputs: dict                               # name -> (B, T, H_name, d) or (B, T, H_name)
    params: dict = field(default_factory=dict)  # name -> (heads,) + shape
    state0: Optional[dict] = None              # state -> (B, heads) + shape; None: zeros
    options: dict = field(default_factory=dict)  # cell and model options: scale, dt_limit, ...
    cu_seqlens: Optional[tuple] = None         # packed varlen batch: B == 1, offsets
    dtype: str = "float32"                     # float64, float32, bfloat16, float16

    @property
    def T(self) -> int:
        return next(iter(self.inputs.values())).shape[1]

    @property
    def B(self) -> int:
        return next(iter(self.inputs.values())).shape[0]


@dataclass(frozen=True)
class Path:
    """One way a target runs the recurrence.

    name       "chunked", "recurrent", "step", ... (unique within the target)
    algorithm  one of ALGORITHMS: the tolerance model depends on it
    run        ``run(case, chunk_size) -> (output, final_state)`` (module docstring)
    features   what it takes, from FEATURES
    dtypes     the dtypes it runs in
    chunk_size its default chunk size (chunked paths), the one used when none is drawn
    accumulates  the dtype it accumulates in where the inputs are lower ("float32": upcasts
               bf16/fp16 inputs, as most torch references do); None: the input dtype
    decode     a path that only takes T == 1 (one decode step after a prefill)
    t_multiple what lengths it takes: None (any T), "chunk" (T a multiple of the chunk size:
               the function asserts it and does not pad) or an int (T a multiple of it); the
               checker draws only such lengths (and splits), so a declared limit is never
               read as a failure
    source     where it comes from, e.g. "transformers 5.23.0 models/qwen3_next/modeling_qwen3_next.py:
               torch_chunk_gated_delta_rule"
    """

    name: str
    algorithm: str
    run: Callable
    features: tuple = ()
    dtypes: tuple = ("float32", "float64")
    chunk_size: Optional[int] = None
    accumulates: Optional[str] = None
    decode: bool = False
    t_multiple: object = None
    source: str = ""

    def __post_init__(self):
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"Path {self.name}: algorithm must be one of {ALGORITHMS}, "
                             f"got {self.algorithm!r}")
        unknown = set(self.features) - set(FEATURES)
        if unknown:
            raise ValueError(f"Path {self.name}: unknown features {sorted(unknown)}; "
                             f"expected some of {FEATURES}")


@dataclass(frozen=True)
class SequenceTarget:
    """A model's implementation of one recurrence: the cell it computes and its paths.

    cell        the rnnsym built-in cell's name ("gated_deltanet")
    cell_options  its options, as ``rnnsym.cells.builtin(cell, **cell_options)`` takes them
                (``{"decay": "head", "qk_l2norm": True}``)
    paths       the ways it runs, by name
    input_heads how the heads of each input relate to the output's: ``{"q": "out",
                "k": "kv", "v": "kv"}``: inputs sharing a group name have the same number
                of heads; "out" is the output's
    convention  one paragraph: the target's own preprocessing and layout, as documented
    ranges      the largest value an input may take where the model allows more than the
                checker's default edge, e.g. ``{"beta": 2.0}`` (DeltaNet with negative
                eigenvalues: beta in [0, 2]); the checker draws that edge too
    """

    name: str
    cell: str
    paths: tuple
    cell_options: dict = field(default_factory=dict)
    input_heads: dict = field(default_factory=dict)
    convention: str = ""
    ranges: dict = field(default_factory=dict)

    def path(self, name: str) -> Path:
        for p in self.paths:
            if p.name == name:
                return p
        raise KeyError(name)
