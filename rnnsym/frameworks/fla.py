"""Sequence targets of flash-linear-attention (fla-core 0.6.0): its pure-torch reference
functions (``fla/ops/*/naive.py``), which import and run on a CPU (fla warns "Triton is not
supported on current platform, roll back to CPU").

Each maps onto an rnnsym built-in cell exactly (no preprocessing: the naive functions take q
and k as given, no l2norm, no feature map):

================  ==========================================  =============================
target            functions                                   cell
================  ==========================================  =============================
fla:gated-delta-  gated_delta_rule.naive: naive_recurrent_     gated_deltanet (decay head)
rule              gated_delta_rule, naive_chunk_gated_delta_
                  rule
fla:kda           kda.naive: naive_recurrent_kda,              gated_deltanet (decay key),
                  naive_chunk_kda                              q/k heads grouped
fla:delta-rule    delta_rule.naive: delta_rule_recurrence,     deltanet
                  delta_rule_chunkwise, delta_rule_parallel
fla:gla           gla.naive: naive_recurrent_gla               gla (decay key)
fla:simple-gla    simple_gla.naive: naive_recurrent_simple_    gla (decay head)
                  gla, naive_chunk_simple_gla, naive_parallel_
                  simple_gla
fla:linear-attn   linear_attn.naive: naive_recurrent_linear_   linear_attention
                  attn, naive_chunk_linear_attn
fla:retention     retention.naive: naive_retention             gla (decay head) with the fixed
                                                               g = log(1 − 2^(−5−h))
================  ==========================================  =============================

Layouts: ``[B, T, H, D]`` except delta_rule.naive and retention.naive (``[B, H, T, D]``);
states ``[B, H, K, V]`` (rows are keys: the canonical layout). Most upcast to float32 inside
(``.to(torch.float32)`` / ``.float()``), float64 inputs included: those paths decline float64
(they would silently compute it in float32) and declare ``accumulates="float32"``.

torch and fla are imported inside the functions.
"""
from __future__ import annotations

import numpy as np

from rnnsym.errors import Unsupported
from rnnsym.frameworks import sequence_torch as st
from rnnsym.frameworks.sequence import Path, SequenceTarget

VERSION = "fla-core 0.6.0"
LOW = ("float32", "bfloat16", "float16")        # the float32-upcasting paths
#: delta_rule_chunkwise/_parallel add a float32 identity to their bf16/fp16 matrix and then
#: multiply it with the bf16/fp16 values: "expected m1 and m2 to have the same dtype"
HIGH = ("float64", "float32")
FEATS = ("initial_state", "final_state")


def _scale(case):
    return case.options.get("scale")


def _fla(module: str):
    import importlib
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")         # "Triton is not supported on current platform"
        return importlib.import_module(f"fla.ops.{module}.naive")


def _inputs(case, names, dtype, heads_first=False):
    return [st.tensor(case.inputs[n], dtype, heads_first) for n in names]


def _state0(case, dtype):
    return None if case.state0 is None else st.state_tensor(case.state0["S"], dtype)


def _back(o, S, heads_first=False):
    return st.numpy(o, heads_first), (None if S is None else {"S": st.numpy(S)})


def _chunk(case, chunk_size, default, path, multiple=False):
    chunk = chunk_size or default
    if multiple and case.T % chunk:
        raise Unsupported(f"{path}: T={case.T} is not a multiple of chunk_size={chunk} "
                          "(the function asserts it; it does not pad)")
    return chunk


# ---------------------------------------------------------------- gated delta rule

def _gdr_recurrent(case, chunk_size=None):
    fn = _fla("gated_delta_rule").naive_recurrent_gated_delta_rule
    st.require(case, "fla naive_recurrent_gated_delta_rule", dtypes=LOW, options=("scale",))
    dtype = st.torch_dtype(case.dtype)
    q, k, v, beta, g = _inputs(case, ("q", "k", "v", "beta", "g"), dtype)
    o, S = fn(q, k, v, beta, g, scale=_scale(case), initial_state=_state0(case, dtype),
              output_final_state=True)
    return _back(o, S)


