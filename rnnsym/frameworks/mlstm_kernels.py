"""Sequence targets of xLSTM's mLSTM (rnnsym cell ``mlstm``): the native torch implementations
of NX-AI's ``mlstm-kernels`` 2.0.6 and the copies transformers 5.23.0 ships in
``models/xlstm/modeling_xlstm.py`` (defined there when the ``xlstm`` package is not installed).

Layout of both: ``q, k (B, H, T, d_k)``, ``v (B, H, T, d_v)``, gate pre-activations ``i, f
(B, H, T)``; states ``C (B, H, d_k, d_v)`` (``C = Σ k vᵀ``: rows are keys, as the cell),
``n (B, H, d_k)``, ``m (B, H, 1)``: the cell's layout, so states pass through unchanged.
The scale ``1/sqrt(d_k)`` is fixed (no argument); ``eps`` (default 1e-6) is added after the
``max(|nᵀq̃|, exp(−m))``, as in the cell.

torch, mlstm_kernels and transformers are imported inside the functions.
"""
from __future__ import annotations


from rnnsym.errors import Unsupported
from rnnsym.frameworks import sequence_torch as st
from rnnsym.frameworks.sequence import Path, SequenceTarget

VERSION = "mlstm-kernels 2.0.6"
TF_VERSION = "transformers 5.23.0"
STATES = ("C", "n", "m")
INPUT_HEADS = {"q": "out", "k": "out", "v": "out", "i": "out", "f": "out"}

CONVENTION = (
    "q, k (B,H,T,d_k), v (B,H,T,d_v), i, f (B,H,T) pre-activations (exponential input gate, "
    "sigmoid forget gate); scale 1/sqrt(d_k) fixed; h = C^T q~ / (max(|n^T q~|, exp(-m)) + eps), "
    "eps 1e-6 (option eps); states C (B,H,d_k,d_v) = sum k v^T, n (B,H,d_k), m (B,H,1), zeros "
    "when not given (m_0 = 0): the cell's layout and stabiliser.")


def _eps(case):
    return case.options.get("eps") if case.options.get("eps") is not None else 1e-6


def _qkvif(case, dtype):
    q, k, v = (st.tensor(case.inputs[n], dtype, heads_first=True) for n in ("q", "k", "v"))
    i, f = (st.tensor(case.inputs[n], dtype, heads_first=True) for n in ("i", "f"))
    return q, k, v, i, f


def _states(case, dtype):
    """``(c_initial, n_initial, m_initial)`` or Nones."""
    if case.state0 is None:
        return None, None, None
    return tuple(st.state_tensor(case.state0[s], dtype) for s in STATES)


def _back(h, last):
    out = st.numpy(h, heads_first=True)
    final = None if last is None else {s: st.numpy(t) for s, t in zip(STATES, last)}
    return out, final


def _state_dtype(case):
    """``dtype_state`` of the recurrent functions: float32 by default (their own default),
    float64 for float64 inputs (otherwise a float64 run keeps its state in float32)."""
    import torch
    return torch.float64 if case.dtype == "float64" else torch.float32


# ---------------------------------------------------------------- mlstm-kernels

def _mk_chunkwise(case, chunk_size=None):
    from mlstm_kernels.torch.chunkwise.native import mlstm_chunkwise__native_autograd
    st.require(case, "mlstm-kernels chunkwise", options=("eps",))
    chunk = chunk_size or 64
    if case.T % chunk:
        raise Unsupported(f"mlstm-kernels chunkwise native: T={case.T} is not a multiple of "
                          f"chunk_size={chunk} (the function asserts S % chunk_size == 0)")
    dtype = st.torch_dtype(case.dtype)
    c0, n0, m0 = _states(case, dtype)
    h, last = mlstm_chunkwise__native_autograd(
        *_qkvif(case, dtype), c_initial=c0, n_initial=n0, m_initial=m0,
        return_last_states=True, eps=_eps(case), chunk_size=chunk)
    return _back(h, last)


def _mk_recurrent(case, chunk_size=None):
    from mlstm_kernels.torch.recurrent.native_sequence import mlstm_recurrent_sequence__native_fw
    st.require(case, "mlstm-kernels recurrent sequence", options=("eps",))
    dtype = st.torch_dtype(case.dtype)
    c0, n0, m0 = _states(case, dtype)
    h, last = mlstm_recurrent_sequence__native_fw(
        *_qkvif(case, dtype), c_initial=c0, n_initial=n0, m_initial=m0,
        return_last_states=True, eps=_eps(case), dtype_state=_state_dtype(case))
    return _back(h, last)


