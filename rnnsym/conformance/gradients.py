"""``rnnsym check TARGET --gradients``: the target's gradients against the generated backward.

Per drawn case (batched; stacks of layers, both directions and packed sequences for torch
modules and drop-ins; both directions and lengths for Keras (masks) and Flax (seq_lengths);
one layer, one direction and fixed lengths for torch cells and functions; what a harness
covers: its ``gradient_stacks``, ``gradient_bidirectional``, ``gradient_lengths``) an
upstream gradient ``G`` of the flat outputs is drawn (uniform in [-1, 1], seeded by the case,
so shrinking keeps it with its case).
The target computes the gradient of ``L = Σ G ⊙ outputs`` with respect to its own parameters,
the input and the initial state (torch modules, cells and drop-ins: autograd; Keras: its
backend's autodiff; Flax: jax.vjp; functions: their ``backward`` in the canonical convention);
the oracle is ``rnnsym.compile(cell).backward`` (BPTT generated from the symbolic cell) run
layer by layer and direction by direction (:func:`stack_gradients`: a reverse direction is the
forward one on the time-reversed input, a layer's input gradient is the output gradient of the
layer below; with per-sample lengths each sample is its own sequence,
:func:`sample_gradients`), its canonical parameter gradients mapped to the target's layout by
the adjoint of the harness's parameter conversion. Every gradient array is compared with a
per-element tolerance (:func:`gradient_tolerance`). A failure names the target parameter whose
gradient differs, and ``GRADIENT_BUGS`` (the gradient part of the diagnosis table, in
:mod:`rnnsym.conformance.gradient_bugs`, which builds on the oracle here) names the bug. (Its names
``GRADIENT_BUGS``, ``GradientBug``, ``diagnose_gradients`` were importable from this module
before: import them from ``rnnsym.conformance.gradient_bugs``.)

Gradient arrays are keyed ``param:NAME`` (the target's own names), ``x`` (T, B, d_in),
``h0``/``c0`` (layers, directions, B, d), the flat state layout; outputs keep the flat layout
of :mod:`rnnsym.frameworks`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from rnnsym.conformance.compare import compare_flat, error_ratio
from rnnsym.conformance.oracle import _compiled, variant_for
from rnnsym.conformance.isolation import TargetDied
from rnnsym.conformance.target import Outcome, TargetTimeout, limited_call, timeout_text
from rnnsym.conformance.tolerance import (FUNCTION_ULPS, PROBES, SAFETY, Tolerance, _perturb,
                                    explicit_tolerance, fan_in, gamma, unit_roundoff)
from rnnsym.frameworks import Config, ContractError, OutputError, UsageError, nest_state
from rnnsym.frameworks.layers import direction_forward


# --- the oracle ----------------------------------------------------------------------------
def upstream_for(case) -> dict:
    """The upstream gradient of the flat outputs for ``case`` (seeded by the case), in the
    case's dtype: the target gets it as drawn, the oracle the same values in float64."""
    rng = np.random.default_rng(int(case.key()[:12], 16))
    return {k: rng.uniform(-1, 1, s).astype(case.config.dtype)
            for k, s in case.config.flat_shapes().items()}


def _module(config: Config):
    return _compiled(config.cell, tuple(sorted(variant_for(config).items())))


def _zero_state(config: Config, dtype="float64") -> dict:
    """The flat initial state of zeros: ``{"h": (L, D, B, d_out), "c": (L, D, B, d_h)}``."""
    state = {"h": np.zeros((config.num_layers, config.D, config.B, config.d_out), dtype)}
    if config.cell == "lstm":
        state["c"] = np.zeros((config.num_layers, config.D, config.B, config.d_h), dtype)
    return state


def _state0(config: Config, state0) -> list:
    """Canonical initial state ``[layer][direction]`` (zeros where the case has none)."""
    flat = _zero_state(config) if state0 is None else \
        {k: np.asarray(v, np.float64) for k, v in state0.items()}
    return nest_state(flat, config.num_layers, config.D)


def _float64(params) -> list:
    return [[{k: np.asarray(v, np.float64) for k, v in p.items()} for p in layer]
            for layer in params]


