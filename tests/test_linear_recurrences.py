"""Cells with a matrix state (linear attention, GLA, DeltaNet, Gated DeltaNet, Mamba-1/2, mLSTM):
text form, derived shapes and their conflicts, LaTeX, and the generated modules against the
hand-written references (float64, 1e-12 normwise), finite differences and torch autograd of a
torch-written reference (tests/linear_torch_reference.py)."""
import numpy as np
import pytest
import torch
from hypothesis import given, note, settings
from hypothesis import strategies as st

import linear_torch_reference as tref
import rnnsym
from rnnsym import reference
from rnnsym.cells import builtin, make_cell, now, parse_cell, prev
from rnnsym.cells.nodes import Activation, Outer, RowScale, madd, mmul
from rnnsym.cli import main
from rnnsym.codegen.files import GENERATED_MATRIX, generated_cell
from rnnsym.shapes import ShapeConflict

TOL = 1e-12

#: the hand-written reference of each variant: (forward, backward), called (params, x, state0, ...)
_LA = {"linear_attention": ("linear", False), "gla": ("gated", False), "gla_decay_head": ("gated", False),
       "deltanet": ("delta", False), "deltanet_qk_l2norm": ("delta", True),
       "gated_deltanet": ("gated_delta", False), "gated_deltanet_decay_key": ("gated_delta", True)}


def references(name):
    if name in _LA:
        rule, l2 = _LA[name]
        if name == "gated_deltanet_decay_key":
            l2 = False
        kw = {"rule": rule, "qk_l2norm": l2}
        return (lambda p, x, s: reference.linear_attention_forward(p, x, s, **kw),
                lambda p, x, s, d, df: reference.linear_attention_backward(p, x, s, d, df, **kw))
    if name in ("mamba", "mamba2"):
        return reference.mamba_forward, reference.mamba_backward
    return reference.mlstm_forward, reference.mlstm_backward


def torch_forward(name, params, x, state0):
    if name in _LA:
        rule, l2 = _LA[name]
        return tref.attention(x, state0, rule, qk_l2norm=l2 and name != "gated_deltanet_decay_key")
    if name in ("mamba", "mamba2"):
        return tref.mamba(params, x, state0)
    return tref.mlstm(x, state0)


def problem(name, sizes, T, B, rng, with_state=True):
    """Random params, inputs and state of the derived shapes, in each gate's usual domain:
    log-decays g < 0, beta in (0, 1), Mamba's A < 0."""
    cell = generated_cell(name)
    shapes = rnnsym.shapes(cell).concrete(**sizes)
    params = {p: rng.standard_normal(shapes[p]) for p in cell.params}
    if "A" in params:
        params["A"] = -rng.uniform(0.2, 1.5, shapes["A"])
    x = {}
    for i in cell.inputs:
        shape = (T, B) + shapes[i]
        x[i] = {"g": -rng.uniform(0.02, 1.0, shape), "beta": rng.uniform(0.05, 1.0, shape)}.get(
            i, rng.standard_normal(shape))
    state0 = {s: rng.standard_normal((B,) + shapes[s]) for s in cell.states} if with_state else None
    return cell, params, x, state0


def assert_close(what, got, want, tol, ctx, floor=0.0):
    """Normwise: ‖got − want‖ ≤ tol·(‖want‖ + floor). A gradient is compared with ``floor`` the
    size of the upstream adjoints: mLSTM's ∂L/∂m is a sum of O(1) terms that cancel to ~1e-7
    (the output does not depend on the stabiliser but through eps), so its rounding error is
    relative to those terms, not to the tiny result."""
    __tracebackhide__ = True
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}.shape={got.shape}, but should be {want.shape} [{ctx}]"
    err, scale = np.linalg.norm((got - want).ravel()), np.linalg.norm(want.ravel()) + floor
    if not err <= tol * scale + 1e-300:
        i = np.unravel_index(np.argmax(np.abs(got - want)), want.shape) if want.size else ()
        raise AssertionError(f"{what}[{', '.join(map(str, i))}]={got[i]!r}, but should be {want[i]!r} "
                             f"(normwise error {err:.3g} > {tol:g}·{scale:.3g}) [{ctx}]")