def _gdr_chunk(case, chunk_size=None):
    fn = _fla("gated_delta_rule").naive_chunk_gated_delta_rule
    st.require(case, "fla naive_chunk_gated_delta_rule", dtypes=LOW, options=("scale",))
    dtype = st.torch_dtype(case.dtype)
    q, k, v, g, beta = _inputs(case, ("q", "k", "v", "g", "beta"), dtype)
    o, S = fn(q, k, v, g, beta, chunk_size=_chunk(case, chunk_size, 64, ""),
              scale=_scale(case), initial_state=_state0(case, dtype), output_final_state=True)
    return _back(o, S)


def gated_delta_rule_target() -> SequenceTarget:
    src = f"{VERSION} fla.ops.gated_delta_rule.naive:"
    return SequenceTarget(
        name="fla:gated-delta-rule", cell="gated_deltanet", cell_options={"decay": "head"},
        input_heads={n: "out" for n in ("q", "k", "v", "g", "beta")},
        convention="q, k [B,T,H,K], v [B,T,H,V], g (log-decay), beta [B,T,H]; scale default "
        "1/sqrt(K); no l2norm of q/k in the naive functions; state [B,H,K,V]; computes in "
        "float32 (float64 declined), returns o in float32. chunked pads T to a multiple of "
        "chunk_size (g = 0, beta = 0 on the padding).",
        paths=(
            Path("chunked", "chunked", _gdr_chunk, features=FEATS + ("chunk_size",), dtypes=LOW,
                 chunk_size=64, accumulates="float32", source=src + "naive_chunk_gated_delta_rule"),
            Path("recurrent", "sequential", _gdr_recurrent, features=FEATS, dtypes=LOW,
                 accumulates="float32", source=src + "naive_recurrent_gated_delta_rule"),
        ))


# ---------------------------------------------------------------- KDA (per-key decay, GQA)

def _kda(name, chunked):
    def run(case, chunk_size=None):
        fn = getattr(_fla("kda"), name)
        st.require(case, f"fla {name}", dtypes=LOW, groups=True, options=("scale",))
        dtype = st.torch_dtype(case.dtype)
        q, k, v, g, beta = _inputs(case, ("q", "k", "v", "g", "beta"), dtype)
        kw = dict(scale=_scale(case), initial_state=_state0(case, dtype), output_final_state=True)
        if chunked:
            kw["chunk_size"] = _chunk(case, chunk_size, 64, f"fla {name}", multiple=True)
        o, S = fn(q, k, v, g, beta, **kw)
        return _back(o, S)
    return run


def kda_target() -> SequenceTarget:
    src = f"{VERSION} fla.ops.kda.naive:"
    return SequenceTarget(
        name="fla:kda", cell="gated_deltanet", cell_options={"decay": "key"},
        input_heads={"q": "qk", "k": "qk", "v": "out", "g": "out", "beta": "out"},
        convention="Kimi Delta Attention's naive references: the gated delta rule with a "
        "log-decay per key row g [B,T,HV,K]; q, k [B,T,H,K] with HV = G*H value heads, value "
        "head h reading q/k head h // G (repeat_interleave); v [B,T,HV,V], beta [B,T,HV]; "
        "scale default 1/sqrt(K); no l2norm; computes in float32 (float64 declined); output in "
        "v's dtype. chunked asserts T % chunk_size == 0.",
        paths=(
            Path("chunked", "chunked", _kda("naive_chunk_kda", True),
                 features=FEATS + ("chunk_size", "groups"), dtypes=LOW, chunk_size=64,
                 t_multiple="chunk",
                 accumulates="float32", source=src + "naive_chunk_kda"),
            Path("recurrent", "sequential", _kda("naive_recurrent_kda", False),
                 features=FEATS + ("groups",), dtypes=LOW, accumulates="float32",
                 source=src + "naive_recurrent_kda"),
        ))