def stack_gradients(config: Config, params: list, x, state0: list, upstream: dict, *,
                    layer: Optional[Callable] = None, noise: Optional[Callable] = None,
                    between_layers: bool = True, reverse_to_input: bool = True):
    """The backward of a stack, from the single-layer one: ``(d_params[layer][direction],
    d_x, d_state0[layer][direction])``, canonical.

    ``layer(config, params, x, state0, upstream)`` is the backward of one layer and direction
    (``x`` in its own time order, ``upstream`` flat with one layer and direction) returning
    ``(d_params, d_x, d_state0)``; by default :func:`canonical_gradients` (a diagnosis
    variant passes a broken one: the bug is in every layer's step). A reverse direction runs
    on the time-reversed input and output gradient, its input gradient flipped back; a
    layer's output gradient is its share of the input gradient of the layer above (none with
    ``between_layers=False``, a bug model; ``reverse_to_input=False``, another, drops what the
    reverse direction sends to its input). ``noise`` perturbs what the forward keeps,
    the inputs of the layers above the first included (tolerance probes)."""
    if layer is None:
        def layer(c, p, xs, s0, up):
            return canonical_gradients(c, p, xs, s0, up, noise=noise)[:3]
    module = _module(config)
    L, D = len(params), len(params[0])
    inputs = [np.asarray(x, np.float64)]
    for lay in range(L - 1):
        nxt = np.concatenate([direction_forward(module.forward, params[lay][d], inputs[lay],
                                                state0[lay][d], reverse=d == 1)[0]
                              for d in range(D)], axis=-1)
        inputs.append(nxt if noise is None else noise(nxt))
    d_params = [[None] * D for _ in range(L)]
    d_state0 = [[None] * D for _ in range(L)]
    d_y = np.asarray(upstream["output"], np.float64)          # (T, B, D, d_out)
    for lay in reversed(range(L)):
        d_in = np.zeros_like(inputs[lay])
        for d in range(D):
            up = {"output": d_y[::-1, :, d:d + 1] if d else d_y[:, :, d:d + 1]}
            for k in ("h_n", "c_n"):
                if k in upstream:
                    up[k] = np.asarray(upstream[k], np.float64)[lay:lay + 1, d:d + 1]
            xs = inputs[lay][::-1] if d else inputs[lay]
            d_params[lay][d], dx, d_state0[lay][d] = layer(config, params[lay][d], xs,
                                                            state0[lay][d], up)
            if d == 0 or reverse_to_input:
                d_in = d_in + (dx[::-1] if d else dx)
        if lay:
            d_y = d_in.reshape(d_y.shape) if between_layers else np.zeros_like(d_y)
    return d_params, d_in, d_state0


def canonical_gradients(config: Config, params: dict, x, state0: dict, upstream: dict, *,
                        carry: Optional[Callable] = None, per_step: bool = False,
                        noise: Optional[Callable] = None):
    """The generated backward for one layer: ``(d_params, d_x, d_state0)`` in the canonical
    layout. With ``carry(t, d_state)`` (what flows from step t back to step t-1, or to the
    initial state at t = 0, e.g. zeros for a state detached before step t) or ``per_step``,
    the backward runs one step at a time and also returns each step's parameter gradients
    (diagnosis variants). ``noise(array)`` perturbs every quantity the forward keeps for
    the backward (tolerance probes)."""
    module = _module(config)
    x = np.asarray(x, np.float64)
    d_out = upstream["output"][:, :, 0]
    d_final = {"h": upstream["h_n"][0, 0]}
    if config.cell == "lstm":
        d_final["c"] = upstream["c_n"][0, 0]
    if carry is None and not per_step:
        _, _, cache = module.forward(params, x, state0, return_cache=True)
        if noise is not None:
            cache = {k: (noise(v) if isinstance(v, np.ndarray) and k != "x" else v)
                     for k, v in cache.items()}
        return module.backward(params, cache, d_out, d_final) + (None,)
    states = [state0]
    for t in range(len(x)):
        states.append(module.step(params, x[t], states[-1]))
    steps, d_x, d_state = [None] * len(x), np.zeros_like(x), d_final
    for t in reversed(range(len(x))):
        _, _, cache = module.forward(params, x[t:t + 1], states[t], return_cache=True)
        steps[t], dxt, d_state = module.backward(params, cache, d_out[t:t + 1], d_state)
        d_x[t] = dxt[0]
        if carry is not None:
            d_state = carry(t, d_state)     # at t = 0: what reaches the initial state
    total = {k: sum(s[k] for s in steps) for k in steps[0]} if steps else \
        module.backward(params, module.forward(params, x, state0, return_cache=True)[2],
                        d_out, d_final)[0]
    return total, d_x, d_state, steps


