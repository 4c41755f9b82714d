"""The sequence targets of mlstm-kernels 2.0.6, transformers 5.23.0's xLSTM copies and fla-core
0.6.0's naive references (rnnsym/frameworks/mlstm_kernels.py, rnnsym/frameworks/fla.py) against
rnnsym's float64 oracle (rnnsym.conformance.sequence_oracle.expected), then the edges users hit.

Tests marked FINDING assert a behaviour of the upstream function as measured (docs/targets-mlstm-fla.md
lists them with their numbers); if an upgrade changes one, the test says which.
"""
from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("mlstm_kernels")
pytest.importorskip("fla")

from rnnsym.conformance.sequence_oracle import expected  # noqa: E402
from rnnsym.errors import Unsupported  # noqa: E402
from rnnsym.frameworks import fla as F  # noqa: E402
from rnnsym.frameworks import mlstm_kernels as M  # noqa: E402
from rnnsym.frameworks.sequence import SequenceCase  # noqa: E402
from rnnsym.frameworks.registry import TARGETS as REGISTRY, sequence_target  # noqa: E402

warnings.filterwarnings("ignore", message=".*Triton is not supported.*")

B, H, DK, DV = 2, 3, 5, 3                   # distinct sizes: d_k != d_v != H != B


def make_case(cell, options=None, *, T=12, heads=H, group=1, state=False, dtype="float64",
              seed=0, g=None, beta=None, i=None, f=None, **case_kw):
    """A random case in the canonical layout; ``group`` > 1: q and k have heads / group heads."""
    options = options or {}
    rng = np.random.default_rng(seed)
    hq = heads // group
    inputs = {"q": rng.normal(size=(B, T, hq, DK)),
              "k": rng.normal(size=(B, T, hq, DK)) / np.sqrt(DK),
              "v": rng.normal(size=(B, T, heads, DV))}
    if cell in ("gla", "gated_deltanet"):
        shape = (B, T, heads, DK) if options.get("decay") == "key" else (B, T, heads)
        inputs["g"] = -rng.uniform(0.01, 1.0, size=shape) if g is None else np.broadcast_to(g, shape).copy()
    if cell in ("deltanet", "gated_deltanet"):
        inputs["beta"] = rng.uniform(0, 1, size=(B, T, heads)) if beta is None else np.full((B, T, heads), beta)
    state0 = None
    if cell == "mlstm":
        inputs["k"] = rng.normal(size=(B, T, heads, DK))
        inputs["i"] = rng.normal(size=(B, T, heads)) if i is None else np.broadcast_to(i, (B, T, heads)).copy()
        inputs["f"] = rng.normal(size=(B, T, heads)) + 2 if f is None else np.broadcast_to(f, (B, T, heads)).copy()
        if state:
            state0 = {"C": rng.normal(size=(B, heads, DK, DV)), "n": rng.normal(size=(B, heads, DK)),
                      "m": rng.normal(size=(B, heads, 1))}
    elif state:
        state0 = {"S": rng.normal(size=(B, heads, DK, DV))}
    return SequenceCase(cell, heads, inputs, state0=state0, dtype=dtype, **case_kw)


def rounded(case):
    """The case with its inputs and state rounded to ``case.dtype``: the oracle of a low-precision
    run sees what the target was given (the rounding of the inputs is not the target's error)."""
    dt = getattr(torch, case.dtype)

    def r(a):
        return torch.from_numpy(np.asarray(a, np.float64)).to(dt).to(torch.float64).numpy()
    return dataclasses.replace(case, inputs={k: r(v) for k, v in case.inputs.items()},
                               state0=None if case.state0 is None else
                               {k: r(v) for k, v in case.state0.items()})


