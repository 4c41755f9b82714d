"""A chunked Gated DeltaNet in NumPy, written from the WY form of the delta rule rather than from
rnnsym's cell: within a chunk with state S0 at its start and cumulative log-decays b,

    (I + L) U = diag(β) (V − diag(e^b) K S0),   L_ij = β_i e^{b_i − b_j} k_i·k_j  (j < i)
    o_i = scale (e^{b_i} q_iᵀ S0 + Σ_{j<=i} e^{b_i − b_j} (q_i·k_j) u_j)
    S_L = e^{b_L} S0 + Σ_j e^{b_L − b_j} k_j u_jᵀ

computed in the case's dtype (float32 or float64), the triangular system solved by forward
substitution (path ``chunked``) or through ``T = (I + L)^-1`` formed row by row, the UT
transform of flash-linear-attention and Qwen3-Next (path ``chunked_ut``, which computes in
float32 whatever the case's dtype, as Qwen3-Next's torch functions do); a log-decay of -inf
splits the chunk (exact reset). Heads not grouped.
"""
import numpy as np

from rnnsym.errors import Unsupported
from rnnsym.frameworks.sequence import Path, SequenceTarget


def chunked(case, chunk, inverse=False, acc32=False):
    if case.dtype not in ("float32", "float64") or case.cu_seqlens is not None:
        raise Unsupported(f"numpy WY Gated DeltaNet: no {case.dtype} / cu_seqlens")
    f = np.float32 if acc32 else np.dtype(case.dtype).type
    q, k, v, g, beta = (np.moveaxis(np.asarray(case.inputs[n], f), 2, 1)
                        for n in ("q", "k", "v", "g", "beta"))       # (B, H, T, ...)
    B, H, T, dk = q.shape
    S = (np.zeros((B, H, dk, v.shape[-1]), f) if case.state0 is None
         else np.asarray(case.state0["S"], f))
    q = q * f(1 / np.sqrt(dk))
    out = np.zeros(v.shape, f)
    for c0 in range(0, T, chunk):
        sl = slice(c0, min(c0 + chunk, T))
        qc, kc, vc, gc, bc = q[:, :, sl], k[:, :, sl], v[:, :, sl], g[:, :, sl], beta[:, :, sl]
        n = qc.shape[2]
        r = np.cumsum(np.isneginf(gc), axis=-1)
        b = np.cumsum(np.where(np.isneginf(gc), 0, gc), axis=-1)
        with np.errstate(all="ignore"):
            same = r[..., :, None] == r[..., None, :]
            D = np.where(same & np.tril(np.ones((n, n), bool)),
                         np.exp(b[..., :, None] - b[..., None, :]), 0).astype(f)
            start = np.where(r == 0, np.exp(b), 0).astype(f)             # e^{b_i}, reset: 0
        L = np.tril(bc[..., None] * D * (kc @ np.swapaxes(kc, -1, -2)), -1)
        rhs = bc[..., None] * (vc - start[..., None] * (kc @ S))
        if inverse:     # the UT transform: T = (I + L)^-1 formed row by row, then U = T rhs
            Tm = np.zeros_like(L)
            for i in range(n):
                Tm[:, :, i, :i] = -L[:, :, i, :i] - np.einsum("bhj,bhjm->bhm", L[:, :, i, :i],
                                                              Tm[:, :, :i, :i])
            U = (Tm + np.eye(n, dtype=f)) @ rhs
        else:
            U = np.zeros_like(rhs)
            for i in range(n):                                            # forward substitution
                U[:, :, i] = rhs[:, :, i] - np.einsum("bhj,bhjd->bhd", L[:, :, i, :i],
                                                      U[:, :, :i])
        out[:, :, sl] = start[..., None] * (qc @ S) + (D * (qc @ np.swapaxes(kc, -1, -2))) @ U
        to_end = D[:, :, -1]                                              # e^{b_L - b_j}, masked
        S = start[:, :, -1, None, None] * S + np.swapaxes(kc * to_end[..., None], -1, -2) @ U
    return np.moveaxis(out, 1, 2).astype(case.dtype), {"S": S.astype(case.dtype)}


target = SequenceTarget(
    "gdn_wy_numpy", "gated_deltanet",
    paths=(Path("chunked", "chunked", chunked,
                features=("initial_state", "final_state", "chunk_size"), chunk_size=4),
           Path("chunked_ut", "chunked", lambda case, chunk: chunked(case, chunk, True, True),
                features=("initial_state", "final_state", "chunk_size"), chunk_size=4,
                accumulates="float32")),
    convention="q scaled by 1/sqrt(d_k); keys as given (drawn unit-length); heads not grouped")