def conversion_matrix(harness, config: Config, values: dict):
    """The target → canonical parameter conversion as a matrix (it is linear: a selection,
    transposes, and for torch's Elman the sum of its two biases), read off column by column
    from the harness's own ``to_canonical``; cached per configuration. Returns
    ``(A, target layout {name: (offset, shape)}, canonical layout)``."""
    cache = harness.__dict__.setdefault("_gradient_conversions", {})
    if config in cache:
        return cache[config]
    layout, offset = {}, 0
    for n, v in values.items():
        layout[n] = (offset, np.shape(v))
        offset += int(np.size(v))

    def convert(flat):          # -> {(layer, direction, canonical name): array}
        arrays = {n: flat[o:o + int(np.prod(sh))].reshape(sh) for n, (o, sh) in layout.items()}
        nested = harness.to_canonical(config, arrays)
        return {(lay, d, k): v for lay, dirs in enumerate(nested)
                for d, p in enumerate(dirs) for k, v in p.items()}

    base = convert(np.zeros(offset))
    canon_layout, o = {}, 0
    for k, v in base.items():
        canon_layout[k] = (o, np.shape(v))
        o += int(np.size(v))
    A = np.zeros((o, offset))
    e = np.zeros(offset)
    for j in range(offset):
        e[j] = 1.0
        col = convert(e)
        A[:, j] = np.concatenate([np.ravel(np.asarray(col[k], np.float64) - base[k])
                                  for k in canon_layout])
        e[j] = 0.0
    cache[config] = (A, layout, canon_layout)
    return cache[config]


def to_target_layout(conversion, d_canonical: list) -> dict:
    """The adjoint of the conversion: ``A^T g``, in the target's arrays (``d_canonical``:
    ``[layer][direction]`` dicts)."""
    A, layout, canon_layout = conversion
    g = np.concatenate([np.ravel(np.asarray(d_canonical[lay][d][k], np.float64))
                        for lay, d, k in canon_layout])
    out = A.T @ g
    return {f"param:{n}": out[o:o + int(np.prod(s))].reshape(s) for n, (o, s) in layout.items()}


def sample_gradients(config: Config, params: list, x, state0: list, upstream: dict,
                     lengths, *, padding: str = "zero", padding_detached: bool = False,
                     **stack):
    """:func:`stack_gradients` for a batch of per-sample ``lengths``: each sample is its
    own sequence ``x[:n, b]`` (a packed sequence's semantics: the steps past n are not run,
    the final state is the one at n-1, a reverse direction starts there), its gradients
    summed into the parameters' and written into its slices of ``x`` (zero past n) and of
    the initial state. ``padding`` is the target's convention for the outputs past a length
    (``rnnsym.conformance.bug_models.pad_outputs``): "zero" (no gradient flows from them) or "repeat"
    (Keras' mask: the forward direction's last valid output repeated, so their upstream
    gradient adds to step n-1's). ``padding_detached`` is a bug model: the state a sample
    holds through the padding steps is detached, so for samples shorter than T the forward
    direction's ``h_n``/``c_n`` gradient and the reverse direction's initial-state gradient
    are lost."""
    x = np.asarray(x, np.float64)
    T = len(x)
    d_x = np.zeros_like(x)
    d_s0 = [[{k: np.zeros_like(v) for k, v in s.items()} for s in dirs] for dirs in state0]
    d_params = None
    for b, n in enumerate(int(v) for v in lengths):
        up = {"output": np.array(upstream["output"], np.float64)[:n, b:b + 1]}
        if padding == "repeat":     # outputs n.. repeat output n-1 (forward direction)
            up["output"][n - 1, 0, 0] += np.asarray(upstream["output"])[n:, b, 0].sum(0)
        for k in ("h_n", "c_n"):
            if k in upstream:
                up[k] = np.array(upstream[k], np.float64)[:, :, b:b + 1]
                if padding_detached and n < T:
                    up[k][:, 0] = 0.0
        s0 = [[{k: v[b:b + 1] for k, v in s.items()} for s in dirs] for dirs in state0]
        dp, dx, ds = stack_gradients(config, params, x[:n, b:b + 1], s0, up, **stack)
        d_x[:n, b] = dx[:, 0]
        for lay, dirs in enumerate(ds):
            for d, s in enumerate(dirs):
                if padding_detached and n < T and d == 1:
                    continue
                for k, v in s.items():
                    d_s0[lay][d][k][b] = v[0]
        d_params = dp if d_params is None else \
            [[{k: a[k] + p[k] for k in a} for a, p in zip(da, dq)]
             for da, dq in zip(d_params, dp)]
    return d_params, d_x, d_s0