def assert_close(got, want, rtol, label):
    """Normwise: max |got − want| <= rtol · max |want|; the message names the worst element."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{label}: shape {got.shape}, but should be {want.shape}"
    if want.size == 0:
        return
    diff = np.abs(got - want)
    bound = rtol * max(np.max(np.abs(want)), 1e-300)
    if not np.all(diff <= bound):                       # NaN fails too
        idx = np.unravel_index(np.nanargmax(np.where(np.isnan(diff), np.inf, diff)), diff.shape)
        raise AssertionError(f"out[{', '.join(map(str, idx))}]={got[idx]!r}, but should be "
                             f"{want[idx]!r} (|diff| {diff[idx]:.3g} > {bound:.3g} = {rtol:g}·max|want|) "
                             f"[{label}]")


def check(target, path, case, rtol, chunk=None):
    out, final = path.run(case, chunk)
    want, want_final = expected(rounded(case) if case.dtype != "float64" else case,
                                target.cell_options)
    label = f"{target.name} {path.name}(T={case.T}, chunk={chunk}, dtype={case.dtype})"
    assert_close(out, want, rtol, label)
    if "final_state" in path.features:
        assert final is not None, f"{label}: declares final_state but returned none"
        for k in want_final:
            assert_close(final[k], want_final[k], rtol, f"{label} final {k}")
    return out, final


TARGETS = [M.mlstm_kernels_target(), M.mlstm_kernels_parallel_target(), M.transformers_xlstm_target(),
           *(sequence_target(t.name) for t in REGISTRY if t.factory.startswith("rnnsym.frameworks.fla:"))]
PATHS = [(t, p) for t in TARGETS for p in t.paths]
GROUP = {"fla:kda": 2}


def _case_for(target, path, *, T=None, state=None, dtype=None, **kw):
    """A case every constraint of ``path`` allows (T a multiple of a fixed block, T = 1 for a step)."""
    if T is None:
        T = 1 if path.decode else 128 if target.name == "fla:delta-rule" and path.name == "parallel" \
            else 64 if target.name == "fla:linear-attn" and path.name == "chunked" else 12
    if dtype is None:
        dtype = "float64" if "float64" in path.dtypes else "float32"
    heads = 4 if target.name in GROUP else H
    case = make_case(target.cell, target.cell_options, T=T, heads=heads,
                     group=GROUP.get(target.name, 1), dtype=dtype,
                     state="initial_state" in path.features if state is None else state, **kw)
    if target.name == "fla:retention":
        case.inputs["g"][...] = F.retention_log_decay(heads)
    return case


def _rtol(target, path, dtype):
    if dtype == "float64":
        # mlstm-kernels' parallel form stabilises with m_0 = -inf: relative difference <= eps
        return 2e-6 if target.name == "mlstm-kernels:parallel" else 1e-12
    return 2e-5


@pytest.mark.parametrize("target,path", PATHS, ids=[f"{t.name}:{p.name}" for t, p in PATHS])
def test_path_matches_oracle(target, path):
    case = _case_for(target, path)
    chunk = 4 if path.chunk_size and target.name != "fla:linear-attn" else None
    check(target, path, case, _rtol(target, path, case.dtype), chunk)


@pytest.mark.parametrize("target,path", [(t, p) for t, p in PATHS if "initial_state" in p.features],
                         ids=[f"{t.name}:{p.name}" for t, p in PATHS if "initial_state" in p.features])
def test_initial_state_is_honoured(target, path):
    with_state = _case_for(target, path, state=True, seed=3)
    without = dataclasses.replace(with_state, state0=None)
    out_s, _ = check(target, path, with_state, _rtol(target, path, with_state.dtype),
                     4 if path.chunk_size else None)
    out_0, _ = path.run(without, 4 if path.chunk_size else None)
    assert np.max(np.abs(out_s - out_0)) > 1e-3 * np.max(np.abs(out_s)), \
        f"{target.name} {path.name}: the initial state changed nothing"


CHUNKED = [(t, p) for t, p in PATHS if "chunk_size" in p.features]


@pytest.mark.parametrize("target,path", CHUNKED, ids=[f"{t.name}:{p.name}" for t, p in CHUNKED])
@pytest.mark.parametrize("T,chunk", [(12, 1), (12, 4), (12, 5), (7, 16), (16, 16)])
def test_chunk_sizes(target, path, T, chunk):
    """Chunk 1, a divisor, a last partial chunk (12 = 2·5 + 2), chunk > T; paths that assert
    T % chunk == 0 decline the others with Unsupported (never a wrong answer)."""
    case = _case_for(target, path, T=T, seed=T + chunk)
    declines = path.name != "inference" and target.name.startswith(
        ("mlstm-kernels", "fla:kda", "fla:delta-rule", "transformers:xlstm"))
    if declines and T % chunk:
        with pytest.raises(Unsupported, match="not a multiple"):
            path.run(case, chunk)
        return
    check(target, path, case, _rtol(target, path, case.dtype), chunk)


@pytest.mark.parametrize("target", [M.mlstm_kernels_target(), M.transformers_xlstm_target()],
                         ids=lambda t: t.name)
def test_decode_step_after_prefill(target):
    """recurrent over [0, T) then one step from the carried state == recurrent over [0, T+1)."""
    full = make_case("mlstm", T=9, state=True, seed=5)
    prefix = dataclasses.replace(full, inputs={k: v[:, :8] for k, v in full.inputs.items()})
    last = dataclasses.replace(full, inputs={k: v[:, 8:] for k, v in full.inputs.items()})
    _, carried = target.path("recurrent").run(prefix, None)
    out_step, fin_step = target.path("step").run(dataclasses.replace(last, state0=carried), None)
    out_full, fin_full = target.path("recurrent").run(full, None)
    assert_close(out_step[:, 0], out_full[:, 8], 1e-13, f"{target.name} step after prefill")
    for k in fin_full:
        assert_close(fin_step[k], fin_full[k], 1e-13, f"{target.name} step after prefill, {k}")


def test_a_broken_adapter_fails_the_comparison():
    """The comparison can fail: the chunked gated delta rule with its initial state dropped
    (the 'not honoured' bug class) and with the heads' layout swapped are both caught."""
    t = F.gated_delta_rule_target()
    case = _case_for(t, t.path("chunked"), state=True)

    def dropped(c, chunk):
        return t.path("chunked").run(dataclasses.replace(c, state0=None), chunk)

    def swapped(c, chunk):
        out, fin = t.path("chunked").run(c, chunk)
        return out[:, :, ::-1], fin
    for broken in (dropped, swapped):
        with pytest.raises(AssertionError, match=r"out\[.*but should be"):
            check(t, dataclasses.replace(t.path("chunked"), run=broken), case, 2e-5, 4)