@st.composite
def sizes_and_steps(draw, name):
    """Distinct dimensions (d_k != d_v, d_in != d_state), T from 0, a checkpoint interval."""
    dims = [str(d) for d in rnnsym.shapes(generated_cell(name)).dims]
    first = draw(st.integers(1, 4), label="first size")
    sizes = {d: first + 2 * k for k, d in enumerate(dims)}
    return sizes, draw(st.integers(0, 9), label="T"), draw(st.integers(1, 3), label="B"), \
        draw(st.integers(1, 4), label="CHECKPOINT")


def compiled(name, checkpoint):
    """The compiled module of a variant (the source of generated/NAME.py) with its CHECKPOINT
    set: it changes what the cache keeps and what the backward recomputes, never a result, so
    the shared module is left with it."""
    module = rnnsym.compile(generated_cell(name))
    module.CHECKPOINT = checkpoint
    return module


@pytest.mark.parametrize("name", list(GENERATED_MATRIX))
@settings(max_examples=15)
@given(data=st.data())
def test_generated_equals_reference_forward_and_backward(name, data):
    sizes, T, B, checkpoint = data.draw(sizes_and_steps(name))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="seed"))
    cell, params, x, state0 = problem(name, sizes, T, B, rng, data.draw(st.booleans(), label="state0"))
    module = compiled(name, checkpoint)
    ctx = f"{name}({sizes}, T={T}, B={B}, CHECKPOINT={checkpoint})"
    note(ctx)
    out, final, cache = module.forward(params, x, state0, return_cache=True)
    fwd, bwd = references(name)
    want_out, want_final = fwd(params, x, state0)
    assert_close("out", out, want_out, TOL, ctx)
    for s in cell.states:
        assert_close(f"final_state[{s!r}]", final[s], want_final[s], TOL, ctx)
    assert len(cache["checkpoints"]) == -(-T // checkpoint)      # not one state per step
    module.CHECKPOINT = checkpoint + 1          # the cache, not the module, says its interval
    d_out = rng.standard_normal(out.shape)
    d_final = {s: rng.standard_normal(v.shape) for s, v in final.items()}
    d_params, d_x, d_state0 = module.backward(params, cache, d_out, d_final)
    want_p, want_x, want_s = bwd(params, x, state0, d_out, d_final)
    floor = upstream(d_out, d_final)
    for p in cell.params:
        assert_close(f"d_params[{p!r}]", d_params[p], want_p[p], TOL, ctx, floor)
    for i in cell.inputs:
        assert_close(f"d_x[{i!r}]", d_x[i], want_x[i], TOL, ctx, floor)
    for s in cell.states:
        assert_close(f"d_state0[{s!r}]", d_state0[s], want_s[s], TOL, ctx, floor)


def upstream(d_out, d_final):
    """The size of the upstream adjoints (the floor of a gradient's tolerance)."""
    return float(np.sqrt(np.sum(d_out ** 2) + sum(np.sum(v ** 2) for v in d_final.values())))


@pytest.mark.parametrize("name", list(GENERATED_MATRIX))
@settings(max_examples=4)
@given(seed=st.integers(0, 2**16), T=st.integers(1, 4), B=st.integers(1, 2))
def test_backward_equals_finite_differences(name, seed, T, B):
    """The directional derivative along a random direction of every input, parameter and
    initial state, by central differences (float64, h = 1e-6), equals the backward's."""
    rng = np.random.default_rng(seed)
    sizes = {str(d): 2 + k for k, d in enumerate(rnnsym.shapes(generated_cell(name)).dims)}
    cell, params, x, state0 = problem(name, sizes, T, B, rng)
    module = compiled(name, 2)
    out, final, cache = module.forward(params, x, state0, return_cache=True)
    d_out = rng.standard_normal(out.shape)
    d_final = {s: rng.standard_normal(v.shape) for s, v in final.items()}
    grads = module.backward(params, cache, d_out, d_final)
    direction = [{k: rng.standard_normal(np.shape(v)) for k, v in part.items()}
                 for part in (params, x, state0)]

    def loss(h):
        p, xx, s = ({k: v + h * d[k] for k, v in part.items()}
                    for part, d in zip((params, x, state0), direction))
        o, f = module.forward(p, xx, s)
        return np.sum(o * d_out) + sum(np.sum(f[k] * d_final[k]) for k in f)

    fd = (loss(1e-6) - loss(-1e-6)) / 2e-6
    analytic = sum(np.sum(g[k] * d[k]) for g, d in zip(grads, direction) for k in d)
    assert abs(fd - analytic) <= 1e-6 * max(1.0, abs(analytic)), \
        f"directional derivative={analytic!r}, but should be {fd!r} [{name}({sizes}, T={T}, B={B})]"


@pytest.mark.parametrize("name", list(GENERATED_MATRIX))
@settings(max_examples=5)
@given(seed=st.integers(0, 2**16), T=st.integers(0, 5), B=st.integers(1, 3))
def test_backward_equals_torch_autograd(name, seed, T, B):
    rng = np.random.default_rng(seed)
    sizes = {str(d): 3 + k for k, d in enumerate(rnnsym.shapes(generated_cell(name)).dims)}
    cell, params, x, state0 = problem(name, sizes, T, B, rng)
    module = compiled(name, 3)
    out, final, cache = module.forward(params, x, state0, return_cache=True)
    d_out = rng.standard_normal(out.shape)
    d_final = {s: rng.standard_normal(v.shape) for s, v in final.items()}
    d_params, d_x, d_state0 = module.backward(params, cache, d_out, d_final)

    def leaf(a):
        return torch.tensor(a, dtype=torch.float64, requires_grad=True)

    tp, tx, ts = ({k: leaf(v) for k, v in part.items()} for part in (params, x, state0))
    t_out, t_final = torch_forward(name, tp, tx, ts)
    ctx = f"{name}({sizes}, T={T}, B={B})"
    assert_close("out", out, t_out.detach().numpy(), TOL, ctx + " vs torch")
    loss = (t_out * torch.tensor(d_out)).sum() + sum((t_final[s] * torch.tensor(d_final[s])).sum()
                                                    for s in cell.states)
    loss.backward()
    for what, got, want in (("d_params", d_params, tp), ("d_x", d_x, tx), ("d_state0", d_state0, ts)):
        for k, t in want.items():
            g = np.zeros(t.shape) if t.grad is None else t.grad.numpy()
            assert_close(f"{what}[{k!r}]", got[k], g, 1e-10, ctx + " vs torch autograd",
                         upstream(d_out, d_final))


def test_text_form_reads_as_the_builtin():
    """The issue's spelling, parsed, is Gated DeltaNet's equations; one number per head is
    declared with scalars=."""
    text = "S = exp(g) * S + beta * outer(k, v - transpose(exp(g) * S) @ k); o = 0.125 * transpose(S) @ q"
    cell = parse_cell(text, inputs=("q", "k", "v", "g", "beta"), readouts=("o",), scalars=("g", "beta"))
    assert cell.text() == builtin("gated_deltanet", scale=0.125).text()
    table = rnnsym.shapes(cell)
    assert table.shape("S") == table.shape("S") and len(table.shape("S")) == 2
    assert table.shape("beta") == (1,) and table.shape("g") == (1,)
    # without the declaration, g is a per-key decay (one per row of S)
    per_key = parse_cell(text, inputs=("q", "k", "v", "g", "beta"), readouts=("o",), scalars=("beta",))
    assert rnnsym.shapes(per_key).shape("g") == rnnsym.shapes(per_key).shape("k")
    mlstm = ("m = max(logsigmoid(f) + m, i); C = exp(logsigmoid(f) + m - m) * C + outer(k, v); "
             "h = transpose(C) @ q / max(abs(transpose(C) @ q), exp(-m))")
    assert "max(" in parse_cell(mlstm, inputs=("q", "k", "v", "i", "f"), readouts=("h",),
                                scalars=("i", "f", "m")).text()


@pytest.mark.parametrize("text, words", [
    ("S = S + outer(k); o = transpose(S) @ q", "outer(a, b)"),
    ("S = S + outer(k, v); o = transpose(S, q) @ q", "transpose(S)"),
    ("S = max(S) + outer(k, v); o = transpose(S) @ q", "max(a, b)"),
    ("S = S + outer(k, v); o = l2norm(q, k) @ q", "l2norm(u)"),
    ("S = S + outer(k, v); o = S.T @ q", "Attribute"),
])
def test_text_form_rejects_misspelled_calls(text, words):
    with pytest.raises(rnnsym.cells.DefinitionError, match=__import__("re").escape(words)):
        parse_cell(text, inputs=("q", "k", "v"), readouts=("o",))


def test_derived_shapes_of_the_builtins():
    def rows(name, **opts):
        return {n: s for n, _, s in rnnsym.shapes(builtin(name, **opts)).rows_table()}

    assert rows("gated_deltanet")["S"] == "d_k × d_v" and rows("gated_deltanet")["beta"] == "1"
    assert rows("gla")["g"] == "d_k" and rows("gla", decay="head")["g"] == "1"
    mamba = rows("mamba")
    assert (mamba["A"], mamba["h"], mamba["y"], mamba["B"]) == ("d_in × d_state", "d_in × d_state",
                                                                 "d_in", "d_state")
    mamba2 = rows("mamba2")
    assert (mamba2["A"], mamba2["h"], mamba2["dt"]) == ("1", "d_head × d_state", "1")
    ml = rows("mlstm")
    assert (ml["C"], ml["n"], ml["m"], ml["h"]) == ("d_k × d_v", "d_k", "1", "d_v")


def test_shape_conflicts_name_the_term_and_both_dimensions():
    import re
    S, q, k, v = prev("S"), now("q"), now("k"), now("v")
    # the query sized apart from the keys: S^T q cannot be formed
    bad_q = make_cell("bad", "bad", [("S", "state", madd(S, Outer(k, v))),
                                     ("o", "output", mmul(sp_transpose(now("S")), q))],
                      inputs=("q", "k", "v"), dim_names={"q": "d_q", "k": "d_k", "v": "d_v"})
    with pytest.raises(ShapeConflict, match=re.escape(
            "in the product transpose(S[t]) @ q[t], the columns of transpose(S[t]) must equal the "
            "rows of q[t]: would need d_k = d_q")):
        rnnsym.shapes(bad_q)
    # a decay with one entry per value column cannot scale the rows of S (k ⊗ v fixed them)
    decay = RowScale(Activation("exp", now("g")), S)
    dims = {"k": "d_k", "v": "d_v", "g": "d_v"}
    bad_g = make_cell("bad", "bad", [("S", "state", madd(Outer(k, v), decay))],
                      inputs=("k", "v", "g"), dim_names=dims)
    with pytest.raises(ShapeConflict, match=re.escape(
            "in exp(g[t]) * S[t-1], exp(g[t]) is broadcast over the columns of S[t-1] and must "
            "have its rows: would need d_v = d_k")):
        rnnsym.shapes(bad_g)
    # written the other way round, the decay fixes S's rows first and the outer product is named
    bad_order = make_cell("bad", "bad", [("S", "state", madd(decay, Outer(k, v)))],
                          inputs=("k", "v", "g"), dim_names=dims)
    with pytest.raises(ShapeConflict, match=re.escape(
            "the term outer(k[t], v[t]) must have the shape of S[t]: would need d_v = d_k")):
        rnnsym.shapes(bad_order)


def sp_transpose(m):
    import sympy
    return sympy.Transpose(m)


def test_latex_in_conventional_form():
    tex = builtin("gated_deltanet").latex()
    assert r"\beta_{t} \odot k_{t} \left(v_{t} - \left(\exp\left(g_{t}\right) \odot S_{t-1}\right)^{T} k_{t}\right)^{T}" in tex
    assert r"o_{t} &= \frac{1}{\sqrt{d_{k}}} S_{t}^{T} q_{t}" in tex
    assert r"\max\left(\log\sigma\left(f_{t}\right) + m_{t-1}, i_{t}\right)" in builtin("mlstm").latex()
    assert r"\left(\delta_{t} \odot u_{t}\right) B_{t}^{T}" in builtin("mamba").latex()


def test_command_line_shows_shapes_and_unrolls(capsys):
    assert main(["show", "gated_deltanet", "--latex"]) == 0
    assert r"\frac{1}{\sqrt{d_{k}}}" in capsys.readouterr().out
    assert main(["shapes", "mamba"]) == 0
    assert "h        state         d_in × d_state" in capsys.readouterr().out
    assert main(["unroll", "gla", "--steps", "2", "--text"]) == 0
    assert "S[2] = exp(g[2]) * S[1] + outer(k[2], v[2])" in capsys.readouterr().out
    assert main(["show", "gla", "--backward"]) == 0
    assert "dS_prev = _1[..., None] * d_2" in capsys.readouterr().out


def test_generated_module_names_a_wrong_input_and_keeps_float32():
    module = rnnsym.compile(generated_cell("gated_deltanet"))
    rng = np.random.default_rng(0)
    _, params, x, state0 = problem("gated_deltanet", {"d_k": 3, "d_v": 5}, 4, 2, rng)
    bad = dict(x, k=x["k"][:, :, :2])
    with pytest.raises(ValueError, match=r"x\['k'\]: expected shape \(T, B, d_k\) = \(4, 2, 3\), got \(4, 2, 2\)"):
        module.forward(params, bad, state0)
    with pytest.raises(ValueError, match=r"x\['beta'\]: expected shape \(T, B, 1\) = \(4, 2, 1\), got \(4, 2, 3\)"):
        module.forward(params, dict(x, beta=np.ones((4, 2, 3))), state0)
    with pytest.raises(ValueError, match=r"state0\['S'\]: expected shape \(B, d_k, d_v\) = \(2, 3, 5\)"):
        module.forward(params, x, {"S": np.zeros((2, 5, 3))})
    x32 = {k: v.astype(np.float32) for k, v in x.items()}
    out, final, cache = module.forward(params, x32, return_cache=True)
    assert out.dtype == np.float32 and final["S"].dtype == np.float32
    _, d_x, d_state0 = module.backward(params, cache, np.ones_like(out))
    assert all(v.dtype == np.float32 for v in (*d_x.values(), d_state0["S"]))
    chunked = rnnsym.compile(generated_cell("gla")).forward_chunked
    _, params, x, state0 = problem("gla", {"d_k": 3, "d_v": 5}, 4, 2, rng)
    out, final = chunked(params, {k: v.astype(np.float32) for k, v in x.items()}, chunk=3)
    assert out.dtype == np.float32 and final["S"].dtype == np.float32


def test_zero_steps_return_the_initial_state_and_pass_its_gradient_through():
    module = rnnsym.compile(generated_cell("mlstm"))
    rng = np.random.default_rng(1)
    _, params, x, state0 = problem("mlstm", {"d_k": 2, "d_v": 3}, 0, 2, rng)
    out, final, cache = module.forward(params, x, state0, return_cache=True)
    assert out.shape == (0, 2, 3)
    np.testing.assert_array_equal(final["C"], state0["C"])
    d_final = {s: rng.standard_normal(v.shape) for s, v in final.items()}
    _, d_x, d_state0 = module.backward(params, cache, out, d_final)
    for s in d_final:
        np.testing.assert_array_equal(d_state0[s], d_final[s])
    assert d_x["q"].shape == (0, 2, 2)


CHUNKED = ["linear_attention", "gla", "gla_decay_head", "mamba2"]


@pytest.mark.parametrize("name", CHUNKED)
@settings(max_examples=25)
@given(data=st.data())
def test_chunked_form_equals_the_sequential_form(name, data):
    """forward_chunked == forward (float64, 1e-12 normwise) for every chunk size and T, T not a
    multiple of the chunk included, decays from mild to strong (a chunk's cumulative log-decay
    down to about -2000: the stable form must not overflow) and hard resets (log-decay -inf)."""
    module = rnnsym.compile(generated_cell(name))
    sizes, _, B, _ = data.draw(sizes_and_steps(name))
    T = data.draw(st.integers(0, 70), label="T")
    chunk = data.draw(st.integers(1, 80), label="chunk")
    strength = data.draw(st.sampled_from([0.05, 1.0, 30.0]), label="decay strength")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="seed"))
    cell, params, x, state0 = problem(name, sizes, T, B, rng, data.draw(st.booleans(), label="state0"))
    if "g" in x:
        x["g"] = x["g"] * strength
        if T and data.draw(st.booleans(), label="hard resets"):
            # log-decay -inf at some steps (per key row where the decay is per key): the state
            # is forgotten; the chunked form must not form -inf - (-inf) = NaN
            x["g"][rng.random(x["g"].shape) < 0.15] = -np.inf
    if "A" in params:
        params["A"] = params["A"] * strength
    ctx = f"{name}({sizes}, T={T}, B={B}, chunk={chunk}, strength={strength})"
    out, final = module.forward(params, x, state0)
    got, got_final = module.forward_chunked(params, x, state0, chunk=chunk)
    assert_close("forward_chunked out", got, out, TOL, ctx)
    for s in cell.states:
        assert_close(f"forward_chunked final_state[{s!r}]", got_final[s], final[s], TOL, ctx)


