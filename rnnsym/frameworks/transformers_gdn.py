"""Sequence targets: the pure-torch Gated DeltaNet of Hugging Face transformers (5.23.0).

Qwen3-Next (``models/qwen3_next/modeling_qwen3_next.py``): ``torch_chunk_gated_delta_rule``
(path ``"chunked"``) and ``torch_recurrent_gated_delta_rule`` (path ``"recurrent"``, and path
``"step"``: the same function on one token from a carried state, as
``Qwen3NextGatedDeltaNet.forward`` calls it on decode). Qwen3.5, Qwen3.5-MoE, OLMo-Hybrid and
Qwen4-Exp ship the same two functions, token for token (their AST after dropping decorators and
docstrings equals Qwen3-Next's): they are aliases of these targets.

Kimi Linear (``models/kimi_linear/modeling_kimi_linear.py``): ``chunk_kimi_delta_attention`` and
``recurrent_kimi_delta_attention`` (KDA): the same rule with one log-decay per key row, rnnsym's
``gated_deltanet`` with ``decay="key"``; Bailing-Hybrid and GLM-5-Next ship identical copies.

Convention (both families, as the model calls them):

- layout ``[B, T, H, D]`` for q, k, v and ``[B, T, H]`` for g, beta (``[B, T, H, D_k]`` for KDA's
  g): rnnsym's canonical layout, so the paths convert nothing but dtype. The state is
  ``[B, H, D_k, D_v]``, rows are keys, as rnnsym's ``S``.
- grouped heads: the GDN functions take ``num_v_heads = G * num_k_heads`` and
  ``repeat_interleave`` q and k by G over the head axis (output head h reads q/k head h // G), as
  rnnsym's canonical case does; g and beta have ``num_v_heads`` heads. (The model's caller passes
  q and k with ``num_k_heads``; the function does the repeat.) KDA takes equal heads only.
- ``use_qk_l2norm_in_kernel=True`` (what the models pass): ``x * rsqrt(Σx² + 1e-6)`` (GDN) and
  ``x / sqrt(Σx² + 1e-6)`` (KDA), both after the cast to float32: the same function as rnnsym's
  ``qk_l2norm`` (``x / sqrt(Σx² + 1e-6)``), differing only in rounding.
- scale: queries times ``D_k ** -0.5`` always (rnnsym's default scale).
- dtype: every input is cast to float32 inside (``.to(torch.float32)``), the output cast back to
  the input dtype, the final state returned in float32. float64 inputs are therefore computed
  in float32: the paths refuse float64 (Unsupported) rather than let a float64 tolerance judge a
  float32 computation. The models compute g in float32 (``-A_log.float().exp() *
  softplus(a.float() + dt_bias)``) whatever the model dtype; the paths pass g in float32 and
  q, k, v and beta in the case's dtype; the initial state in float32, as the model's cache holds
  the float32 state its prefill returned (the cache keeps the dtype it is first given).
- varlen: the torch functions ignore ``cu_seqlens`` (``**kwargs``); transformers' wrapper refuses
  it without fla ("can't keep packed sequences apart"): Unsupported.

transformers routes the module-level names to fla's kernels when fla-core imports (it does in
rnnsym's environment): the paths call the pure-torch function under the wrapper
(:func:`rnnsym.frameworks.sequence_torch.pure_torch`).
"""
from __future__ import annotations

from rnnsym.errors import Unsupported
from rnnsym.frameworks.sequence import Path, SequenceTarget
from rnnsym.frameworks.sequence_torch import numpy, pure_torch, refuse_dtype, tensor

VERSION = "transformers 5.23.0"
DTYPES = ("float32", "bfloat16", "float16")
QWEN3_NEXT = "transformers.models.qwen3_next.modeling_qwen3_next"
KIMI = "transformers.models.kimi_linear.modeling_kimi_linear"
#: models whose functions are identical copies of Qwen3-Next's / Kimi Linear's (module names)
GDN_COPIES = ("qwen3_5", "qwen3_5_moe", "olmo_hybrid", "qwen4_exp")
KDA_COPIES = ("bailing_hybrid", "glm5_next")

def _module(model: str):
    from rnnsym.frameworks.torch_env import import_transformers_module
    return import_transformers_module(model)


def _function(model: str, name: str):
    return pure_torch(getattr(_module(model), name))


def _args(case, where: str, per_key: bool):
    """The case's q, k, v, g, beta and initial state as the model passes them."""
    import torch
    refuse_dtype(case, DTYPES, where)
    if case.cu_seqlens is not None:
        raise Unsupported(f"{where}: cu_seqlens (packed variable-length batches): the torch "
                          "function ignores it; transformers refuses it without fla")
    x = {n: tensor(case.inputs[n], case.dtype) for n in ("q", "k", "v", "beta")}
    x["g"] = tensor(case.inputs["g"], "float32")
    if per_key and x["q"].shape[2] != case.heads:
        raise Unsupported(f"{where}: grouped heads (q/k with {x['q'].shape[2]} heads, "
                          f"{case.heads} output heads): KDA takes equal heads")
    if x["g"].ndim != (4 if per_key else 3):
        raise Unsupported(f"{where}: g of shape {tuple(x['g'].shape)}: expected "
                          + ("(B, T, H, d_k) (decay per key)" if per_key else "(B, T, H) (decay per head)"))
    s0 = None                       # float32: the model's cache holds the state its prefill returned
    if case.state0 is not None:
        s0 = tensor(case.state0["S"], "float32")
    return x, s0, torch


