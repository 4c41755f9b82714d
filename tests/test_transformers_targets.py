"""The transformers 5.23.0 sequence targets (rnnsym.frameworks.transformers_gdn,
rnnsym.frameworks.transformers_mamba) against rnnsym's float64 oracle
(rnnsym.conformance.sequence_oracle.expected), with the properties checked by hand, and the edges
probed: what the targets do there is asserted as found (FINDING comments), not hidden.

Tolerances (values of the cases are O(1)): float32 paths 2e-5 absolute (measured maxima 1e-7 to
2.5e-6 over these cases), relative to max(1, |expected|); bfloat16 3e-2 and float16 4e-3 of
max(1, |expected|) (measured: GDN bf16 2.2e-3 out / 4.8e-3 state, fp16 4.5e-4; Mamba-2 bf16
6.8e-2 on outputs up to 13.5, i.e. 5e-3 relative). The inputs are rounded to the dtype once, the
targets compute in float32.
"""
import math

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from rnnsym.conformance.sequence_oracle import expected  # noqa: E402
from rnnsym.errors import Unsupported  # noqa: E402
from rnnsym.frameworks import transformers_gdn as gdn  # noqa: E402
from rnnsym.frameworks import transformers_mamba as mam  # noqa: E402
from rnnsym.frameworks.sequence import SequenceCase, SequenceTarget  # noqa: E402

TOL = {"float32": 2e-5, "bfloat16": 3e-2, "float16": 4e-3}
# distinct sizes: B != T != H != H_kv, d_k != d_v
B, T, H, HK, DK, DV = 2, 11, 4, 2, 5, 3
P, N, G, D_IN = 3, 5, 2, 3


def assert_close(got, want, tol, what):
    scale = max(1.0, float(np.max(np.abs(want))) if want.size else 1.0)
    err = np.abs(got - want)
    if err.size and not np.all(err <= tol * scale):
        idx = np.unravel_index(np.nanargmax(np.where(np.isnan(err), np.inf, err)), err.shape)
        raise AssertionError(f"{what}: out{list(idx)}={got[idx]!r}, but should be {want[idx]!r} "
                             f"(tolerance {tol} x {scale:.3g})")


def with_(case, **kw):
    return SequenceCase(**{**case.__dict__, **kw})


def steps(case, a, b):
    return with_(case, inputs={k: v[:, a:b] for k, v in case.inputs.items()})


def gdn_case(rng, T=T, g=None, beta=None, state=True, dtype="float32", heads_qk=HK):
    return SequenceCase(
        "gated_deltanet", H,
        {"q": rng.normal(size=(B, T, heads_qk, DK)), "k": rng.normal(size=(B, T, heads_qk, DK)),
         "v": rng.normal(size=(B, T, H, DV)),
         "g": -rng.uniform(0.01, 1, size=(B, T, H)) if g is None else g,
         "beta": rng.uniform(0, 1, size=(B, T, H)) if beta is None else beta},
        state0={"S": rng.normal(size=(B, H, DK, DV))} if state else None, dtype=dtype)


def kda_case(rng, T=T, g=None):
    return SequenceCase(
        "gated_deltanet", H,
        {"q": rng.normal(size=(B, T, H, DK)), "k": rng.normal(size=(B, T, H, DK)),
         "v": rng.normal(size=(B, T, H, DV)),
         "g": -rng.uniform(0.01, 1, size=(B, T, H, DK)) if g is None else g,
         "beta": rng.uniform(0, 1, size=(B, T, H))},
        state0={"S": rng.normal(size=(B, H, DK, DV))})


def mamba2_case(rng, T=T, dt=None, A=None, state=True, dtype="float32"):
    return SequenceCase(
        "mamba2", H,
        {"x": rng.normal(size=(B, T, H, P)),
         "dt": rng.normal(size=(B, T, H)) if dt is None else dt,
         "B": rng.normal(size=(B, T, G, N)), "C": rng.normal(size=(B, T, G, N))},
        params={"A": -rng.uniform(0.5, 2, size=(H, 1)) if A is None else A,
                "D": rng.normal(size=(H, 1)), "dt_bias": rng.normal(size=(H, 1))},
        state0={"h": rng.normal(size=(B, H, P, N))} if state else None, dtype=dtype)