def test_chunked_form_is_generated_for_the_decay_rules_only():
    assert all(hasattr(rnnsym.compile(generated_cell(n)), "forward_chunked") for n in CHUNKED)
    for name in ("deltanet", "gated_deltanet", "mamba", "mlstm"):
        assert not hasattr(rnnsym.compile(generated_cell(name)), "forward_chunked"), name
    module = rnnsym.compile(generated_cell("gla"))
    rng = np.random.default_rng(3)
    _, params, x, state0 = problem("gla", {"d_k": 2, "d_v": 3}, 3, 1, rng)
    with pytest.raises(ValueError, match=r"chunk: expected an integer >= 1, got 0"):
        module.forward_chunked(params, x, state0, chunk=0)


def test_a_text_cell_compiles_to_the_builtins_numbers():
    """The text form runs through the same generator: Mamba-1 written as text (A declared a
    matrix) gives the built-in's outputs and gradients."""
    text = "delta = softplus(dt + dt_bias); h = exp(delta * A) * h + outer(delta * u, B); y = h @ C + D * u"
    cell = parse_cell(text, inputs=("u", "dt", "B", "C"), readouts=("y",), matrices=("A",))
    mine, ref = rnnsym.compile(cell), rnnsym.compile(builtin("mamba"))
    rng = np.random.default_rng(4)
    _, params, x, state0 = problem("mamba", {"d_in": 3, "d_state": 5}, 6, 2, rng)
    out, final, cache = mine.forward(params, x, state0, return_cache=True)
    want, want_final, want_cache = ref.forward(params, x, state0, return_cache=True)
    assert_close("out", out, want, TOL, "text mamba")
    d_out = rng.standard_normal(out.shape)
    got_p, got_x, _ = mine.backward(params, cache, d_out)
    want_p, want_x, _ = ref.backward(params, want_cache, d_out)
    for p in params:
        assert_close(f"d_params[{p!r}]", got_p[p], want_p[p], TOL, "text mamba")
    for i in x:
        assert_close(f"d_x[{i!r}]", got_x[i], want_x[i], TOL, "text mamba")