def test_unsupported_inputs_are_declined():
    t = F.gated_delta_rule_target()
    p = t.path("recurrent")
    with pytest.raises(Unsupported, match="float64"):
        p.run(_case_for(t, p, dtype="float64"), None)          # would compute in float32
    grouped = make_case("gated_deltanet", {"decay": "head"}, heads=4, group=2, dtype="float32")
    with pytest.raises(Unsupported, match="grouped heads"):
        p.run(grouped, None)
    varlen = make_case("gated_deltanet", {"decay": "head"}, dtype="float32", cu_seqlens=(0, 5, 12))
    with pytest.raises(Unsupported, match="cu_seqlens"):
        p.run(varlen, None)
    ret = F.retention_target()
    with pytest.raises(Unsupported, match="decay is fixed"):
        ret.path("parallel").run(make_case("gla", {"decay": "head"}, dtype="float32"), None)
    with pytest.raises(Unsupported, match="T = 1"):
        M.mlstm_kernels_target().path("step").run(make_case("mlstm"), None)


# ------------------------------------------------------------------------------ edges

NEG_INF_CHUNKED = [("fla:gated-delta-rule", "chunked"), ("fla:kda", "chunked"),
                   ("fla:simple-gla", "chunked"), ("fla:simple-gla", "parallel")]


