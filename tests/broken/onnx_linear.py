"""Hand-written ONNX backends for opset 27's LinearAttention and CausalConvWithState
(``rnnsym check onnx:tests/broken/onnx_linear.py:NAME --cell linear_attention``), written
independently of rnnsym.onnx (NumPy, batch and heads vectorised with einsum).

Correct but unusual (PASS):
run_chunked        chunk by chunk as fast kernels do: linear/gated rules in the parallel form
                   (masked Q K^T with cumulative log-decays, the state carried across chunks),
                   delta in the UT/WY form (Yang et al. 2024), gated_delta token by token
run_heads_outer    one query head at a time, each recomputing its key/value head's recurrence
conv_np_convolve   the convolution by np.convolve (a flipped kernel)

Broken, one per bug model (FAIL with that diagnosis):
run_decay_after    S = exp(g) (S + k (x) u): the decay after the update
run_tiled          query head i reads key/value head i % H_kv (torch .repeat)
run_scale_one      scale 0 read as 1
run_past_ignored   past_state ignored
run_float32        everything in float32 (checked in float64)
run_drop_partial   the last partial chunk dropped (T % chunk_size tokens)
conv_flipped       the kernel applied flipped (a true convolution)
conv_past_ignored  past_state ignored
"""
import numpy as np
import onnx
from onnx import helper, numpy_helper

LA_SLOTS = ("query", "key", "value", "past_state", "decay", "beta")
CONV_SLOTS = ("input", "weight", "bias", "past_state")


def _node(model_bytes, inputs, slots):
    model = onnx.load_model_from_string(model_bytes)
    graph = model.graph
    values = {i.name: v for i, v in zip(graph.input, inputs)}
    values.update({t.name: numpy_helper.to_array(t) for t in graph.initializer})
    node = graph.node[0]
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    attrs = {k: v.decode() if isinstance(v, bytes) else v for k, v in attrs.items()}
    ins = {slot: values[name] for slot, name in zip(slots, node.input) if name}
    return graph, node, attrs, ins


def _outputs(graph, node, result, dtype):
    named = dict(zip(node.output, result))
    return [named[o.name].astype(dtype) for o in graph.output]


# --- LinearAttention --------------------------------------------------------------------------

def _heads(x, H):
    """(B, T, H*d) -> (B, H, T, d)."""
    B, T, _ = x.shape
    return x.reshape(B, T, H, -1).transpose(0, 2, 1, 3)


def _unpack(model_bytes, inputs, dtype=np.float64):
    graph, node, a, ins = _node(model_bytes, inputs, LA_SLOTS)
    Hq, Hkv = a["q_num_heads"], a["kv_num_heads"]
    rule = a.get("update_rule", "gated_delta")
    q, k, v = (_heads(ins[n].astype(dtype), H) for n, H in
               (("query", Hq), ("key", Hkv), ("value", Hkv)))
    B, _, T, d_k = k.shape
    d_v = v.shape[3]
    S0 = ins.get("past_state", np.zeros((B, Hkv, d_k, d_v))).astype(dtype)
    g = np.zeros((B, Hkv, T, d_k), dtype)
    if "decay" in ins:
        decay = ins["decay"].astype(dtype)
        g = g + (_heads(decay, Hkv) if decay.shape[2] == Hkv * d_k
                 else decay.transpose(0, 2, 1)[..., None])
    beta = np.ones((B, Hkv, T, 1), dtype)
    if "beta" in ins:
        beta = beta * ins["beta"].astype(dtype).transpose(0, 2, 1)[..., None]
    scale = a.get("scale", 0.0) or 1 / np.sqrt(d_k)
    return dict(graph=graph, node=node, rule=rule, q=q, k=k, v=v, S0=S0, g=g, beta=beta,
                scale=dtype(scale), Hq=Hq, Hkv=Hkv, chunk=a.get("chunk_size", 64),
                dtype=ins["query"].dtype)


def _pack(o):
    """(B, H, T, d) -> (B, T, H*d)."""
    B, H, T, d = o.shape
    return o.transpose(0, 2, 1, 3).reshape(B, T, H * d)