# ---------------------------------------------------------------- delta rule ([B, H, T, D])

def _dr_recurrent(case, chunk_size=None):
    fn = _fla("delta_rule").delta_rule_recurrence
    st.require(case, "fla delta_rule_recurrence", dtypes=LOW)
    dtype = st.torch_dtype(case.dtype)
    q, k, v, beta = _inputs(case, ("q", "k", "v", "beta"), dtype, heads_first=True)
    o, S = fn(q, k, v, beta, initial_state=_state0(case, dtype), output_final_state=True)
    return _back(o, S, heads_first=True)


def _dr_chunkwise(case, chunk_size=None):
    fn = _fla("delta_rule").delta_rule_chunkwise
    st.require(case, "fla delta_rule_chunkwise", dtypes=HIGH, state0=False)
    dtype = st.torch_dtype(case.dtype)
    chunk = _chunk(case, chunk_size, 32, "fla delta_rule_chunkwise", multiple=True)
    q, k, v, beta = _inputs(case, ("q", "k", "v", "beta"), dtype, heads_first=True)
    o, S = fn(q, k, v, beta, chunk_size=chunk)
    return _back(o, S, heads_first=True)


def _dr_parallel(case, chunk_size=None):
    fn = _fla("delta_rule").delta_rule_parallel
    st.require(case, "fla delta_rule_parallel", dtypes=HIGH, state0=False)
    if case.T % 128:
        raise Unsupported(f"fla delta_rule_parallel: T={case.T} is not a multiple of its block "
                          "BM=128 (and BN=32)")
    dtype = st.torch_dtype(case.dtype)
    q, k, v, beta = _inputs(case, ("q", "k", "v", "beta"), dtype, heads_first=True)
    o, _ = fn(q, k, v, beta)
    return _back(o, None, heads_first=True)


def delta_rule_target() -> SequenceTarget:
    src = f"{VERSION} fla.ops.delta_rule.naive:"
    return SequenceTarget(
        name="fla:delta-rule", cell="deltanet", cell_options={},
        input_heads={n: "out" for n in ("q", "k", "v", "beta")},
        convention="layout [B,H,T,D] (heads first), beta [B,H,T]; scale fixed 1/sqrt(d_k) (no "
        "argument); no l2norm. recurrent: computes in float32 (float64 declined), returns o in "
        "the input dtype and S in float32. chunkwise: no initial state, always returns the "
        "final state, T % chunk_size == 0 asserted, computes in the input dtype; bf16/fp16 "
        "inputs fail (a float32 identity is added, then multiplied with bf16 values: "
        "RuntimeError), so they are declined. parallel: no state, T a multiple of 128, "
        "float32/float64 only for the same reason.",
        paths=(
            Path("chunked", "chunked", _dr_chunkwise, features=("final_state", "chunk_size"),
                 dtypes=HIGH, chunk_size=32, t_multiple="chunk", source=src + "delta_rule_chunkwise"),
            Path("recurrent", "sequential", _dr_recurrent, features=FEATS, dtypes=LOW,
                 accumulates="float32", source=src + "delta_rule_recurrence"),
            Path("parallel", "parallel", _dr_parallel, dtypes=HIGH, t_multiple=128,
                 source=src + "delta_rule_parallel (BM=128, BN=32)"),
        ))


# ---------------------------------------------------------------- GLA (decay per key)

def _gla_recurrent(case, chunk_size=None):
    fn = _fla("gla").naive_recurrent_gla
    st.require(case, "fla naive_recurrent_gla", dtypes=LOW)
    dtype = st.torch_dtype(case.dtype)
    q, k, v, g = _inputs(case, ("q", "k", "v", "g"), dtype)
    o, S = fn(q, k, v, g, initial_state=_state0(case, dtype), output_final_state=True)
    return _back(o, S)