def _step_call(step, case, dtype, names):
    """One decode step ``step`` (T == 1) with keyword names ``names`` (q, k, v, i, f, c, n, m)."""
    import torch
    if case.T != 1:
        raise Unsupported(f"the recurrent step takes T = 1 (one decode step), got T={case.T}")
    q, k, v, i, f = _qkvif(case, dtype)
    B, H, _, dk = q.shape
    dv = v.shape[-1]
    sd = _state_dtype(case)
    if case.state0 is None:
        c, n, m = (torch.zeros(B, H, dk, dv, dtype=sd), torch.zeros(B, H, dk, dtype=sd),
                   torch.zeros(B, H, 1, dtype=sd))
    else:
        c, n, m = _states(case, sd)
    args = dict(zip(names, (q[:, :, 0], k[:, :, 0], v[:, :, 0], i[:, :, 0, None], f[:, :, 0, None],
                            c, n, m)))
    h, last = step(**args, eps=_eps(case), dtype_state=sd)
    return _back(h[:, :, None, :], last)


def _mk_step(case, chunk_size=None):
    from mlstm_kernels.torch.recurrent.native_step import mlstm_recurrent_step__native
    st.require(case, "mlstm-kernels recurrent step", options=("eps",))
    return _step_call(mlstm_recurrent_step__native, case, st.torch_dtype(case.dtype),
                      ("q", "k", "v", "i", "f", "c", "n", "m"))


def _mk_parallel(function_name):
    def run(case, chunk_size=None):
        from mlstm_kernels.torch import parallel
        st.require(case, f"mlstm-kernels parallel {function_name}", state0=False,
                   options=("eps",))
        dtype = st.torch_dtype(case.dtype)
        h = getattr(parallel, function_name)(*_qkvif(case, dtype), eps=_eps(case))
        return _back(h, None)
    return run


def _mk_inference(case, chunk_size=None):
    """mlstm-kernels' ``mLSTMBackend`` inference function: ``wrap_chunkwise__arbitrary_sequence_length``
    with the native chunkwise, sequence and step kernels (chunk sizes ``chunk_size``,
    ``chunk_size/2``, ... down to 16, the recurrent loop over the rest, the step for T == 1),
    ``dtype_state`` float32 (the ``inference_state_dtype`` default; float64 for float64 inputs)."""
    from functools import partial

    from mlstm_kernels.torch.chunkwise.native import mlstm_chunkwise__native_autograd
    from mlstm_kernels.torch.kernel_wrappers import wrap_chunkwise__arbitrary_sequence_length
    from mlstm_kernels.torch.recurrent.native_sequence import mlstm_recurrent_sequence__native_fw
    from mlstm_kernels.torch.recurrent.native_step import mlstm_recurrent_step__native
    st.require(case, "mlstm-kernels inference wrapper", options=("eps",))
    dtype = st.torch_dtype(case.dtype)
    sd = _state_dtype(case)
    c0, n0, m0 = _states(case, dtype)
    q, k, v, i, f = _qkvif(case, dtype)
    h, last = wrap_chunkwise__arbitrary_sequence_length(
        mlstm_chunkwise_kernel=mlstm_chunkwise__native_autograd,
        mlstm_sequence_kernel=partial(mlstm_recurrent_sequence__native_fw, dtype_state=sd),
        mlstm_step_kernel=partial(mlstm_recurrent_step__native, dtype_state=sd),
        q=q, k=k, v=v, f=f, i=i, c_initial=c0, n_initial=n0, m_initial=m0,
        return_last_states=True, eps=_eps(case), autocast_kernel_dtype=dtype,
        chunk_size=chunk_size or 64, dtype_state=sd)
    return _back(h, last)


