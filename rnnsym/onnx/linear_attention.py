"""ONNX ``LinearAttention`` (opset 27): the recurrence, token by token, in float64.

    output, present_state = query, key, value, past_state?, decay?, beta?  ->  (B, T, H_q*d_v),
                                                                              (B, H_kv, d_k, d_v)

One key/value head ``j`` of one sample carries a state ``S`` (``d_k x d_v``, from
``past_state[b, j]``, zeros when absent). Per token ``t``, with ``k = key[b, t, j]`` (``d_k``),
``v = value[b, t, j]`` (``d_v``), ``g = decay[b, t, j]`` (a scalar per head, or one value per
key row ``d_k``; log space) and ``beta = beta[b, t, j]`` (or ``beta[b, t, 0]`` shared)::

    linear       S = S + outer(k, v)
    gated        S = exp(g) * S + outer(k, v)                  (exp(g) scales S's rows)
    delta        S = S + outer(k, beta * (v - S.T @ k))
    gated_delta  S = exp(g) * S;  S = S + outer(k, beta * (v - S.T @ k))

and every query head ``i`` that reads head ``j`` outputs ``scale * S.T @ query[b, t, i]``
(``scale = 0`` means ``1 / sqrt(d_k)``, ``d_k = query.shape[-1] / q_num_heads``).
``chunk_size`` is a tuning hint: it is validated (positive) and changes nothing.

**Grouped-query sharing** (``q_num_heads = G * kv_num_heads``): the spec says each key/value
head is shared by ``G`` query heads, not which. rnnsym's default reading, ``kv_heads="grouped"``,
is the one of the ONNX package's own reference implementation (``np.repeat(state, G, axis=1)``)
and of onnxruntime 1.32: query head ``i`` reads key/value head ``i // G`` (heads 0..G-1 read
head 0; torch's ``repeat_interleave``, transformers' ``repeat_kv``). The other reading,
``kv_heads="tiled"``: query head ``i`` reads head ``i % kv_num_heads`` (``torch.Tensor.repeat``,
``np.tile``).

The type constraints allow float16, bfloat16 and float32 only; this evaluator takes any float
array and computes in float64 (``dtype`` changes that, for the checker's bug models).

**The built-in cells** (:func:`head_cell`): each ``update_rule`` is one of rnnsym's one-head
matrix-state cells, with the same state orientation (``d_k x d_v``), decay placement (``exp(g)``
scales ``S``'s rows before the update, the delta term reads the decayed state) and read-out::

    linear       linear_attention(scale)
    gated        gla(decay="head" | "key", scale)            decay (B,T,H_kv) | (B,T,H_kv*d_k)
    delta        deltanet(scale, qk_l2norm=False)
    gated_delta  gated_deltanet(decay="head" | "key", scale, qk_l2norm=False)

:func:`evaluate` runs query head ``i`` of sample ``b`` as one instance of that cell, compiled
(``rnnsym.compile``: the generated NumPy code), fed the inputs of key/value head
``kv_head(i)``; the G query heads of one key/value head recompute its state, and
``present_state[b, j]`` is the state of its first reader. ``scale = 0`` is the cell's own
default ``1/sqrt(d_k)``; a given scale multiplies the outputs of the cell built with
``scale=1`` (the cell option would pass it through ``sympy.nsimplify``, which rounds e.g. a
float32 scale to a nearby rational). :func:`evaluate_loop`, the hand-written loop above, is
the independent reference (tests/test_onnx_linear_cells.py) and runs the checker's bug models
(``step=``) and tolerance probes (``state_noise=``).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from rnnsym.onnx.attributes import OnnxError

UPDATE_RULES = ("linear", "gated", "delta", "gated_delta")
KV_HEADS = ("grouped", "tiled")
INPUTS = ("query", "key", "value", "past_state", "decay", "beta")
OUTPUTS = ("output", "present_state")
#: update_rule -> the built-in one-head cell that is it (module docstring)
CELLS = {"linear": "linear_attention", "gated": "gla", "delta": "deltanet",
         "gated_delta": "gated_deltanet"}


@dataclass(frozen=True)
class LinearAttentionAttributes:
    q_num_heads: int
    kv_num_heads: int
    update_rule: str = "gated_delta"
    scale: float = 0.0
    chunk_size: int = 64

    @property
    def gated(self) -> bool:
        return self.update_rule in ("gated", "gated_delta")

    @property
    def delta(self) -> bool:
        return self.update_rule in ("delta", "gated_delta")


def parse_attributes(attributes: dict) -> LinearAttentionAttributes:
    """ONNX attribute values (``update_rule`` as str or bytes) -> validated attributes."""
    known = {"q_num_heads", "kv_num_heads", "update_rule", "scale", "chunk_size"}
    unknown = sorted(set(attributes) - known)
    if unknown:
        raise OnnxError(f"LinearAttention attribute {unknown[0]}: unknown (known: "
                        f"{', '.join(sorted(known))})")
    for name in ("q_num_heads", "kv_num_heads"):
        if name not in attributes:
            raise OnnxError(f"LinearAttention attribute {name}: required, but absent")
    hq, hkv = int(attributes["q_num_heads"]), int(attributes["kv_num_heads"])
    if hkv <= 0 or hq <= 0 or hq % hkv:
        raise OnnxError(f"LinearAttention attributes q_num_heads={hq}, kv_num_heads={hkv}: "
                        "q_num_heads must be a positive multiple of kv_num_heads")
    rule = attributes.get("update_rule", "gated_delta")
    rule = rule.decode() if isinstance(rule, bytes) else str(rule)
    if rule not in UPDATE_RULES:
        raise OnnxError(f"LinearAttention attribute update_rule: expected one of "
                        f"{', '.join(UPDATE_RULES)}, got {rule!r}")
    chunk = int(attributes.get("chunk_size", 64))
    if chunk <= 0:
        raise OnnxError(f"LinearAttention attribute chunk_size: expected a positive number, "
                        f"got {chunk}")
    return LinearAttentionAttributes(hq, hkv, rule, float(attributes.get("scale", 0.0)), chunk)


def kv_head(i: int, q_num_heads: int, kv_num_heads: int, kv_heads: str = "grouped") -> int:
    """The key/value head that query head ``i`` reads (module docstring)."""
    if kv_heads == "grouped":
        return i // (q_num_heads // kv_num_heads)
    if kv_heads == "tiled":
        return i % kv_num_heads
    raise OnnxError(f"kv_heads: expected one of {', '.join(KV_HEADS)}, got {kv_heads!r}")


def _packed(name: str, x, B: int, T: int, heads: int, symbol: str, d=None):
    """(B, T, heads*d) -> (B, T, heads, d), checked; ``d`` None: any width divisible by heads."""
    x = np.asarray(x)
    width = f"{heads}*{symbol}" if d is None else heads * d
    if x.ndim != 3 or x.shape[:2] != (B, T) or (d is None and x.shape[2] % heads) or \
            (d is not None and x.shape[2] != heads * d):
        raise OnnxError(f"input {name}: expected shape (B, T, H*{symbol}) = ({B}, {T}, {width}), "
                        f"got {x.shape}")
    return x.reshape(B, T, heads, x.shape[2] // heads)


def step(S, k, v, g, beta, rule: str):
    """One token of one key/value head: the new state ``S`` (d_k, d_v). ``g``: a scalar or
    one log-decay per key row (d_k,); ``beta``: a scalar (module docstring)."""
    if rule in ("gated", "gated_delta"):
        S = np.exp(g)[..., None] * S            # (d_k, 1) or scalar: scales S's rows
    if rule in ("delta", "gated_delta"):
        v = beta * (v - S.T @ k)
    return S + np.outer(k, v)


_LOOP_STEP = step       # evaluate's default: the correct update (the compiled cells compute it)


def head_cell(rule: str, decay: str = "head", scale=None):
    """The built-in one-head cell of ``update_rule`` ``rule`` (module docstring): ``decay``
    "head" (one log-decay per head) or "key" (one per key row) for the gated rules, ``scale``
    the cell's option (None: ``1/sqrt(d_k)``)."""
    from rnnsym.cells import builtin

    options = {"scale": scale}
    if rule in ("gated", "gated_delta"):
        options["decay"] = decay
    return builtin(CELLS[rule], **options)