@pytest.mark.parametrize("name,path", NEG_INF_CHUNKED)
def test_finding_log_decay_minus_inf_gives_nan_in_fla_chunked_forms(name, path):
    """FINDING: g = -inf (a hard reset, exp(g) = 0) at one step turns the chunked/parallel naive
    forms' whole chunk to NaN: they form (cumsum(g)_i - cumsum(g)_j).tril().exp(), and
    -inf - (-inf) = NaN survives the tril. The recurrent forms of the same module are exact."""
    t = sequence_target(name)
    g = -np.full(12, 0.5)
    g[5] = -np.inf
    g = g[None, :, None, None] if t.cell_options.get("decay") == "key" else g[None, :, None]
    p = t.path(path)
    case = _case_for(t, p, g=g, state=False, dtype="float32")
    out, final = p.run(case, 4 if p.chunk_size else None)
    want, _ = expected(rounded(case), t.cell_options)
    assert np.isfinite(want).all()
    assert np.isnan(out[:, 5:]).all(), "FINDING changed: g=-inf no longer NaNs the chunk"
    assert final is None or np.isnan(final["S"]).all()
    if "recurrent" in [q.name for q in t.paths]:
        check(t, t.path("recurrent"), case, 2e-5)               # the loop handles it


@pytest.mark.parametrize("name", ["fla:gated-delta-rule", "fla:kda", "fla:simple-gla",
                                  "mlstm-kernels:mlstm", "transformers:xlstm"])
@pytest.mark.parametrize("strength", [30.0, 100.0])
def test_very_strong_decays_chunked_and_recurrent_agree_with_the_oracle(name, strength):
    """log-decays of -30 and -100 per step (mLSTM: forget pre-activations -30, -100): the naive
    chunked forms mask before exp and stay exact to float32 (float64 for mLSTM), as the loop."""
    t = next(x for x in TARGETS if x.name == name)
    rng = np.random.default_rng(int(strength))
    kw = ({"f": -strength + rng.normal(size=(1, 16, 1))} if t.cell == "mlstm"
          else {"g": -strength * rng.uniform(0.5, 1.0, size=(1, 16, 1) if t.cell_options.get("decay") == "head"
                                               else (1, 16, 1, 1))})
    for pname in ("chunked", "recurrent"):
        p = t.path(pname)
        case = _case_for(t, p, T=16, state=True, **kw)
        check(t, p, case, _rtol(t, p, case.dtype), 8 if p.chunk_size else None)


@pytest.mark.parametrize("name", ["fla:gated-delta-rule", "fla:kda", "fla:delta-rule"])
@pytest.mark.parametrize("beta", [0.0, 1.0])
def test_beta_at_zero_and_one(name, beta):
    t = next(x for x in TARGETS if x.name == name)
    for p in t.paths:
        if p.name == "parallel":
            continue
        case = _case_for(t, p, T=16, beta=beta)
        check(t, p, case, _rtol(t, p, case.dtype), 8 if p.chunk_size else None)


# T = 1 where the path takes it: delta_rule_parallel takes multiples of 128 only and
# naive_chunk_linear_attn multiples of 64 (their Path.t_multiple)
FLA_T = [(t, p, T) for t, p in PATHS if t.name.startswith("fla:") for T in (0, 1)
         if T == 0 or not p.t_multiple or p.t_multiple == "chunk"]


@pytest.mark.parametrize("target,path,T", FLA_T,
                         ids=[f"{t.name}:{p.name}:T={T}" for t, p, T in FLA_T])
def test_fla_survives_T_0_and_1(target, path, T):
    """Every fla naive function takes T = 0 (empty output, the initial state returned) and T = 1."""
    case = _case_for(target, path, T=T)
    check(target, path, case, 2e-5, 1 if path.chunk_size and target.name != "fla:linear-attn" else None)


