"""Principled, per-element tolerances for comparing a target with the oracle.

The question is not "are the numbers close" but "could a correct implementation,
computing in the target's dtype, have produced these numbers". The answer comes
from backward error analysis:

1.  A floating-point dot product of length ``n`` equals the exact dot product of
    inputs perturbed by a relative amount of at most ``gamma_n = n*u / (1 - n*u)``
    (Higham, *Accuracy and Stability of Numerical Algorithms*, Thm 3.5), in any
    summation order, fused or split, with or without FMA. ``u`` is the unit
    roundoff of the target's dtype (2**-24 for float32, 2**-53 for float64).
    Elementwise activations add a few ``u`` of relative error on their result.
2.  So a correct implementation computes *exactly* the RNN of some parameters,
    inputs and initial state each perturbed relatively by at most ``gamma_n``
    (a little more for the activations), where ``n`` is the largest fan-in of any
    pre-activation: ``n = (layer input width) + (recurrent width) + 2 biases``,
    plus ``d_h`` for the LSTM projection. We add ``FUNCTION_ULPS`` to ``n`` for the
    activations' own rounding.
3.  How far that moves the outputs is the *sensitivity* of this particular example:
    it grows with T when the recurrence amplifies errors and shrinks to nothing in
    saturated gates. We measure it with the oracle (float64) itself:
    ``PROBES`` runs with every parameter, input and state entry ``p`` replaced by
    ``p * (1 + gamma_n * r)``, ``r`` uniform in [-1, 1] and independent per entry,
    taking the largest deviation per output element. A random probe estimates the
    typical, not the worst-case, effect (real rounding errors are random too);
    ``SAFETY`` covers the gap between an estimate and a bound, and continuous ``r``
    with several probes makes it very unlikely that all probes cancel where the
    rounding errors don't (two large terms of opposite sign).
4.  Activations round their *results* too: a gate z near 1 carries an absolute
    error of u, which ``1 - z`` turns into a large relative one (likewise ``f*c``),
    and that error travels on through the recurrence and into the next layer; and a
    float32 sigmoid is often accurate to a few u only *absolutely* (``0.5 + 0.5 *
    tanh(a / 2)``, as in rnnsym's generated code and onnxruntime: a gate of 2e-4 may be
    off by 1e-7), which a small gate times a large ``W_hn h`` in a GRU turns into a large
    error. Perturbed inputs don't model either, so the probes also run the layer one step
    at a time and add an absolute ``FUNCTION_ULPS * u * (1 + |v|) * r`` to every sigmoid
    result ``v`` inside the step (``noisy_activations``) and to every new state entry ``v``.
5.  Finally the target's result is rounded to its dtype: ``u * |expected|``.

    tol = SAFETY * (max_probe |oracle(perturbed) - oracle| + u * |expected|)

6.  Ops with a carried matrix state (ONNX ``LinearAttention``, ``CausalConvWithState``;
    :func:`state_op_tolerance`): the same argument per token. One token's update of a
    key/value head, ``S = exp(g) S + outer(k, beta (v - S^T k))`` and its read-out
    ``scale S^T q``, is a dot product of length ``d_k`` per entry plus two additions, so a
    correct implementation computes exactly the recurrence of inputs (query, key, value,
    decay, beta, past_state) perturbed relatively by ``gamma_n``, ``n = d_k + 2 +
    FUNCTION_ULPS`` (exp's rounding), and of a state perturbed relatively by ``gamma_n``
    after every token (the rounding of the update itself, which input perturbations do not
    reach when ``exp(g) S`` and ``outer(k, v)`` cancel). A chunked evaluation sums the same
    products in another order (Higham's bound holds in any order). For the convolution
    ``n = k + 2 + FUNCTION_ULPS`` (k products, the bias, SiLU's product) and no state noise
    (its state is a copy of inputs); a fused SiLU ``y * sigmoid(y)`` adds the absolute error
    of a float32 sigmoid (4.) times ``|y|``: ``FUNCTION_ULPS * u * |y|`` (onnxruntime's
    SiLU returns -0 for ``y = -20``, exactly ``-4.1e-8``). Float16 results also round to
    subnormals, absolutely: ``u * tiny`` is added. The probes and ``SAFETY`` are those of 3.
    and 5.

7.  Gradients (``--gradients``): the backward of the oracle runs on the perturbed inputs too,
    and its own roundings that no input perturbation reaches (a tanh near ±1 in ``1 - tanh**2``,
    the layer norm's centring and the identities its backward cancels on) get noise where they
    happen: :func:`noisy_normalization`.

Nothing here is tuned to make a target pass: the only free constants are
``SAFETY`` (a factor between an estimate and a bound), ``PROBES`` and
``FUNCTION_ULPS``; they apply to every target alike. Consequences: float64 targets
get tolerances ~5e8 times tighter than float32; larger sizes and longer sequences
get larger ones only as far as they really amplify rounding errors.

Explicit ``rtol``/``atol`` (CLI ``--rtol/--atol``) replace all of this with the
usual ``atol + rtol * |expected|``.
"""
from __future__ import annotations

