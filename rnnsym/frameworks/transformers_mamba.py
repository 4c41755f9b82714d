"""Sequence targets: the pure-torch Mamba-2 and Mamba-1 scans of Hugging Face transformers
(5.23.0), called as their mixers call them.

Mamba-2 (``models/mamba2/modeling_mamba2.py``, cell ``mamba2``): ``mamba2_chunk_scan`` (path
``"chunked"``, the prefill of ``Mamba2Mixer.forward``) and ``mamba2_selective_state_update``
(path ``"step"``, its decode). Bamba, Falcon-H1, GraniteMoE-Hybrid, Nemotron-H and Zamba2 ship
identical copies of both functions; their mixers differ in the clamp they pass:

- ``dt_limit``: the chunked scan computes ``Δ = clamp(softplus(dt + dt_bias), *dt_limit)``;
  every mixer passes ``dt_limit=self.time_step_limit`` to the chunked scan and nothing to
  ``mamba2_selective_state_update``, which has no clamp (it takes ``**kwargs`` and would drop
  one). Mamba2, Bamba, Falcon-H1 and GraniteMoE-Hybrid use ``config.time_step_limit`` (default
  ``(0.0, inf)``: no effect after softplus); Nemotron-H and Zamba2 use ``(config.time_step_min,
  inf)`` = ``(0.001, inf)`` by default. The targets carry ``dt_limit`` as a target option
  (:func:`mamba2`'s argument) on both paths exactly as the mixer does: given to the chunked path,
  not to the step. The oracle is the model's intent, rnnsym's ``mamba2`` cell with
  ``dt_limit`` (its ``cell_options``; none where the limit cannot bind, lo <= 0 and hi = inf):
  the step then differs from the oracle, and decode after prefill from the prefill, wherever the
  clamp binds. :func:`clamped_case` is the same oracle without the cell option (softplus is
  increasing, so ``clamp(softplus(x), lo, hi) = softplus(clamp(x, softplus⁻¹(lo),
  softplus⁻¹(hi)))``: dt clamped before the cell); the tests check that the two agree.

Mamba-1 (``models/mamba/modeling_mamba.py``, cell ``mamba``): ``mamba_selective_scan`` (path
``"recurrent"``: its sequential loop, the mixer's default; ``use_mambapy`` needs the mambapy
package and ``use_associative_scan`` runs only under torch.compile) and
``mamba_selective_state_update`` (path ``"step"``). Falcon-Mamba, Jamba and Zamba ship identical
copies. ``mamba_selective_scan`` takes no initial state (it starts from zeros, "as the kernel"):
Unsupported.

Layouts (canonical -> transformers):

- Mamba-2: x ``(B,T,H,P)``, dt ``(B,T,H)``, B/C ``(B,T,G,N)``, A/D/dt_bias ``(H,1)`` -> ``(H,)``,
  state ``(B,H,P,N)``: the same layout. B/C groups: output head h reads group
  ``h // (H/G)`` (``repeat_interleave`` in the chunked scan, ``expand`` over a new axis after the
  group axis in the step: the same map). The step takes dt, A, D, dt_bias expanded over the head
  dimension as ``Mamba2Mixer`` expands them.
- Mamba-1: the heads of the case are blocks of ``d_in`` channels: u/dt ``(B,T,H,d_in)`` ->
  ``(B, H·d_in, T)``; B/C one group ``(B,T,1,N)`` -> ``(B,N,T)`` (Mamba-1 shares B and C across all
  channels: more than one group is Unsupported); A ``(H,d_in,N)`` -> ``(H·d_in, N)``; D, dt_bias
  ``(H,d_in)`` -> ``(H·d_in,)``; state ``(B,H,d_in,N)`` <-> ``(B, H·d_in, N)``.

dtypes: as the mixers pass them, A in float32 (``-exp(A_log.float())``), Mamba-1's D (scan) and
dt_bias in float32, the state in float32 (the scans return it in float32 and the cache keeps the
dtype it is first given; the steps update it in place, on a copy here), everything else in the
case's dtype. The functions upcast with ``.float()``
(hidden states, B, C, dA), so float64 inputs are computed (partly) in float32: float64 is refused
(Unsupported). ``mamba2_chunk_scan`` returns float32 whatever the input dtype (the mixer casts
later); softplus and the clamp run in the input dtype (bf16 Δ rounded before the upcast).
"""
from __future__ import annotations

import math

