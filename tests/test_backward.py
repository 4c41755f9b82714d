"""The generated backward (BPTT) against central finite differences of the generated forward, for
every built-in variant and for random user-defined cells; its API and errors; the symbolic
backward as printed."""
import numpy as np
import pytest
from hypothesis import assume, given, note, settings
from hypothesis import strategies as st

import rnnsym
from rnnsym.cells import parse_cell
from rnnsym.codegen.files import GENERATED, generated_cell
from rnnsym.gradients import backward_latex, backward_text
from rnnsym.testing.cells import cell_sizes
from tests.test_codegen_random_cells import cell_texts


def _problem(cell, sizes, T, B, rng, scale=1.0):
    table = rnnsym.shapes(cell)
    shapes = table.concrete(**{str(d): sizes[str(d)] for d in table.dims})
    params = {p: rng.uniform(-scale, scale, shapes[p]) for p in cell.params}
    x = rng.uniform(-1, 1, (T, B) + tuple(shapes[cell.inputs[0]]))
    state0 = {s: rng.uniform(-1, 1, (B,) + tuple(shapes[s])) for s in cell.states}
    return params, x, state0


def finite_differences(forward, params, x, state0, d_out, d_final, eps=1e-6):
    """Central differences of L = <outputs, d_out> + Σ <final_state[s], d_final[s]>."""
    def loss():
        out, final = forward(params, x, state0)
        return float((out * d_out).sum() + sum((final[s] * d_final[s]).sum() for s in final))

    def grad(arr):
        g = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            old = arr[idx]
            arr[idx] = old + eps
            up = loss()
            arr[idx] = old - eps
            down = loss()
            arr[idx] = old
            g[idx] = (up - down) / (2 * eps)
        return g
    return ({p: grad(v) for p, v in params.items()}, grad(x),
            {s: grad(v) for s, v in state0.items()})


def assert_close_normwise(got, want, tol, what):
    err = np.linalg.norm(np.ravel(got - want)) / (1 + np.linalg.norm(np.ravel(want)))
    assert err <= tol, f"{what}: normwise error {err:.2e} > {tol:.0e}"


def check_against_fd(cell, sizes, T, B, seed, tol=1e-7):
    rng = np.random.default_rng(seed)
    module = rnnsym.compile(cell)
    params, x, state0 = _problem(cell, sizes, T, B, rng)
    out, final, cache = module.forward(params, x, state0, return_cache=True)
    plain, plain_final = module.forward(params, x, state0)
    np.testing.assert_allclose(out, plain, rtol=1e-12, atol=1e-14)
    d_out = rng.standard_normal(out.shape)
    d_final = {s: rng.standard_normal(v.shape) for s, v in final.items()}
    d_params, d_x, d_state0 = module.backward(params, cache, d_out, d_final)
    want_p, want_x, want_s = finite_differences(module.forward, params, x, state0, d_out, d_final)
    for p in cell.params:
        assert d_params[p].shape == np.shape(params[p]), p
        assert_close_normwise(d_params[p], want_p[p], tol, f"d_params[{p!r}]")
    assert_close_normwise(d_x, want_x, tol, "d_x")
    for s in cell.states:
        assert_close_normwise(d_state0[s], want_s[s], tol, f"d_state0[{s!r}]")


@pytest.mark.parametrize("variant", sorted(GENERATED))
@settings(max_examples=3)
@given(data=st.data())
def test_every_builtin_backward_equals_finite_differences(variant, data):
    cell = generated_cell(variant)
    sizes = data.draw(cell_sizes(cell, max_value=4, max_T=3, max_B=2))   # distinct dimensions
    check_against_fd(cell, sizes, T=sizes["T"], B=sizes["B"], seed=data.draw(st.integers(0, 99)))


@settings(max_examples=100)
@given(case=cell_texts(), seed=st.integers(0, 2**16), T=st.integers(1, 3), B=st.integers(1, 2))
def test_random_user_cells_backward_equals_finite_differences(case, seed, T, B):
    text, states, readouts = case
    note(text)
    cell = parse_cell(text, states=states, readouts=readouts)
    assume(not rnnsym.shapes(cell).undetermined)
    check_against_fd(cell, {"d_h": 3, "d_in": 2, "d_out": 4}, T, B, seed)


def test_backward_keeps_float32_and_handles_zero_steps():
    module = rnnsym.compile(rnnsym.gru())
    rng = np.random.default_rng(1)
    params, x, state0 = _problem(rnnsym.gru(), {"d_in": 3, "d_h": 4}, 2, 3, rng)
    params32 = {k: v.astype(np.float32) for k, v in params.items()}
    out, _, cache = module.forward(params32, x.astype(np.float32), return_cache=True)
    d_params, d_x, d_state0 = module.backward(params32, cache, np.ones_like(out))
    assert d_x.dtype == np.float32 and all(v.dtype == np.float32 for v in d_params.values())
    assert d_state0["h"].dtype == np.float32
    empty = x[:0]
    out, final, cache = module.forward(params, empty, state0, return_cache=True)
    d_params, d_x, d_state0 = module.backward(params, cache, out, {"h": np.full((3, 4), 2.0)})
    assert d_x.shape == (0, 3, 3)
    np.testing.assert_array_equal(d_state0["h"], np.full((3, 4), 2.0))
    assert all(not v.any() for v in d_params.values())


def test_backward_names_a_wrong_upstream_gradient():
    module = rnnsym.compile(rnnsym.lstm())
    rng = np.random.default_rng(2)
    params, x, _ = _problem(rnnsym.lstm(), {"d_in": 3, "d_h": 4}, 2, 3, rng)
    out, _, cache = module.forward(params, x, return_cache=True)
    with pytest.raises(ValueError, match=r"d_outputs: expected shape \(T, B, d_h\) = \(2, 3, 4\), got \(2, 3, 5\)"):
        module.backward(params, cache, np.ones((2, 3, 5)))
    with pytest.raises(ValueError, match=r"d_final_state\['c'\]: expected shape \(B, d_h\) = \(3, 4\)"):
        module.backward(params, cache, out, {"c": np.ones((3, 5))})
    with pytest.raises(ValueError, match="unknown state"):
        module.backward(params, cache, out, {"q": np.ones((3, 4))})


def test_backward_equations_in_the_conventional_form():
    latex = backward_latex(rnnsym.elman())
    assert r"\delta a_{h,t} &= \delta h_{t} \odot \left(1 - h_{t} \odot h_{t}\right)" in latex
    assert r"\frac{\partial L}{\partial W_{hh}} &= \sum_{t} \delta a_{h,t} h_{t-1}^\top" in latex
    assert r"\delta_{t} h_{t-1} &= W_{hh}^\top \delta a_{h,t}" in latex
    text = backward_text(rnnsym.lstm(clip=3.0))
    assert "(abs(clip(W_xi @ x[t] + W_hi @ h[t-1] + b_xi + b_hi, 3.0)) < 3.0)" in text   # clip: 0 outside
    assert "d_next(c[t-1]) = dc[t] * f[t]" in text


def test_show_backward_from_the_command_line(capsys):
    from rnnsym.cli import main
    assert main(["show", "--define", "h = relu(W @ h + U @ x)", "--backward"]) == 0
    out = capsys.readouterr().out
    assert "da_h[t] = dh[t] * (h[t] > 0)" in out
    assert "dL/dW = sum_t(da_h[t] @ h[t-1].T)" in out
    assert main(["show", "gru", "--backward", "--latex"]) == 0
    assert r"\delta z_{t} &= \delta h_{t} \odot \left(h_{t-1} - n_{t}\right)" in capsys.readouterr().out