import types
from dataclasses import dataclass
from typing import Callable

import numpy as np

from rnnsym.frameworks import Config

SAFETY = 8.0
PROBES = 4
FUNCTION_ULPS = 4


def unit_roundoff(dtype) -> float:
    """u = eps / 2: 2**-24 for float32, 2**-53 for float64."""
    return float(np.finfo(np.dtype(dtype)).eps) / 2


def fan_in(config: Config) -> int:
    """Largest number of terms summed into one pre-activation in this config."""
    widest_input = max(config.d_in, config.D * config.d_out if config.num_layers > 1 else 0)
    n = widest_input + config.d_out + 2
    if config.d_proj:
        n = max(n, config.d_h)
    return n


def gamma(n: int, u: float) -> float:
    """Higham's gamma_n = n u / (1 - n u)."""
    return n * u / (1 - n * u)


@dataclass(frozen=True)
class Tolerance:
    """How a tolerance was obtained; ``arrays`` maps each flat output to per-element
    tolerances of the same shape."""

    arrays: dict
    method: str          # "backward-error" or "rtol/atol"
    u: float
    gamma: float

    def describe(self) -> str:
        if self.method == "rtol/atol":
            return "explicit rtol/atol"
        return (f"backward-error estimate: u={self.u:.3g}, gamma_n={self.gamma:.3g}, "
                f"safety={SAFETY:g}")