@pytest.mark.parametrize("name", ["gla", "deltanet_qk_l2norm", "mamba2", "mlstm"])
def test_elementwise_unrolled_formulas_equal_the_generated_forward(name):
    """The scalar equations of `rnnsym unroll --form elementwise`, evaluated, give the generated
    numbers (every entry of S_t and o_t, two steps, B = 1)."""
    import sympy

    from rnnsym.unroll import unroll
    cell, steps = generated_cell(name), 2
    table = rnnsym.shapes(cell)
    dims = {str(d): v for d, v in zip(table.dims, (2, 3))}
    unrolled = unroll(cell, steps, "elementwise", dims)
    rng = np.random.default_rng(8)
    _, params, x, state0 = problem(name, dims, steps, 1, rng)
    values = {str(d): v for d, v in dims.items()}

    def entry(base, index):
        return f"{base}[{','.join(map(str, index))}]"
    values.update({entry(p, i): v[i] for p, v in params.items() for i in np.ndindex(v.shape)})
    values.update({entry(f"{k}[{t + 1}]", i): v[t, 0][i] for k, v in x.items()
                   for t in range(steps) for i in np.ndindex(v.shape[2:])})
    values.update({entry(f"{s}[0]", i): v[0][i] for s, v in state0.items() for i in np.ndindex(v.shape[1:])})
    for label, rhs in unrolled.equations:
        values[label] = float(rhs.xreplace({s: sympy.Float(values[s.name], 30)
                                            for s in rhs.free_symbols}).evalf(20))
    out, final = rnnsym.compile(cell).forward(params, x, state0)
    for t in range(steps):
        for i in range(out.shape[2]):
            got, want = out[t, 0, i], values[f"{cell.output}[{t + 1}][{i}]"]
            assert abs(got - want) <= 1e-12 * max(1.0, abs(want)), \
                f"out[{t}, 0, {i}]={got!r}, but should be {want!r} [{name}({dims})]"
    S = cell.states[0] if name != "mlstm" else "C"
    for i in np.ndindex(final[S].shape[1:]):
        want = values[entry(f"{S}[{steps}]", i)]
        assert abs(final[S][(0, *i)] - want) <= 1e-12 * max(1.0, abs(want)), f"final_state[{S!r}][0, {i}]"