def gla_target() -> SequenceTarget:
    return SequenceTarget(
        name="fla:gla", cell="gla", cell_options={"decay": "key"},
        input_heads={n: "out" for n in ("q", "k", "v", "g")},
        convention="q, k, gk (log-decay per key) [B,T,H,K], v [B,T,H,V]; scale fixed "
        "1/sqrt(K) (no argument); state [B,H,K,V]; computes in float32 (float64 declined), o "
        "in the input dtype.",
        paths=(Path("recurrent", "sequential", _gla_recurrent, features=FEATS, dtypes=LOW,
                    accumulates="float32", source=f"{VERSION} fla.ops.gla.naive:naive_recurrent_gla"),))


# ---------------------------------------------------------------- simple GLA (decay per head)

def _sgla_recurrent(case, chunk_size=None):
    fn = _fla("simple_gla").naive_recurrent_simple_gla
    st.require(case, "fla naive_recurrent_simple_gla", dtypes=LOW, options=("scale",))
    dtype = st.torch_dtype(case.dtype)
    q, k, v, g = _inputs(case, ("q", "k", "v", "g"), dtype)
    o, S = fn(q, k, v, g, scale=_scale(case), initial_state=_state0(case, dtype),
              output_final_state=True)
    return _back(o, S)


def _sgla_chunk(case, chunk_size=None):
    import torch
    fn = _fla("simple_gla").naive_chunk_simple_gla
    st.require(case, "fla naive_chunk_simple_gla", dtypes=LOW, options=("scale",))
    dtype = st.torch_dtype(case.dtype)
    q, k, v, g = _inputs(case, ("q", "k", "v", "g"), dtype)
    # it keeps initial_state as given (S = initial_state) and multiplies it with float32
    # tensors: a bf16/fp16 state would raise a dtype mismatch, so the state goes in float32
    o, S = fn(q, k, v, g, initial_state=_state0(case, torch.float32), output_final_state=True,
              chunk_size=_chunk(case, chunk_size, 64, ""), scale=_scale(case))
    return _back(o, S)


def _sgla_parallel(case, chunk_size=None):
    fn = _fla("simple_gla").naive_parallel_simple_gla
    st.require(case, "fla naive_parallel_simple_gla", dtypes=LOW, state0=False, options=("scale",))
    dtype = st.torch_dtype(case.dtype)
    q, k, v, g = _inputs(case, ("q", "k", "v", "g"), dtype)
    o, _ = fn(q, k, v, g, scale=_scale(case))
    return _back(o, None)


def simple_gla_target() -> SequenceTarget:
    src = f"{VERSION} fla.ops.simple_gla.naive:"
    return SequenceTarget(
        name="fla:simple-gla", cell="gla", cell_options={"decay": "head"},
        input_heads={n: "out" for n in ("q", "k", "v", "g")},
        convention="q, k [B,T,H,K], v [B,T,H,V], g (log-decay per head) [B,T,H]; scale default "
        "1/sqrt(K); state [B,H,K,V]; computes in float32 (float64 declined). chunked pads T "
        "to a multiple of chunk_size (g = 0) and keeps initial_state's dtype (the adapter "
        "passes it in float32); parallel: no state.",
        paths=(
            Path("chunked", "chunked", _sgla_chunk, features=FEATS + ("chunk_size",), dtypes=LOW,
                 chunk_size=64, accumulates="float32", source=src + "naive_chunk_simple_gla"),
            Path("recurrent", "sequential", _sgla_recurrent, features=FEATS, dtypes=LOW,
                 accumulates="float32", source=src + "naive_recurrent_simple_gla"),
            Path("parallel", "parallel", _sgla_parallel, dtypes=LOW, accumulates="float32",
                 source=src + "naive_parallel_simple_gla"),
        ))


# ---------------------------------------------------------------- linear attention

def _la_recurrent(case, chunk_size=None):
    fn = _fla("linear_attn").naive_recurrent_linear_attn
    st.require(case, "fla naive_recurrent_linear_attn", dtypes=LOW, options=("scale",))
    dtype = st.torch_dtype(case.dtype)
    q, k, v = _inputs(case, ("q", "k", "v"), dtype)
    o, S = fn(q, k, v, scale=_scale(case), initial_state=_state0(case, dtype),
              output_final_state=True)
    return _back(o, S)