def _perturb(tree, rel: float, rng: np.random.Generator):
    """Multiply every array leaf of a nested list/dict structure by (1 + rel * r),
    r uniform in [-1, 1] per entry."""
    if tree is None:
        return None
    if isinstance(tree, dict):
        return {k: _perturb(v, rel, rng) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [_perturb(v, rel, rng) for v in tree]
    arr = np.asarray(tree, dtype=np.float64)
    return arr * (1 + rel * rng.uniform(-1.0, 1.0, size=arr.shape))


def noisy_activations(forward: Callable, eta: float, rng: np.random.Generator) -> Callable:
    """A generated forward (``rnnsym.compile(cell).forward``) whose sigmoid results (its
    module's ``_sigmoid`` and ``_sigmoid_``) each get an absolute ``eta * (1 + |v|) * r`` (r
    uniform in [-1, 1]); any other callable is returned as is.

    Why absolute, and why sigmoid: float32 sigmoids are commonly ``0.5 + 0.5 * tanh(a / 2)``
    (rnnsym's own generated code, onnxruntime's kernels) or polynomial approximations,
    accurate to a few ``u`` absolutely but not relatively: onnxruntime's GRU gives
    ``sigmoid(-8.5) = 2.0e-4`` with an error of 1e-7 (5e-4 relative; ``torch.sigmoid`` is
    within 2 ulps). The gate multiplies whatever it gates (``r`` times ``W_hn h + b_hn`` in a
    GRU, ``i * g``, ``f * c``), which relative perturbations of the inputs do not reach. (tanh
    implementations are relatively accurate near 0, and a tanh state gets the state noise.)"""
    names = getattr(forward, "__globals__", {})
    if "_sigmoid_" not in names and "_sigmoid" not in names or \
            not hasattr(forward, "__code__"):
        return forward

    def add(v):
        return _add_noise(v, eta, rng)

    def sigmoid_(u):            # in place, as the generated helper
        names["_sigmoid_"](u)
        add(u)

    patched = dict(names)
    if "_sigmoid_" in names:
        patched["_sigmoid_"] = sigmoid_
    if "_sigmoid" in names:
        patched["_sigmoid"] = lambda u: add(names["_sigmoid"](u))
    noisy = types.FunctionType(forward.__code__, patched, forward.__name__,
                               forward.__defaults__, forward.__closure__)
    noisy.__kwdefaults__ = forward.__kwdefaults__
    return noisy


def _add_noise(v, eta: float, rng: np.random.Generator):
    """``v + eta * (1 + |v|) * r``, r uniform in [-1, 1] per entry; an array in place (a
    generated ``_sigmoid_`` writes a view of a reused buffer)."""
    noise = eta * (1 + np.abs(v)) * rng.uniform(-1, 1, size=np.shape(v))
    if isinstance(v, np.ndarray) and v.ndim:
        v += noise
        return v
    return v + noise


def noisy_normalization(function: Callable, eta: float, rng: np.random.Generator) -> Callable:
    """A generated function (a cell's ``backward`` or ``_forward_cached``) whose tanh, layer
    norms and feature means (``np.tanh``, its module's ``_layernorm`` and ``_feature_mean``)
    carry their rounding errors (r uniform in [-1, 1] per entry): every tanh result v gets
    ``eta * |v| * r``, every normalized entry v also ``eta * (1 + |v|) * r``, every mean of N
    terms x ``gamma_{N+1} mean(|x|) * r``; a callable that is not a generated function is
    returned as is.

    tanh: relatively accurate, but a result near ±1 (float32 torch.tanh(9.1) is exactly 1)
    carries an absolute ``u`` that ``1 - tanh(c)**2`` in the backward turns into a large relative error
    (layer-norm LSTM: ``c = b_c + g_c xhat`` sits at ±20; torch's c0 gradient has the wrong sign
    where the exact ``1 - tanh**2`` is 4e-17); noise on the cached ``c`` does not reach it.

    The centred ``d = x - mean(x)`` inside a layer norm gets ``gamma_{N+1} (|x| + mean|x|) r``
    (the rounding of its mean and subtraction), which ``1 / std`` amplifies: for 1 feature the
    exact ``xhat`` is 0, a float32 one ``~u |x| / sqrt(eps)`` (torch: ``g_c``'s gradient 3e-6
    where the exact one is 0).

    Why: the layer norm's backward ``(dy - mean(dy) - xhat mean(dy xhat)) / std`` cancels on
    identities of the exact normalized vector (mean 0, mean square ``var / (var + eps)``) that
    survive every perturbation of parameters, inputs and states: for 1 feature it is exactly 0,
    for 2 its three terms cancel to ``eps / (var + eps)`` of their size. A float32 one rounds
    inside: the computed ``xhat`` is the exact one times ``1 + delta_i`` (|delta_i| a few u; O(1)
    entries, at most sqrt(N), hence ``1 + |v|`` as for the sigmoids), and a computed mean is the
    exact mean of its terms perturbed by gamma_{N+1} (Higham Thm 3.5, the division one more
    rounding), so the result carries ``~u (|dy| + mean|dy| + |xhat| mean|dy xhat|) / std``
    absolutely, which only noise at those two places reaches (torch's float32 LayerNorm
    backward gives 5e-8 where the exact gradient of a 1-feature norm is 0)."""
    names = getattr(function, "__globals__", {})
    if "np" not in names or not hasattr(function, "__code__"):
        return function
    u = eta / FUNCTION_ULPS

    class NoisyNumPy(types.ModuleType):     # numpy, its tanh results rounded relatively
        def __getattr__(self, name):
            return getattr(np, name)

        @staticmethod
        def tanh(x, *args, **kwargs):
            v = np.tanh(x, *args, **kwargs)
            return v + eta * np.abs(v) * rng.uniform(-1, 1, np.shape(v))

    def feature_mean(x):
        n = np.shape(x)[-1]
        mean = names["_feature_mean"](x)
        return mean + gamma(n + 1, u) * np.abs(x).mean(axis=-1, keepdims=True) * \
            rng.uniform(-1, 1, size=np.shape(mean))

    def layernorm(x, eps):
        n = np.shape(x)[-1]
        d = x - x.mean(axis=-1, keepdims=True)
        spread = np.abs(x) + np.abs(x).mean(axis=-1, keepdims=True)
        d = d + gamma(n + 1, u) * spread * rng.uniform(-1, 1, size=np.shape(d))
        return _add_noise(d / np.sqrt(x.var(axis=-1, keepdims=True) + eps), eta, rng)
    patched = {**names, "np": NoisyNumPy("numpy")}
    if "_layernorm" in names:
        patched["_layernorm"] = layernorm
    if "_feature_mean" in names:
        patched["_feature_mean"] = feature_mean
    noisy = types.FunctionType(function.__code__, patched, function.__name__,
                               function.__defaults__, function.__closure__)
    noisy.__kwdefaults__ = function.__kwdefaults__
    return noisy


def noisy_steps(forward: Callable, eta: float, rng: np.random.Generator, *,
                output: Callable = lambda out, state: state["h"]) -> Callable:
    """Wrap a single-layer canonical forward: run it one step at a time, its sigmoid results
    perturbed (:func:`noisy_activations`), and add ``eta * (1 + |v|) * r`` (r uniform
    in [-1, 1]) to every entry v of each new state. The outputs are ``output(step's output,
    new state)``: by default the (noisy) h_t, as for the framework cells."""
    forward = noisy_activations(forward, eta, rng)

    def forward_with_noise(params, x, state0=None):
        if len(x) == 0:
            return forward(params, x, state0)
        state, outputs = state0, []
        for t in range(len(x)):
            out, state = forward(params, x[t:t + 1], state)
            state = {k: v + eta * (1 + np.abs(v)) * rng.uniform(-1, 1, size=np.shape(v))
                     for k, v in state.items()}
            outputs.append(output(out, state))
        return np.stack(outputs), state
    return forward_with_noise


def backward_error_tolerance(config: Config, run: Callable, params, x, state0,
                             expected: dict, *, seed: int = 0, fan=None,
                             noisy: Callable = noisy_steps) -> Tolerance:
    """Per-element tolerance for ``expected = run(params, x, state0)``.

    run(params, x, state0, wrap=None) -> flat outputs in float64: the oracle (or a
    diagnosis variant) with its single-layer forward replaced by ``wrap(forward)``
    when ``wrap`` is given.
    fan    the fan-in bound n of gamma_n (default :func:`fan_in` of the config)
    noisy  ``noisy(forward, eta, rng)``: the forward with rounding noise (default
           :func:`noisy_steps`; any symbolic cell: ``rnnsym.conformance.anycell.noisy_cell_steps``)
    """
    u = unit_roundoff(config.dtype)
    g = gamma((fan_in(config) if fan is None else fan) + FUNCTION_ULPS, u)
    rng = np.random.default_rng(seed)
    spread = probe_spread(
        lambda p, xs, s: run(p, xs, s, wrap=lambda forward: noisy(forward, FUNCTION_ULPS * u, rng)),
        params, x, state0, expected, g, rng)
    arrays = {k: SAFETY * (spread[k] + u * np.abs(exp)) for k, exp in expected.items()}
    return Tolerance(arrays, "backward-error", u, g)


def probe_spread(run: Callable, params, x, state0, expected: dict, rel: float,
                 rng: np.random.Generator) -> dict:
    """The largest deviation of ``run(params, x, state0)`` from ``expected`` over PROBES runs on
    inputs perturbed relatively by ``rel`` (nan counts as inf), per element."""
    spread = {k: np.zeros(np.shape(v)) for k, v in expected.items()}
    with np.errstate(all="ignore"):
        for _ in range(PROBES):
            probe = run(_perturb(params, rel, rng), _perturb(x, rel, rng),
                        _perturb(state0, rel, rng))
            for k in spread:
                diff = np.abs(np.asarray(probe[k], np.float64) - expected[k])
                spread[k] = np.fmax(spread[k], np.nan_to_num(diff, nan=np.inf))
    return spread


def state_op_tolerance(dtype, n: int, run: Callable, inputs: dict, expected: dict, *,
                       state_noise: bool = True, absolute=None, seed: int = 0) -> Tolerance:
    """Per-element tolerance for ``expected = run(inputs)`` of an op with a carried state
    (module docstring, 6.). ``run(inputs, state_noise=None)``: the float64 oracle;
    ``state_noise(S) -> S`` is applied to every new state when ``state_noise`` is True.
    ``n``: the longest dot product of one step (``d_k`` or the kernel size); ``absolute``:
    {output: array} of absolute errors of the functions inside, in units of ``u``."""
    u = unit_roundoff(dtype)
    g = gamma(n + 2 + FUNCTION_ULPS, u)
    rng = np.random.default_rng(seed)
    spread = {k: np.zeros(np.shape(v)) for k, v in expected.items()}

    def noise(S):
        return S * (1 + g * rng.uniform(-1.0, 1.0, size=np.shape(S)))
    with np.errstate(all="ignore"):
        for _ in range(PROBES):
            probe = run(_perturb(inputs, g, rng), state_noise=noise if state_noise else None)
            for k in spread:
                diff = np.abs(np.asarray(probe[k], np.float64) - expected[k])
                spread[k] = np.fmax(spread[k], np.nan_to_num(diff, nan=np.inf))
    extra = absolute or {}
    tiny = float(np.finfo(np.dtype(dtype)).tiny)      # rounding to a subnormal: u * tiny
    arrays = {k: SAFETY * (spread[k] + u * (np.abs(exp) + tiny) + u * extra.get(k, 0.0))
              for k, exp in expected.items()}
    return Tolerance(arrays, "backward-error", u, g)


def explicit_tolerance(expected: dict, rtol: float, atol: float) -> Tolerance:
    """The usual ``atol + rtol * |expected|`` per element."""
    arrays = {k: atol + rtol * np.abs(v) for k, v in expected.items()}
    return Tolerance(arrays, "rtol/atol", float("nan"), float("nan"))