@pytest.mark.parametrize("text", ["h = tanh(W @ h + x) * logsigmoid(U @ x)", "h = tanh(W @ h + log(U @ x))",
                                  "h = tanh(W @ h) + exp(U @ x)"])
def test_the_new_functions_in_a_vector_cell_have_gradients(text):
    """exp, log and logsigmoid in an ordinary (vector-state) cell: the vector generator's backward
    (their derivatives written from the output) equals central differences."""
    cell = parse_cell(text, dims=[("d_in", "d_h")])
    module = rnnsym.compile(cell)
    rng = np.random.default_rng(5)
    shapes = rnnsym.shapes(cell).concrete(d_h=3)
    params = {p: rng.uniform(0.1, 0.6, shapes[p]) for p in cell.params}
    x = rng.uniform(0.1, 1, (4, 2, 3))
    out, _, cache = module.forward(params, x, return_cache=True)
    d_out = rng.standard_normal(out.shape)
    d_params, _, _ = module.backward(params, cache, d_out)
    for p in cell.params:
        step = np.zeros_like(params[p])
        step[0, 1] = 1e-6
        fd = (np.sum(module.forward({**params, p: params[p] + step}, x)[0] * d_out)
              - np.sum(module.forward({**params, p: params[p] - step}, x)[0] * d_out)) / 2e-6
        assert abs(d_params[p][0, 1] - fd) <= 1e-6 * max(1, abs(fd)), f"d_params[{p!r}][0, 1] [{text}]"


def test_a_vector_cell_with_abs_or_max_runs_forward_and_says_why_there_is_no_backward():
    cell = parse_cell("h = max(W @ h, abs(U @ x))")
    module = rnnsym.compile(cell)
    shapes = rnnsym.shapes(cell).concrete(d_in=2, d_h=3)
    params = {p: np.ones(shapes[p]) for p in cell.params}
    x = -np.ones((2, 1, 2))
    out, _ = module.forward(params, x)
    np.testing.assert_array_equal(out, np.array([[[2.0, 2.0, 2.0]], [[6.0, 6.0, 6.0]]]))
    with pytest.raises(NotImplementedError, match=r"no backward rule for (Maximum|abs)"):
        module.forward(params, x, return_cache=True)