def _token_by_token(p, *, decay_after=False, first=0, last=None):
    """The recurrence over tokens first..last-1 of every (sample, key/value head) at once;
    returns (outputs of those tokens per key/value head and query of the same head group
    read later, final state). Outputs: (B, Hkv, n, d_k, d_v) states after each token."""
    S = p["S0"]
    states = []
    last = p["k"].shape[2] if last is None else last
    for t in range(first, last):
        k, v, g, b = p["k"][:, :, t], p["v"][:, :, t], p["g"][:, :, t], p["beta"][:, :, t]
        decay = np.exp(g)[..., None]                       # (B, H, d_k, 1)
        if not decay_after and p["rule"] in ("gated", "gated_delta"):
            S = decay * S
        if p["rule"] in ("delta", "gated_delta"):
            v = b * (v - np.einsum("bhkm,bhk->bhm", S, k))
        S = S + np.einsum("bhk,bhm->bhkm", k, v)
        if decay_after and p["rule"] in ("gated", "gated_delta"):
            S = decay * S
        states.append(S)
    return states, S


def _read(p, states, kv_of):
    """o_t = scale S_t^T q_t for every query head i, reading key/value head kv_of(i)."""
    B, Hq, T, _ = p["q"].shape
    out = np.zeros((B, Hq, T, p["v"].shape[3]), p["q"].dtype)
    for t, S in enumerate(states):
        for i in range(Hq):
            out[:, i, t] = p["scale"] * np.einsum("bkm,bk->bm", S[:, kv_of(i)], p["q"][:, i, t])
    return out


