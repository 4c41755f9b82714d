"""Drawing sequence cases (:class:`rnnsym.frameworks.sequence.SequenceCase`) for the checker.

Hypothesis draws a :class:`Draw` (sizes, batch, length, heads and groups, chunk sizes, the
edge modes of the gates, whether there is an initial state, a split point, varlen segments and
a seed for the values); :func:`build_case` turns it into a case. Shrinking acts on the Draw, so
a counterexample shrinks to small sizes, short sequences and the plainest edge that still
fails; the values come from ``numpy.random.default_rng(draw.seed)`` (a replay with the same
seed draws the same numbers).

The edges users hit, per role of an input (the role comes from the cell: :data:`ROLES`):

- log-decays (``g`` of ``gla``/``gated_deltanet``): mild ``-U(0, 1)``, none ``0``, moderate
  ``-U(2, 8)``, strong ``-U(20, 30)`` per step, and hard resets (``-inf`` at some steps), alone or mixed per step;
- Mamba's ``dt`` (before softplus): ordinary ``N(0, 1)``, large ``U(10, 40)`` or tiny
  ``-U(8, 20)`` (Δ below the 0.001 floor models clamp it to); Mamba-2's
  ``A`` ordinary ``-exp(N(0, 0.5))`` or strong ``-U(5, 30)``;
- mLSTM's forget logit ``f``: ordinary, strong forgetting ``-U(10, 30)`` or ``-inf``;
- ``beta``: uniform in [0, max], all 0, all max, or each 0 or max (max 1, or
  ``SequenceTarget.ranges["beta"]``);
- keys: random, or nearly parallel (one key plus 1e-3 noise), normalised to unit length for
  a delta rule computed without ``qk_l2norm`` (the model normalises them outside).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
from hypothesis import strategies as st

from rnnsym.conformance.sequence_oracle import cell_module
from rnnsym.frameworks.sequence import Path, SequenceCase, SequenceTarget

#: the role of each input and parameter of a cell (default "value": N(0, 1))
ROLES = {
    "gla": {"g": "log_decay"},
    "gated_deltanet": {"g": "log_decay", "beta": "beta", "k": "key"},
    "deltanet": {"beta": "beta", "k": "key"},
    "linear_attention": {"k": "key"},
    "mamba2": {"dt": "dt", "A": "A_head", "D": "value", "dt_bias": "bias"},
    "mamba": {"dt": "dt", "A": "A_matrix", "D": "value", "dt_bias": "bias"},
    "mlstm": {"f": "forget", "i": "input_gate", "k": "key"},
}
DECAY_MODES = ("mild", "none", "moderate", "strong", "reset", "mixed")
BETA_MODES = ("uniform", "zero", "max", "edges")
KEY_MODES = ("random", "parallel")
DT_MODES = ("ordinary", "large", "tiny")
CHUNKS = (1, 2, 3, 4, 5, 8, 16, 64)
MAX_T = 20


@dataclass(frozen=True)
class Draw:
    """One drawn example (before values): what Hypothesis shrinks."""

    sizes: tuple            # ((symbol, size), ...)
    B: int
    T: int
    kv_heads: int           # heads of a grouped input
    group: int              # output heads per grouped input head (G)
    chunk: Optional[int]
    chunk2: Optional[int]
    decay: str
    beta: str
    keys: str
    dt: str
    state0: bool
    split: int              # 0 <= split <= T
    segments: tuple         # varlen lengths (empty: not packed)
    seed: int
    resets: bool = True     # -inf log-decays may be drawn ("reset", "mixed")

    @property
    def heads(self) -> int:
        return self.kv_heads * self.group

    def key(self):
        return self

    def describe(self, cell: str = "") -> str:
        """The draw, with the edge modes that act on ``cell``'s inputs."""
        sizes = ", ".join(f"{k}={v}" for k, v in self.sizes)
        roles = set(ROLES.get(cell, {}).values()) if cell else None
        modes = [(k, v) for k, v, used in (
            ("decay", self.decay, {"log_decay", "A_head", "forget"}),
            ("beta", self.beta, {"beta"}), ("keys", self.keys, {"key"}),
            ("dt", self.dt, {"dt"})) if roles is None or roles & used]
        chunks = (f", chunk_size={self.chunk}" if self.chunk else "") + \
            (f", chunk_size2={self.chunk2}" if self.chunk2 else "")
        return (f"B={self.B}, T={self.T}, heads={self.heads}, kv_heads={self.kv_heads}, "
                f"{sizes}{chunks}, " + "".join(f"{k}={v}, " for k, v in modes) +
                (f"segments={list(self.segments)}, " if self.segments else "") +
                f"state0={self.state0}, split={self.split}, seed={self.seed}")


def symbols(cell: str, cell_options: dict) -> tuple:
    """The size symbols of a cell's inputs, outputs and states (``d_k``, ``d_v``, ...)."""
    m = cell_module(cell, cell_options)
    names = set()
    for shape in list(m.INPUT_SHAPES.values()) + list(m.STATE_SHAPES.values()) + \
            list(m.PARAM_SHAPES.values()) + [m.OUTPUT_SHAPE]:
        names.update(s for s in shape if s != "1")
    return tuple(sorted(names))