import numpy as np

from rnnsym.errors import Unsupported
from rnnsym.frameworks.sequence import Path, SequenceCase, SequenceTarget
from rnnsym.frameworks.sequence_torch import numpy, pure_torch, refuse_dtype, tensor

VERSION = "transformers 5.23.0"
DTYPES = ("float32", "bfloat16", "float16")
MAMBA2 = "transformers.models.mamba2.modeling_mamba2"
MAMBA = "transformers.models.mamba.modeling_mamba"
MAMBA2_COPIES = ("bamba", "falcon_h1", "granitemoehybrid", "nemotron_h", "zamba2")
MAMBA_COPIES = ("falcon_mamba", "jamba", "zamba")
NO_LIMIT = (0.0, math.inf)

def _module(model: str):
    from rnnsym.frameworks.torch_env import import_transformers_module
    return import_transformers_module(model)


def _function(model: str, name: str):
    return pure_torch(getattr(_module(model), name))


def _no_varlen(case, where):
    if case.cu_seqlens is not None:
        raise Unsupported(f"{where}: cu_seqlens (packed variable-length batches): the torch "
                          "function has no seq_idx; transformers refuses it without mamba_ssm")


def _head_vector(p, name, heads, where):
    a = np.asarray(p, np.float64)
    if a.shape not in ((heads, 1), (heads,)):
        raise Unsupported(f"{where}: params[{name!r}] of shape {a.shape}: expected (heads, 1) = "
                          f"({heads}, 1)")
    return a.reshape(heads)


# ---------------------------------------------------------------- Mamba-2

def _mamba2_args(case, where):
    refuse_dtype(case, DTYPES, where)
    _no_varlen(case, where)
    H = case.heads
    if case.inputs["x"].shape[2] != H or case.inputs["dt"].shape[2] != H:
        raise Unsupported(f"{where}: x and dt must have the output's {H} heads "
                          f"(got {case.inputs['x'].shape[2]}, {case.inputs['dt'].shape[2]})")
    x = {n: tensor(case.inputs[n], case.dtype) for n in ("x", "dt", "B", "C")}
    A = tensor(_head_vector(case.params["A"], "A", H, where), "float32")
    D = tensor(_head_vector(case.params["D"], "D", H, where), case.dtype)
    dt_bias = tensor(_head_vector(case.params["dt_bias"], "dt_bias", H, where), case.dtype)
    s0 = None if case.state0 is None else tensor(case.state0["h"], "float32")   # as the cache holds it
    return x, A, D, dt_bias, s0


def _mamba2_chunked(dt_limit):
    where = "mamba2:mamba2_chunk_scan"

    def run(case, chunk_size=None):
        import torch
        x, A, D, dt_bias, s0 = _mamba2_args(case, where)
        fn = _function(MAMBA2, "mamba2_chunk_scan")
        with torch.no_grad():
            out, final = fn(x["x"], x["dt"], A, x["B"], x["C"],
                            chunk_size=256 if chunk_size is None else int(chunk_size),
                            D=D, dt_bias=dt_bias, initial_states=s0, dt_softplus=True,
                            dt_limit=dt_limit, return_final_states=True)
        return numpy(out), {"h": numpy(final)}
    return run


def _mamba2_step(case, chunk_size=None):
    """One decode step as Mamba2Mixer.forward calls it (no dt_limit: the mixer passes none)."""
    import torch
    where = "mamba2:mamba2_selective_state_update"
    if case.T != 1:
        raise Unsupported(f"{where} (decode step): takes T == 1, got T={case.T}")
    x, A, D, dt_bias, s0 = _mamba2_args(case, where)
    Bn, _, H, P = x["x"].shape
    N = x["B"].shape[-1]
    state = torch.zeros(Bn, H, P, N) if s0 is None else s0.clone()
    fn = _function(MAMBA2, "mamba2_selective_state_update")
    with torch.no_grad():
        out = fn(state, x["x"][:, 0], x["dt"][:, 0, :, None].expand(-1, -1, P),
                 A[:, None, None].expand(-1, P, N), x["B"][:, 0], x["C"][:, 0],
                 D[:, None].expand(-1, P), z=None,
                 dt_bias=dt_bias[:, None].expand(-1, P), dt_softplus=True)
    return numpy(out)[:, None], {"h": numpy(state)}


