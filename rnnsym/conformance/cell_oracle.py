"""The oracle of the any-cell check (``rnnsym.conformance.anycell``): the generated forward of the
cell (``rnnsym.compile``) run on a case (reverse direction, per-sample lengths), the target's
parameter values as the oracle's, and the backward-error tolerance for any cell. Shared by the
check, its gradient part (``cell_gradients``) and its diagnosis (``mutations``)."""
from __future__ import annotations

import numpy as np

from rnnsym.conformance.target import representable
from rnnsym.conformance.tolerance import (Tolerance, backward_error_tolerance, explicit_tolerance,
                                    noisy_steps)
from rnnsym.frameworks.cell_api import CellConfig, bias_params
from rnnsym.frameworks.layers import direction_forward


def flat_of(outputs, final) -> dict:
    flat = {"output": np.asarray(outputs)[:, :, None]}
    flat.update({f"{k}_n": np.asarray(v)[None, None] for k, v in final.items()})
    return flat


def run_forward(forward, config: CellConfig, params, x, state0, lengths=None) -> dict:
    """Flat outputs of the single-layer ``forward`` on a case: reversed with
    ``config.reverse``, sample by sample within ``lengths`` (zeros past them)."""
    x = np.asarray(x, np.float64)
    if lengths is None:
        return flat_of(*direction_forward(forward, params, x, state0, reverse=config.reverse))
    per = []
    for b, n in enumerate(int(n) for n in lengths):
        s0 = None if state0 is None else {k: v[b:b + 1] for k, v in state0.items()}
        per.append(direction_forward(forward, params, x[:n, b:b + 1], s0,
                                     reverse=config.reverse))
    out = np.zeros((x.shape[0], x.shape[1]) + per[0][0].shape[2:])
    for b, (o, _) in enumerate(per):
        out[:len(o), b] = o[:, 0]
    final = {k: np.concatenate([f[k] for _, f in per]) for k in per[0][1]}
    return flat_of(out, final)


def canonical_params(cell, config: CellConfig, values: dict) -> dict:
    """The target's values as the oracle's params: float64, absent biases as zeros."""
    params = {k: np.asarray(v, np.float64) for k, v in values.items()}
    if not config.bias:
        shapes = cell.shapes().concrete(**dict(config.dims))
        params.update({b: np.zeros(shapes[b]) for b in bias_params(cell) if b not in params})
    return params


def noisy_cell_steps(forward, eta: float, rng):
    """``tolerance.noisy_steps`` for any cell: the outputs are the steps' own (a readout, or the
    state the cell outputs)."""
    return noisy_steps(forward, eta, rng, output=lambda out, state: out[0])


def cell_tolerance(config: CellConfig, run, params, x, state0, expected, seed=0) -> Tolerance:
    """The backward-error tolerance of ``rnnsym.conformance.tolerance`` for any cell: the fan-in
    bound is the sum of every free dimension (the widest sum a pre-activation can have)."""
    return backward_error_tolerance(config, run, params, x, state0, expected, seed=seed,
                                    fan=sum(v for _, v in config.dims) + 2,
                                    noisy=noisy_cell_steps)


def runner(module, case, forward=None):
    """``run(params, x, state0, wrap=None) -> flat`` of ``module`` (or ``forward``) on
    ``case``'s configuration and lengths."""
    base = forward or module.forward

    def run(params, x, state0, wrap=None):
        fwd = wrap(base) if wrap else base
        return run_forward(fwd, case.config, params, x, state0, case.lengths)
    return run


def expected_for(module, cell, case, rtol=None, atol=None, forward=None):
    params = canonical_params(cell, case.config, case.values)
    run = runner(module, case, forward)
    with np.errstate(all="ignore"):
        expected = run(params, case.x, case.state0)
    if not representable(expected, case.config.dtype):
        return None
    if rtol is None and atol is None:
        tol = cell_tolerance(case.config, run, params, case.x, case.state0, expected)
    else:
        tol = explicit_tolerance(expected, rtol or 0.0, atol or 0.0)
    return expected, tol
