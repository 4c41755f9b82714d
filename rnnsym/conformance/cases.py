"""Cases: one drawn example (config, the target's parameter values, input, state, lengths).

``cases(harness, space, dtype)`` is the Hypothesis strategy the search draws from; it reads
``space`` at every draw, so features found unsupported during a run (``rnnsym.conformance.survey``)
are not drawn again. ``build_case`` makes a deterministic case for a given config (probes,
diagnosis relatives).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Optional

import numpy as np
from hypothesis import strategies as st

from rnnsym.conformance import strategies as rst
from rnnsym.frameworks import Config, Harness

#: Tenths of the drawn cases with per-sample lengths (where the harness supports them):
#: fixed-length cases stay the common ones and the shrink target.
LENGTHS_TENTHS = 4


@dataclass
class Case:
    """One drawn example: config, target-layout parameter values, input, state, and
    for a variable-length batch the per-sample ``lengths`` (in [1, T]; ``x`` is zero
    past them) and ``length_mode``, how the harness feeds them (one of its
    ``length_modes``, e.g. "packed, enforce_sorted")."""

    config: Config
    values: dict
    x: np.ndarray
    state0: Optional[dict]
    lengths: Optional[tuple] = None
    length_mode: Optional[str] = None

    def key(self) -> str:
        h = hashlib.sha1(repr((self.config, self.lengths, self.length_mode)).encode())
        for v in list(self.values.values()) + [self.x] + list((self.state0 or {}).values()):
            h.update(np.ascontiguousarray(v).tobytes())
        return h.hexdigest()


def _pad(x: np.ndarray, lengths) -> np.ndarray:
    x = x.copy()
    x[np.arange(x.shape[0])[:, None] >= np.array(lengths)[None, :]] = 0
    return x


@st.composite
def cases(draw, harness: Harness, space: dict, dtype: str, max_size: int = 6):
    """Strategy for Case objects of ``harness`` within ``space`` (``rnnsym.conformance.space``)."""
    projection = draw(st.sampled_from(space["projection"]), label="projection")
    names = ["T", "B", "d_in", "d_h"] + (["d_proj"] if projection else [])
    dims = draw(rst.distinct_sizes(names, max_value=max(max_size, len(names) + 1)), label="sizes")
    unbatched = draw(st.sampled_from(space["unbatched"]), label="unbatched")
    if unbatched:
        dims["B"] = 1
    config = Config(
        cell=harness.cell, T=dims["T"], B=dims["B"], d_in=dims["d_in"], d_h=dims["d_h"],
        d_proj=dims.get("d_proj", 0),
        num_layers=draw(st.sampled_from(space["num_layers"]), label="num_layers"),
        bidirectional=draw(st.sampled_from(space["bidirectional"]), label="bidirectional"),
        bias=draw(st.sampled_from(space["bias"]), label="bias"),
        batch_first=False if unbatched else draw(st.sampled_from(space["batch_first"]),
                                                 label="batch_first"),
        initial_state=draw(st.sampled_from(space["initial_state"]), label="initial_state"),
        unbatched=unbatched, dtype=dtype,
        variant=tuple(sorted((k, draw(st.sampled_from(v), label=k))
                             for k, v in space["variants"].items())))
    np_dtype = np.dtype(dtype)
    values = draw(rst.target_values(harness.param_shapes(config), np_dtype), label="values")
    x = draw(rst.inputs(dims, np_dtype), label="x")
    state0 = None
    if config.initial_state:
        state0 = draw(rst.stacked_states(harness.cell, dims, config.num_layers, config.D,
                                         np_dtype, projection=projection), label="state0")
    lengths = mode = None
    modes = space.get("lengths") or {}
    # a wide integer's last digit: Hypothesis favours small and repeated choices in
    # booleans, sampled_from and narrow ranges, which made lengths rare; shrinks to 0 =
    # fixed length
    coin = draw(st.integers(0, 2**32 - 1), label="variable lengths?") \
        if modes and not unbatched else 0
    if coin % 10 >= 10 - LENGTHS_TENTHS:
        mode = draw(st.sampled_from(sorted(modes)), label="length mode")
        # drawn as steps short of T: shrinks towards full-length samples
        short = draw(st.lists(st.integers(0, 2**32 - 1), min_size=config.B,
                              max_size=config.B), label="steps short of T (mod T)")
        lengths = [config.T - n % config.T for n in short]
        if modes[mode]:
            lengths.sort(reverse=True)
        lengths = tuple(lengths)
        x = _pad(x, lengths)
    return Case(config, values, x, state0, lengths, mode)


def build_case(harness: Harness, config: Config, *, seed: int = 12345, lengths=None,
               length_mode: Optional[str] = None) -> Case:
    """A deterministic case for ``config``: values, input and state uniform in [-1, 1].
    With a ``length_mode`` and no ``lengths``, sample b gets ``T - b mod T`` steps (sorted
    longest first where the mode needs it)."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(config.dtype)
    values = {n: rng.uniform(-1, 1, s).astype(dtype)
              for n, s in harness.param_shapes(config).items()}
    x = rng.uniform(-1, 1, (config.T, config.B, config.d_in)).astype(dtype)
    state0 = None
    if config.initial_state:
        shapes = {"h": (config.num_layers, config.D, config.B, config.d_out)}
        if config.cell == "lstm":
            shapes["c"] = (config.num_layers, config.D, config.B, config.d_h)
        state0 = {k: rng.uniform(-1, 1, s).astype(dtype) for k, s in shapes.items()}
    if length_mode is not None and lengths is None:
        lengths = [config.T - b % config.T for b in range(config.B)]
        if harness.length_modes.get(length_mode):
            lengths.sort(reverse=True)
    if lengths is not None:
        lengths = tuple(lengths)
        x = _pad(x, lengths)
    return Case(config, values, x, state0, lengths, length_mode)