def mamba_case(rng, T=T, state=False):
    return SequenceCase(
        "mamba", H,
        {"u": rng.normal(size=(B, T, H, D_IN)), "dt": rng.normal(size=(B, T, H, D_IN)),
         "B": rng.normal(size=(B, T, 1, N)), "C": rng.normal(size=(B, T, 1, N))},
        params={"A": -rng.uniform(0.5, 2, size=(H, D_IN, N)), "D": rng.normal(size=(H, D_IN)),
                "dt_bias": rng.normal(size=(H, D_IN))},
        state0={"h": rng.normal(size=(B, H, D_IN, N))} if state else None)


def check_path(target: SequenceTarget, path: str, case, chunk_size=None, oracle_case=None):
    want, want_final = expected(oracle_case or case, target.cell_options)
    out, final = target.path(path).run(case, chunk_size)
    tol = TOL[case.dtype]
    label = f"{target.name} {path}(chunk_size={chunk_size}, dtype={case.dtype})"
    assert out.shape == want.shape, (label, out.shape, want.shape)
    assert_close(out, want, tol, label + " output")
    for k in want_final:
        assert_close(final[k], want_final[k], tol, label + f" final {k}")
    return out, final


@pytest.fixture(scope="module")
def qwen():
    return gdn.qwen3_next_gdn()


@pytest.fixture(scope="module")
def kimi():
    return gdn.kimi_linear_kda()


# ------------------------------------------------------------------ the environment

def test_the_paths_call_the_pure_torch_functions_not_fla():
    """FINDING (environment): with fla-core installed, transformers' module-level
    ``torch_chunk_gated_delta_rule`` dispatches to fla's ``chunk_gated_delta_rule``; the targets
    unwrap it."""
    from rnnsym.frameworks.torch_env import import_transformers_module
    from rnnsym.frameworks.sequence_torch import pure_torch
    m = import_transformers_module(gdn.QWEN3_NEXT)
    wrapped = m.torch_chunk_gated_delta_rule
    impl = dict(zip(wrapped.__code__.co_freevars,
                    [c.cell_contents for c in wrapped.__closure__]))["implementation"]
    fn = pure_torch(wrapped)
    assert fn.__module__ == gdn.QWEN3_NEXT and fn is not wrapped
    pytest.importorskip("fla")
    assert impl.__module__.startswith("fla."), impl.__module__


def test_copies_are_identical_to_the_reference_functions():
    """The listed copies are token for token the functions the targets call (AST without
    decorators and docstrings)."""
    import ast
    import importlib.util

    def body(mod, name):
        src = open(importlib.util.find_spec(f"transformers.models.{mod}.modeling_{mod}").origin).read()
        for n in ast.parse(src).body:
            if isinstance(n, ast.FunctionDef) and n.name == name:
                n.decorator_list = []
                if isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant):
                    n.body = n.body[1:]
                return ast.unparse(n)
        raise AssertionError(f"{mod} has no {name}")
    families = [("qwen3_next", gdn.GDN_COPIES, ("torch_chunk_gated_delta_rule",
                                                "torch_recurrent_gated_delta_rule", "l2norm")),
                ("kimi_linear", gdn.KDA_COPIES, ("chunk_kimi_delta_attention",
                                                 "recurrent_kimi_delta_attention", "l2norm")),
                ("mamba2", mam.MAMBA2_COPIES, ("mamba2_chunk_scan", "mamba2_selective_state_update",
                                              "segment_sum")),
                ("mamba", mam.MAMBA_COPIES, ("mamba_selective_scan", "mamba_selective_state_update"))]
    for ref, copies, names in families:
        for copy in copies:
            for name in names:
                assert body(copy, name) == body(ref, name), (copy, name)


# ------------------------------------------------------------------ Gated DeltaNet (Qwen3-Next)

@pytest.mark.parametrize("path,chunk_size", [("chunked", 1), ("chunked", 4), ("chunked", 64),
                                             ("chunked", None), ("recurrent", None)])
