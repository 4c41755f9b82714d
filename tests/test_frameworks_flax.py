"""Flax (linen and nnx) <-> canonical converters, the GRU hidden_bias variants, and the flax
checker targets (CPU jax)."""
import jax
import numpy as np
import pytest
from flax import linen, nnx

import rnnsym
from rnnsym.conformance.oracle import oracle_flat, oracle_forward
from flax.linen.recurrent import DenseParams

from rnnsym.frameworks import Config, canonical_param_shapes
from rnnsym.frameworks.flax import (CLASS_CELLS, FlaxHarness, canonical_to_flax,
                                    flax_param_shapes, flax_to_canonical)
from rnnsym.reference import gru_forward
from rnnsym.testing.assertions import assert_allclose

CLASSES = [(api, name) for api in ("linen", "nnx") for name in CLASS_CELLS]
MODULES = {"linen": linen, "nnx": nnx}


def _values(shapes, seed=0):
    rng = np.random.default_rng(seed)
    return {k: rng.uniform(-1, 1, s) for k, s in shapes.items()}


def _flax_shapes_of(api, name, d_in, d_h):
    """What Flax itself creates: {path: shape}."""
    cls = getattr(MODULES[api], name)
    if api == "linen":
        x = np.zeros((2, d_in), np.float32)
        cell = cls(features=d_h)
        carry = cell.initialize_carry(jax.random.key(0), x.shape)
        tree = jax.eval_shape(cell.init, jax.random.key(0), carry, x)["params"]
    else:
        tree = nnx.to_pure_dict(nnx.state(nnx.eval_shape(lambda: cls(d_in, d_h,
                                                                      rngs=nnx.Rngs(0))),
                                          nnx.Param))

    def flat(t, prefix=""):
        out = {}
        for k, v in t.items():
            out.update(flat(v, f"{prefix}{k}/") if isinstance(v, dict) else
                       {f"{prefix}{k}": tuple(v.shape)})
        return out
    return flat(tree)


@pytest.mark.parametrize("api,name", CLASSES)
def test_param_shapes_match_flax(api, name):
    want = _flax_shapes_of(api, name, 3, 4)
    got = flax_param_shapes(api, name, input_size=3, features=4)
    assert got == want, f"flax_param_shapes={got}, but should be {want} [{api}.{name}]"


@pytest.mark.parametrize("api,name", CLASSES)
def test_round_trip_flax_canonical_flax_is_exact(api, name):
    values = _values(flax_param_shapes(api, name, input_size=3, features=4))
    back = canonical_to_flax(api, name, flax_to_canonical(api, name, values))
    assert sorted(back) == sorted(values)
    for k in values:
        assert_allclose(k, back[k], values[k], rtol=0, atol=0, call=f"{api}.{name}")


def test_gru_blocks_and_biases():
    p = _values(canonical_param_shapes("gru", {"d_in": 3, "d_h": 4}))
    fused = canonical_to_flax("linen", "GRUCell", {**p, "b_hn": p["b_hn"]})
    assert_allclose("ir/bias", fused["ir/bias"], p["b_xr"] + p["b_hr"], rtol=1e-15, atol=0)
    assert_allclose("hn/bias", fused["hn/bias"], p["b_hn"], rtol=0, atol=0)
    nnx_p = canonical_to_flax("nnx", "GRUCell", {**p, "b_hn": 0 * p["b_hn"]})
    assert_allclose("dense_i/kernel[:, z block]", nnx_p["dense_i/kernel"][:, 4:8], p["W_xz"].T,
                    rtol=0, atol=0)
    with pytest.raises(ValueError, match="no recurrent bias b_hn"):
        canonical_to_flax("nnx", "GRUCell", p)


@pytest.mark.parametrize("hidden_bias,zeroed", [("n", ("b_hr", "b_hz")),
                                                ("none", ("b_hr", "b_hz", "b_hn"))])
def test_gru_hidden_bias_variant_is_torch_gru_without_those_biases(hidden_bias, zeroed):
    p = _values(canonical_param_shapes("gru", {"d_in": 3, "d_h": 4}), seed=1)
    x = np.random.default_rng(2).uniform(-2, 2, (5, 2, 3))
    mine = {k: v for k, v in p.items() if k not in zeroed}
    got, _ = oracle_forward("gru", reset="after", hidden_bias=hidden_bias)(mine, x)
    want, _ = gru_forward({**p, **{k: 0 * p[k] for k in zeroed}}, x)
    assert_allclose("outputs", got, want, rtol=1e-12, atol=1e-12, call=f"gru({hidden_bias})")
    with_b, _ = gru_forward(p, x)
    assert np.abs(with_b - want).max() > 1e-3, "the zeroed biases must matter in this example"


@pytest.mark.parametrize("api,name", CLASSES)
def test_every_class_runs_like_the_oracle(api, name):
    cell = CLASS_CELLS[name]
    harness = FlaxHarness(getattr(MODULES[api], name), api, cell)
    # two directions cost a second compile: one class per API takes them
    both = (api, name) in (("linen", "LSTMCell"), ("nnx", "GRUCell"))
    config = Config(cell=cell, T=3, B=2, d_in=4, d_h=5, bidirectional=both, initial_state=True,
                    batch_first=api == "nnx",
                    variant=(("hidden_bias", "n" if api == "linen" else "none"),)
                    if cell == "gru" else ())
    values = _values(harness.param_shapes(config), seed=3)
    x = np.random.default_rng(4).uniform(-1, 1, (3, 2, 4))
    rng = np.random.default_rng(5)
    state0 = {k: rng.uniform(-1, 1, (1, config.D, 2, 5)) for k in (("h", "c") if cell == "lstm"
                                                            else ("h",))}
    got = harness.run(config, values, x, state0)
    want = oracle_flat(config, harness.to_canonical(config, values), x, state0)
    for k in want:
        assert_allclose(k, got[k], want[k], rtol=1e-5, atol=1e-5, call=f"{api}.{name}")


