"""A GLA sequence target written apart from rnnsym's oracle: a chunked form with its own chunk
loop (intra-chunk masked products with cumulative log-decays, inter-chunk state carried), a
sequential loop and a one-step decode function, in NumPy, computing in the case's dtype.
Grouped heads: q has ``heads`` heads, k/v/g ``heads / G`` (read by ``repeat_interleave``).

``make(**bugs)`` builds the target, correct by default; each bug is one a chunked kernel has had:

    drop_last      the last partial chunk is dropped (T not a multiple of the chunk size)
    nan_reset      log-decay -inf not handled: exp((-inf) - (-inf)) = NaN inside the chunk
    ignore_state0  the initial state is ignored (starts from zeros)
    zero_final     the final state returned is zeros
    tile           grouped heads by np.tile (torch's repeat) instead of np.repeat
    decode_nodecay the decode step drops the decay (S = S + k vᵀ)

Used by tests/test_sequence_check.py; ``rnnsym check sequence:tests/sequence_targets/gla_numpy.py:
correct --cell gla`` on the command line.
"""
import numpy as np

from rnnsym.errors import Unsupported
from rnnsym.frameworks.sequence import Path, SequenceTarget

DTYPES = {"float32": np.float32, "float64": np.float64}


def _inputs(case, tile=False):
    if case.dtype not in DTYPES:
        raise Unsupported(f"numpy GLA: no {case.dtype}")
    if case.cu_seqlens is not None:
        raise Unsupported("numpy GLA: no cu_seqlens")
    f = DTYPES[case.dtype]
    q, k, v, g = (np.asarray(case.inputs[n], f) for n in ("q", "k", "v", "g"))
    G = q.shape[2] // k.shape[2]
    spread = (lambda a: np.tile(a, (1, 1, G, 1))) if tile else (lambda a: np.repeat(a, G, axis=2))
    k, v, g = spread(k), spread(v), spread(g)
    B, T, H, dk = q.shape
    S = (np.zeros((B, H, dk, v.shape[-1]), f) if case.state0 is None
         else np.asarray(case.state0["S"], f))
    return q * f(1 / np.sqrt(dk)), k, v, g, S


def chunked(case, chunk, bugs):
    q, k, v, g, S = _inputs(case, "tile" in bugs)
    if "ignore_state0" in bugs:
        S = np.zeros_like(S)
    B, T, H, dk = q.shape
    out = np.zeros((B, T, H, v.shape[-1]), q.dtype)
    end = T - T % chunk if "drop_last" in bugs else T
    with np.errstate(all="ignore"):
        for c0 in range(0, end, chunk):
            sl = slice(c0, min(c0 + chunk, T))
            qc, kc, vc, gc = q[:, sl], k[:, sl], v[:, sl], g[:, sl]
            L = qc.shape[1]
            if "nan_reset" in bugs:
                r = np.zeros(gc.shape, np.int64)
                b = np.cumsum(gc, axis=1)
            else:                               # a reset (-inf) splits the chunk
                r = np.cumsum(np.isneginf(gc), axis=1)
                b = np.cumsum(np.where(np.isneginf(gc), 0, gc), axis=1)
            diff = b[:, :, None] - b[:, None, :]                      # (B, t, s, H, dk)
            mask = np.tril(np.ones((L, L), bool))[None, :, :, None, None] & \
                (r[:, :, None] == r[:, None, :])
            D = np.where(mask, np.exp(diff), 0)
            A = np.einsum("bthi,bshi,btshi->btsh", qc, kc, D)
            o = np.einsum("btsh,bshj->bthj", A, vc)
            carried = np.where(r == 0, np.exp(b), 0)                 # decay from chunk start
            o = o + np.einsum("bthi,bhij->bthj", qc * carried, S)
            out[:, sl] = o
            last = b[:, -1:], r[:, -1:]
            to_end = np.where(r == last[1], np.exp(last[0] - b), 0)   # (B, L, H, dk)
            S = carried[:, -1][..., None] * S + np.einsum("bshi,bshj->bhij", kc * to_end, vc)
    if "zero_final" in bugs:
        S = np.zeros_like(S)
    return out, {"S": S}


def recurrent(case, chunk, bugs, decay=True):
    q, k, v, g, S = _inputs(case, "tile" in bugs)
    out = np.zeros(q.shape[:3] + (v.shape[-1],), q.dtype)
    for t in range(q.shape[1]):
        if decay:
            S = np.exp(g[:, t])[..., None] * S
        S = S + k[:, t, :, :, None] * v[:, t, :, None, :]
        out[:, t] = np.einsum("bhi,bhij->bhj", q[:, t], S)
    return out, {"S": S}


def make(*bugs, name="gla_numpy"):
    feats = ("initial_state", "final_state", "groups")
    return SequenceTarget(
        name=name, cell="gla", input_heads={"q": "out", "k": "kv", "v": "kv", "g": "kv"},
        paths=(Path("chunked", "chunked", lambda c, n: chunked(c, n, bugs),
                    features=feats + ("chunk_size",), chunk_size=4),
               Path("recurrent", "sequential", lambda c, n: recurrent(c, n, bugs),
                    features=feats),
               Path("decode", "sequential",
                    lambda c, n: recurrent(c, n, bugs, "decode_nodecay" not in bugs),
                    features=feats, decode=True)),
        convention="q scaled by 1/sqrt(d_k); k, v, g grouped by repeat_interleave")


correct = make()
