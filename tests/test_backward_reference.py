"""The generated backward against two independent second opinions: the hand-written BPTT in
``rnnsym.reference`` (float64, normwise 1e-12) and torch autograd of ``nn.RNN/LSTM/GRU``."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import rnnsym
from rnnsym import reference
from rnnsym.codegen.files import GENERATED, generated_cell

#: variant -> (reference backward, its keyword options)
REFERENCES = {
    **{name: (reference.elman_backward, {"activation": opts["activation"]})
       for name, (_, opts) in GENERATED.items() if name.startswith("elman")},
    **{name: (reference.lstm_backward, opts) for name, (f, opts) in GENERATED.items()
       if name.startswith("lstm")},
    **{name: (reference.gru_backward, opts) for name, (f, opts) in GENERATED.items()
       if name.startswith("gru")},
}


@st.composite
def problems(draw, cell, min_T=0):
    """Distinct sizes, T (0..5), B (1..3), parameters, input, initial state and upstream
    gradients, all from one seed."""
    table = rnnsym.shapes(cell)
    dims = [str(d) for d in table.dims]
    values = draw(st.lists(st.integers(1, 6), min_size=len(dims), max_size=len(dims), unique=True))
    sizes = dict(zip(dims, values))
    if sizes.get("d_proj", 0) > sizes.get("d_h", 0):    # torch requires proj_size < hidden_size
        sizes["d_h"], sizes["d_proj"] = sizes["d_proj"], sizes["d_h"]
    T, B = draw(st.integers(min_T, 5)), draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from([0.3, 1.0, 3.0]))
    shapes = table.concrete(**sizes)
    params = {p: rng.uniform(-scale, scale, shapes[p]) for p in cell.params}
    x = rng.uniform(-2, 2, (T, B) + tuple(shapes["x"]))
    state0 = {s: rng.uniform(-1, 1, (B,) + tuple(shapes[s])) for s in cell.states}
    d_out = rng.standard_normal((T, B) + tuple(shapes[cell.output]))
    d_final = {s: rng.standard_normal((B,) + tuple(shapes[s])) for s in cell.states}
    return params, x, state0, d_out, d_final


def normwise(got, want):
    return np.linalg.norm(np.ravel(got - want)) / max(1.0, np.linalg.norm(np.ravel(want)))


def assert_same_gradients(got, want, tol, names):
    (gp, gx, gs), (wp, wx, ws) = got, want
    for k in names:
        assert np.shape(gp[k]) == np.shape(wp[k]), k
        assert normwise(gp[k], wp[k]) <= tol, f"d_params[{k!r}]: {normwise(gp[k], wp[k]):.1e}"
    assert normwise(gx, wx) <= tol, f"d_x: {normwise(gx, wx):.1e}"
    for s in gs:
        assert normwise(gs[s], ws[s]) <= tol, f"d_state0[{s!r}]: {normwise(gs[s], ws[s]):.1e}"


@pytest.mark.parametrize("variant", sorted(REFERENCES))
@settings(max_examples=10)
@given(data=st.data())
def test_generated_backward_equals_the_hand_written_one(variant, data):
    cell = generated_cell(variant)
    params, x, state0, d_out, d_final = data.draw(problems(cell))
    module = rnnsym.compile(cell)
    _, _, cache = module.forward(params, x, state0, return_cache=True)
    got = module.backward(params, cache, d_out, d_final)
    fn, opts = REFERENCES[variant]
    want = fn(params, x, state0, d_out, d_final, **{k: v for k, v in opts.items() if k != "readout"})
    assert_same_gradients(got, want, 1e-12, cell.params)


def test_a_wrong_hand_written_gradient_is_caught():
    """The comparison can fail: a reference GRU that forgets the bias gradient's per-step sum."""
    cell = rnnsym.gru()
    rng = np.random.default_rng(3)
    params = {k: rng.uniform(-1, 1, v) for k, v in rnnsym.shapes(cell).concrete(d_in=2, d_h=3).items()
              if k in cell.params}
    x = rng.uniform(-1, 1, (4, 2, 2))
    d_out = rng.standard_normal((4, 2, 3))
    module = rnnsym.compile(cell)
    _, _, cache = module.forward(params, x, return_cache=True)
    got = module.backward(params, cache, d_out)
    want = reference.gru_backward(params, x, None, d_out)
    want[0]["b_hz"] = want[0]["b_hz"] / 4          # counted once instead of per step
    with pytest.raises(AssertionError, match="b_hz"):
        assert_same_gradients(got, want, 1e-12, cell.params)


