"""A Gated DeltaNet sequence target in torch, in the style of Qwen3-Next's
``torch_recurrent_gated_delta_rule`` (transformers): ``[B, H, T, D]`` inside, the inputs upcast
to float32, the state kept in float32, the output cast back to the input dtype; packed
variable-length batches (cu_seqlens) run segment by segment; keys and values grouped by
``repeat_interleave``. It takes float32, float64, bfloat16 and float16.

``make(*bugs)``: ``varlen_leak`` carries the state across the sequences of a packed batch (the
offsets ignored); ``tile`` groups heads by ``repeat``.
"""
import numpy as np
import torch

from rnnsym.frameworks.sequence import Path, SequenceTarget

DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16,
          "float16": torch.float16}


def _t(a, dtype):
    return torch.from_numpy(np.ascontiguousarray(a)).to(dtype)


def recurrent_gated_delta_rule(q, k, v, g, beta, state):
    """q, k: [B, H, T, dk]; v: [B, H, T, dv]; g, beta: [B, H, T] (float32)."""
    T = q.shape[2]
    q = q * q.shape[-1] ** -0.5
    out = torch.zeros(v.shape, dtype=state.dtype)
    for t in range(T):
        state = state * g[:, :, t].exp()[..., None, None]
        kv_mem = (state * k[:, :, t, :, None]).sum(dim=-2)
        delta = (v[:, :, t] - kv_mem) * beta[:, :, t, None]
        state = state + k[:, :, t, :, None] * delta[..., None, :]
        out[:, :, t] = (state * q[:, :, t, :, None]).sum(dim=-2)
    return out, state


def run(case, chunk, bugs=()):
    dtype = DTYPES[case.dtype]
    acc = torch.float64 if case.dtype == "float64" else torch.float32
    x = {n: _t(a, dtype).to(acc) for n, a in case.inputs.items()}   # the inputs as the model has them
    G = x["q"].shape[2] // x["k"].shape[2]
    spread = (lambda a: a.repeat(1, 1, G, *[1] * (a.dim() - 3))) if "tile" in bugs else \
        (lambda a: a.repeat_interleave(G, dim=2))
    q, k, v, beta = x["q"], spread(x["k"]), spread(x["v"]), spread(x["beta"])
    g = x["g"]
    q, k, v = (a.transpose(1, 2) for a in (q, k, v))                 # [B, H, T, D]
    g, beta = g.transpose(1, 2), beta.transpose(1, 2)
    B, H, T, dk = q.shape
    dv = v.shape[-1]
    cu = case.cu_seqlens if case.cu_seqlens is not None and "varlen_leak" not in bugs \
        else (0, T)
    rows = len(cu) - 1 if case.cu_seqlens is not None else B
    s0 = (torch.zeros(rows, H, dk, dv, dtype=acc) if case.state0 is None
          else _t(case.state0["S"], dtype).to(acc))
    if case.cu_seqlens is None:
        out, S = recurrent_gated_delta_rule(q, k, v, g, beta, s0)
        finals = S
    else:
        outs, finals = [], []
        state = s0[:1]
        for n, (a, b) in enumerate(zip(cu[:-1], cu[1:])):
            if "varlen_leak" not in bugs:
                state = s0[n:n + 1]
            o, state = recurrent_gated_delta_rule(q[:, :, a:b], k[:, :, a:b], v[:, :, a:b],
                                                  g[:, :, a:b], beta[:, :, a:b], state)
            outs.append(o)
            finals.append(state)
        out = torch.cat(outs, dim=2)
        finals = torch.cat(finals, dim=0)
        if "varlen_leak" in bugs:
            finals = finals.expand(rows, -1, -1, -1)
    out = out.to(dtype).transpose(1, 2)                              # [B, T, H, dv]
    return out.double().numpy(), {"S": finals.double().numpy()}


def make(*bugs, name="gdn_torch"):
    feats = ("initial_state", "final_state", "groups", "varlen")
    return SequenceTarget(
        name=name, cell="gated_deltanet",
        input_heads={"q": "out", "k": "kv", "v": "kv", "beta": "kv", "g": "out"},
        paths=(Path("recurrent", "sequential", lambda c, n: run(c, n, bugs), features=feats,
                    dtypes=tuple(DTYPES), accumulates="float32",
                    source="tests/sequence_targets/gdn_torch.py"),),
        convention="q scaled by 1/sqrt(d_k); no l2norm (keys drawn unit-length)")


correct = make()
