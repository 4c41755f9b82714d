"""Generated code for cells with several inputs and several readouts: the canonical convention
(``x`` a dict of inputs, ``outputs`` a dict of readouts) and its errors; one input and one
readout keep ``forward(params, x, state0) -> (array, state)``."""
import numpy as np
import pytest

import rnnsym
from rnnsym.cells import parse_cell

TWO_IN_TWO_OUT = parse_cell("h = tanh(W @ h + U @ x + V @ u + b); y = A @ h; z = layernorm(h) * u",
                            inputs=["x", "u"], readouts=["y", "z"], dims=[("d_u", "d_h"), ("d_z", "d_h")])
SIZES = {"d_in": 2, "d_h": 3, "d_out": 4, "T": 5, "B": 2}


def _params(rng):
    shapes = rnnsym.shapes(TWO_IN_TWO_OUT).concrete(d_in=2, d_h=3, d_out=4)
    return {p: rng.standard_normal(shapes[p]) for p in TWO_IN_TWO_OUT.params}


def _by_hand(p, x, u, h):
    ys, zs = [], []
    for t in range(x.shape[0]):
        h = np.tanh(h @ p["W"].T + x[t] @ p["U"].T + u[t] @ p["V"].T + p["b"])
        d = h - h.mean(axis=1, keepdims=True)
        ys.append(h @ p["A"].T)
        zs.append(d / np.sqrt((d * d).mean(axis=1, keepdims=True) + 1e-5) * u[t])
    return np.array(ys), np.array(zs), h


def test_several_inputs_and_readouts_are_dicts():
    rng = np.random.default_rng(0)
    p = _params(rng)
    x, u, h0 = rng.standard_normal((5, 2, 2)), rng.standard_normal((5, 2, 3)), rng.standard_normal((2, 3))
    m = rnnsym.compile(TWO_IN_TWO_OUT)
    assert m.INPUT_SHAPES == {"x": ("d_in",), "u": ("d_h",)}
    assert m.OUTPUT_SHAPES == {"y": ("d_out",), "z": ("d_h",)}
    outputs, state = m.forward(p, {"x": x, "u": u}, {"h": h0})
    y, z, h = _by_hand(p, x, u, h0)
    assert set(outputs) == {"y", "z"}
    np.testing.assert_allclose(outputs["y"], y, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(outputs["z"], z, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(state["h"], h, rtol=1e-12, atol=1e-14)
    # one step takes a dict of (B, d) inputs
    np.testing.assert_allclose(m.step(p, {"x": x[0], "u": u[0]}, {"h": h0})["h"],
                               _by_hand(p, x[:1], u[:1], h0)[2], rtol=1e-12)
    # float32 inputs stay float32, in every output
    out32, st32 = m.forward(p, {"x": x.astype(np.float32), "u": u.astype(np.float32)})
    assert {a.dtype for a in (*out32.values(), *st32.values())} == {np.dtype(np.float32)}
    # T = 0: empty outputs, the initial state
    out0, st0 = m.forward(p, {"x": x[:0], "u": u[:0]}, {"h": h0})
    assert out0["y"].shape == (0, 2, 4) and out0["z"].shape == (0, 2, 3)
    np.testing.assert_array_equal(st0["h"], h0)


@pytest.mark.parametrize("x, error, message", [
    (lambda x, u: x, TypeError, r"x must be a dict of the inputs x, u \(each \(T, B, d\)\), got ndarray"),
    (lambda x, u: {"x": x}, ValueError, r"x: missing input\(s\) u; unknown input\(s\)  \(expected x, u\)"),
    (lambda x, u: {"x": x, "u": u, "v": u}, ValueError, r"unknown input\(s\) v"),
    (lambda x, u: {"x": x, "u": u[:, :, :2]}, ValueError,
     r"x\['u'\]: expected shape \(T, B, d_h\) = \(5, 2, 3\), got \(5, 2, 2\)"),
    (lambda x, u: {"x": x, "u": u[:4]}, ValueError,
     r"x\['u'\]: expected shape \(T, B, d_h\) = \(5, 2, 3\), got \(4, 2, 3\)"),
    (lambda x, u: {"x": x[0], "u": u}, ValueError, r"x\['x'\]: expected shape \(T, B, d_in\), got \(2, 2\)"),
])
def test_bad_inputs_are_named(x, error, message):
    rng = np.random.default_rng(1)
    p = _params(rng)
    xs, us = rng.standard_normal((5, 2, 2)), rng.standard_normal((5, 2, 3))
    with pytest.raises(error, match=message):
        rnnsym.compile(TWO_IN_TWO_OUT).forward(p, x(xs, us))


def test_one_input_two_readouts_and_the_unchanged_single_convention():
    two = parse_cell("h = tanh(W @ h + U @ x); y = A @ h; q = h * h", readouts=["y", "q"],
                     dims=[("d_q", "d_h")])
    one = parse_cell("h = tanh(W @ h + U @ x); y = A @ h", readouts=["y"])
    rng = np.random.default_rng(2)
    shapes = rnnsym.shapes(two).concrete(d_in=2, d_h=3, d_out=4)
    p2 = {k: rng.standard_normal(shapes[k]) for k in two.params}
    x = rng.standard_normal((3, 2, 2))
    outs, st = rnnsym.compile(two).forward(p2, x)
    out1, st1 = rnnsym.compile(one).forward(p2, x)       # same parameters: W, U, A
    assert isinstance(out1, np.ndarray) and out1.shape == (3, 2, 4)
    np.testing.assert_array_equal(outs["y"], out1)
    np.testing.assert_allclose(outs["q"][-1], st1["h"] ** 2, rtol=1e-15)
    assert rnnsym.compile(one).INPUT_SHAPES == {"x": ("d_in",)}


def test_gradients_are_refused_in_words_for_several_inputs():
    m = rnnsym.compile(TWO_IN_TWO_OUT)
    assert "Gradients: not generated for several inputs or readouts." in m.__source__
    rng = np.random.default_rng(3)
    with pytest.raises(NotImplementedError, match="this cell has inputs x, u and outputs y, z"):
        m.forward(_params(rng), {"x": np.zeros((1, 1, 2)), "u": np.zeros((1, 1, 3))}, return_cache=True)
