"""Per-element tolerances for sequence targets: the backward-error model of
``rnnsym.conformance.tolerance`` (module docstring, 6.) extended to the algorithm a path declares and to
low precision. The derivation is in docs/sequence-targets.md; in short:

1. **Sequential** (and every algorithm): one step of a matrix-state recurrence is a dot product
   of length ``d_k`` (``S^T q``, ``S^T k``) per entry plus a few additions, so a correct
   implementation computes exactly the recurrence of inputs, parameters and initial state
   perturbed relatively by ``gamma_n``, ``n = d + 2 + FUNCTION_ULPS`` (``d`` the longest
   contraction, ``exp``'s rounding in ``FUNCTION_ULPS``), and of a state perturbed relatively by
   ``gamma_n`` after every step (the update's own rounding). Errors add up along the recurrence
   as far as the decays let them (the oracle propagates them: error ~ u * sum of |terms|).
2. **Chunked** with chunk size ``C``: within a chunk the output sums ``C`` products of length
   ``d`` more (``n = d + C + 2 + FUNCTION_ULPS``), and the decays are formed from the
   cumulative log-decays ``b_t = sum_{chunk start <= i <= t} a_i`` as ``exp(b_t - b_s)``.
   ``fl(b_t) = b_t + e_t`` with ``|e_t| <= gamma_C * m_t``, ``m_t = sum |a_i|`` over the same
   steps (Higham's sum bound; ``-inf`` steps excluded: they are resets, exact), and then
   ``exp(fl(b_t) - fl(b_s)) = exp(b_t - b_s) * exp(e_t - e_s)``: an absolute error in the
   exponent, a *relative* error ``~ gamma_C (m_t + m_s)`` of the decay factor, which grows with
   the strength of the decay. That is again an exact statement about perturbed inputs: the
   chunked algorithm computes the recurrence of the log-decays ``a'_t = fl(b_t) - fl(b_{t-1})``.
   The probes draw ``e_t = gamma_{C+2} * m_t * r_t`` from the case's own cumulative log-decays
   (per chunk, from each sequence's start) and map ``a'`` back to the cell's input (``g``;
   Mamba-2's ``dt`` through ``A * softplus(dt + dt_bias)``; mLSTM's ``f`` through
   ``logsigmoid``).
   A ``parallel`` path (the whole sequence as one masked product) is a chunked one with
   ``C = T``.
2b. **Chunked delta rule** (DeltaNet, Gated DeltaNet: the WY / UT form): within a chunk the
   kernel solves the unit lower triangular ``(I + L) U = diag(β) V``, ``L_ij = β_i e^{b_i - b_j}
   k_i·k_j``, by forward substitution, backward stable componentwise (Higham, Thm 8.5): the
   computed ``U`` is exact for ``diag(β) V + δ``, ``|δ| <= γ (I + |L|) |T| |diag(β) V|``,
   ``T = (I + L)^-1``. Nearly parallel keys with ``β`` near 1 make ``|T|`` large (the solution
   is a difference of nearly equal values), so the probes perturb each value ``v_s`` by that
   bound (divided by ``β_s``; :func:`wy_perturbed`).
3. **Low precision**: the target sees inputs rounded to its dtype, so the oracle runs on the
   rounded inputs (``sequence_strategies.round_case``); what remains is the accumulation error
   of 1.-2. with ``u`` of the dtype the path accumulates in (``Path.accumulates``, e.g. float32
   for bf16 inputs) and the rounding of the results to the target's dtype, ``u_out |expected|``
   (plus, absolutely, the smallest normal number of the accumulating dtype: below it a
   result loses its relative accuracy, or is flushed to zero; ``u_out * tiny`` of the
   output dtype where larger).

    tol = SAFETY * (max over PROBES |oracle(perturbed) - oracle| + u_out * (|expected| + tiny))

``SAFETY``, ``PROBES`` and ``FUNCTION_ULPS`` are those of ``rnnsym.conformance.tolerance``.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Optional

import numpy as np

from rnnsym.conformance.sequence_oracle import expected as oracle
from rnnsym.conformance.tolerance import FUNCTION_ULPS, PROBES, SAFETY, _perturb, gamma
from rnnsym.frameworks.sequence import SequenceCase

#: unit roundoff per dtype (numpy has no bfloat16)
U = {"float64": 2.0 ** -53, "float32": 2.0 ** -24, "bfloat16": 2.0 ** -8, "float16": 2.0 ** -11}
#: smallest normal per dtype (results rounded to subnormals are off by u * tiny absolutely)
TINY = {"float64": 2.2250738585072014e-308, "float32": 1.1754943508222875e-38,
        "bfloat16": 1.1754943508222875e-38, "float16": 6.103515625e-05}


def _softplus(x):
    return np.logaddexp(0.0, x)


def _softplus_inv(y):
    y = np.maximum(y, 1e-300)
    return y + np.log(-np.expm1(-y))


def log_decays(case: SequenceCase) -> Optional[tuple]:
    """``(input name, a)``: the per-step log-decay ``a`` of the case's cell, the shape of that
    input (heads of the input), or None for a cell without one (``deltanet``,
    ``linear_attention``; ``mamba``'s ``Δ ⊗ A`` is not one number per input entry)."""
    x = case.inputs
    if case.cell in ("gla", "gated_deltanet"):
        return "g", np.asarray(x["g"], np.float64)
    if case.cell == "mlstm":
        with np.errstate(all="ignore"):
            return "f", -np.logaddexp(0.0, -np.asarray(x["f"], np.float64))
    if case.cell == "mamba2" and x["dt"].shape[2] == case.heads:
        A = np.asarray(case.params["A"], np.float64)[:, 0]
        bias = np.asarray(case.params["dt_bias"], np.float64)[:, 0]
        return "dt", A * _softplus(np.asarray(x["dt"], np.float64) + bias)
    return None


def _from_log(case: SequenceCase, a):
    """The cell's input giving log-decay ``a`` (inverse of :func:`log_decays`)."""
    with np.errstate(all="ignore"):
        if case.cell in ("gla", "gated_deltanet"):
            return a
        if case.cell == "mlstm":
            a = np.minimum(a, -1e-300)
            return a - np.log(-np.expm1(a))
        A = np.asarray(case.params["A"], np.float64)[:, 0]
        bias = np.asarray(case.params["dt_bias"], np.float64)[:, 0]
        return _softplus_inv(a / A) - bias


def chunk_starts(T: int, chunk: int, starts=(0,)) -> np.ndarray:
    """Which steps begin a chunk: every sequence start in ``starts`` (varlen) and every
    ``chunk`` steps after it."""
    first = np.zeros(T, bool)
    bounds = sorted(set(starts) | {0}) + [T]
    for s, e in zip(bounds[:-1], bounds[1:]):
        first[s:e:chunk] = True
    return first


def chunk_cumsums(a: np.ndarray, first: np.ndarray) -> np.ndarray:
    """``m_t``: the sum of ``|a_i|`` (finite ones) from the start of ``t``'s chunk to ``t``,
    along axis 1."""
    mag = np.where(np.isfinite(a), np.abs(a), 0.0)
    m = np.zeros_like(mag)
    for t in range(a.shape[1]):
        m[:, t] = mag[:, t] if first[t] else m[:, t - 1] + mag[:, t]
    return m


def chunk_perturbed(case: SequenceCase, chunk: int, eta: float, rng) -> SequenceCase:
    """The case whose log-decays carry the errors of a chunked evaluation (module docstring,
    2.): ``b'_t = b_t + eta * m_t * r_t`` within each chunk, ``a'_t = b'_t - b'_{t-1}``."""
    found = log_decays(case)
    if found is None or not chunk or case.T == 0:
        return case
    name, a = found
    starts = tuple(case.cu_seqlens[:-1]) if case.cu_seqlens else (0,)
    first = chunk_starts(a.shape[1], chunk, starts)
    m = chunk_cumsums(a, first)
    e = eta * m * rng.uniform(-1.0, 1.0, size=m.shape)
    prev = np.concatenate([np.zeros_like(e[:, :1]), e[:, :-1]], axis=1)
    prev[:, first] = 0.0
    finite = np.isfinite(a)
    a2 = np.where(finite, a + e - prev, a)
    return replace(case, inputs=dict(case.inputs, **{name: _from_log(case, a2)}))


def wy_perturbed(case: SequenceCase, chunk: int, eta: float, rng) -> SequenceCase:
    """The case whose values carry the errors of a chunked delta rule (the WY / UT form of
    DeltaNet and Gated DeltaNet; module docstring, 2b.). Within a chunk the kernel solves
    ``(I + L) U = diag(β) V`` with ``L_ij = β_i e^{b_i − b_j} k_i·k_j`` (j < i) by forward
    substitution; its computed ``U`` is the exact one of ``diag(β) V + δ`` with
    ``|δ| <= eta (I + |L|) |T| |diag(β) V|``, ``T = (I + L)^-1`` (Higham, Thm 8.5, written
    back onto the values). The values are perturbed by that much (divided by β), computed in
    float64 from the case, chunk by chunk from each sequence's start."""
    if case.cell not in ("deltanet", "gated_deltanet") or not chunk or case.T == 0:
        return case
    from rnnsym.conformance.sequence_oracle import head_inputs, input_head
    v_in = np.asarray(case.inputs["v"], np.float64)
    bound = np.zeros(v_in.shape)
    starts = tuple(case.cu_seqlens[:-1]) if case.cu_seqlens else (0,)
    first = chunk_starts(case.T, chunk, starts)
    bounds = list(np.flatnonzero(first)) + [case.T]
    l2 = bool(case.options.get("qk_l2norm"))
    for h in range(case.heads):
        x = head_inputs(case, h)                              # (T, B, d)
        k = x["k"] / np.sqrt((x["k"] ** 2).sum(-1, keepdims=True) + 1e-6) if l2 else x["k"]
        beta, v = x["beta"][..., 0], x["v"]
        g = x["g"] if "g" in x else np.zeros_like(k[..., :1])
        g = np.where(np.isfinite(g), g, -1e4)                  # a reset: no coupling across it
        for c0, c1 in zip(bounds[:-1], bounds[1:]):
            kc, bc, vc = k[c0:c1], beta[c0:c1], v[c0:c1]       # (L, B, ...)
            b = np.cumsum(g[c0:c1], axis=0)                    # (L, B, 1 or d_k)
            with np.errstate(all="ignore"):
                decay = np.exp(b[:, None] - b[None, :])        # (L, L, B, 1 or d_k)
                dots = np.einsum("ibd,jbd,ijbd->ijb", kc, kc,
                                 np.broadcast_to(decay, decay.shape[:3] + kc.shape[-1:]))
            L = np.nan_to_num(np.tril(np.moveaxis(bc[:, None] * dots, 2, 0), -1))  # (B, L, L)
            n = L.shape[-1]
            T = np.linalg.inv(np.eye(n) + L)
            bv = np.abs(bc.T[..., None] * np.moveaxis(vc, 1, 0))           # (B, L, d_v)
            delta = (np.eye(n) + np.abs(L)) @ (np.abs(T) @ bv)
            with np.errstate(all="ignore"):
                dv = np.where(bc.T[..., None] > 0, delta / np.abs(bc.T[..., None]), 0.0)
            j = input_head(h, case.heads, v_in.shape[2])
            bound[:, c0:c1, j] = np.fmax(bound[:, c0:c1, j], dv)
    noise = eta * bound * rng.uniform(-1.0, 1.0, size=bound.shape)
    return replace(case, inputs=dict(case.inputs, v=v_in + noise))


def contraction(case: SequenceCase) -> int:
    """The longest dot product of one step: the largest size of a vector input."""
    sizes = [np.shape(v)[-1] for v in case.inputs.values() if np.ndim(v) == 4]
    return max(sizes + [1])


def sequence_tolerance(case: SequenceCase, cell_options: dict, expected: tuple, *,
                       algorithm: str, chunk: Optional[int], accumulates: Optional[str],
                       seed: int = 0, state0_rounded: bool = False) -> dict:
    """Per-element tolerances ``{"out": ..., state: ...}`` for ``expected = (out, final)`` of
    ``case`` (already rounded to the target's dtype) run by a path of ``algorithm``.

    state0_rounded  the initial state is one the target computed (a carried state: split and
                    carry, decode after prefill) and the path rounds it to ``case.dtype``:
                    it is perturbed by ``u`` of that dtype more."""
    dtype = case.dtype
    u_acc = U[accumulates or dtype]
    u_out = U[dtype]
    d = contraction(case)
    if algorithm == "parallel":         # one chunk of the whole sequence (a decay mask)
        chunk = max(case.T, 1)
    chunked = algorithm in ("chunked", "parallel") and chunk
    n = d + 2 + FUNCTION_ULPS + (min(chunk, max(case.T, 1)) if chunked else 0)
    g = gamma(n, u_acc)
    eta = gamma(min(chunk, max(case.T, 1)) + 2, u_acc) if chunked else 0.0
    rng = np.random.default_rng(seed)
    out, final = expected
    spread = {"out": np.zeros(np.shape(out))}
    spread.update({k: np.zeros(np.shape(v)) for k, v in final.items()})

    def noise(state):
        return {k: v * (1 + g * rng.uniform(-1.0, 1.0, size=np.shape(v)))
                for k, v in state.items()}
    with np.errstate(all="ignore"):
        for _ in range(PROBES):
            probe = replace(case, inputs=_perturb(case.inputs, g, rng),
                            params=_perturb(case.params, g, rng),
                            state0=_perturb(case.state0, g + (u_out if state0_rounded else 0),
                                            rng))
            if chunked:
                probe = chunk_perturbed(probe, chunk, eta, rng)
                probe = wy_perturbed(probe, chunk, eta, rng)
            p_out, p_final = oracle(probe, cell_options, state_noise=noise)
            got = {"out": p_out, **p_final}
            ref = {"out": out, **final}
            for k in spread:
                diff = np.abs(got[k] - ref[k])
                diff = np.where(np.isnan(diff) & (got[k] == ref[k]), 0.0, diff)  # inf == inf
                spread[k] = np.fmax(spread[k], np.nan_to_num(diff, nan=np.inf))
    ref = {"out": out, **final}
    # results below the smallest normal number of the accumulating dtype lose their relative
    # accuracy there (gradual underflow, or flushed to zero): an absolute TINY[accumulating]
    tiny = max(u_out * TINY[dtype], TINY[accumulates or dtype])
    return {k: SAFETY * (spread[k] + u_out * np.abs(ref[k]) + tiny) for k in spread}