#: ``Path.accumulates`` of every Mamba path is None (the input dtype): the functions upcast the
#: scan to float32 but compute ``dt + dt_bias`` and its softplus in the input dtype, and the
#: decode steps read the state out with a matmul in C's dtype (bf16 inputs: bf16 arithmetic)
def mamba2(dt_limit=NO_LIMIT, name: str = "transformers:mamba2", mixer: str = "Mamba2Mixer") -> SequenceTarget:
    """Mamba-2's chunked prefill and decode step, ``dt_limit`` given to the prefill only, as
    ``mixer`` does (``config.time_step_limit``, default ``(0.0, inf)``)."""
    file = "models/mamba2/modeling_mamba2.py"
    return SequenceTarget(
        name=name, cell="mamba2",
        paths=(Path("chunked", "chunked", _mamba2_chunked(tuple(dt_limit)),
                    features=("initial_state", "final_state", "chunk_size", "groups"),
                    dtypes=DTYPES, chunk_size=256, accumulates=None,
                    source=f"{VERSION} {file}:mamba2_chunk_scan (dt_limit={tuple(dt_limit)})"),
               Path("step", "sequential", _mamba2_step,
                    features=("initial_state", "final_state", "groups"), dtypes=DTYPES,
                    accumulates=None, decode=True,
                    source=f"{VERSION} {file}:mamba2_selective_state_update (no dt_limit)")),
        cell_options=_cell_options(dt_limit),
        input_heads={"x": "out", "dt": "out", "B": "groups", "C": "groups"},
        convention=(f"{mixer}'s calls: x (B,T,H,P), dt (B,T,H), B/C (B,T,G,N) read by head h "
                    "from group h // (H/G); A float32 (-exp(A_log.float())), D, dt_bias per head; "
                    "Δ = softplus(dt + dt_bias) on both paths, clamped to "
                    f"dt_limit={tuple(dt_limit)} on the chunked prefill only (the decode step "
                    "has no clamp; the oracle is the mamba2 cell with the mixer's dt_limit); "
                    "float32 inside (.float()), no float64, no varlen."))


def _cell_options(dt_limit) -> dict:
    """The mamba2 cell's options for the mixer's clamp: none where it cannot bind."""
    lo, hi = dt_limit
    return {} if lo <= 0 and hi == math.inf else {"dt_limit": (float(lo), float(hi))}


def nemotron_h_mamba2() -> SequenceTarget:
    """Nemotron-H's (and Zamba2's) Mamba-2 mixer: ``time_step_limit = (config.time_step_min,
    inf)`` = ``(0.001, inf)`` by default, passed to the prefill only."""
    return mamba2((0.001, math.inf), name="transformers:nemotron-h-mamba2",
                  mixer="NemotronHMamba2Mixer / Zamba2MambaMixer")


def clamped_case(case: SequenceCase, dt_limit) -> SequenceCase:
    """The case whose (unclamped) ``mamba2`` oracle is the recurrence with
    ``Δ = clamp(softplus(dt + dt_bias), lo, hi)``: dt replaced by
    ``clamp(dt + dt_bias, softplus⁻¹(lo), softplus⁻¹(hi)) − dt_bias`` (softplus is increasing;
    a bound at 0 or ±inf is no bound, since softplus > 0)."""
    lo, hi = dt_limit
    dt = np.asarray(case.inputs["dt"], np.float64)
    bias = _head_vector(case.params["dt_bias"], "dt_bias", case.heads, "clamped_case")
    pre = dt + bias
    if lo > 0:
        pre = np.maximum(pre, math.log(math.expm1(lo)))
    if hi < math.inf:
        pre = np.minimum(pre, math.log(math.expm1(hi)))
    return SequenceCase(**{**case.__dict__, "inputs": {**case.inputs, "dt": pre - bias}})


# ---------------------------------------------------------------- Mamba-1