def expected_gradients(harness, case, upstream, *, layer=None, params=None, x=None,
                       state0=None, noise=None, **stack) -> dict:
    """Oracle gradients of ``case`` in the gradient layout (module docstring); ``layer``,
    ``noise`` and ``stack`` (bug models) as in :func:`stack_gradients` and
    :func:`sample_gradients` (a case with per-sample lengths); ``params``/``state0``
    canonical and nested."""
    config = case.config
    params = _float64(params if params is not None else
                      harness.to_canonical(config, case.values))
    x = case.x if x is None else x
    s0 = _state0(config, case.state0) if state0 is None else state0
    if case.lengths is not None:
        from rnnsym.conformance.bug_models import length_padding
        d_params, d_x, d_s0 = sample_gradients(config, params, x, s0, upstream, case.lengths,
                                               padding=length_padding(harness, config),
                                               layer=layer, noise=noise, **stack)
    else:
        d_params, d_x, d_s0 = stack_gradients(config, params, x, s0, upstream, layer=layer,
                                              noise=noise, **stack)
    grads = to_target_layout(conversion_matrix(harness, config, case.values), d_params)
    grads["x"] = np.asarray(d_x, np.float64)
    for k in (["h", "c"] if config.cell == "lstm" else ["h"]):
        grads[f"{k}0"] = np.array([[np.asarray(d[k], np.float64) for d in dirs]
                                   for dirs in d_s0])
    return grads


def gradient_tolerance(harness, case, upstream, expected: dict, *, seed: int = 0) -> Tolerance:
    """Per-element tolerances for the gradients, in the spirit of ``rnnsym.conformance.tolerance``.

    A correct backward in the target's dtype computes exactly the gradient of perturbed data:
    every product it sums has at most ``n`` terms, where ``n`` is the forward's fan-in, the
    backward's (``W^T δ`` sums over the ``G·d_h`` gate rows of each direction) or a weight
    gradient's (``Σ_t δ_t h_{t-1}^T`` sums ``T·B`` products), whichever is largest; so
    parameters, input, initial state and the upstream gradient are perturbed relatively by
    ``gamma_n`` (+ ``FUNCTION_ULPS`` for the activations' rounding), ``PROBES`` times, and the
    largest deviation of the oracle's gradients is taken, plus the rounding of the result
    ``u |expected|`` and the normwise floor ``gamma_n max|expected|`` of each array (its elements
    are sums whose rounding scales with the largest terms, which may cancel), times ``SAFETY``
    (tolerance.py's constants, unchanged). As there, the activations round their results: every
    quantity the forward keeps for the backward (gates, states; a gate near 1 makes ``1 - z``
    and ``σ' = z(1 - z)`` relatively inexact) also gets an absolute
    ``FUNCTION_ULPS · u · (1 + |v|) · r`` in each probe.
    """
    config = case.config
    u = unit_roundoff(config.dtype)
    gates = {"elman": 1, "lstm": 4, "gru": 3}[config.cell]
    n = max(fan_in(config), gates * config.d_h * config.D, config.T * config.B)
    g = gamma(n + FUNCTION_ULPS, u)
    rng = np.random.default_rng(seed)
    params = _float64(harness.to_canonical(config, case.values))
    s0 = _state0(config, case.state0)
    spread = {k: np.zeros(np.shape(v)) for k, v in expected.items()}
    with np.errstate(all="ignore"):
        for _ in range(PROBES):
            def noise(v):
                return v + FUNCTION_ULPS * u * (1 + np.abs(v)) * rng.uniform(-1, 1, v.shape)
            probe = expected_gradients(harness, case, _perturb(upstream, g, rng),
                                       params=_perturb(params, g, rng), x=_perturb(case.x, g, rng),
                                       state0=_perturb(s0, g, rng), noise=noise)
            for k in spread:
                diff = np.abs(probe[k] - expected[k])
                spread[k] = np.fmax(spread[k], np.nan_to_num(diff, nan=np.inf))
    # a gradient array comes out of GEMMs whose rounding scales with their operands, i.e.
    # with the array's largest entries, not with one (possibly cancelling) entry: gamma_n of
    # the array's largest magnitude is a floor for each of its elements (a normwise bound)
    arrays = {k: SAFETY * (spread[k] + u * np.abs(expected[k])
                           + g * (np.max(np.abs(expected[k])) if np.size(expected[k]) else 0))
              for k in expected}
    return Tolerance(arrays, "backward-error", u, g)


