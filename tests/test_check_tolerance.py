"""The tolerance model: scales with dtype, with sizes, and with how much T amplifies."""
import numpy as np

from rnnsym.conformance.oracle import oracle_flat
from rnnsym.conformance.tolerance import (backward_error_tolerance, explicit_tolerance, fan_in, gamma,
                                    unit_roundoff)
from rnnsym.frameworks import Config


def _tolerance(config, scale=1.0, seed=0):
    rng = np.random.default_rng(seed)
    from rnnsym.testing.strategies import canonical_param_shapes
    params = [[{k: scale * rng.uniform(-1, 1, s) for k, s in canonical_param_shapes(
        config.cell, {"d_in": config.d_in, "d_h": config.d_h}).items()}]]
    x = rng.uniform(-1, 1, (config.T, config.B, config.d_in))

    def run(p, xx, s, wrap=None):
        return oracle_flat(config, p, xx, s, wrap=wrap)

    expected = run(params, x, None)
    return backward_error_tolerance(config, run, params, x, None, expected), expected


def test_unit_roundoff_and_gamma():
    assert unit_roundoff("float32") == 2.0 ** -24 and unit_roundoff("float64") == 2.0 ** -53
    assert gamma(10, 2.0 ** -24) > 10 * 2.0 ** -24


def test_fan_in_counts_inputs_recurrence_and_biases():
    assert fan_in(Config("gru", T=2, B=3, d_in=4, d_h=5)) == 4 + 5 + 2
    assert fan_in(Config("gru", T=2, B=3, d_in=4, d_h=5, num_layers=2, bidirectional=True)) \
        == 10 + 5 + 2


def test_float64_tolerance_is_about_u_ratio_tighter():
    t32, _ = _tolerance(Config("gru", T=3, B=2, d_in=4, d_h=5, dtype="float32"))
    t64, _ = _tolerance(Config("gru", T=3, B=2, d_in=4, d_h=5, dtype="float64"))
    ratio = np.median(t32.arrays["output"] / t64.arrays["output"])
    assert 1e8 < ratio < 1e10, f"float32/float64 tolerance ratio={ratio:.3g}, should be ~5e8"


def test_tolerance_grows_with_T_when_the_recurrence_amplifies():
    short, _ = _tolerance(Config("elman", T=2, B=1, d_in=3, d_h=4, variant=(("activation", "identity"),)), scale=1.5)
    long, _ = _tolerance(Config("elman", T=8, B=1, d_in=3, d_h=4, variant=(("activation", "identity"),)), scale=1.5)
    assert long.arrays["h_n"].max() > 10 * short.arrays["h_n"].max()


def test_saturated_units_get_tight_tolerances():
    tol, expected = _tolerance(Config("elman", T=3, B=2, d_in=4, d_h=5), scale=40.0)
    saturated = np.abs(expected["output"]) > 1 - 1e-6
    assert saturated.sum() > 5
    assert tol.arrays["output"][saturated].max() < 1e-5


def test_explicit_tolerance():
    tol = explicit_tolerance({"output": np.array([1.0, -2.0])}, rtol=0.1, atol=0.01)
    assert np.allclose(tol.arrays["output"], [0.11, 0.21])