@lru_cache(maxsize=None)
def _compiled_forward(rule: str, decay: str, scale):
    from rnnsym.codegen.compile import compile_cell

    return compile_cell(head_cell(rule, decay, scale)).forward


def evaluate(attrs: LinearAttentionAttributes, query, key, value, past_state=None, decay=None,
             beta=None, *, kv_heads: str = "grouped", dtype=np.float64, step=step,
             state_noise=None) -> dict:
    """``{"output": (B, T, H_q*d_v), "present_state": (B, H_kv, d_k, d_v)}`` computed in
    ``dtype`` (float64: exact up to rounding) by the compiled built-in cells, one per query
    head (module docstring). ``step`` replaces the per-token update and ``state_noise(S) -> S``
    perturbs each new state (the checker's bug models and tolerance probes): those run
    :func:`evaluate_loop`. Raises OnnxError naming the input, the expected shape and what was
    given."""
    if step is not _LOOP_STEP or state_noise is not None:
        return evaluate_loop(attrs, query, key, value, past_state, decay, beta,
                             kv_heads=kv_heads, dtype=dtype, step=step, state_noise=state_noise)
    Hq, Hkv = attrs.q_num_heads, attrs.kv_num_heads
    q, k, v, g, b_, S0, scale = _checked(attrs, query, key, value, past_state, decay, beta, dtype)
    B, T, _, d_k = q.shape
    d_v = v.shape[3]
    heads = [kv_head(i, Hq, Hkv, kv_heads) for i in range(Hq)]

    def per_query_head(x, width):   # (B, T, H, ...) of key/value heads -> (T, B*H_q, width)
        return x[:, :, heads].reshape(B, T, Hq, width).transpose(1, 0, 2, 3) \
            .reshape(T, B * Hq, width)

    x = {"q": q.transpose(1, 0, 2, 3).reshape(T, B * Hq, d_k),
         "k": per_query_head(k, d_k), "v": per_query_head(v, d_v)}
    if g is not None:
        x["g"] = per_query_head(g, 1 if g.ndim == 3 else d_k)
    if b_ is not None:
        x["beta"] = per_query_head(b_ if b_.shape[2] == Hkv else np.repeat(b_, Hkv, axis=2), 1)
    forward = _compiled_forward(attrs.update_rule, "head" if g is None or g.ndim == 3 else "key",
                                None if attrs.scale == 0 else 1)
    out, state = forward({}, x, {"S": S0[:, heads].reshape(B * Hq, d_k, d_v)})
    if attrs.scale != 0:
        out = scale * out
    first_reader = [heads.index(j) for j in range(Hkv)]
    return {"output": out.reshape(T, B, Hq * d_v).transpose(1, 0, 2),
            "present_state": state["S"].reshape(B, Hq, d_k, d_v)[:, first_reader]}