def mlstm_kernels_target() -> SequenceTarget:
    """mlstm-kernels' stateful native paths: chunkwise, the recurrent loop and the decode step."""
    chunk = "mlstm_kernels.torch.chunkwise.native:mlstm_chunkwise__native_autograd"
    seq = "mlstm_kernels.torch.recurrent.native_sequence:mlstm_recurrent_sequence__native_fw"
    step = "mlstm_kernels.torch.recurrent.native_step:mlstm_recurrent_step__native"
    feats = ("initial_state", "final_state")
    return SequenceTarget(
        name="mlstm-kernels:mlstm", cell="mlstm", cell_options={"eps": 1e-6},
        input_heads=INPUT_HEADS,
        convention=CONVENTION + " chunked: T must be a multiple of chunk_size (asserted); it "
        "computes in the input dtype. recurrent/step: state kept in dtype_state (float32 by "
        "default; the adapter passes float64 for float64 inputs), read out in the input dtype "
        "(C and n are cast to q's dtype before q~^T C and q~^T n). inference: mLSTMBackend's "
        "wrap_chunkwise__arbitrary_sequence_length (chunks of chunk_size, chunk_size/2, ... >= "
        "16, then the loop; any T >= 1; T = 0 fails its assert).",
        paths=(
            Path("chunked", "chunked", _mk_chunkwise, features=feats + ("chunk_size",),
                 dtypes=st.DTYPES, chunk_size=64, t_multiple="chunk", source=f"{VERSION} {chunk}"),
            Path("recurrent", "sequential", _mk_recurrent, features=feats, dtypes=st.DTYPES,
                 accumulates="float32", source=f"{VERSION} {seq}"),
            Path("step", "sequential", _mk_step, features=feats, dtypes=st.DTYPES,
                 accumulates="float32", decode=True, source=f"{VERSION} {step}"),
            Path("inference", "chunked", _mk_inference, features=feats + ("chunk_size",),
                 dtypes=st.DTYPES, chunk_size=64, source=f"{VERSION} mlstm_kernels.torch."
                 "kernel_wrappers:wrap_chunkwise__arbitrary_sequence_length (mLSTMBackend "
                 "inference, native kernels)"),
        ))


def mlstm_kernels_parallel_target() -> SequenceTarget:
    """mlstm-kernels' parallel (quadratic) forms: no initial or final state, and a stabiliser
    ``m_t = max_s (i_s + Σ_{s<r≤t} logσ(f_r))`` without the recurrent form's ``m_0 = 0`` term:
    the cell with ``m_0 = −∞``. The output differs from the cell's (m_0 = 0) only through eps:
    ``h = Ĉᵀq̃ / (max(|n̂ᵀq̃|, 1) + eps·exp(m))`` (Ĉ, n̂ unstabilised), and where the two
    stabilisers differ ``m_cell = Σ logσ(f) ≤ 0``, so the relative difference is below eps."""
    base = "mlstm_kernels.torch.parallel"
    return SequenceTarget(
        name="mlstm-kernels:parallel", cell="mlstm", cell_options={"eps": 1e-6},
        input_heads=INPUT_HEADS,
        convention=CONVENTION.replace("zeros when not given (m_0 = 0)", "not taken nor returned")
        + " Stabiliser m_t = max_s(i_s + sum_{s<r<=t} logsigmoid(f_r)): the cell with m_0 = -inf "
        "instead of 0; the outputs differ by a relative eps*exp(m_cell) <= eps = 1e-6 where "
        "every i_s + ... < sum logsigmoid(f) (measured: tests/test_mlstm_fla_targets.py). "
        "Computes in the input dtype.",
        paths=(
            Path("parallel", "parallel", _mk_parallel("mlstm_parallel__native_autograd"),
                 dtypes=st.DTYPES, source=f"{VERSION} {base}.native:mlstm_parallel__native_autograd"),
            Path("parallel-stablef", "parallel",
                 _mk_parallel("mlstm_parallel__native_stablef_autograd"), dtypes=st.DTYPES,
                 source=f"{VERSION} {base}.native_stablef:mlstm_parallel__native_stablef_autograd"),
        ))


# ---------------------------------------------------------------- transformers' copies

def _modeling_xlstm():
    """transformers' ``models.xlstm.modeling_xlstm``, imported past a broken torchvision
    (:func:`rnnsym.frameworks.torch_env.import_transformers_module`)."""
    from rnnsym.frameworks.torch_env import import_transformers_module
    modeling_xlstm = import_transformers_module("transformers.models.xlstm.modeling_xlstm")
    if getattr(modeling_xlstm, "external_xlstm", False):
        raise Unsupported("transformers xlstm: the xlstm package is installed, so transformers "
                          "uses its kernels instead of the native copies checked here")
    return modeling_xlstm