def test_nnx_gru_is_not_torch_gru_and_the_checker_says_why():
    own = rnnsym.check("flax-nnx", cell="gru", examples=4, seed=2)
    assert own.passed, str(own)
    claimed = rnnsym.check("flax-nnx", cell="gru", examples=20, seed=2,
                           variant="hidden_bias=rzn")
    assert not claimed.passed
    assert "b_hn missing" in claimed.diagnosis and "google/flax#5594" in claimed.diagnosis


class FusedGRUCell(linen.GRUCell):
    """Correct but unusual: one fused matmul per operand on Flax's own parameter names, and
    the update written as n + z * (h - n)."""

    flipped: bool = False

    @linen.compact
    def __call__(self, carry, inputs):
        h, u, jnp = carry, carry.shape[-1], jax.numpy
        p = {}
        for name, operand, bias in [(f"{io}{g}", inputs if io == "i" else h,
                                     io == "i" or g == "n") for io in "ih" for g in "rzn"]:
            p[f"{name}/kernel"], p[f"{name}/bias"] = DenseParams(u, use_bias=bias,
                                                                 name=name)(operand)
        gx = inputs @ jnp.concatenate([p[f"i{g}/kernel"] for g in "rzn"], axis=1) \
            + jnp.concatenate([p[f"i{g}/bias"] for g in "rzn"])
        gh = h @ jnp.concatenate([p[f"h{g}/kernel"] for g in "rzn"], axis=1)
        r = jax.nn.sigmoid(gx[..., :u] + gh[..., :u])
        z = jax.nn.sigmoid(gx[..., u:2 * u] + gh[..., u:2 * u])
        n = jnp.tanh(gx[..., 2 * u:] + r * (gh[..., 2 * u:] + p["hn/bias"]))
        new = z * n + (1 - z) * h if self.flipped else n + z * (h - n)
        return new, new


class FlippedGRUCell(FusedGRUCell):
    """Broken: h' = z*n + (1-z)*h."""

    flipped: bool = True


def test_unusual_flax_cell_passes_and_broken_one_fails():
    ok = rnnsym.check(FusedGRUCell, cell="gru", examples=4, seed=3)
    assert ok.passed, str(ok)
    broken = rnnsym.check(FlippedGRUCell, cell="gru", examples=20, seed=3)
    assert not broken.passed
    assert "update rule flipped" in broken.diagnosis, str(broken)


FLAX_BROKEN = str(__import__("pathlib").Path(__file__).parent / "broken" / "flax_cells.py")


@pytest.mark.parametrize("target,cell", [("flax", "gru"), ("flax", "elman"),
                                         ("flax-nnx", "lstm"), ("flax-nnx", "gru"),
                                         ("flax.linen:OptimizedLSTMCell", "lstm")])
def test_flax_gradients_pass_in_both_directions(target, cell):
    """jax.vjp of the jitted RNN / Bidirectional against the generated backward; the fused
    OptimizedLSTMCell (another way of computing LSTMCell) too."""
    report = rnnsym.check(target, cell, examples=8, seed=1, gradients=True)
    assert report.passed, report.format()
    assert report.coverage["bidirectional"] == [False, True], report.format()


@pytest.mark.parametrize("name,cell", [("GRUStateDetached", "gru"),
                                       ("LSTMStateDetached", "lstm")])
def test_flax_cell_with_a_detached_carry_fails_only_in_gradients(name, cell):
    assert rnnsym.check(f"{FLAX_BROKEN}:{name}", cell, examples=5, seed=1).passed
    report = rnnsym.check(f"{FLAX_BROKEN}:{name}", cell, examples=20, seed=1, gradients=True)
    assert not report.passed and report.failure_kind == "wrong gradients", report.format()
    assert "state detached before every step" in report.diagnosis, report.format()


def test_flax_gradients_under_the_torch_claim_are_a_usage_error():
    with pytest.raises(rnnsym.conformance.UsageError, match="hidden_bias=rzn"):
        rnnsym.check("flax", "gru", examples=5, seed=1, gradients=True,
                     variant="hidden_bias=rzn")


@pytest.mark.parametrize("target,cell", [("flax", "gru"), ("flax-nnx", "lstm")])
def test_flax_seq_lengths_forward_and_gradients(target, cell, monkeypatch):
    """seq_lengths (last valid carry, reverse direction flipped within each length) passes,
    outputs and gradients; an RNN that is not given the lengths is caught and diagnosed."""
    # every example is a new shape, so a new jit compilation: 15 / 10 examples keep this test
    # near 20 s and still draw lengths (the coverage assertion says so)
    for gradients, examples in ((False, 15), (True, 10)):
        report = rnnsym.check(target, cell, examples=examples, seed=2, gradients=gradients)
        assert report.passed, report.format()
        assert "seq_lengths" in report.coverage["lengths"], report.format()
    import rnnsym.frameworks.flax as flax_harness_module
    monkeypatch.setattr(flax_harness_module, "_lengths", lambda lengths: None)
    # (in-process: the patch is in this process, a worker would build the unpatched harness)
    report = rnnsym.check(target, cell, examples=40, seed=2, in_process=True)
    assert not report.passed and report.counterexample.lengths is not None, report.format()
    assert "lengths ignored" in report.diagnosis, report.format()