def _la_chunk(case, chunk_size=None):
    fn = _fla("linear_attn").naive_chunk_linear_attn
    st.require(case, "fla naive_chunk_linear_attn", state0=False, options=("scale",))
    if chunk_size not in (None, 64):
        raise Unsupported(f"fla naive_chunk_linear_attn: its chunk size is fixed at 64, "
                          f"got chunk_size={chunk_size}")
    _chunk(case, 64, 64, "fla naive_chunk_linear_attn", multiple=True)
    dtype = st.torch_dtype(case.dtype)
    q, k, v = _inputs(case, ("q", "k", "v"), dtype)
    return _back(fn(q, k, v, scale=_scale(case)), None)


def linear_attn_target() -> SequenceTarget:
    src = f"{VERSION} fla.ops.linear_attn.naive:"
    return SequenceTarget(
        name="fla:linear-attn", cell="linear_attention", cell_options={},
        input_heads={n: "out" for n in ("q", "k", "v")},
        convention="q, k [B,T,H,K], v [B,T,H,V]; scale default 1/sqrt(K); normalize=False "
        "(the default; True divides by q.cumsum(k), not an rnnsym cell); no feature map. "
        "recurrent computes in float32 (float64 declined), o in the input dtype; chunked: "
        "chunk 64 fixed, T % 64 == 0, no state, computes in the input dtype.",
        paths=(
            Path("chunked", "chunked", _la_chunk, features=(), dtypes=st.DTYPES, chunk_size=64,
                 t_multiple=64, source=src + "naive_chunk_linear_attn"),
            Path("recurrent", "sequential", _la_recurrent, features=FEATS, dtypes=LOW,
                 accumulates="float32", source=src + "naive_recurrent_linear_attn"),
        ))


# ---------------------------------------------------------------- retention (fixed decay)

def retention_log_decay(heads: int) -> np.ndarray:
    """naive_retention's fixed log-decay of head h, ``log(1 − 2^(−5−h))`` (RetNet's γ_h)."""
    return np.log1p(-2.0 ** (-5.0 - np.arange(heads)))


def _retention(case, chunk_size=None):
    fn = _fla("retention").naive_retention
    st.require(case, "fla naive_retention", dtypes=LOW, state0=False)
    g = np.asarray(case.inputs["g"], np.float64)
    want = np.broadcast_to(retention_log_decay(case.heads), g.shape)
    if not np.allclose(g, want, rtol=1e-12, atol=0):
        raise Unsupported("fla naive_retention: its decay is fixed, g[b, t, h] = log(1 - 2^(-5-h))"
                          f" (head 0: {want.flat[0]:.6g}); the case's g differs (max |diff| "
                          f"{np.max(np.abs(g - want)):.3g}): draw g with fla.retention_log_decay")
    dtype = st.torch_dtype(case.dtype)
    q, k, v = _inputs(case, ("q", "k", "v"), dtype, heads_first=True)
    return _back(fn(q, k, v), None, heads_first=True)


def retention_target() -> SequenceTarget:
    return SequenceTarget(
        name="fla:retention", cell="gla", cell_options={"decay": "head"},
        input_heads={n: "out" for n in ("q", "k", "v", "g")},
        convention="RetNet's parallel retention: q, k, v [B,H,T,D]; scale fixed 1/sqrt(D); the "
        "decay is not an input: head h decays by gamma_h = 1 - 2^(-5-h), i.e. the cell gla "
        "(decay head) with g[b,t,h] = log(gamma_h) (retention_log_decay(heads)); any other g "
        "is Unsupported. No state; computes in float32 (float64 declined).",
        paths=(Path("parallel", "parallel", _retention, dtypes=LOW, accumulates="float32",
                    source=f"{VERSION} fla.ops.retention.naive:naive_retention"),))
