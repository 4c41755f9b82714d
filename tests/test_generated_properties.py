"""Hypothesis: the checked-in generated modules compute what the hand-written references compute,
and satisfy properties that need no reference at all.

Tolerances (normwise, per output array: ``‖got − want‖ ≤ rtol·‖want‖ + atol``):
  float64 vs the float64 reference: rtol = 1e-12 (the two sum in different orders and fuse
  different GEMMs, so results differ by rounding only);
  float32 vs the float64 reference on the same float32-rounded inputs: rtol = 1e-4, magnitudes
  up to 1 (float32 rounding is ~6e-8 per operation; T ≤ 8 steps of a contracting recurrence).
"""
import importlib.util
from pathlib import Path

import numpy as np
import sympy as sp
import pytest
from hypothesis import given, note
from hypothesis import strategies as st

from rnnsym import reference
from rnnsym.codegen.files import GENERATED as GENERATED_CELLS
from rnnsym.codegen.files import generated_cell
from rnnsym.testing.cells import cell_inputs, cell_params, cell_sizes

GENERATED = Path(__file__).resolve().parents[1] / "generated"


def load(name):
    spec = importlib.util.spec_from_file_location(f"generated_{name}", GENERATED / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MODULES = {name: load(name) for name in GENERATED_CELLS}


#: the hand-written reference of each recent cell, called with the variant's options
RECENT = {"mingru": reference.mingru_forward, "minlstm": reference.minlstm_forward,
          "indrnn": reference.indrnn_forward, "sru": reference.sru_forward,
          "qrnn": reference.qrnn_forward, "lnlstm": reference.lnlstm_forward}


def reference_for(name):
    factory, opts = GENERATED_CELLS[name]
    if factory.__name__ in RECENT:
        return lambda p, x, s: RECENT[factory.__name__](p, x, s, **opts)
    if factory.__name__ == "elman":
        return lambda p, x, s: reference.elman_forward(p, x, s, activation=opts["activation"])
    if factory.__name__ == "lstm":
        kw = {k: opts.get(k, d) for k, d in (("peepholes", False), ("coupled", False),
                                             ("projection", False), ("clip", None))}
        return lambda p, x, s: reference.lstm_forward(p, x, s, **kw)
    return lambda p, x, s: reference.gru_forward(p, x, s, reset=opts["reset"])


def assert_close(name, got, want, rtol, atol=1e-300, context=""):
    __tracebackhide__ = True
    err = np.linalg.norm((got.astype(np.float64) - want).ravel())
    scale = np.linalg.norm(want.ravel())
    if not err <= rtol * scale + atol:
        i = np.unravel_index(np.argmax(np.abs(got - want)), want.shape) if want.size else ()
        raise AssertionError(f"{name}[{', '.join(map(str, i))}]={got[i]!r}, but should be {want[i]!r} "
                             f"(normwise error {err:.3g} > {rtol:g}·{scale:.3g}) [{context}]")


@st.composite
def case(draw, name, dtype=np.float64, magnitudes=None):
    cell = generated_cell(name)
    sizes = draw(cell_sizes(cell), label="sizes")
    kw = {} if magnitudes is None else {"magnitudes": magnitudes}
    params = draw(cell_params(cell, sizes, dtype, **kw), label="params")
    zeroed = draw(st.sets(st.sampled_from(cell.params), max_size=3), label="exact zeros")
    for p in zeroed:
        params[p] = np.zeros_like(params[p])
    x, state0 = draw(cell_inputs(cell, sizes, dtype, **kw), label="x, state0")
    if draw(st.booleans(), label="omit state0"):
        state0 = None
    return sizes, params, x, state0


#: magnitudes (weights and inputs) where a variant's float64 result is defined: minLSTM's
#: f / (f + i) is 0 / 0 once both sigmoids underflow (pre-activations below about -745), as in
#: the paper's sequential mode (its log-space mode avoids that)
MAGNITUDES = {"minlstm": (1.0, 0.1, 3.0)}


@pytest.mark.parametrize("name", list(GENERATED_CELLS))
@given(data=st.data())
def test_generated_equals_reference_float64(name, data):
    sizes, params, x, state0 = data.draw(case(name, magnitudes=MAGNITUDES.get(name)))
    note(f"sizes={sizes}")
    out, state = MODULES[name].forward(params, x, state0)
    want_out, want_state = reference_for(name)(params, x, state0)
    ctx = f"{name}({sizes})"
    assert_close("out", out, want_out, 1e-12, context=ctx)
    for s in want_state:
        assert_close(f"state[{s!r}]", state[s], want_state[s], 1e-12, context=ctx)


@pytest.mark.parametrize("name", ["elman_tanh_readout", "lstm_peepholes_coupled_clip",
                                  "lstm_projection", "gru_reset_after", "gru_reset_before",
                                  "minlstm", "qrnn_fo", "lnlstm"])
@given(data=st.data())
def test_generated_float32_within_documented_tolerance(name, data):
    sizes, params, x, state0 = data.draw(case(name, np.float32, magnitudes=(1.0, 0.1)))
    out, state = MODULES[name].forward(params, x, state0)
    assert out.dtype == np.float32 and all(v.dtype == np.float32 for v in state.values())
    p64 = {k: v.astype(np.float64) for k, v in params.items()}
    s64 = None if state0 is None else {k: v.astype(np.float64) for k, v in state0.items()}
    want_out, want_state = reference_for(name)(p64, x.astype(np.float64), s64)
    assert_close("out", out, want_out, 1e-4, atol=1e-30, context=f"{name}({sizes}) float32")


# --- metamorphic properties: no reference needed -----------------------------------------------
@pytest.mark.parametrize("name", ["elman_relu_readout", "lstm_peepholes", "gru_reset_before"])
@given(data=st.data())
def test_running_in_two_pieces_equals_running_at_once(name, data):
    sizes, params, x, state0 = data.draw(case(name))
    k = data.draw(st.integers(0, sizes["T"]), label="k")
    m = MODULES[name]
    out, state = m.forward(params, x, state0)
    out1, mid = m.forward(params, x[:k], state0)
    out2, end = m.forward(params, x[k:], mid)
    # equal up to rounding: BLAS may block a (k·B)-row input GEMM differently from a (T·B)-row one
    assert_close("out", np.concatenate([out1, out2]), out, 1e-12, context=f"{name}({sizes}), k={k}")
    for s in state:
        assert_close(f"state[{s!r}]", end[s], state[s], 1e-12, context=f"{name}({sizes}), k={k}")


@pytest.mark.parametrize("name", ["elman_tanh", "lstm_projection", "gru_reset_after"])
@given(data=st.data())
def test_permuting_the_batch_permutes_the_outputs(name, data):
    sizes, params, x, state0 = data.draw(case(name))
    perm = np.array(data.draw(st.permutations(range(sizes["B"])), label="perm"))
    m = MODULES[name]
    out, state = m.forward(params, x, state0)
    s_perm = None if state0 is None else {k: v[perm] for k, v in state0.items()}
    out_p, state_p = m.forward(params, x[:, perm], s_perm)
    ctx = f"{name}({sizes}), perm={perm.tolist()}"
    assert_close("out", out_p, out[:, perm], 1e-12, context=ctx)
    for s in state:
        assert_close(f"state[{s!r}]", state_p[s], state[s][perm], 1e-12, context=ctx)


@given(data=st.data(), a=st.floats(-2, 2), b=st.floats(-2, 2))
def test_identity_elman_is_linear_in_initial_state_and_inputs(data, a, b):
    name = "elman_identity_readout"
    sizes, params, x, state0 = data.draw(case(name, magnitudes=(1.0, 0.5)))
    params = dict(params, b_h=np.zeros_like(params["b_h"]), b_y=np.zeros_like(params["b_y"]))
    x2, s2 = data.draw(cell_inputs(generated_cell(name), sizes, magnitudes=(1.0, 0.5)), label="x2")
    h0 = (state0 or {"h": np.zeros((sizes["B"], sizes["d_h"]))})["h"]
    h0b = s2["h"]
    f = MODULES[name].forward
    lhs, _ = f(params, a * x + b * x2, {"h": a * h0 + b * h0b})
    rhs = a * f(params, x, {"h": h0})[0] + b * f(params, x2, {"h": h0b})[0]
    assert_close("out", lhs, rhs, 1e-9, atol=1e-9, context=f"{name}({sizes}), a={a}, b={b}")


@pytest.mark.parametrize("name", ["elman_sigmoid_readout", "lstm_peepholes_coupled_clip",
                                  "lstm_projection", "gru_reset_before", "gru_reset_after"])
def test_elementwise_unrolled_formulas_equal_the_generated_forward(name):
    """The symbolic core's scalar equations, evaluated numerically, give the generated numbers."""
    from rnnsym.unroll import unroll
    cell, steps = generated_cell(name), 3
    dims = {str(d): v for d, v in zip(__import__("rnnsym").shapes(cell).dims, (3, 2, 1))}
    unrolled = unroll(cell, steps, "elementwise", dims)
    shapes = __import__("rnnsym").shapes(cell).concrete(**dims)
    rng = np.random.default_rng(7)
    params = {p: rng.uniform(-2, 2, shapes[p]) for p in cell.params}
    x = rng.uniform(-2, 2, (steps, 1, dims["d_in"]))
    state0 = {s: rng.uniform(-1, 1, (1,) + shapes[s]) for s in cell.states}
    values = {f"{k}[{','.join(map(str, i))}]": v[i] for k, v in params.items() for i in np.ndindex(v.shape)}
    values.update({f"x[{t + 1}][{i}]": x[t, 0, i] for t in range(steps) for i in range(dims["d_in"])})
    values.update({f"{s}[0][{i}]": v[0, i] for s, v in state0.items() for i in range(v.shape[1])})
    for label, rhs in unrolled.equations:
        values[label] = float(rhs.xreplace({s: sp.Float(values[s.name], 30) for s in rhs.free_symbols}).evalf(20))
    out, state = MODULES[name].forward(params, x, state0)
    for t in range(steps):
        for i in range(out.shape[2]):
            got, want = out[t, 0, i], values[f"{cell.output}[{t + 1}][{i}]"]
            assert abs(got - want) <= 1e-12 * max(1.0, abs(want)), \
                f"out[{t}, 0, {i}]={got!r}, but should be {want!r} [{name}({dims})]"