def _mamba1_args(case, where):
    refuse_dtype(case, DTYPES, where)
    _no_varlen(case, where)
    H = case.heads
    u = np.asarray(case.inputs["u"], np.float64)
    Bn, T, Hu, d_in = u.shape
    for n in ("B", "C"):
        if case.inputs[n].shape[2] != 1:
            raise Unsupported(f"{where}: inputs[{n!r}] with {case.inputs[n].shape[2]} groups: "
                              "Mamba-1 shares one B and one C across all channels (groups = 1)")
    if Hu != H or case.inputs["dt"].shape[2] != H:
        raise Unsupported(f"{where}: u and dt must have the output's {H} heads")

    def packed(a):                                    # (B, T, H, d) -> (B, H*d, T)
        a = np.asarray(a, np.float64)
        return a.reshape(a.shape[0], a.shape[1], a.shape[2] * a.shape[3]).transpose(0, 2, 1)
    x = {"u": tensor(packed(u), case.dtype), "dt": tensor(packed(case.inputs["dt"]), case.dtype),
         "B": tensor(np.asarray(case.inputs["B"])[:, :, 0].transpose(0, 2, 1), case.dtype),
         "C": tensor(np.asarray(case.inputs["C"])[:, :, 0].transpose(0, 2, 1), case.dtype)}
    A = np.asarray(case.params["A"], np.float64)
    N = A.shape[-1]
    p = {"A": tensor(A.reshape(H * d_in, N), "float32"),
         "D": np.asarray(case.params["D"], np.float64).reshape(H * d_in),
         "dt_bias": tensor(np.asarray(case.params["dt_bias"], np.float64).reshape(H * d_in), "float32")}
    s0 = None if case.state0 is None else tensor(
        np.asarray(case.state0["h"], np.float64).reshape(Bn, H * d_in, N), "float32")
    return x, p, s0, (Bn, T, H, d_in, N)


def _mamba1_scan(case, chunk_size=None):
    import torch
    where = "mamba:mamba_selective_scan"
    x, p, s0, (Bn, T, H, d_in, N) = _mamba1_args(case, where)
    if s0 is not None:
        raise Unsupported(f"{where}: an initial state (the scan always starts from zeros, as "
                          "the CUDA kernel)")
    # T == 0 is passed on: the function's own answer (it raises: torch.stack of no steps) is
    # the finding, not the adapter's
    fn = _function(MAMBA, "mamba_selective_scan")
    with torch.no_grad():
        out, last = fn(x["u"], x["dt"], p["A"], x["B"], x["C"],
                       D=tensor(p["D"], "float32"), z=None, delta_bias=p["dt_bias"],
                       delta_softplus=True, return_last_state=True)
    out = numpy(out).reshape(Bn, H, d_in, T).transpose(0, 3, 1, 2)
    return out, {"h": numpy(last).reshape(Bn, H, d_in, N)}


def _mamba1_step(case, chunk_size=None):
    import torch
    where = "mamba:mamba_selective_state_update"
    if case.T != 1:
        raise Unsupported(f"{where} (decode step): takes T == 1, got T={case.T}")
    x, p, s0, (Bn, T, H, d_in, N) = _mamba1_args(case, where)
    state = torch.zeros(Bn, H * d_in, N) if s0 is None else s0.clone()
    fn = _function(MAMBA, "mamba_selective_state_update")
    with torch.no_grad():
        out = fn(state, x["u"][..., 0], x["dt"][..., 0], p["A"], x["B"][..., 0], x["C"][..., 0],
                 tensor(p["D"], case.dtype), z=None, dt_bias=p["dt_bias"], dt_softplus=True)
    return (numpy(out).reshape(Bn, 1, H, d_in),
            {"h": numpy(state).reshape(Bn, H, d_in, N)})


def mamba() -> SequenceTarget:
    """Mamba-1's selective scan and decode step, as MambaMixer calls them."""
    file = "models/mamba/modeling_mamba.py"
    return SequenceTarget(
        name="transformers:mamba", cell="mamba",
        paths=(Path("recurrent", "sequential", _mamba1_scan, features=("final_state",),
                    dtypes=DTYPES, accumulates=None,
                    source=f"{VERSION} {file}:mamba_selective_scan (sequential loop)"),
               Path("step", "sequential", _mamba1_step,
                    features=("initial_state", "final_state"), dtypes=DTYPES,
                    accumulates=None, decode=True,
                    source=f"{VERSION} {file}:mamba_selective_state_update")),
        cell_options={},
        input_heads={"u": "out", "dt": "out", "B": "shared", "C": "shared"},
        convention=("MambaMixer's calls: heads are blocks of d_in channels packed as H*d_in "
                    "(channel-major: h*d_in + i), u/dt (B, H*d_in, T), B/C (B, N, T) shared by "
                    "all channels; A float32 (-exp(A_log.float())), D float32 (scan) or model "
                    "dtype (step), dt_bias float32; Δ = softplus(dt + dt_bias), no clamp; the "
                    "scan takes no initial state; float32 inside, no float64, no varlen."))
