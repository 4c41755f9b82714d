"""The one place the checker gets its expected values from.

``oracle_forward(cell, **variant)`` returns a single-layer, single-direction
forward in the canonical convention: the NumPy module rnnsym generates from the symbolic
cell (``rnnsym.compile``, the same code as ``generated/``), which the test suite proves equal
to the hand-written ``rnnsym.reference``. Everything else in the checker --
multi-layer/bidirectional stacks, diagnosis variants, tolerance estimates -- goes
through this module, always in float64.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from rnnsym.frameworks import Config, flat_outputs, nest_state
from rnnsym.frameworks.layers import stack_forward

VARIANT_DEFAULTS = {"elman": {"activation": "tanh"}, "lstm": {}, "gru": {"reset": "after"}}


def oracle_forward(cell: str, **variant):
    """Canonical ``forward(params, x, state0=None) -> (outputs, final_state)``.

    cell     "elman" | "lstm" | "gru"
    variant  elman: activation="tanh"|"relu"|"sigmoid"|"identity";
             lstm: projection=bool (peepholes/coupled/clip are not used by frameworks);
             gru: reset="after"|"before"
    """
    if cell not in VARIANT_DEFAULTS:
        raise ValueError(f"cell: expected one of {sorted(VARIANT_DEFAULTS)}, got {cell!r}")
    return _compiled(cell, tuple(sorted(variant.items()))).forward


@lru_cache(maxsize=None)
def _compiled(cell: str, variant: tuple):
    from rnnsym.cells import builtin
    from rnnsym.codegen.compile import compile_cell
    return compile_cell(builtin(cell, **dict(variant)))


def variant_for(config: Config) -> dict:
    """The oracle options a Config implies (projection from d_proj)."""
    variant = {**VARIANT_DEFAULTS[config.cell], **config.options}
    if config.cell == "lstm":
        variant["projection"] = bool(config.d_proj)
    return variant


def _float64(nested):
    return [[{k: np.asarray(v, dtype=np.float64) for k, v in p.items()} for p in layer]
            for layer in nested]


def oracle_flat(config: Config, params, x, state0=None, *, forward=None, wrap=None):
    """Expected flat outputs (see ``rnnsym.frameworks``) for a whole stack, in float64.

    params  canonical ``params[layer][direction]``
    x       canonical (T, B, d_in)
    state0  flat {"h": (L, D, B, d_out), "c": ...} or None
    forward override the single-layer forward (diagnosis variants); defaults to
            ``oracle_forward(config.cell, **variant_for(config))``
    wrap    optional ``wrap(forward) -> forward`` (tolerance probes inject noise)
    """
    forward = forward or oracle_forward(config.cell, **variant_for(config))
    if wrap is not None:
        forward = wrap(forward)
    s0 = None if state0 is None else {k: np.asarray(v, np.float64) for k, v in state0.items()}
    outputs, final = stack_forward(forward, _float64(params), np.asarray(x, np.float64),
                                   nest_state(s0, config.num_layers, config.D))
    return flat_outputs(outputs, final, config.D)