def evaluate_loop(attrs: LinearAttentionAttributes, query, key, value, past_state=None,
                  decay=None, beta=None, *, kv_heads: str = "grouped", dtype=np.float64,
                  step=step, state_noise=None) -> dict:
    """:func:`evaluate` by the hand-written loop of the module docstring, token by token, one
    key/value head at a time (the independent reference; ``step``, ``state_noise``: see
    :func:`evaluate`)."""
    Hq, Hkv = attrs.q_num_heads, attrs.kv_num_heads
    q, k, v, g, b_, S0, scale = _checked(attrs, query, key, value, past_state, decay, beta, dtype)
    B, T, _, d_k = q.shape
    d_v = v.shape[3]
    readers = {j: [i for i in range(Hq) if kv_head(i, Hq, Hkv, kv_heads) == j]
               for j in range(Hkv)}

    out = np.zeros((B, T, Hq, d_v), dtype)
    present = np.zeros((B, Hkv, d_k, d_v), dtype)
    for n in range(B):
        for j in range(Hkv):
            S = S0[n, j]
            for t in range(T):
                S = step(S, k[n, t, j], v[n, t, j], None if g is None else g[n, t, j],
                         None if b_ is None else b_[n, t, min(j, b_.shape[2] - 1)],
                         attrs.update_rule)
                if state_noise is not None:
                    S = state_noise(S)
                for i in readers[j]:
                    out[n, t, i] = scale * (S.T @ q[n, t, i])
            present[n, j] = S
    return {"output": out.reshape(B, T, Hq * d_v), "present_state": present}


