"""Linear recurrences with a matrix state, one head per cell: linear attention, GLA, DeltaNet,
Gated DeltaNet (ONNX ``LinearAttention``'s four ``update_rule``s), Mamba-1, Mamba-2 and mLSTM.

The state ``S`` is a ``d_k × d_v`` matrix per head, updated by an outer product ``k ⊗ v = k vᵀ``
and read by ``Sᵀ q``. Per-step gates that are one number per head (``beta``, a per-head decay
``g``) are 1 × 1 inputs and broadcast. Heads, grouped-query sharing and the packing of heads into
one feature axis are the harness's business, not the cell's (docs/linear-recurrences.md).
"""
from __future__ import annotations

import sympy as sp

from rnnsym.cells.cell import Cell, make_cell, now, param, prev
from rnnsym.cells.nodes import (Activation, HadamardQuotient, L2Norm, Maximum, Outer, RowScale, hadamard,
                                madd, mmul)

#: the symbol of d_k, for the default scale 1/sqrt(d_k) (the same Symbol rnnsym.shapes derives)
D_K = sp.Symbol("d_k", integer=True, positive=True)
DECAYS = ("key", "head")


def _scale(scale):
    """ONNX's ``scale`` attribute: ``None`` (or 0, ONNX's default) is ``1/sqrt(d_k)``."""
    if scale is None or scale == 0:
        return 1 / sp.sqrt(D_K)
    return sp.nsimplify(scale)


def _attention(name, title, rule, decay="key", scale=None, qk_l2norm=False) -> Cell:
    """One head of ONNX ``LinearAttention`` (opset 27) with ``update_rule`` ``rule``:

        linear       S_t = S_{t-1} + k_t ⊗ v_t
        gated        S_t = exp(g_t) ⊙ S_{t-1} + k_t ⊗ v_t
        delta        S_t = S_{t-1} + β_t k_t ⊗ (v_t − S_{t-1}ᵀ k_t)
        gated_delta  S_t = exp(g_t) ⊙ S_{t-1} + β_t k_t ⊗ (v_t − (exp(g_t) ⊙ S_{t-1})ᵀ k_t)
        o_t = scale · S_tᵀ q_t

    ``g`` is the decay in log space, per key row (``decay="key"``, shape d_k) or one number per
    head (``decay="head"``); ``β`` one number per head.
    """
    if decay not in DECAYS:
        raise ValueError(f"{name}: decay must be one of {DECAYS}, got {decay!r}")
    q, k, v, S = now("q"), now("k"), now("v"), prev("S")
    eqs = []
    if qk_l2norm:                           # fla's use_qk_l2norm_in_kernel
        eqs += [("qn", "gate", L2Norm(q)), ("kn", "gate", L2Norm(k))]
        q, k = now("qn"), now("kn")
    gated = rule in ("gated", "gated_delta")
    decayed = RowScale(Activation("exp", now("g")), S) if gated else S
    if rule in ("delta", "gated_delta"):
        update = RowScale(now("beta"), Outer(k, madd(v, mmul(sp.S.NegativeOne, sp.Transpose(decayed), k))))
    else:
        update = Outer(k, v)
    eqs += [("S", "state", madd(decayed, update)),
            ("o", "output", mmul(_scale(scale), sp.Transpose(now("S")), q))]
    inputs = ("q", "k", "v") + (("g",) if gated else ()) + (("beta",) if "delta" in rule else ())
    dims = {"q": "d_k", "k": "d_k", "v": "d_v", "g": "d_k" if decay == "key" else 1, "beta": 1}
    return make_cell(name, title, eqs, inputs=inputs,
                     dim_names={i: dims[i] for i in inputs}, params=(),
                     options={**({"decay": decay} if gated else {}), "scale": scale,
                              **({"qk_l2norm": qk_l2norm} if "delta" in rule else {})})


def linear_attention(scale=None) -> Cell:
    """Linear attention (Katharopoulos et al. 2020, "Transformers are RNNs", without
    the feature map and the normaliser): ``S_t = S_{t-1} + k_t ⊗ v_t``, ``o_t = scale · S_tᵀ q_t``;
    ONNX ``LinearAttention`` ``update_rule="linear"``. ``scale`` None: ``1/sqrt(d_k)``."""
    return _attention("linear_attention", "linear attention (ONNX LinearAttention, linear)", "linear",
                      scale=scale)


