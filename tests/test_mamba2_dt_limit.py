"""The ``dt_limit`` option of the mamba2 cell: Δ = clamp(softplus(dt + dt_bias), lo, hi), as
mamba_ssm's ``mamba_chunk_scan_combined`` and transformers' ``mamba2_chunk_scan`` take it."""
import math

import numpy as np
import pytest

import rnnsym
from rnnsym.cells import builtin


def _problem(rng, T=5, B=2, P=3, N=4, dt_scale=2.0):
    params = {"A": -rng.uniform(0.5, 2, (1,)), "D": rng.normal(size=(1,)), "dt_bias": rng.normal(size=(1,))}
    x = {"x": rng.normal(size=(T, B, P)), "dt": dt_scale * rng.normal(size=(T, B, 1)),
         "B": rng.normal(size=(T, B, N)), "C": rng.normal(size=(T, B, N))}
    return params, x, {"h": rng.normal(size=(B, P, N))}


def _softplus_inv(y):
    return math.log(math.expm1(y))


def test_default_is_the_unclamped_cell_and_no_bound_binds():
    assert builtin("mamba2").options.get("dt_limit") is None
    rng = np.random.default_rng(0)
    params, x, s0 = _problem(rng)
    plain = rnnsym.compile(builtin("mamba2")).forward(params, x, s0)
    loose = rnnsym.compile(builtin("mamba2", dt_limit=(0.0, math.inf))).forward(params, x, s0)
    np.testing.assert_array_equal(plain[0], loose[0])


@pytest.mark.parametrize("limit", [(0.3, 0.8), (0.0, 0.1), (0.001, math.inf)])
def test_clamp_equals_the_cell_on_a_preclamped_dt(limit):
    """softplus is increasing: clamp(softplus(u), lo, hi) = softplus(clamp(u, sp⁻¹(lo), sp⁻¹(hi)))."""
    rng = np.random.default_rng(1)
    params, x, s0 = _problem(rng)
    x["dt"][0] = -10.0                      # softplus(-10 + dt_bias) < 0.001: a lower bound binds
    lo, hi = limit
    u = x["dt"] + params["dt_bias"]
    if lo > 0:
        u = np.maximum(u, _softplus_inv(lo))
    if hi < math.inf:
        u = np.minimum(u, _softplus_inv(hi))
    want, want_final = rnnsym.compile(builtin("mamba2")).forward(params, {**x, "dt": u - params["dt_bias"]}, s0)
    got, got_final = rnnsym.compile(builtin("mamba2", dt_limit=limit)).forward(params, x, s0)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got_final["h"], want_final["h"], rtol=1e-12, atol=1e-12)
    # and the clamp binds in this case (it is not a no-op test)
    plain, _ = rnnsym.compile(builtin("mamba2")).forward(params, x, s0)
    assert np.abs(plain - got).max() > 1e-3


def test_clamped_backward_equals_finite_differences():
    """The gradient through the clamp: zero where a bound binds, softplus' where not."""
    rng = np.random.default_rng(2)
    params, x, s0 = _problem(rng, T=3, B=1, P=2, N=2)
    module = rnnsym.compile(builtin("mamba2", dt_limit=(0.3, 0.8)))
    out, final, cache = module.forward(params, x, s0, return_cache=True)
    d_out = rng.normal(size=out.shape)
    d_final = {"h": rng.normal(size=final["h"].shape)}
    d_params, d_x, d_s0 = module.backward(params, cache, d_out, d_final)

    def loss():
        o, f = module.forward(params, x, s0)
        return float((o * d_out).sum() + (f["h"] * d_final["h"]).sum())
    for name, arr, got in [("dt", x["dt"], d_x["dt"]), ("dt_bias", params["dt_bias"], d_params["dt_bias"]),
                           ("x", x["x"], d_x["x"])]:
        fd = np.zeros_like(arr)
        for i in np.ndindex(arr.shape):
            old = arr[i]
            arr[i] = old + 1e-6
            up = loss()
            arr[i] = old - 1e-6
            fd[i] = (up - loss()) / 2e-6
            arr[i] = old
        np.testing.assert_allclose(got, fd, rtol=1e-6, atol=1e-7, err_msg=f"d_{name}")
    assert (d_x["dt"] == 0).any() and (d_x["dt"] != 0).any()   # some steps clamped, some not


@pytest.mark.parametrize("bad,match", [((0.5, 0.1), "lo < hi"), ("x", "pair"), ((1,), "pair")])
def test_bad_dt_limit_is_named(bad, match):
    with pytest.raises(ValueError, match=match):
        builtin("mamba2", dt_limit=bad)