MLSTM_T0 = [("mlstm-kernels:mlstm", "chunked", ZeroDivisionError),
            ("mlstm-kernels:mlstm", "inference", AssertionError),
            ("mlstm-kernels:mlstm", "recurrent", RuntimeError),
            ("mlstm-kernels:parallel", "parallel", IndexError),
            ("mlstm-kernels:parallel", "parallel-stablef", IndexError),
            ("transformers:xlstm", "chunked", ZeroDivisionError),
            ("transformers:xlstm", "recurrent", RuntimeError),
            ("transformers:xlstm", "inference", ValueError)]


@pytest.mark.parametrize("name,path,error", MLSTM_T0)
def test_finding_mlstm_paths_fail_at_T_0(name, path, error):
    """FINDING: no mLSTM path takes T = 0 (the oracle returns an empty output and the initial
    state): chunkwise divides by the number of chunks in einops (ZeroDivisionError), the loop
    stacks an empty list (RuntimeError), the parallel form reduces an empty max (IndexError);
    the inference wrappers refuse it by name ('Received empty sequence': an assert in
    mlstm-kernels, ValueError in transformers)."""
    t = next(x for x in TARGETS if x.name == name)
    with pytest.raises(error):
        t.path(path).run(_case_for(t, t.path(path), T=0), 4)


@pytest.mark.parametrize("target", [t for t in TARGETS if t.cell == "mlstm"], ids=lambda t: t.name)
def test_mlstm_T_1(target):
    for p in target.paths:
        check(target, p, _case_for(target, p, T=1), _rtol(target, p, "float64"),
              1 if p.chunk_size else None)


@pytest.mark.parametrize("gates", [{"i": 30.0}, {"i": -30.0, "f": 5.0}, {"f": -100.0}],
                         ids=["i=30", "i=-30,f=5", "f=-100"])
def test_mlstm_extreme_gates_float64(gates):
    """Input-gate pre-activations ~ +-30 and forget-gate ~ -100 (+ N(0, 1) noise): every
    stateful path exact in float64 (the stabiliser m keeps every exp <= 1)."""
    rng = np.random.default_rng(7)
    kw = {k: v + rng.normal(size=(1, 16, 1)) for k, v in gates.items()}
    for t in (M.mlstm_kernels_target(), M.transformers_xlstm_target()):
        for p in t.paths:
            if not p.decode:
                check(t, p, _case_for(t, p, T=16, state=True, **kw), 1e-12, 4 if p.chunk_size else None)


def test_finding_mlstm_parallel_stabiliser_differs_from_the_cell_by_eps():
    """FINDING (a convention, not a bug): the parallel forms take m_t = max_s(i_s + Σ logσ(f)),
    i.e. the cell with m_0 = -inf instead of 0, so h differs from the recurrent form's through
    eps alone: relative eps·exp(m_cell) / max(|n̂ᵀq̃|, 1) <= eps = 1e-6. Measured with i ~ -30,
    f ~ 5 (every i_s + ... below Σ logσ(f)): 9.96e-7 elementwise; exact with eps = 0."""
    rng = np.random.default_rng(2)
    case = make_case("mlstm", T=16, i=-30 + rng.normal(size=(1, 16, 1)), f=5 + rng.normal(size=(1, 16, 1)))
    want, _ = expected(case, {"eps": 1e-6})
    for p in M.mlstm_kernels_parallel_target().paths:
        out, _ = p.run(case, None)
        rel = np.abs(out - want) / np.abs(want)
        assert 1e-8 < rel.max() <= 1.0e-6, f"{p.name}: relative difference {rel.max():.3g}"
    # with eps = 0 the two stabilisers give the same h: the difference is eps's alone
    case0 = dataclasses.replace(case, options={"eps": 0.0})
    out0, _ = M.mlstm_kernels_parallel_target().path("parallel").run(case0, None)
    assert_close(out0, expected(case0, {"eps": 0.0})[0], 1e-12, "parallel, eps=0")