def _sequential(model_bytes, inputs, *, tiled=False, decay_after=False, dtype=np.float64,
                drop_partial=False, scale=None, past=True):
    p = _unpack(model_bytes, inputs, dtype)
    if scale is not None:
        p["scale"] = dtype(scale)
    if not past:
        p["S0"] = np.zeros_like(p["S0"])
    T = p["k"].shape[2]
    last = T - T % p["chunk"] if drop_partial else T
    states, S = _token_by_token(p, decay_after=decay_after, last=last)
    G = p["Hq"] // p["Hkv"]
    out = _read(p, states, (lambda i: i % p["Hkv"]) if tiled else (lambda i: i // G))
    return _outputs(p["graph"], p["node"], [_pack(out), S], p["dtype"])


def _chunk_parallel(p, S, t0, t1):
    """Tokens t0..t1-1 of linear/gated rules at once: with c_t = sum_{s<=t} g_s (per key
    row), o_t = scale (q_t e^{c_t})^T (S + sum_{s<=t} (k_s e^{-c_s}) v_s^T); the state after
    the chunk is e^{c_last} (S + sum_s (k_s e^{-c_s}) v_s^T)."""
    q, k, v = p["q"][:, :, t0:t1], p["k"][:, :, t0:t1], p["v"][:, :, t0:t1]
    c = np.cumsum(p["g"][:, :, t0:t1], axis=2)              # (B, Hkv, n, d_k)
    G = p["Hq"] // p["Hkv"]
    cq = np.repeat(c, G, axis=1)
    n = t1 - t0
    mask = np.tril(np.ones((n, n)))
    # decay from s to t per key row: exp(c_t - c_s), masked to s <= t
    A = np.einsum("bhtk,bhsk->bhts", q * np.exp(cq),
                  np.repeat(k * np.exp(-c), G, axis=1)) * mask
    out = p["scale"] * (np.einsum("bhts,bhsm->bhtm", A, np.repeat(v, G, axis=1))
                        + np.einsum("bhtk,bhkm->bhtm", q * np.exp(cq), np.repeat(S, G, axis=1)))
    last = np.exp(c[:, :, -1])[..., None]
    S = last * (S + np.einsum("bhsk,bhsm->bhkm", k * np.exp(-c), v))
    return out, S


def _chunk_delta(p, S, t0, t1):
    """Tokens t0..t1-1 of the delta rule: UT transform T = (I + tril(diag(beta) K K^T, -1))^-1
    diag(beta), W = T K, U = T V; O = scale (Q S + tril(Q K^T) (U - W S)); S' = S + K^T (U - W S)."""
    q, k, v = p["q"][:, :, t0:t1], p["k"][:, :, t0:t1], p["v"][:, :, t0:t1]
    beta = p["beta"][:, :, t0:t1]                         # (B, Hkv, n, 1)
    n = t1 - t0
    A = np.tril(beta * np.einsum("bhtk,bhsk->bhts", k, k), -1)
    Tm = np.linalg.inv(np.eye(n) + A) * beta.transpose(0, 1, 3, 2)   # times diag(beta)
    W, U = Tm @ k, Tm @ v
    new = U - W @ S                                        # (B, Hkv, n, d_v)
    G = p["Hq"] // p["Hkv"]
    kq = np.repeat(k, G, axis=1)
    out = p["scale"] * (q @ np.repeat(S, G, axis=1)
                        + (np.tril(q @ kq.transpose(0, 1, 3, 2))) @ np.repeat(new, G, axis=1))
    return out, S + k.transpose(0, 1, 3, 2) @ new


def run_chunked(model_bytes, inputs):
    p = _unpack(model_bytes, inputs)
    T, C = p["k"].shape[2], p["chunk"]
    S, parts = p["S0"], []
    for t0 in range(0, T, C):
        t1 = min(t0 + C, T)
        if p["rule"] in ("linear", "gated"):
            out, S = _chunk_parallel(p, S, t0, t1)
        elif p["rule"] == "delta":
            out, S = _chunk_delta(p, S, t0, t1)
        else:
            sub = dict(p, S0=S)
            states, S = _token_by_token(sub, first=t0, last=t1)
            G = p["Hq"] // p["Hkv"]
            out = _read(dict(p, q=p["q"][:, :, t0:t1]), states, lambda i: i // G)
        parts.append(out)
    out = np.concatenate(parts, axis=2) if parts else np.zeros(
        p["q"].shape[:3] + (p["v"].shape[3],))
    return _outputs(p["graph"], p["node"], [_pack(out), S], p["dtype"])


def run_heads_outer(model_bytes, inputs):
    p = _unpack(model_bytes, inputs)
    G = p["Hq"] // p["Hkv"]
    B, Hq, T, _ = p["q"].shape
    out = np.zeros((B, Hq, T, p["v"].shape[3]))
    for i in reversed(range(Hq)):                  # query heads outermost, backwards
        j = i // G
        one = dict(p, k=p["k"][:, j:j + 1], v=p["v"][:, j:j + 1], g=p["g"][:, j:j + 1],
                   beta=p["beta"][:, j:j + 1] if p["beta"].shape[1] > 1 else p["beta"],
                   S0=p["S0"][:, j:j + 1])
        states, _ = _token_by_token(one)
        for t, S in enumerate(states):
            out[:, i, t] = p["scale"] * np.einsum("bkm,bk->bm", S[:, 0], p["q"][:, i, t])
    _, S = _token_by_token(p)
    return _outputs(p["graph"], p["node"], [_pack(out), S], p["dtype"])


def run_decay_after(model_bytes, inputs):
    return _sequential(model_bytes, inputs, decay_after=True)


def run_tiled(model_bytes, inputs):
    return _sequential(model_bytes, inputs, tiled=True)


def run_scale_one(model_bytes, inputs):
    a = {x.name: helper.get_attribute_value(x)
         for x in onnx.load_model_from_string(model_bytes).graph.node[0].attribute}
    return _sequential(model_bytes, inputs, scale=a.get("scale") or 1.0)


def run_past_ignored(model_bytes, inputs):
    return _sequential(model_bytes, inputs, past=False)


def run_float32(model_bytes, inputs):
    return _sequential(model_bytes, inputs, dtype=np.float32)


def run_drop_partial(model_bytes, inputs):
    return _sequential(model_bytes, inputs, drop_partial=True)


# --- CausalConvWithState ----------------------------------------------------------------------

def _conv(model_bytes, inputs, *, flip=False, past=True):
    graph, node, a, ins = _node(model_bytes, inputs, CONV_SLOTS)
    x, w = ins["input"].astype(np.float64), ins["weight"].astype(np.float64)
    B, C, L = x.shape
    k = w.shape[2]
    pad = ins["past_state"] if "past_state" in ins and past else np.zeros((B, C, k - 1))
    full = np.concatenate([pad, x], axis=2)
    out = np.zeros((B, C, L))
    for b in range(B):
        for c in range(C):
            kernel = w[c, 0] if flip else w[c, 0, ::-1]    # np.convolve flips its kernel
            out[b, c] = np.convolve(full[b, c], kernel, mode="valid")
    if "bias" in ins:
        out += ins["bias"][None, :, None]
    if a.get("activation", "none") != "none":
        out = out / (1 + np.exp(-out))
    return _outputs(graph, node, [out, full[:, :, L:]], ins["input"].dtype)


def conv_np_convolve(model_bytes, inputs):
    return _conv(model_bytes, inputs)


def conv_flipped(model_bytes, inputs):
    return _conv(model_bytes, inputs, flip=True)


def conv_past_ignored(model_bytes, inputs):
    return _conv(model_bytes, inputs, past=False)