def _out(out, final):
    return numpy(out), (None if final is None else {"S": numpy(final)})


def _chunked(model: str, name: str, per_key: bool, qk_l2norm: bool):
    where = f"{model.rsplit('.', 1)[1]}:{name}"

    def run(case, chunk_size=None):
        x, s0, torch = _args(case, where, per_key)
        fn = _function(model, name)
        with torch.no_grad():
            out, final = fn(x["q"], x["k"], x["v"], g=x["g"], beta=x["beta"],
                            chunk_size=64 if chunk_size is None else int(chunk_size),
                            initial_state=s0, output_final_state=True,
                            use_qk_l2norm_in_kernel=qk_l2norm)
        return _out(out, final)
    return run


def _recurrent(model: str, name: str, per_key: bool, qk_l2norm: bool, decode: bool):
    where = f"{model.rsplit('.', 1)[1]}:{name}"

    def run(case, chunk_size=None):
        if decode and case.T != 1:
            raise Unsupported(f"{where} (decode step): takes T == 1, got T={case.T}")
        x, s0, torch = _args(case, where, per_key)
        fn = _function(model, name)
        with torch.no_grad():
            out, final = fn(x["q"], x["k"], x["v"], g=x["g"], beta=x["beta"],
                            initial_state=s0, output_final_state=True,
                            use_qk_l2norm_in_kernel=qk_l2norm)
        return _out(out, final)
    return run


def _paths(model, chunk_fn, rec_fn, per_key, qk_l2norm, heads_feature):
    file = model.replace("transformers.", "").replace(".", "/") + ".py"
    feats = ("initial_state", "final_state") + heads_feature
    return (
        Path("chunked", "chunked", _chunked(model, chunk_fn, per_key, qk_l2norm),
             features=feats + ("chunk_size",), dtypes=DTYPES, chunk_size=64,
             accumulates="float32", source=f"{VERSION} {file}:{chunk_fn}"),
        Path("recurrent", "sequential", _recurrent(model, rec_fn, per_key, qk_l2norm, False),
             features=feats, dtypes=DTYPES, accumulates="float32",
             source=f"{VERSION} {file}:{rec_fn}"),
        Path("step", "sequential", _recurrent(model, rec_fn, per_key, qk_l2norm, True),
             features=feats, dtypes=DTYPES, accumulates="float32", decode=True,
             source=f"{VERSION} {file}:{rec_fn} (T=1 from the cache, as the model decodes)"),
    )


def qwen3_next_gdn(qk_l2norm: bool = True) -> SequenceTarget:
    """Qwen3-Next's Gated DeltaNet (and its copies), as ``Qwen3NextGatedDeltaNet.forward`` calls
    it: ``use_qk_l2norm_in_kernel=True`` (``qk_l2norm=False`` checks the function without it)."""
    return SequenceTarget(
        name="transformers:qwen3-next-gdn", cell="gated_deltanet",
        paths=_paths(QWEN3_NEXT, "torch_chunk_gated_delta_rule",
                     "torch_recurrent_gated_delta_rule", False, qk_l2norm, ("groups",)),
        cell_options={"decay": "head", "qk_l2norm": qk_l2norm},
        input_heads={"q": "qk", "k": "qk", "v": "out", "g": "out", "beta": "out"},
        convention=("[B,T,H,D] in and out, state [B,H,D_k,D_v]; q/k repeat_interleave'd to "
                    "num_v_heads inside; l2norm x*rsqrt(sum x^2 + 1e-6) in float32 "
                    f"(use_qk_l2norm_in_kernel={qk_l2norm}); scale D_k^-0.5; everything cast "
                    "to float32 inside, output back to the input dtype, final state float32; "
                    "g passed in float32 as the model computes it; no float64, no varlen."))


def kimi_linear_kda(qk_l2norm: bool = True) -> SequenceTarget:
    """Kimi Linear's KDA (and its copies): Gated DeltaNet with one log-decay per key row."""
    return SequenceTarget(
        name="transformers:kimi-linear-kda", cell="gated_deltanet",
        paths=_paths(KIMI, "chunk_kimi_delta_attention", "recurrent_kimi_delta_attention",
                     True, qk_l2norm, ()),
        cell_options={"decay": "key", "qk_l2norm": qk_l2norm},
        input_heads={"q": "out", "k": "out", "v": "out", "g": "out", "beta": "out"},
        convention=("[B,T,H,D] in and out, g [B,T,H,D_k], state [B,H,D_k,D_v]; equal heads; "
                    "l2norm x/sqrt(sum x^2 + 1e-6) in float32 "
                    f"(use_qk_l2norm_in_kernel={qk_l2norm}); scale D_k^-0.5; float32 inside, "
                    "output back to the input dtype, final state float32; no float64, no varlen."))