def test_finding_mlstm_recurrent_keeps_float64_state_in_float32_by_default():
    """FINDING: mlstm_recurrent_sequence__native_fw's dtype_state defaults to float32, so float64
    inputs get a float32 state (error 1.0e-7 instead of ~3e-16); the target passes
    dtype_state=float64 for float64 cases (its convention)."""
    from mlstm_kernels.torch.recurrent.native_sequence import mlstm_recurrent_sequence__native_fw
    case = make_case("mlstm", T=12, seed=11)
    args = [torch.from_numpy(case.inputs[n]).transpose(1, 2).contiguous() for n in ("q", "k", "v", "i", "f")]
    h = mlstm_recurrent_sequence__native_fw(*args).transpose(1, 2).numpy()
    want, _ = expected(case, {"eps": 1e-6})
    err = np.max(np.abs(h - want)) / np.max(np.abs(want))
    assert 1e-9 < err < 1e-5, err
    check(M.mlstm_kernels_target(), M.mlstm_kernels_target().path("recurrent"), case, 1e-12)


def test_finding_fla_naive_functions_compute_float64_in_float32():
    """FINDING: the naive recurrent references cast every input .to(torch.float32): float64 in,
    float32 out (naive_recurrent_gated_delta_rule returns o and the state in float32)."""
    fn = F._fla("gated_delta_rule").naive_recurrent_gated_delta_rule
    case = make_case("gated_deltanet", {"decay": "head"})
    q, k, v, beta, g = (torch.from_numpy(case.inputs[n]) for n in ("q", "k", "v", "beta", "g"))
    o, S = fn(q, k, v, beta, g, output_final_state=True)
    assert o.dtype == torch.float32 and S.dtype == torch.float32


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_fla_low_precision_runs(dtype):
    """bf16/fp16 inputs, compared with the oracle of the rounded inputs. fla's naive functions
    upcast to float32: the gated delta rule returns float32 (error ~1e-7), the others cast o
    back to the input dtype (one rounding: <= 2 units of the dtype relative to max|o|)."""
    unit = {"bfloat16": 2.0 ** -8, "float16": 2.0 ** -11}[dtype]
    for t in TARGETS:
        for p in t.paths:
            if not t.name.startswith("fla:") or dtype not in p.dtypes:
                continue
            T = 128 if (t.name, p.name) == ("fla:delta-rule", "parallel") else 64
            case = _case_for(t, p, T=T, dtype=dtype, state=False)
            rtol = 1e-5 if t.name == "fla:gated-delta-rule" else 2 * unit
            check(t, p, case, rtol, 16 if p.chunk_size and t.name != "fla:linear-attn" else None)


@pytest.mark.parametrize("fn,T", [("delta_rule_chunkwise", 32), ("delta_rule_parallel", 128)])
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_finding_fla_delta_rule_chunkwise_and_parallel_fail_in_low_precision(fn, T, dtype):
    """FINDING: delta_rule_chunkwise and delta_rule_parallel add torch.eye(dtype=torch.float)
    to a bf16/fp16 matrix (promoting it to float32) and multiply the result with the bf16/fp16
    values: RuntimeError ("expected m1 and m2 to have the same dtype"; delta_rule_parallel in
    bf16: "expected scalar type Float but found BFloat16"). The targets decline
    bf16/fp16 on these paths (Unsupported)."""
    case = make_case("deltanet", T=T, dtype=dtype)
    q, k, v, beta = (st_tensor(case.inputs[n], dtype) for n in ("q", "k", "v", "beta"))
    with pytest.raises(RuntimeError, match="same dtype|expected scalar type"):
        getattr(F._fla("delta_rule"), fn)(q, k, v, beta)
    with pytest.raises(Unsupported, match=dtype):
        F.delta_rule_target().path("chunked" if fn.endswith("chunkwise") else "parallel").run(case, None)