def test_qwen3_next_equals_the_oracle(qwen, path, chunk_size):
    # grouped heads: q/k have HK=2 heads for H=4 value heads (repeat_interleave: h -> h // 2)
    check_path(qwen, path, gdn_case(np.random.default_rng(0)), chunk_size)


def test_qwen3_next_grouped_heads_are_repeat_interleaved_not_tiled(qwen):
    """A case whose q/k heads are swapped matches an oracle of the swapped heads only: output
    head 1 reads q/k head 0 (h // G), not head 1 (h % HK, torch's repeat)."""
    case = gdn_case(np.random.default_rng(1))
    out, _ = qwen.path("recurrent").run(case)
    want, _ = expected(case, qwen.cell_options)
    tiled = with_(case, inputs={**case.inputs,
                                **{n: case.inputs[n][:, :, [0, 1, 0, 1]] for n in ("q", "k")}})
    want_tiled, _ = expected(tiled, qwen.cell_options)
    assert np.abs(out - want).max() < 1e-5
    assert np.abs(out[:, :, 1] - want_tiled[:, :, 1]).max() > 1e-2


def test_qwen3_next_initial_state_is_honoured_and_decode_after_prefill(qwen):
    rng = np.random.default_rng(2)
    case = gdn_case(rng)
    zero = with_(case, state0=None)
    a, _ = check_path(qwen, "chunked", case, 4)
    b, _ = check_path(qwen, "chunked", zero, 4)
    assert np.abs(a - b).max() > 1e-2                  # the state is not silently zero
    # split and carry + one decode step after a prefill of T-1 == the prefill of T
    full, full_final = qwen.path("chunked").run(case, 4)
    _, pre_final = qwen.path("chunked").run(steps(case, 0, T - 1), 4)
    out, final = qwen.path("step").run(with_(steps(case, T - 1, T), state0=pre_final))
    assert_close(out[:, 0], full[:, T - 1], TOL["float32"], "step after prefill")
    assert_close(final["S"], full_final["S"], TOL["float32"], "step after prefill, state")


def test_qwen3_next_refuses_what_it_cannot_take(qwen):
    rng = np.random.default_rng(3)
    with pytest.raises(Unsupported, match="float64"):
        qwen.path("chunked").run(gdn_case(rng, dtype="float64"), 4)
    with pytest.raises(Unsupported, match="cu_seqlens"):
        qwen.path("recurrent").run(with_(gdn_case(rng, T=6), cu_seqlens=(0, 2, 6)))
    with pytest.raises(Unsupported, match="T == 1"):
        qwen.path("step").run(gdn_case(rng, T=2))


def test_qwen3_next_computes_float64_inputs_in_float32(qwen):
    """FINDING: float64 inputs are cast to float32 inside (``.to(torch.float32)``); the output
    comes back as float64 with a float32 error (measured 1.2e-7 here), the final state as
    float32. Hence the paths refuse float64."""
    import torch
    from rnnsym.frameworks.sequence_torch import pure_torch
    case = gdn_case(np.random.default_rng(4))
    fn = pure_torch(gdn._module(gdn.QWEN3_NEXT).torch_chunk_gated_delta_rule)
    t = {n: torch.from_numpy(np.ascontiguousarray(case.inputs[n])) for n in case.inputs}
    out, final = fn(t["q"], t["k"], t["v"], g=t["g"], beta=t["beta"], chunk_size=4,
                    initial_state=torch.from_numpy(case.state0["S"]), output_final_state=True,
                    use_qk_l2norm_in_kernel=True)
    want, _ = expected(case, qwen.cell_options)
    err = np.abs(out.numpy() - want).max()
    assert out.dtype == torch.float64 and final.dtype == torch.float32
    assert 1e-9 < err < 1e-5, err


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_qwen3_next_low_precision(qwen, dtype):
    rng = np.random.default_rng(5)
    case = gdn_case(rng, T=20, dtype=dtype)
    # the oracle runs on the inputs rounded to the dtype (g stays float32, as the model has it)
    import torch
    rounded = {n: (a if n == "g" else torch.tensor(a).to(getattr(torch, dtype)).double().numpy())
               for n, a in case.inputs.items()}
    # the initial state stays float32, as the model's cache holds it
    for path, cs in (("chunked", 8), ("recurrent", None)):
        check_path(qwen, path, case, cs, oracle_case=with_(case, inputs=rounded))