def _tf_chunkwise(case, chunk_size=None):
    mx = _modeling_xlstm()
    st.require(case, "transformers mlstm_chunkwise_native_autograd", options=("eps",))
    chunk = chunk_size or 64
    if case.T % chunk:
        raise Unsupported(f"transformers mlstm_chunkwise_native_autograd: T={case.T} is not a "
                          f"multiple of chunk_size={chunk} (it raises ValueError)")
    dtype = st.torch_dtype(case.dtype)
    c0, n0, m0 = _states(case, dtype)
    h, last = mx.mlstm_chunkwise_native_autograd(
        *_qkvif(case, dtype), c_initial=c0, n_initial=n0, m_initial=m0,
        return_last_states=True, eps=_eps(case), chunk_size=chunk)
    return _back(h, last)


def _tf_recurrent(case, chunk_size=None):
    mx = _modeling_xlstm()
    st.require(case, "transformers mlstm_recurrent_sequence_native", options=("eps",))
    dtype = st.torch_dtype(case.dtype)
    c0, n0, m0 = _states(case, dtype)
    h, last = mx.mlstm_recurrent_sequence_native(
        *_qkvif(case, dtype), c_initial=c0, n_initial=n0, m_initial=m0,
        return_last_states=True, eps=_eps(case), dtype_state=_state_dtype(case))
    return _back(h, last)


def _tf_step(case, chunk_size=None):
    mx = _modeling_xlstm()
    st.require(case, "transformers mlstm_recurrent_step_native", options=("eps",))
    return _step_call(mx.mlstm_recurrent_step_native, case, st.torch_dtype(case.dtype),
                      ("query", "key", "value", "igate", "fgate", "cstate", "nstate", "mstate"))


def _tf_inference(case, chunk_size=None):
    """``xLSTMBackend``'s inference function: ``wrap_chunkwise_arbitrary_sequence_length`` with
    the three native kernels (chunks of ``chunk_size`` over the largest multiple of it, the
    recurrent loop over the rest, the step for T == 1), ``return_last_states=True``, the
    ``inference_state_dtype`` float32 default (float64 for float64 inputs)."""
    from functools import partial
    mx = _modeling_xlstm()
    st.require(case, "transformers xLSTM inference", options=("eps",))
    dtype = st.torch_dtype(case.dtype)
    sd = _state_dtype(case)
    c0, n0, m0 = _states(case, dtype)
    q, k, v, i, f = _qkvif(case, dtype)
    h, last = mx.wrap_chunkwise_arbitrary_sequence_length(
        mlstm_chunkwise_kernel=mx.mlstm_chunkwise_native_autograd,
        mlstm_sequence_kernel=partial(mx.mlstm_recurrent_sequence_native, dtype_state=sd),
        mlstm_step_kernel=partial(mx.mlstm_recurrent_step_native, dtype_state=sd),
        query=q, key=k, value=v, igate=i, fgate=f, c_initial=c0, n_initial=n0, m_initial=m0,
        return_last_states=True, eps=_eps(case), chunk_size=chunk_size or 64,
        autocast_kernel_dtype=dtype)
    return _back(h, last)


def transformers_xlstm_target() -> SequenceTarget:
    """transformers' native copies of the mLSTM kernels (xLSTM model, without the xlstm package)."""
    src = f"{TF_VERSION} models/xlstm/modeling_xlstm.py:"
    feats = ("initial_state", "final_state")
    return SequenceTarget(
        name="transformers:xlstm", cell="mlstm", cell_options={"eps": 1e-6},
        input_heads=INPUT_HEADS,
        convention=CONVENTION + " Copies of mlstm-kernels' native chunkwise/recurrent/step. "
        "chunked: T a multiple of chunk_size (ValueError otherwise); inference: "
        "xLSTMBackend's wrap_chunkwise_arbitrary_sequence_length (any T >= 1; T = 0 raises "
        "ValueError 'Received empty sequence').",
        paths=(
            Path("chunked", "chunked", _tf_chunkwise, features=feats + ("chunk_size",),
                 dtypes=st.DTYPES, chunk_size=64, t_multiple="chunk", source=src + "mlstm_chunkwise_native_autograd"),
            Path("recurrent", "sequential", _tf_recurrent, features=feats, dtypes=st.DTYPES,
                 accumulates="float32", source=src + "mlstm_recurrent_sequence_native"),
            Path("step", "sequential", _tf_step, features=feats, dtypes=st.DTYPES,
                 accumulates="float32", decode=True, source=src + "mlstm_recurrent_step_native"),
            Path("inference", "chunked", _tf_inference, features=feats + ("chunk_size",),
                 dtypes=st.DTYPES, chunk_size=64,
                 source=src + "wrap_chunkwise_arbitrary_sequence_length (xLSTMBackend inference)"),
        ))