def st_tensor(a, dtype):
    return torch.from_numpy(np.asarray(a)).to(getattr(torch, dtype)).transpose(1, 2).contiguous()


@pytest.mark.parametrize("dtype,rtol", [("bfloat16", 0.1), ("float16", 0.016)])
def test_mlstm_low_precision_runs(dtype, rtol):
    """mLSTM in bf16/fp16 against the oracle of the rounded inputs, T = 64, chunk 16. chunkwise
    and parallel compute in the input dtype (cumulative log-forget sums included); the loop keeps
    a float32 state but reads it out in the input dtype (q~^T C, q~^T n). The bounds are
    measured, not derived (seeds 0-2, max over paths): bf16 7.8e-2 (parallel), 6.8e-2
    (chunkwise), 2.1e-2 (recurrent); fp16 8.0e-3 (parallel), 2.4e-3 (chunkwise). The test runs
    seed 0 (time)."""
    for t in (M.mlstm_kernels_target(), M.mlstm_kernels_parallel_target(), M.transformers_xlstm_target()):
        for p in t.paths:
            if p.decode or p.name == "inference":
                continue
            case = make_case("mlstm", T=64, dtype=dtype, seed=0)
            check(t, p, case, rtol, 16 if p.chunk_size else None)


def test_finding_mlstm_parallel_bf16_error_grows_with_T():
    """FINDING: mlstm_parallel__native_autograd forms exp(cumsum(logσ f)_t − cumsum(logσ f)_s)
    from a bf16 cumsum: at T = 256 (f ~ N(2, 1)) its output is off by 0.34 of max|h| (seed 0-2
    max; 7.8e-2 at T = 64, 1.9e-2 at T = 16), while the stablef variant (sums of the masked
    gates, no difference of large sums) stays at 2.9e-2 on the same inputs, as chunkwise (3.0e-2)
    and the loop (2.9e-2)."""
    t = M.mlstm_kernels_parallel_target()
    worst = {"parallel": 0.0, "parallel-stablef": 0.0}
    for seed in range(3):
        case = make_case("mlstm", T=256, dtype="bfloat16", seed=seed)
        want, _ = expected(rounded(case), {"eps": 1e-6})
        for name in worst:
            out, _ = t.path(name).run(case, None)
            worst[name] = max(worst[name], np.max(np.abs(out - want)) / np.max(np.abs(want)))
    assert worst["parallel"] > 0.2 and worst["parallel-stablef"] < 0.05, worst


@pytest.mark.parametrize("target", [M.mlstm_kernels_target(), M.transformers_xlstm_target()],
                         ids=lambda t: t.name)
def test_finding_mlstm_inference_wrapper_fails_in_bf16_without_initial_state(target):
    """FINDING: the inference wrappers (mlstm-kernels' wrap_chunkwise__arbitrary_sequence_length,
    mLSTMBackend's inference function with its default native kernels, and transformers' copy,
    xLSTMBackend's, the xLSTM model's default mode) create missing initial states as float32
    zeros (dtype_state); with bf16 q, k, v and T >= chunk_size the native chunkwise kernel then
    multiplies float32 by bf16 and raises RuntimeError ('expected m1 and m2 to have the same
    dtype' / 'expected scalar type Float but found BFloat16'). T < chunk_size (the loop only) and
    a given bf16 initial state both run (error 2.4e-2 to 7.6e-2 of max|h|: the chunkwise bf16 error)."""
    p = target.path("inference")
    with pytest.raises(RuntimeError, match="same dtype|expected scalar type Float but found BFloat16"):
        p.run(_case_for(target, p, T=32, dtype="bfloat16", state=False), 16)
    for case in (_case_for(target, p, T=3, dtype="bfloat16", state=False),
                 _case_for(target, p, T=32, dtype="bfloat16", state=True)):
        check(target, p, case, 0.1, 16)


CARRY = [(t, p) for t, p in PATHS if {"initial_state", "final_state"} <= set(p.features) and not p.decode]