def grouped_inputs(target: SequenceTarget) -> tuple:
    """The inputs whose heads form a group other than the output's."""
    return tuple(k for k, g in target.input_heads.items() if g != "out")


@st.composite
def draws(draw, target: SequenceTarget, path: Path, *, groups=False, state0=None,
          min_T=0, max_T=MAX_T, two_chunks=False, varlen=False, T=None,
          resets=True, plus_one=False, pieces=1) -> Draw:
    """A Draw for ``path`` of ``target``.

    groups     True: at least 2 kv heads and G >= 2 (the grouped-heads property); False: groups
               only where the path declares "groups" and the target has a grouped input
    state0     True / False forces an initial state or none; None: drawn where the path takes one
    two_chunks a second chunk size different from the first (chunk-size invariance)
    varlen     packed segments (B = 1)
    T          a fixed length (decode paths: 1)
    pieces     T holds at least this many multiples of the path's length unit (split and
               carry: 2, so both pieces are non-empty)
    plus_one   T + 1 is run too (decode after prefill): with ``Path.t_multiple`` "chunk"
               the chunk is 1
    resets     draw -inf log-decays (hard resets); the ``oracle`` property draws them, the
               others not, so that a target failing on them still has its other properties
               checked
    """
    syms = symbols(target.cell, target.cell_options)
    sizes, last = [], 0
    for s in syms:                      # distinct sizes: each one larger than the one before
        last = last + draw(st.integers(1, 2)) if last else draw(st.integers(1, 3))
        sizes.append((s, last))
    can_group = "groups" in path.features and bool(grouped_inputs(target))
    if groups:
        kv, G = draw(st.integers(2, 3)), draw(st.integers(2, 3))
    elif can_group:
        kv, G = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    else:
        kv, G = draw(st.integers(1, 3)), 1
    chunked = path.algorithm == "chunked"
    if chunked and "chunk_size" in path.features:
        # a path taking only multiples of its chunk: T + 1 too (decode after prefill) needs 1
        chunks = (1,) if path.t_multiple == "chunk" and plus_one else CHUNKS
        chunk = draw(st.sampled_from(chunks))
        others = [c for c in CHUNKS if c != chunk]
        if path.t_multiple == "chunk":
            others = [c for c in others if math.lcm(chunk, c) <= 64]
        chunk2 = draw(st.sampled_from(others)) if two_chunks else None
    else:
        chunk, chunk2 = path.chunk_size, None
    m = _length_multiple(path, chunk, chunk2)
    if varlen:
        segments = tuple(draw(st.lists(st.integers(1, 8), min_size=1, max_size=3)))
        B, length = 1, sum(segments)
    else:
        segments = ()
        B = draw(st.integers(1, 3))
        if T is not None:
            length = T
        else:
            lo = max(-(-min_T // m), pieces if min_T else 0)
            length = m * draw(st.integers(lo, max(lo, max_T // m, 1)))
    takes_state = "initial_state" in path.features
    with_state = (draw(st.booleans()) if takes_state else False) if state0 is None else state0
    return Draw(
        sizes=tuple(sizes), B=B, T=length, kv_heads=kv, group=G, chunk=chunk, chunk2=chunk2,
        decay=draw(st.sampled_from(DECAY_MODES if resets else
                                   tuple(m for m in DECAY_MODES if m != "reset"))),
        beta=draw(st.sampled_from(BETA_MODES)),
        keys=draw(st.sampled_from(KEY_MODES)), dt=draw(st.sampled_from(DT_MODES)),
        state0=with_state, segments=segments,
        # both pieces non-empty (an empty run is T = 0: the oracle property's edge)
        split=(m * draw(st.integers(1, length // m - 1))) if length >= 2 * m else 0,
        seed=draw(st.integers(0, 2**31 - 1)), resets=resets)


def _length_multiple(path: Path, chunk, chunk2) -> int:
    """What T must be a multiple of on ``path`` (``Path.t_multiple``); 1 for any T."""
    if path.t_multiple == "chunk":
        return math.lcm(chunk or 1, chunk2 or 1)
    return int(path.t_multiple or 1)


def _round(a: np.ndarray, dtype: str) -> np.ndarray:
    """Values rounded to ``dtype`` (round to nearest even), returned as float64."""
    a = np.asarray(a, np.float64)
    if dtype == "float64":
        return a
    if dtype in ("float32", "float16"):
        with np.errstate(all="ignore"):
            return a.astype(dtype).astype(np.float64)
    if dtype == "bfloat16":
        bits = a.astype(np.float32).view(np.uint32).astype(np.uint64)
        finite = np.isfinite(a)
        rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
        out = rounded.astype(np.uint32).view(np.float32).astype(np.float64)
        return np.where(finite, out, a)
    raise ValueError(f"dtype: expected float64, float32, bfloat16 or float16, got {dtype!r}")


def round_case(case: SequenceCase, dtype: str) -> SequenceCase:
    """The case with every value rounded to ``dtype`` (what the target sees) and
    ``case.dtype = dtype``: the oracle then runs on exactly the target's inputs."""
    from dataclasses import replace
    return replace(
        case, dtype=dtype,
        inputs={k: _round(v, dtype) for k, v in case.inputs.items()},
        params={k: _round(v, dtype) for k, v in case.params.items()},
        state0=None if case.state0 is None else
        {k: _round(v, dtype) for k, v in case.state0.items()})


def _log_decay(rng, shape, mode, resets=True):
    mild = -rng.uniform(0.0, 1.0, shape)
    if mode == "mild":
        return mild
    if mode == "none":
        return np.zeros(shape)
    if mode == "moderate":
        return -rng.uniform(2.0, 8.0, shape)
    strong = -rng.uniform(20.0, 30.0, shape)
    if mode == "strong":
        return strong
    reset = np.where(rng.random(shape) < 0.3, -np.inf if resets else -60.0, mild)
    if mode == "reset":
        return reset
    pick = rng.integers(0, 4, shape)        # mixed, per step
    return np.choose(pick, [mild, np.zeros(shape), strong, reset])


def _values(rng, role, shape, draw: Draw, beta_max: float):
    if role == "log_decay":
        return _log_decay(rng, shape, draw.decay, draw.resets)
    if role == "beta":
        if draw.beta == "zero":
            return np.zeros(shape)
        if draw.beta == "max":
            return np.full(shape, beta_max)
        if draw.beta == "edges":
            return np.where(rng.random(shape) < 0.5, 0.0, beta_max)
        return rng.uniform(0.0, beta_max, shape)
    if role == "dt":
        if draw.dt == "tiny":                # softplus(dt) < 1e-3: where a clamp's floor binds
            return -rng.uniform(8.0, 20.0, shape)
        return rng.uniform(10.0, 40.0, shape) if draw.dt == "large" else rng.normal(size=shape)
    if role == "A_head":
        return (-rng.uniform(5.0, 30.0, shape) if draw.decay == "strong"
                else -np.exp(rng.normal(0.0, 0.5, shape)))
    if role == "A_matrix":
        return -np.exp(rng.normal(0.0, 0.5, shape))
    if role == "bias":
        return rng.normal(0.0, 0.5, shape)
    if role == "forget":
        f = rng.normal(2.0, 2.0, shape)
        if draw.decay == "strong":
            return -rng.uniform(10.0, 30.0, shape)
        if draw.decay == "reset":
            return np.where(rng.random(shape) < 0.3, -np.inf if draw.resets else -60.0, f)
        return f
    if role == "input_gate":
        return rng.normal(0.0, 2.0, shape)
    return rng.normal(size=shape)


def build_case(target: SequenceTarget, draw: Draw, dtype: str = "float32") -> SequenceCase:
    """The case of a Draw: canonical layout, float64 values rounded to ``dtype``."""
    m = cell_module(target.cell, target.cell_options)
    sizes = dict(draw.sizes, **{"1": 1})
    roles = ROLES.get(target.cell, {})
    rng = np.random.default_rng(draw.seed)
    beta_max = float(target.ranges.get("beta", 1.0))
    grouped = set(grouped_inputs(target)) if draw.group > 1 else set()
    heads = draw.heads
    inputs = {}
    for name, shape in m.INPUT_SHAPES.items():
        h = draw.kv_heads if name in grouped else heads
        dims = tuple(sizes[s] for s in shape)
        full = (draw.B, draw.T, h) + (() if shape == ("1",) else dims)
        role = roles.get(name, "value")
        if role == "key":
            a = rng.normal(size=full)
            if draw.keys == "parallel" and draw.T:
                a = a[:, :1] + 1e-3 * rng.normal(size=full)
            if target.cell in ("deltanet", "gated_deltanet") and \
                    not target.cell_options.get("qk_l2norm"):
                a = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-6)
            inputs[name] = a
        else:
            inputs[name] = _values(rng, role, full, draw, beta_max)
    params = {name: _values(rng, roles.get(name, "value"),
                            (heads,) + tuple(sizes[s] for s in shape), draw, beta_max)
              for name, shape in m.PARAM_SHAPES.items()}
    state0 = None
    if draw.state0:
        rows = len(draw.segments) if draw.segments else draw.B
        state0 = {name: rng.normal(size=(rows, heads) + tuple(sizes[s] for s in shape))
                  for name, shape in m.STATE_SHAPES.items()}
    cu = None
    if draw.segments:
        cu = tuple(int(v) for v in np.concatenate([[0], np.cumsum(draw.segments)]))
    case = SequenceCase(cell=target.cell, heads=heads, inputs=inputs, params=params,
                        state0=state0, options=dict(target.cell_options), cu_seqlens=cu,
                        dtype=dtype)
    return round_case(case, dtype)