def _checked(attrs, query, key, value, past_state, decay, beta, dtype):
    """The inputs validated and unpacked per head, in ``dtype``: q (B, T, H_q, d_k), k, v
    (B, T, H_kv, d), decay (B, T, H_kv) or (B, T, H_kv, d_k) or None, beta (B, T, H_kv or 1)
    or None, the initial state (B, H_kv, d_k, d_v) and the scale."""
    Hq, Hkv = attrs.q_num_heads, attrs.kv_num_heads
    query = np.asarray(query)
    if query.ndim != 3:
        raise OnnxError(f"input query: expected shape (B, T, H_q*d_k) with H_q={Hq}, got "
                        f"{query.shape}")
    B, T = query.shape[:2]
    q = _packed("query", query, B, T, Hq, "d_k").astype(dtype)
    d_k = q.shape[3]
    k = _packed("key", key, B, T, Hkv, "d_k", d_k).astype(dtype)
    v = _packed("value", value, B, T, Hkv, "d_v").astype(dtype)
    d_v = v.shape[3]
    g = _decay(attrs, decay, B, T, d_k, dtype)
    b_ = _beta(attrs, beta, B, T, dtype)
    if past_state is None:
        S0 = np.zeros((B, Hkv, d_k, d_v), dtype)
    else:
        S0 = np.asarray(past_state)
        if S0.shape != (B, Hkv, d_k, d_v):
            raise OnnxError(f"input past_state: expected shape (B, H_kv, d_k, d_v) = "
                            f"({B}, {Hkv}, {d_k}, {d_v}), got {S0.shape}")
        S0 = S0.astype(dtype)
    scale = dtype(attrs.scale) if attrs.scale else dtype(1 / np.sqrt(d_k))
    return q, k, v, g, b_, S0, scale


def _decay(attrs, decay, B, T, d_k, dtype):
    """(B, T, H_kv) -> (B, T, H_kv) scalars; (B, T, H_kv*d_k) -> (B, T, H_kv, d_k)."""
    Hkv = attrs.kv_num_heads
    if not attrs.gated:
        if decay is not None:
            raise OnnxError(f"input decay: update_rule {attrs.update_rule!r} takes no decay "
                            "(gated and gated_delta do)")
        return None
    if decay is None:
        raise OnnxError(f"input decay: required by update_rule {attrs.update_rule!r}, shape "
                        f"(B, T, H_kv) = ({B}, {T}, {Hkv}) or (B, T, H_kv*d_k) = "
                        f"({B}, {T}, {Hkv * d_k})")
    decay = np.asarray(decay)
    if decay.ndim == 3 and decay.shape[:2] == (B, T) and decay.shape[2] == Hkv:
        return decay.astype(dtype)
    if decay.ndim == 3 and decay.shape[:2] == (B, T) and decay.shape[2] == Hkv * d_k:
        return decay.reshape(B, T, Hkv, d_k).astype(dtype)
    raise OnnxError(f"input decay: expected shape (B, T, H_kv) = ({B}, {T}, {Hkv}) or "
                    f"(B, T, H_kv*d_k) = ({B}, {T}, {Hkv * d_k}), got {decay.shape}")


def _beta(attrs, beta, B, T, dtype):
    Hkv = attrs.kv_num_heads
    if not attrs.delta:
        if beta is not None:
            raise OnnxError(f"input beta: update_rule {attrs.update_rule!r} takes no beta "
                            "(delta and gated_delta do)")
        return None
    if beta is None:
        raise OnnxError(f"input beta: required by update_rule {attrs.update_rule!r}, shape "
                        f"(B, T, H_kv) = ({B}, {T}, {Hkv}) or (B, T, 1) = ({B}, {T}, 1)")
    beta = np.asarray(beta)
    if beta.ndim != 3 or beta.shape[:2] != (B, T) or beta.shape[2] not in (Hkv, 1):
        raise OnnxError(f"input beta: expected shape (B, T, H_kv) = ({B}, {T}, {Hkv}) or "
                        f"(B, T, 1) = ({B}, {T}, 1), got {beta.shape}")
    return beta.astype(dtype)
