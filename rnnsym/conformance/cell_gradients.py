"""``--gradients`` for any symbolic cell: the target's gradients against the generated backward.

Per drawn case (one layer, forward direction, fixed lengths, with bias) an upstream gradient
``G`` of the flat outputs is drawn (seeded by the case); the target's gradient of
``L = Σ G ⊙ outputs`` with respect to the cell's parameters, the input and the initial state
(functions: their ``backward``; torch modules: autograd) is compared with
``rnnsym.compile(cell).backward`` per element, with a tolerance from the spread of the
generated backward under perturbations of its inputs (the forward's backward-error model).

The gradient edits of the diagnosis (:func:`gradient_mutants`): the state detached before
every step (no gradient flows from step t to t-1), the gradients clipped at ±c (c read off the
target's largest gradient, as min-char-rnn's ``np.clip(d, -5, 5)``), the parameter gradient
of one step only (the accumulation over steps missing: the last step's, or the first's).
"""
from __future__ import annotations

import types

import numpy as np

from rnnsym.conformance.cell_oracle import canonical_params, expected_for
from rnnsym.conformance.compare import compare_flat, error_ratio
from rnnsym.conformance.isolation import TargetDied
from rnnsym.conformance.target import Outcome, TargetTimeout, limited_call, timeout_text
from rnnsym.conformance.tolerance import (FUNCTION_ULPS, SAFETY, _perturb, gamma, noisy_normalization,
                                    probe_spread, unit_roundoff)
from rnnsym.frameworks import ContractError, OutputError


def upstream_for(case, expected: dict) -> dict:
    rng = np.random.default_rng(int(case.key()[:12], 16))
    return {k: rng.uniform(-1, 1, np.shape(v)) for k, v in expected.items()}


def _upstream_args(cell, upstream):
    return upstream["output"][:, :, 0], {s: upstream[f"{s}_n"][0, 0] for s in cell.states}


def oracle_gradients(cell, module, params, x, state0, upstream, *, carry=None,
                     steps_only=None, noise=None) -> dict:
    """``{"param:P", "x", "<s>0"}`` from the generated backward. ``carry(t, d_state)``: what
    flows from step t back to t-1 (a detached state: zeros); ``steps_only``: the parameter
    gradient of those steps only (a missing accumulation); ``noise(array)`` perturbs what the
    forward keeps for the backward (tolerance probes)."""
    x = np.asarray(x, np.float64)
    d_out, d_final = _upstream_args(cell, upstream)
    if carry is None and steps_only is None:
        _, _, cache = module.forward(params, x, state0, return_cache=True)
        if noise is not None:
            cache = {k: (noise(v) if isinstance(v, np.ndarray) and k != "x" else v)
                     for k, v in cache.items()}
        dp, dx, ds0 = module.backward(params, cache, d_out, d_final)
    else:
        states = [module.forward(params, x[:0], state0)[1]]
        for t in range(len(x)):
            states.append(module.forward(params, x[t:t + 1], states[-1])[1])
        per, dx, d_state = [None] * len(x), np.zeros_like(x), d_final
        for t in reversed(range(len(x))):
            _, _, cache = module.forward(params, x[t:t + 1], states[t], return_cache=True)
            per[t], dxt, d_state = module.backward(params, cache, d_out[t:t + 1], d_state)
            dx[t] = dxt[0]
            if carry is not None:
                d_state = carry(t, d_state)
        chosen = range(len(x)) if steps_only is None else steps_only
        dp = {k: sum(per[t][k] for t in chosen) for k in per[0]}
        ds0 = d_state
    grads = {f"param:{k}": np.asarray(v) for k, v in dp.items()}
    grads["x"] = np.asarray(dx)
    grads.update({f"{k}0": np.asarray(v)[None, None] for k, v in ds0.items()})
    return grads


def gradient_tolerance(cell, module, config, params, x, state0, upstream, expected: dict,
                       seed: int = 0) -> dict:
    """Per-element tolerances, as ``rnnsym.conformance.gradients.gradient_tolerance``: the spread of
    the generated backward when parameters, input, initial state and upstream gradient are
    perturbed relatively by gamma_n (n: the widest sum, the fan-in bound of every dimension, a
    parameter's rows, or the T*B terms of a weight gradient) and what the forward keeps gets an
    absolute ``FUNCTION_ULPS * u * (1 + |v|)`` (a saturated gate makes ``1 - y**2`` inexact),
    and the layer norms and feature means of the forward and backward carry their rounding
    (``rnnsym.conformance.tolerance.noisy_normalization``: it breaks the identities the layer norm's
    backward cancels on, and ``1 / std`` amplifies the centring's), plus ``u |expected|``
    and the normwise floor ``gamma_n max|expected|``, times SAFETY."""
    u = unit_roundoff(config.dtype)
    rows = max((np.shape(v)[0] for v in params.values() if np.ndim(v)), default=1)
    n = max(sum(v for _, v in config.dims) + 2, rows, config.T * config.B)
    g = gamma(n + FUNCTION_ULPS, u)
    rng = np.random.default_rng(seed)

    def noise(v):
        return v + FUNCTION_ULPS * u * (1 + np.abs(v)) * rng.uniform(-1, 1, np.shape(v))

    eta = FUNCTION_ULPS * u
    cached = noisy_normalization(getattr(module, "_forward_cached", None), eta, rng)

    def forward(p, xs, s, *, return_cache=False):
        if return_cache and cached is not None:
            return cached(p, xs, s)
        return module.forward(p, xs, s, return_cache=return_cache)
    noisy = types.SimpleNamespace(forward=forward,
                                  backward=noisy_normalization(module.backward, eta, rng))

    def compute(p, xs, s):
        return oracle_gradients(cell, noisy, p, xs, s, _perturb(upstream, g, rng), noise=noise)
    spread = probe_spread(compute, params, x, state0, expected, g, rng)
    return {k: SAFETY * (spread[k] + u * np.abs(e) + g * np.max(np.abs(e), initial=0.0))
            for k, e in expected.items()}