def test_qwen3_next_edges_T0_T1_beta(qwen):
    rng = np.random.default_rng(6)
    for path, cs in (("chunked", 64), ("chunked", 1), ("recurrent", None)):
        out, final = check_path(qwen, path, gdn_case(rng, T=0), cs)   # T = 0: the state passes through
        assert out.shape == (B, 0, H, DV)
        check_path(qwen, path, gdn_case(rng, T=1), cs)                # chunk_size > T
    check_path(qwen, "step", gdn_case(rng, T=1))
    for beta in (0.0, 1.0):
        for path, cs in (("chunked", 4), ("recurrent", None)):
            check_path(qwen, path, gdn_case(rng, T=9, beta=np.full((B, 9, H), beta)), cs)


def test_qwen3_next_strong_decay(qwen):
    """g = -30 per step (exp(-30) = 9.4e-14; cumulative -1920 over a chunk of 64): the chunked
    path stays within float32 tolerance of the oracle (measured 1.2e-7 at T=200)."""
    rng = np.random.default_rng(7)
    case = gdn_case(rng, T=70, g=np.full((B, 70, H), -30.0))
    for path, cs in (("chunked", 64), ("chunked", 3), ("recurrent", None)):
        check_path(qwen, path, case, cs)


def test_qwen3_next_hard_reset_g_minus_inf_is_nan_in_the_chunked_path(qwen):
    """FINDING: g = -inf at one step (a hard reset, exp(-inf) = 0) gives NaN in
    torch_chunk_gated_delta_rule: cum_decay is -inf from that step on and the pairwise decay
    cum_i - cum_j = -inf - (-inf) = NaN. With chunk_size 64 > T every output is NaN, also
    before the reset (240 of 240; the NaN reaches the triangular solve of the whole chunk);
    with chunk_size 4 the outputs from the reset's chunk on are NaN (144 of 240: t = 4..9) and
    the final state is NaN. The recurrent path equals the oracle."""
    rng = np.random.default_rng(1)
    g = -rng.uniform(0.01, 1, size=(B, 10, H))
    g[:, 4] = -np.inf
    case = gdn_case(rng, T=10, g=g)
    want, _ = expected(case, qwen.cell_options)
    assert np.isfinite(want).all()
    out, final = qwen.path("chunked").run(case, 64)
    assert np.isnan(out).all() and np.isnan(final["S"]).all()
    out, final = qwen.path("chunked").run(case, 4)
    assert np.isnan(out[:, 4:]).all() and not np.isnan(out[:, :4]).any()
    assert np.isnan(final["S"]).all()
    assert_close(out[:, :4], want[:, :4], TOL["float32"], "before the reset")
    check_path(qwen, "recurrent", case)


# ------------------------------------------------------------------ Kimi Linear KDA

@pytest.mark.parametrize("path,chunk_size", [("chunked", 1), ("chunked", 4), ("chunked", 64),
                                             ("recurrent", None)])
def test_kimi_kda_equals_gated_deltanet_decay_key(kimi, path, chunk_size):
    check_path(kimi, path, kda_case(np.random.default_rng(8)), chunk_size)


def test_kimi_kda_step_and_refusals(kimi):
    rng = np.random.default_rng(9)
    case = kda_case(rng)
    full, full_final = kimi.path("chunked").run(case, 4)
    _, pre = kimi.path("chunked").run(steps(case, 0, T - 1), 4)
    out, final = kimi.path("step").run(with_(steps(case, T - 1, T), state0=pre))
    assert_close(out[:, 0], full[:, T - 1], TOL["float32"], "KDA step after prefill")
    with pytest.raises(Unsupported, match="equal heads"):
        kimi.path("recurrent").run(with_(case, inputs={**case.inputs, "q": case.inputs["q"][:, :, :2],
                                                       "k": case.inputs["k"][:, :, :2]}))


