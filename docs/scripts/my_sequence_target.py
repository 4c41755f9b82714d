"""A sequence target of your own: a NumPy Gated DeltaNet loop, one path.
    rnnsym check sequence:docs/scripts/my_sequence_target.py:target --cell gated_deltanet"""
import numpy as np

from rnnsym.frameworks.sequence import Path, SequenceTarget


def recurrent(case, chunk_size):
    x = {k: np.asarray(v, case.dtype) for k, v in case.inputs.items()}  # (B, T, H, d), (B, T, H)
    q, k, v, g, beta = x["q"], x["k"], x["v"], x["g"], x["beta"]
    B, T, H, dk = q.shape
    S = np.zeros((B, H, dk, v.shape[-1]), case.dtype) if case.state0 is None \
        else np.asarray(case.state0["S"], case.dtype)                   # (B, H, d_k, d_v)
    out = np.zeros((B, T, H, v.shape[-1]), case.dtype)
    for t in range(T):
        S = np.exp(g[:, t])[..., None, None] * S
        err = v[:, t] - np.einsum("bhi,bhij->bhj", k[:, t], S)
        S = S + np.einsum("bhi,bhj->bhij", k[:, t], beta[:, t, :, None] * err)
        out[:, t] = np.einsum("bhi,bhij->bhj", q[:, t] / np.sqrt(dk), S)
    return out, {"S": S}


target = SequenceTarget("my-gdn", "gated_deltanet", paths=(
    Path("recurrent", "sequential", recurrent, features=("initial_state", "final_state")),))