@pytest.mark.parametrize("target,path", CARRY, ids=[f"{t.name}:{p.name}" for t, p in CARRY])
def test_split_and_carry(target, path):
    """[0, 4) then [4, 12) from the carried final state == [0, 12) (chunk 4 divides both parts)."""
    full = _case_for(target, path, T=12, state=True, seed=9)
    parts = [dataclasses.replace(full, inputs={k: v[:, a:b] for k, v in full.inputs.items()})
             for a, b in ((0, 4), (4, 12))]
    out_a, carried = path.run(parts[0], 4 if path.chunk_size else None)
    out_b, final_b = path.run(dataclasses.replace(parts[1], state0=carried), 4 if path.chunk_size else None)
    out, final = path.run(full, 4 if path.chunk_size else None)
    rtol = 1e-12 if full.dtype == "float64" else 2e-5
    assert_close(np.concatenate([out_a, out_b], axis=1), out, rtol, f"{target.name} {path.name} split at 4")
    for k in final:
        assert_close(final_b[k], final[k], rtol, f"{target.name} {path.name} split at 4, final {k}")


def test_finding_transformers_mlstm_chunkwise_fw_is_broken_dead_code():
    """FINDING (dead code): transformers' modeling_xlstm.mlstm_chunkwise_fw calls
    fgate.logsigmoid(vecF), which torch.Tensor does not have; nothing in transformers calls it
    (xLSTMBackend uses mlstm_chunkwise_native_autograd, which is checked)."""
    mx = M._modeling_xlstm()
    q, v = torch.randn(1, 2, 8, 4), torch.randn(1, 2, 8, 3)
    with pytest.raises(AttributeError, match="logsigmoid"):
        mx.mlstm_chunkwise_fw(q, q, v, torch.randn(1, 2, 8), torch.randn(1, 2, 8), chunk_size=4)


@pytest.mark.parametrize("state_dtype", [torch.bfloat16, torch.float64])
def test_finding_fla_naive_chunk_simple_gla_takes_only_a_float32_initial_state(state_dtype):
    """FINDING: naive_chunk_simple_gla keeps initial_state as given (S = initial_state) and
    multiplies it with its float32 tensors: a bf16 or float64 state raises RuntimeError
    ('expected scalar type Float but found ...'); the other naive functions cast or add it
    into a float32 state. The target passes the state in float32."""
    fn = F._fla("simple_gla").naive_chunk_simple_gla
    q, v = torch.randn(1, 8, 2, 4), torch.randn(1, 8, 2, 3)
    with pytest.raises(RuntimeError, match="expected scalar type Float"):
        fn(q, q, v, -torch.rand(1, 8, 2), initial_state=torch.randn(1, 2, 4, 3, dtype=state_dtype),
           output_final_state=True, chunk_size=4)


@pytest.mark.parametrize("name", ["fla:delta-rule", "fla:gated-delta-rule", "fla:kda"])
@pytest.mark.parametrize("spread", [1e-4, 0.0])
def test_nearly_parallel_unit_keys_with_beta_one(name, spread):
    """Unit keys within `spread` of one direction (0: all equal), β = 1, T = 32, chunk 16: the
    chunked UT/WY forms stay exact (measured 1e-15 float64, 2.5e-7 float32), as the loops."""
    t = next(x for x in TARGETS if x.name == name)
    for p in t.paths:
        if p.name == "parallel":
            continue
        case = _case_for(t, p, T=32, beta=1.0, state=False)
        rng = np.random.default_rng(0)
        k = rng.normal(size=(B, 1) + case.inputs["k"].shape[2:]) + spread * rng.normal(size=case.inputs["k"].shape)
        case.inputs["k"][...] = k / np.linalg.norm(k, axis=-1, keepdims=True)
        check(t, p, case, _rtol(t, p, case.dtype), 16 if p.chunk_size else None)