def gla(decay="key", scale=None) -> Cell:
    """Gated linear attention: ``S_t = exp(g_t) ⊙ S_{t-1} + k_t ⊗ v_t``, ONNX ``gated``.

    ``decay="key"``: one log-decay per key row, GLA (Yang et al. 2024, "Gated Linear Attention
    Transformers with Hardware-Efficient Training": ``S_t = diag(α_t) S_{t-1} + k_t v_tᵀ``
    with ``α_t = exp(g_t)``) and RWKV-6 (Peng et al. 2024, "Eagle and Finch", its ``w_t`` decay;
    RWKV-6's bonus term ``u`` is not part of this cell). ``decay="head"``: one number per head,
    RetNet's ``γ`` (Sun et al. 2023) and Mamba-2's ``exp(Δ_t a)`` (Dao and Gu 2024).
    """
    return _attention("gla", f"gated linear attention (ONNX gated, decay per {decay})", "gated",
                      decay=decay, scale=scale)


def deltanet(scale=None, qk_l2norm=False) -> Cell:
    """DeltaNet (Schlag et al. 2021, "Linear Transformers Are Secretly Fast Weight Programmers";
    Yang et al. 2024, "Parallelizing Linear Transformers with the Delta Rule"):
    ``S_t = S_{t-1} + β_t k_t ⊗ (v_t − S_{t-1}ᵀ k_t)``, ONNX ``delta``. ``qk_l2norm``: q and k
    l2-normalised inside the cell (flash-linear-attention's ``use_qk_l2norm_in_kernel``; ONNX
    leaves normalising to the model)."""
    return _attention("deltanet", "DeltaNet (ONNX LinearAttention, delta)", "delta", scale=scale,
                      qk_l2norm=qk_l2norm)


def gated_deltanet(decay="head", scale=None, qk_l2norm=False) -> Cell:
    """Gated DeltaNet (Yang, Kautz and Hatamizadeh 2025, "Gated Delta Networks"; Qwen3-Next's
    ``torch_recurrent_gated_delta_rule`` in huggingface transformers):
    ``S_t = exp(g_t) S_{t-1} + β_t k_t ⊗ (v_t − exp(g_t) S_{t-1}ᵀ k_t)``, ONNX ``gated_delta`` (the
    default rule). ``decay="head"`` (the paper's and Qwen3-Next's α_t, one per head) or ``"key"``."""
    return _attention("gated_deltanet", f"Gated DeltaNet (ONNX gated_delta, decay per {decay})",
                      "gated_delta", decay=decay, scale=scale, qk_l2norm=qk_l2norm)


def mamba() -> Cell:
    """Mamba-1's selective scan for one block of ``d_in`` channels (Gu and Dao 2023, "Mamba";
    ``selective_scan_ref`` in state-spaces/mamba
    mamba_ssm/ops/selective_scan_interface.py, with ``delta_softplus=True`` and ``delta_bias``):

        Δ_t = softplus(dt_t + dt_bias)                         (d_in)
        h_t = exp(Δ_t ⊙ A) ⊙ h_{t-1} + (Δ_t ⊙ u_t) ⊗ B_t       (d_in × d_state; Δ broadcast over A's rows)
        y_t = h_t C_t + D ⊙ u_t

    ``A`` (d_in × d_state) is the diagonal state matrix of every channel (the model stores
    ``-exp(A_log)``); ``D`` the skip. The gate ``y ⊙ silu(z)`` is outside the cell.
    """
    u, h = now("u"), prev("h")
    delta = now("delta")
    eqs = [("delta", "gate", Activation("softplus", madd(now("dt"), param("dt_bias")))),
           ("h", "state", madd(hadamard(Activation("exp", RowScale(delta, param("A"))), h),
                               Outer(hadamard(delta, u), now("B")))),
           ("y", "output", madd(mmul(now("h"), now("C")), hadamard(param("D"), u)))]
    return make_cell("mamba", "Mamba-1 selective scan (one block of channels)", eqs,
                     inputs=("u", "dt", "B", "C"), params=("A", "D", "dt_bias"),
                     dim_names={"u": "d_in", "dt": "d_in", "B": "d_state", "C": "d_state"})