def test_kimi_kda_hard_reset_is_nan_in_the_chunked_path(kimi):
    """FINDING: as in Qwen3-Next, g = -inf for one key row at t = 4: chunk_kimi_delta_attention
    gives NaN (chunk 64: 240 of 240 outputs; chunk 4: t = 4..9); the recurrent path equals the
    oracle."""
    rng = np.random.default_rng(10)
    g = -rng.uniform(0.01, 1, size=(B, 10, H, DK))
    g[:, 4, :, 1] = -np.inf
    case = kda_case(rng, T=10, g=g)
    out, final = kimi.path("chunked").run(case, 64)
    assert np.isnan(out).all() and np.isnan(final["S"]).any()
    out, _ = kimi.path("chunked").run(case, 4)
    assert np.isnan(out[:, 4:]).all() and not np.isnan(out[:, :4]).any()
    check_path(kimi, "recurrent", case)


# ------------------------------------------------------------------ Mamba-2

@pytest.mark.parametrize("chunk_size", [1, 4, 256, None])
def test_mamba2_chunked_equals_the_oracle(chunk_size):
    # groups: G=2 groups of B/C for H=4 heads (h -> h // 2)
    check_path(mam.mamba2(), "chunked", mamba2_case(np.random.default_rng(11)), chunk_size)


def test_mamba2_step_initial_state_and_decode_after_prefill():
    t = mam.mamba2()
    rng = np.random.default_rng(12)
    check_path(t, "step", mamba2_case(rng, T=1))
    check_path(t, "step", mamba2_case(rng, T=1, state=False))
    case = mamba2_case(rng)
    a, _ = t.path("chunked").run(case, 4)
    b, _ = t.path("chunked").run(with_(case, state0=None), 4)
    assert np.abs(a - b).max() > 1e-2
    full, full_final = t.path("chunked").run(case, 4)
    _, pre = t.path("chunked").run(steps(case, 0, T - 1), 4)
    out, final = t.path("step").run(with_(steps(case, T - 1, T), state0=pre))
    assert_close(out[:, 0], full[:, T - 1], TOL["float32"], "mamba2 step after prefill")
    assert_close(final["h"], full_final["h"], TOL["float32"], "mamba2 step after prefill, state")


def test_mamba2_edges():
    t = mam.mamba2()
    rng = np.random.default_rng(13)
    out, _ = check_path(t, "chunked", mamba2_case(rng, T=0), 256)
    assert out.shape == (B, 0, H, P)
    check_path(t, "chunked", mamba2_case(rng, T=1), 256)
    # strong decay: A = -30, Δ = softplus(5) = 5.0067: log-decay -150 per step
    case = mamba2_case(rng, T=100, A=np.full((H, 1), -30.0), dt=np.full((B, 100, H), 5.0))
    case = with_(case, params={**case.params, "dt_bias": np.zeros((H, 1))})
    for cs in (256, 7, 1):
        check_path(t, "chunked", case, cs)
    with pytest.raises(Unsupported, match="float64"):
        t.path("chunked").run(mamba2_case(rng, dtype="float64"), 4)
    with pytest.raises(Unsupported, match="cu_seqlens"):
        t.path("chunked").run(with_(mamba2_case(rng), cu_seqlens=(0, 4, T)), 4)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_mamba2_low_precision(dtype):
    import torch
    t = mam.mamba2()
    rng = np.random.default_rng(14)
    for T_, path, cs in ((20, "chunked", 8), (1, "step", None)):
        case = mamba2_case(rng, T=T_, dtype=dtype)
        rnd = {n: torch.tensor(a).to(getattr(torch, dtype)).double().numpy() for n, a in case.inputs.items()}
        prm = {n: (a if n == "A" else torch.tensor(a).to(getattr(torch, dtype)).double().numpy())
               for n, a in case.params.items()}
        check_path(t, path, case, cs, oracle_case=with_(case, inputs=rnd, params=prm))