# --- torch autograd ----------------------------------------------------------------------------
def _torch_module(variant, params, d_in, d_h, d_proj=None):
    kind = variant.split("_")[0]
    if kind == "elman":
        m = torch.nn.RNN(d_in, d_h, nonlinearity=GENERATED[variant][1]["activation"])
        weights = {"weight_ih_l0": params["W_xh"], "weight_hh_l0": params["W_hh"],
                   "bias_ih_l0": params["b_h"], "bias_hh_l0": np.zeros_like(params["b_h"])}
    else:
        gates = "ifgo" if kind == "lstm" else "rzn"
        m = (torch.nn.LSTM(d_in, d_h, proj_size=d_proj or 0) if kind == "lstm"
             else torch.nn.GRU(d_in, d_h))
        weights = {f"{t}_l0": np.concatenate([params[f"{w}{g}"] for g in gates])
                   for t, w in (("weight_ih", "W_x"), ("weight_hh", "W_h"), ("bias_ih", "b_x"),
                                ("bias_hh", "b_h"))}
        if d_proj:
            weights["weight_hr_l0"] = params["W_hr"]
    m = m.double()
    with torch.no_grad():
        for k, v in weights.items():
            getattr(m, k).copy_(torch.from_numpy(v))
    return m


TORCH_VARIANTS = ["elman_tanh", "elman_relu", "lstm", "lstm_projection", "gru_reset_after"]


@pytest.mark.parametrize("variant", TORCH_VARIANTS)
@settings(max_examples=8)
@given(data=st.data())
def test_generated_backward_equals_torch_autograd(variant, data):
    cell = generated_cell(variant)
    params, x, state0, d_out, d_final = data.draw(problems(cell, min_T=1))  # torch needs T >= 1
    T, B, d_in = x.shape
    kind = variant.split("_")[0]
    d_h = params["W_hh" if kind == "elman" else "W_hi" if kind == "lstm" else "W_hr"].shape[0]
    d_proj = params["W_hr"].shape[0] if variant == "lstm_projection" else None
    m = _torch_module(variant, params, d_in, d_h, d_proj)
    xt = torch.from_numpy(x).requires_grad_()
    h0 = torch.from_numpy(state0["h"][None].copy()).requires_grad_()
    if kind == "lstm":
        c0 = torch.from_numpy(state0["c"][None].copy()).requires_grad_()
        out, (hn, cn) = m(xt, (h0, c0))
        loss = (out * torch.from_numpy(d_out)).sum() + (hn[0] * torch.from_numpy(d_final["h"])).sum() \
            + (cn[0] * torch.from_numpy(d_final["c"])).sum()
    else:
        out, hn = m(xt, h0)
        loss = (out * torch.from_numpy(d_out)).sum() + (hn[0] * torch.from_numpy(d_final["h"])).sum()
    loss.backward()
    module = rnnsym.compile(cell)
    _, _, cache = module.forward(params, x, state0, return_cache=True)
    d_params, d_x, d_state0 = module.backward(params, cache, d_out, d_final)
    g = {k: p.grad.numpy() for k, p in m.named_parameters()}
    assert normwise(d_x, xt.grad.numpy()) <= 1e-12
    assert normwise(d_state0["h"], h0.grad.numpy()[0]) <= 1e-12
    if kind == "lstm":
        assert normwise(d_state0["c"], c0.grad.numpy()[0]) <= 1e-12
    if kind == "elman":
        mine = {"weight_ih_l0": d_params["W_xh"], "weight_hh_l0": d_params["W_hh"],
                "bias_ih_l0": d_params["b_h"], "bias_hh_l0": d_params["b_h"]}
    else:
        gates = "ifgo" if kind == "lstm" else "rzn"
        mine = {f"{t}_l0": np.concatenate([d_params[f"{w}{gt}"] for gt in gates])
                for t, w in (("weight_ih", "W_x"), ("weight_hh", "W_h"), ("bias_ih", "b_x"),
                             ("bias_hh", "b_h"))}
        if d_proj:
            mine["weight_hr_l0"] = d_params["W_hr"]
    for k, v in g.items():
        assert normwise(mine[k], v) <= 1e-12, f"{k}: {normwise(mine[k], v):.1e}"


def test_bench_backward_runs_every_contender_on_the_same_problem():
    """``rnnsym bench --backward`` (no timing asserted): each contender computes the gradients."""
    from rnnsym import bench
    rng = np.random.default_rng(0)
    _, params = bench._params("gru", 3, 4, "float64", rng)
    x = rng.standard_normal((5, 2, 3))
    fns = bench.backward_contenders("gru", params, x)
    assert set(fns) == {"generated", "reference", "torch"}
    (dp, dx, _), (rp, rx, _) = fns["generated"](), fns["reference"]()
    np.testing.assert_allclose(dx, rx, rtol=1e-12, atol=1e-14)
    assert set(dp) == set(rp) == set(params)
    for name in params:        # the parameter gradients too, not only the input's
        np.testing.assert_allclose(dp[name], rp[name], rtol=1e-12, atol=1e-14, err_msg=name)
    np.testing.assert_allclose(fns["torch"]().numpy(), dx, rtol=1e-10, atol=1e-12)
    rows = bench.run(("elman",), [(3, 2, 4, 5)], ("float32",), repeats=1, use_torch=False,
                     backward=True)
    table = bench.format_rows(rows, backward=True)
    assert "gen/ref" in table.splitlines()[0] and "elman" in table.splitlines()[1]