# --- the target ----------------------------------------------------------------------------
def target_gradients(harness, case, upstream, timeout=None):
    """``(flat outputs, gradients)`` of the target, or raises what it raised."""
    if not harness.supports_gradients:
        raise UsageError(f"--gradients is not supported for {harness.name} targets (torch "
                         "modules and drop-ins, torch cells, Keras, Flax, functions with a "
                         "backward)")
    state0 = case.state0
    if state0 is None:                 # an explicit zero state: its gradient is checked too
        state0 = _zero_state(case.config, case.config.dtype)
    kwargs = {}
    if case.lengths is not None:
        kwargs = {"lengths": case.lengths, "length_mode": case.length_mode}
    return limited_call(harness, "gradients", (case.config, case.values, case.x, state0,
                                               upstream), kwargs, timeout)


@dataclass
class GradientOutcome(Outcome):
    """An Outcome whose expected/got are gradients (outputs compared first)."""

    upstream: dict = field(default_factory=dict)
    forward_agrees: bool = True


def run_gradient_case(harness, case, *, rtol=None, atol=None, timeout=None):
    upstream = upstream_for(case)
    expected = expected_gradients(harness, case, upstream)
    if not all(np.all(np.isfinite(v)) for v in expected.values()):
        return None
    if rtol is None and atol is None:
        tol = gradient_tolerance(harness, case, upstream, expected)
    else:
        tol = explicit_tolerance(expected, rtol or 0.0, atol or 0.0)
    outcome = GradientOutcome(case, expected, tol, upstream=upstream)
    try:
        flat, got = target_gradients(harness, case, upstream, timeout)
    except TargetTimeout as exc:
        outcome.kind, outcome.error = "timed out", timeout_text(timeout, exc)
        return outcome
    except TargetDied as exc:
        outcome.kind, outcome.error = exc.kind, str(exc)
        return outcome
    except (OutputError, ContractError) as exc:
        outcome.kind, outcome.error = "wrong shape", str(exc)
        return outcome
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - the target's own failure is a finding
        text = f"{type(exc).__name__}: {exc}"
        outcome.kind, outcome.error = "raised", f"raised {text}"
        outcome.unsupported = text if harness.unsupported(exc) else None
        return outcome
    missing = [k for k in expected if k not in got]
    if missing:
        outcome.kind, outcome.error = "wrong shape", f"no gradient for {', '.join(missing)}"
        return outcome
    for k in expected:
        if np.shape(got[k]) != np.shape(expected[k]):
            outcome.kind = "wrong shape"
            outcome.error = (f"gradient {k}: expected shape {np.shape(expected[k])}, got "
                             f"{np.shape(got[k])}")
            return outcome
    outcome.got = {k: np.asarray(got[k], np.float64) for k in expected}
    # the outputs, at the forward's tolerance scale: the same estimate tolerance.py makes
    from rnnsym.conformance.target import expected_outputs
    fwd = expected_outputs(harness, case, rtol=rtol, atol=atol)
    if fwd is not None:
        outcome.forward_agrees = not compare_flat(fwd[0], flat, fwd[1].arrays)
    outcome.mismatches = compare_flat(expected, outcome.got, tol.arrays)
    outcome.ratio = error_ratio(expected, outcome.got, tol.arrays)
    if outcome.mismatches:
        outcome.kind = "wrong gradients"
    return outcome


def moderate(case):
    """The case with every parameter, input and state array scaled to at most 1 in magnitude
    (PyTorch's initialization scale). The forward check explores saturating magnitudes; a
    gradient there is exponentially small and exponentially ill-conditioned (the relative
    error of σ'(u) ≈ e^{-|u|} is |u| times that of u), beyond what a tolerance estimated from
    rounding-level perturbations bounds reliably."""
    def scale(v):
        v = np.asarray(v)
        m = float(np.max(np.abs(v))) if v.size else 0.0
        return v if m <= 1 else (v / m).astype(v.dtype)
    from dataclasses import replace
    return replace(case, values={k: scale(v) for k, v in case.values.items()}, x=scale(case.x),
                   state0=None if case.state0 is None else
                   {k: scale(v) for k, v in case.state0.items()})


class GradientSubject:
    """The search subject of ``--gradients`` (``rnnsym.conformance.search``)."""

    def __init__(self, inner):
        self.inner = inner

    @property
    def nothing_left(self):
        return self.inner.nothing_left

    def cases(self):
        return self.inner.cases().map(moderate)

    def excluded(self, case):
        return self.inner.excluded(case)

    def run(self, case):
        o = self.inner.options
        return run_gradient_case(self.inner.harness, case, rtol=o.rtol, atol=o.atol,
                                 timeout=o.timeout)

    def unsupported(self, outcome):
        return self.inner.unsupported(outcome)

    def cover(self, stats, case, outcome):
        self.inner.cover(stats, case, outcome)