def test_mamba2_dt_limit_on_prefill_only_breaks_decode_after_prefill():
    """FINDING: Mamba2Mixer (and the Bamba, Falcon-H1, GraniteMoE-Hybrid, Nemotron-H, Zamba2
    mixers) pass dt_limit=time_step_limit to mamba2_chunk_scan but not to
    mamba2_selective_state_update. With time_step_limit = (0.0, 0.1) one decode step after a
    prefill of T-1 differs from the prefill of T (measured on this case: 3.19 in the output,
    |out| <= 3.96, and 6.12 in the state); without a limit they agree to 4.8e-7. The chunked
    path equals the oracle (the mamba2 cell with dt_limit, itself equal to the unclamped cell on
    the pre-clamped dt of clamped_case); the step does not."""
    rng = np.random.default_rng(15)
    for limit, consistent in (((0.0, math.inf), True), ((0.0, 0.1), False)):
        t = mam.mamba2(dt_limit=limit)
        case = mamba2_case(rng, T=9)
        want, _ = check_path(t, "chunked", case, 4)
        via_dt, _ = expected(mam.clamped_case(case, limit), {})
        assert np.abs(via_dt - expected(case, t.cell_options)[0]).max() < 1e-12
        full, full_final = t.path("chunked").run(case, 4)
        _, pre = t.path("chunked").run(steps(case, 0, 8), 4)
        one = with_(steps(case, 8, 9), state0=pre)
        out, final = t.path("step").run(one)
        gap = np.abs(out[:, 0] - full[:, 8]).max()
        assert (gap < 1e-5) if consistent else (gap > 0.1), (limit, gap)
        if not consistent:
            with pytest.raises(AssertionError, match="but should be"):
                check_path(t, "step", one)


def test_nemotron_h_default_clamp_breaks_decode_after_prefill():
    """FINDING: Nemotron-H and Zamba2 set time_step_limit = (time_step_min, inf) = (0.001, inf)
    by default, prefill only: where softplus(dt + dt_bias) < 0.001 (dt = -9 here) decode after
    prefill differs from the prefill (measured on this case: 4.6e-3 in the output, 4.5e-3 in the
    state, outputs up to 6.4)."""
    t = mam.nemotron_h_mamba2()
    assert t.cell_options == {"dt_limit": (0.001, math.inf)}
    rng = np.random.default_rng(2)
    case = mamba2_case(rng, T=9, dt=np.full((B, 9, H), -9.0))
    check_path(t, "chunked", case, 4)
    full, _ = t.path("chunked").run(case, 4)
    _, pre = t.path("chunked").run(steps(case, 0, 8), 4)
    out, _ = t.path("step").run(with_(steps(case, 8, 9), state0=pre))
    assert np.abs(out[:, 0] - full[:, 8]).max() > 1e-4


# ------------------------------------------------------------------ Mamba-1

def test_mamba_scan_and_step_equal_the_oracle():
    t = mam.mamba()
    rng = np.random.default_rng(16)
    check_path(t, "recurrent", mamba_case(rng))
    check_path(t, "recurrent", mamba_case(rng, T=1))
    check_path(t, "step", mamba_case(rng, T=1, state=True))
    case = mamba_case(rng)
    full, full_final = t.path("recurrent").run(case)
    _, pre = t.path("recurrent").run(steps(case, 0, T - 1))
    out, final = t.path("step").run(with_(steps(case, T - 1, T), state0=pre))
    assert_close(out[:, 0], full[:, T - 1], TOL["float32"], "mamba step after prefill")
    assert_close(final["h"], full_final["h"], TOL["float32"], "mamba step after prefill, state")


def test_mamba_refusals_and_T0():
    """mamba_selective_scan takes no initial state (Unsupported); FINDING: at T = 0 it raises
    (torch.stack of an empty list) where the recurrence is the identity on the state."""
    import torch
    t = mam.mamba()
    rng = np.random.default_rng(17)
    with pytest.raises(Unsupported, match="initial state"):
        t.path("recurrent").run(mamba_case(rng, state=True))
    with pytest.raises(Unsupported, match="groups"):
        case = mamba_case(rng)
        t.path("recurrent").run(with_(case, inputs={**case.inputs, "B": np.repeat(case.inputs["B"], 2, 2)}))
    fn = mam._function(mam.MAMBA, "mamba_selective_scan")
    z = torch.zeros
    with pytest.raises(RuntimeError, match="stack expects a non-empty"):
        fn(z(B, 6, 0), z(B, 6, 0), -torch.ones(6, N), z(B, N, 0), z(B, N, 0), D=z(6),
           delta_bias=z(6), delta_softplus=True, return_last_state=True)