def mamba2(dt_limit=None) -> Cell:
    """Mamba-2's SSD recurrence for one head (Dao and Gu 2024, "Transformers are SSMs";
    ``selective_state_update`` in state-spaces/mamba mamba_ssm/ops/triton/selective_state_update.py
    with a scalar ``A`` per head, ``dt_softplus=True``):

        Δ_t = softplus(dt_t + dt_bias)                         (one number per head)
        h_t = exp(Δ_t a) h_{t-1} + (Δ_t x_t) ⊗ B_t             (d_head × d_state)
        y_t = h_t C_t + D x_t

    ``a``, ``D`` and ``dt_bias`` are one number per head (parameters of shape (1,)).
    ``dt_limit=(lo, hi)``: ``Δ_t = clamp(softplus(dt_t + dt_bias), lo, hi)``, the ``dt_limit`` of
    mamba_ssm's ``mamba_chunk_scan_combined`` (the models' ``time_step_limit``); a bound of
    ``lo <= 0`` or ``hi = inf`` is no bound (softplus > 0). None (the default): no clamp.
    """
    x, h = now("x"), prev("h")
    delta = now("delta")
    eqs = [("delta", "gate", _clamp(Activation("softplus", madd(now("dt"), param("dt_bias"))),
                                    dt_limit)),
           ("h", "state", madd(RowScale(Activation("exp", hadamard(delta, param("A"))), h),
                               Outer(hadamard(delta, x), now("B")))),
           ("y", "output", madd(mmul(now("h"), now("C")), hadamard(param("D"), x)))]
    return make_cell("mamba2", "Mamba-2 SSD recurrence (one head, scalar decay)", eqs,
                     inputs=("x", "dt", "B", "C"), params=("A", "D", "dt_bias"),
                     dim_names={"x": "d_head", "dt": 1, "B": "d_state", "C": "d_state",
                                "A": 1, "D": 1, "dt_bias": 1},
                     options={"dt_limit": tuple(dt_limit)} if dt_limit is not None else None)


def _clamp(u, limit):
    """``clamp(u, lo, hi)`` of a positive ``u`` (1 × 1) as elementwise maxima: ``max(u, lo)`` and
    ``−max(−u, −hi)``; a bound that cannot bind (``lo <= 0``, ``hi = inf``) is left out."""
    if limit is None:
        return u
    try:
        lo, hi = (float(b) for b in limit)
    except (TypeError, ValueError):
        raise ValueError(f"mamba2: dt_limit must be a pair (lo, hi) of numbers, got {limit!r}") from None
    if not lo < hi:
        raise ValueError(f"mamba2: dt_limit must have lo < hi, got {limit!r}")
    one = sp.OneMatrix(*u.shape)
    if lo > 0:
        u = Maximum(u, mmul(sp.nsimplify(lo), one))
    if hi < float("inf"):
        u = mmul(sp.S.NegativeOne, Maximum(mmul(sp.S.NegativeOne, u), mmul(sp.nsimplify(-hi), one)))
    return u


def mlstm(eps: float = 1e-6) -> Cell:
    """xLSTM's mLSTM, stabilised (Beck et al. 2024, "xLSTM"; the recurrent
    step ``mlstm_recurrent_step__native_fw`` of NX-AI/mlstm_kernels):

        m_t = max(logσ(f_t) + m_{t-1}, i_t)                   (stabiliser, one number)
        f'_t = exp(logσ(f_t) + m_{t-1} − m_t),  i'_t = exp(i_t − m_t)
        C_t = f'_t C_{t-1} + i'_t k_t ⊗ v_t                    (d_k × d_v)
        n_t = f'_t n_{t-1} + i'_t k_t                          (normaliser, d_k)
        h_t = C_tᵀ q̃_t / (max(|n_tᵀ q̃_t|, exp(−m_t)) + eps),   q̃_t = q_t / sqrt(d_k)

    ``i`` and ``f`` are the gates' pre-activations (exponential input gate, sigmoid forget gate),
    one number per head.
    """
    q, k, v, i, f = (now(n) for n in ("q", "k", "v", "i", "f"))
    m, mp = now("m"), prev("m")
    logf = Activation("logsigmoid", f)
    c = 1 / sp.sqrt(D_K)
    den = madd(Maximum(Activation("abs", mmul(c, sp.Transpose(now("n")), q)),
                       Activation("exp", mmul(sp.S.NegativeOne, m))),
               mmul(sp.nsimplify(eps), sp.OneMatrix(*m.shape)))
    eqs = [("m", "state", Maximum(madd(logf, mp), i)),
           ("fa", "gate", Activation("exp", madd(logf, mp, mmul(sp.S.NegativeOne, m)))),
           ("ia", "gate", Activation("exp", madd(i, mmul(sp.S.NegativeOne, m)))),
           ("C", "state", madd(RowScale(now("fa"), prev("C")), RowScale(now("ia"), Outer(k, v)))),
           ("n", "state", madd(hadamard(now("fa"), prev("n")), hadamard(now("ia"), k))),
           ("h", "output", HadamardQuotient(mmul(c, sp.Transpose(now("C")), q), den))]
    return make_cell("mlstm", "mLSTM (xLSTM, stabilised recurrent step)", eqs,
                     inputs=("q", "k", "v", "i", "f"), params=(),
                     dim_names={"q": "d_k", "k": "d_k", "v": "d_v", "i": 1, "f": 1, "m": 1,
                                "fa": 1, "ia": 1}, options={"eps": eps})


LINEAR_BUILTINS = {"linear_attention": linear_attention, "gla": gla, "deltanet": deltanet,
                   "gated_deltanet": gated_deltanet, "mamba": mamba, "mamba2": mamba2,
                   "mlstm": mlstm}