class CellGradientSubject:
    """Wraps a ``CellSubject``: the same cases, the gradients compared too."""

    nothing_left = False

    def __init__(self, inner):
        self.inner = inner
        inner.space = {**inner.space, "bias": (True,)}

    def cases(self):
        return self.inner.cases()

    def excluded(self, case):
        return False

    def unsupported(self, outcome):
        return False

    def cover(self, stats, case, outcome):
        self.inner.cover(stats, case, outcome)

    def run(self, case):
        sub = self.inner
        oracle = expected_for(sub.module, sub.cell, case, sub.options.rtol,
                              sub.options.atol)
        if oracle is None:
            return None
        flat, tol = oracle
        params = canonical_params(sub.cell, case.config, case.values)
        upstream = upstream_for(case, flat)

        with np.errstate(all="ignore"):
            grads = oracle_gradients(sub.cell, sub.module, params, case.x, case.state0, upstream)
            gtol = gradient_tolerance(sub.cell, sub.module, case.config, params, case.x,
                                      case.state0, upstream, grads)
        outcome = Outcome(case, {**flat, **grads}, tol)
        outcome.tolerance = type(tol)({**tol.arrays, **gtol}, tol.method, tol.u, tol.gamma)
        outcome.upstream = upstream
        try:
            got_flat, got_grads = limited_call(
                sub.target, "gradients", (case.config, case.values, case.x, case.state0,
                                          upstream), timeout=sub.options.timeout)
        except TargetTimeout as exc:
            outcome.kind, outcome.error = "timed out", timeout_text(sub.options.timeout, exc)
            return outcome
        except TargetDied as exc:
            outcome.kind, outcome.error = exc.kind, str(exc)
            return outcome
        except (OutputError, ContractError) as exc:
            outcome.kind, outcome.error = "wrong shape", str(exc)
            return outcome
        except Exception as exc:  # noqa: BLE001 - the target's own failure is a finding
            outcome.kind, outcome.error = "raised", f"raised {type(exc).__name__}: {exc}"
            return outcome
        missing = sorted(set(grads) - set(got_grads))
        shapes = [k for k in grads if k in got_grads and
                  np.shape(got_grads[k]) != np.shape(grads[k])]
        if missing or shapes:
            k = (missing or shapes)[0]
            outcome.kind = "wrong shape"
            outcome.error = (f"gradient {k}: missing" if missing else
                             f"gradient {k}: expected shape {np.shape(grads[k])}, got "
                             f"{np.shape(got_grads[k])}")
            return outcome
        outcome.got = {**got_flat, **{k: got_grads[k] for k in grads}}
        outcome.mismatches = compare_flat(outcome.expected, outcome.got, outcome.tolerance.arrays)
        outcome.ratio = error_ratio(outcome.expected, outcome.got, outcome.tolerance.arrays)
        if outcome.mismatches:
            forward_wrong = any(m.name in flat for m in outcome.mismatches)
            outcome.kind = "wrong numbers" if forward_wrong else "wrong gradients"
        return outcome


# --- diagnosis ------------------------------------------------------------------------------
def gradient_mutants(cell, module, outcome) -> list:
    """``(text, grads)`` of the gradient edits on the outcome's case (module docstring)."""
    case = outcome.case
    params = canonical_params(cell, case.config, case.values)
    upstream = outcome.upstream
    T = case.config.T
    out = []

    def zero(t, d):
        return {k: np.zeros_like(v) for k, v in d.items()}
    run = [("the state detached before every step (no gradient from step t to t-1)",
            dict(carry=zero)),
           ("the parameter gradients of the last step only (no accumulation over steps)",
            dict(steps_only=[T - 1])),
           ("the parameter gradients of the first step only (no accumulation over steps)",
            dict(steps_only=[0]))]
    for text, kwargs in run:
        grads = oracle_gradients(cell, module, params, case.x, case.state0, upstream, **kwargs)
        out.append((text, grads))
    got = outcome.got
    names = [k for k in got if k.startswith("param:")]
    c = max((float(np.max(np.abs(got[k]), initial=0.0)) for k in names), default=0.0)
    if c > 0:
        exact = {k: v for k, v in outcome.expected.items() if k not in ("output",)
                 and not k.endswith("_n")}
        clipped = {k: (np.clip(v, -c, c) if k.startswith("param:") else v)
                   for k, v in exact.items()}
        out.append((f"the parameter gradients clipped to ±{c:.4g}", clipped))
    return out


def diagnose_gradients(cell, module, outcome) -> list:
    got, tol = outcome.got, outcome.tolerance.arrays
    found = []
    for text, grads in gradient_mutants(cell, module, outcome):
        keys = list(grads)
        if not compare_flat({k: grads[k] for k in keys}, {k: got[k] for k in keys},
                            {k: tol[k] for k in keys}):
            found.append(f"matches the gradient edit: {text}")
    return found
