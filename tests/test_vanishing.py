"""rnnsym.gradients and ``rnnsym gradients``: ‖∂h_t/∂h_0‖₂ along a trajectory of the generated
code, against finite differences, and the vanishing/exploding behaviour the seed explains."""
from pathlib import Path

import numpy as np
import pytest

import rnnsym
from rnnsym import cells
from rnnsym import vanishing as G
from rnnsym.cli import main
from rnnsym.shapes import ArrayShapeError

ROOT = Path(__file__).resolve().parents[1]
D_IN, D_H = 2, 3                     # distinct on purpose


def _fd_state_jacobian(cell, params, x, state0, s="h"):
    """∂s_T/∂s_0 by central differences of the generated forward (other states held)."""
    fwd = rnnsym.compile(cell).forward
    eps = 1e-6
    cols = []
    for j in range(state0[s].shape[1]):
        plus = {k: v.copy() for k, v in state0.items()}
        minus = {k: v.copy() for k, v in state0.items()}
        plus[s][:, j] += eps
        minus[s][:, j] -= eps
        cols.append((fwd(params, x, plus)[1][s] - fwd(params, x, minus)[1][s]) / (2 * eps))
    return np.stack(cols, axis=-1)                        # (B, d_s, d_s)


USER_CELL = ("z = sigmoid(U @ x + V @ h); a = softsign(W @ x + R @ (z * h)); "
             "h = (1 - z) * h + z * elu(a) + 0.5 * leakyrelu(K @ h)")


@pytest.mark.parametrize("cell", [rnnsym.elman(), rnnsym.elman(activation="sigmoid", readout=True),
                                  rnnsym.lstm(peepholes=True), rnnsym.lstm(projection=True),
                                  rnnsym.gru(), rnnsym.gru(reset="before"), cells.minlstm(),
                                  cells.lnlstm(), USER_CELL],
                         ids=["elman", "elman_sigmoid_readout", "lstm_peepholes",
                              "lstm_projection", "gru", "gru_before", "minlstm", "lnlstm", "user"])
def test_jacobians_equal_finite_differences(cell):
    """Every t: the chain of step Jacobians equals central differences of the generated forward
    (float64, eps 1e-6: truncation ~eps², rounding ~1e-16/eps, so 1e-7 relative is loose);
    minLSTM (division) and the layer-norm LSTM (layer norm, chunks) included."""
    cell = rnnsym.parse_cell(cell) if isinstance(cell, str) else cell
    rng = np.random.default_rng(1)
    sizes = {d: n for d, n in {"d_h": D_H, "d_in": D_IN, "d_out": 4, "d_proj": 2}.items()
             if d in G.default_sizes(cell)}
    params = G.random_params(cell, sizes, rng, radius=1.2)
    shapes = rnnsym.shapes(cell).concrete(**sizes)
    T, B = 5, 2
    x = rng.standard_normal((T, B) + shapes[cell.inputs[0]])
    state0 = {s: 0.5 * rng.standard_normal((B,) + shapes[s]) for s in cell.states}
    jac = G.state_jacobians(cell, params, x, state0)
    assert jac.shape == (T, B) + shapes["h"] * 2
    for t in range(1, T + 1):
        fd = _fd_state_jacobian(cell, params, x[:t], state0)
        np.testing.assert_allclose(jac[t - 1], fd, rtol=1e-7, atol=1e-8)
    norms = G.log_norms(cell, params, x, state0)
    np.testing.assert_allclose(10 ** norms, np.linalg.norm(jac, 2, axis=(2, 3)), rtol=1e-12)


def test_lstm_c_block_is_the_forget_gate_product():
    """∂c_t/∂c_0 with W_h* = 0 (h_0 does not feed back): the product of the forget gates."""
    cell = rnnsym.lstm()
    rng = np.random.default_rng(2)
    params = G.random_params(cell, {"d_h": D_H, "d_in": D_IN}, rng)
    for p in G.recurrent_params(cell):
        params[p] = np.zeros_like(params[p])
    x = rng.standard_normal((6, 1, D_IN))
    jac = G.state_jacobians(cell, params, x, state="c")
    pre_f = x[:, 0] @ params["W_xf"].T + params["b_xf"] + params["b_hf"]
    forget = np.cumprod(1 / (1 + np.exp(-pre_f)), axis=0)            # (T, d_h)
    np.testing.assert_allclose(jac[:, 0], np.stack([np.diag(f) for f in forget]), rtol=1e-12)


def _slope(log10, start, stop):
    """log10 of the growth factor per step, fitted over steps start..stop."""
    t = np.arange(start, stop + 1)
    return np.polyfit(t, log10[start - 1:stop], 1)[0]


def test_elman_tanh_vanishes_exponentially_below_radius_one():
    (curve,) = G.curves([rnnsym.elman()], 80, radii=(0.8,))
    # |tanh'| ≤ 1, so the norm decays at least like 0.8^t once the transient has passed
    assert _slope(curve.log10, 20, 80) < np.log10(0.8)
    assert curve.log10[-1] < -6


@pytest.mark.parametrize("activation, radius", [("identity", 1.5), ("relu", 3.0)])
def test_linear_and_relu_explode_above_radius_one(activation, radius):
    (curve,) = G.curves([rnnsym.elman(activation=activation)], 60, radii=(radius,))
    slope = _slope(curve.log10, 20, 60)
    if activation == "identity":   # J_t = W_hh: the norm grows like radius^t, exactly the rate
        assert slope == pytest.approx(np.log10(radius), abs=0.01)
    else:                          # relu switches some units off: slower, but growing
        assert slope > 0.1
    assert curve.log10[-1] > 5


def test_lstm_with_forget_gate_near_one_decays_slowly():
    """The motivation of the LSTM: with f ≈ 1 (forget bias 4, σ(4) ≈ 0.98) the gradient through
    c survives 100 steps; with the forget bias at -4 it vanishes like Elman's."""
    steps, radius = 100, 0.9
    open_, = G.curves([rnnsym.lstm()], steps, radii=(radius,), fill={"b_xf": 4.0})
    shut, = G.curves([rnnsym.lstm()], steps, radii=(radius,), fill={"b_xf": -4.0})
    elman, = G.curves([rnnsym.elman()], steps, radii=(radius,))
    assert open_.log10[-1] > -1.5 > shut.log10[-1]
    assert _slope(open_.log10, 20, steps) > -0.01          # less than 2.3% per step
    assert _slope(shut.log10, 20, steps) < -0.1
    assert elman.log10[-1] < open_.log10[-1] - 8


def test_norms_beyond_float64_are_reported():
    """Renormalized product: ‖W^700‖ ≈ 3^700 ≈ 1e334 is a number, not inf (zero input and
    state: the trajectory stays at 0 while its Jacobian explodes)."""
    cell = rnnsym.elman(activation="identity")
    params = G.random_params(cell, {"d_h": 4, "d_in": 3}, np.random.default_rng(0), radius=3.0)
    params["b_h"] = np.zeros(4)
    log10 = G.log_norms(cell, params, np.zeros((700, 1, 3)))[:, 0]
    assert np.isfinite(log10[-1]) and log10[-1] == pytest.approx(700 * np.log10(3), abs=1)
    curve = G.Curve("identity", cell, log10)
    assert G.table([curve]).splitlines()[-1].split() == ["700", G._fmt(log10[-1])]
    assert G._fmt(log10[-1]).split("e")[1] == "+334"


def test_recurrent_params_and_scaling():
    assert G.recurrent_params(rnnsym.elman(readout=True)) == ("W_hh",)
    assert G.recurrent_params(rnnsym.lstm(projection=True)) == ("W_hi", "W_hf", "W_hg", "W_ho")
    assert G.recurrent_params(rnnsym.gru(reset="before")) == ("W_hr", "W_hz", "W_hn")
    cell = rnnsym.gru()
    params = G.random_params(cell, {"d_h": 5, "d_in": 3}, np.random.default_rng(0), radius=0.7)
    for p in ("W_hr", "W_hz", "W_hn"):
        assert G.spectral_radius(params[p]) == pytest.approx(0.7, rel=1e-12)
    assert G.spectral_radius(np.ones((2, 3))) == pytest.approx(np.sqrt(6))


def test_weights_from_npz(tmp_path):
    cell = rnnsym.elman()
    params = G.random_params(cell, {"d_h": 4, "d_in": 3}, np.random.default_rng(3))
    path = tmp_path / "w.npz"
    np.savez(path, **params)
    (curve,) = G.curves([cell], 7, radii=(), weights=str(path))
    assert curve.label == "elman" and curve.radius is None
    x = np.random.default_rng(0).standard_normal((7, 1, 3))
    np.testing.assert_allclose(curve.log10, G.log_norms(cell, params, x)[:, 0])
    scaled, = G.curves([cell], 7, radii=(0.5,), weights=str(path))
    assert G.spectral_radius(scaled.params["W_hh"]) == pytest.approx(0.5)


def test_bad_weights_name_the_parameter_and_its_shape(tmp_path):
    cell = rnnsym.lstm()
    params = G.random_params(cell, {"d_h": 4, "d_in": 3}, np.random.default_rng(3))
    params["W_hf"] = params["W_hf"][:, :3]
    del params["b_ho"]
    params["W_zz"] = np.zeros(2)
    path = tmp_path / "bad.npz"
    np.savez(path, **params)
    with pytest.raises(ArrayShapeError) as e:
        G.curves([cell], 3, weights=str(path))
    msg = str(e.value)
    assert "W_hf: expected shape (d_h, d_h) = (4, 4), got (4, 3)" in msg
    assert "missing parameter(s): b_ho" in msg and "unknown parameter(s): W_zz" in msg
    with pytest.raises(G.GradientsError, match="cannot read weights"):
        G.curves([cell], 3, weights=str(tmp_path / "absent.npz"))


def test_cli_table_and_errors(capsys):
    assert main(["gradients", "elman", "--activation", "identity", "--steps", "4",
                 "--radius", "2", "--sizes", "d_h=3,d_in=2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split() == ["t", "elman_identity", "r=2"]
    assert [line.split()[0] for line in out[2:]] == ["1", "2", "3", "4"]
    assert main(["gradients", "elman", "--steps", "3", "--set", "b_xf=1"]) == 2
    assert "'b_xf' is not a parameter of elman" in capsys.readouterr().err
    assert main(["gradients", "elman", "--steps", "3", "--radius", "1,x"]) == 2
    assert "--radius takes comma-separated numbers" in capsys.readouterr().err
    assert main(["gradients", "elman", "--steps", "3", "--plot", "g.pdf"]) == 2
    assert "must end in .png or .svg" in capsys.readouterr().err


def test_cli_plot_without_matplotlib(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)
    path = tmp_path / "g.png"
    assert main(["gradients", "gru", "--steps", "3", "--plot", str(path)]) == 1
    captured = capsys.readouterr()
    assert "needs matplotlib (pip install 'rnnsym[plot]')" in captured.err
    assert "gru r=1" in captured.out and not path.exists()


README_COMMAND = ("rnnsym gradients elman lstm gru --steps 100 --radius 0.9,1.1 --set b_xf=1 "
                  "--plot docs/gradients.svg")


def test_readme_picture_is_what_its_command_draws(tmp_path, capsys):
    """The checked-in picture is byte for byte what the README's command writes."""
    assert README_COMMAND in (ROOT / "README.md").read_text()
    assert "docs/gradients.svg" in (ROOT / "README.md").read_text()
    out = tmp_path / "g.svg"
    argv = README_COMMAND.split()[1:]
    argv[argv.index("docs/gradients.svg")] = str(out)
    assert main(argv) == 0
    assert out.read_bytes() == (ROOT / "docs" / "gradients.svg").read_bytes()


@pytest.mark.parametrize("cell", [rnnsym.elman(), rnnsym.lstm(peepholes=True), rnnsym.gru(),
                                  rnnsym.gru(reset="before"), rnnsym.elman(readout=True)],
                         ids=["elman", "lstm_peepholes", "gru", "gru_before", "elman_readout"])
def test_one_batched_backward_call_gives_the_same_jacobians(cell):
    """One sample's J_t (the (T, d_in) form of step_jacobians), multiplied up, is the batched
    chain's ∂s_t/∂s_0 (the (T, B, d_in) form, in chunks of steps)."""
    rng = np.random.default_rng(4)
    sizes = {d: n for d, n in {"d_h": D_H, "d_in": D_IN, "d_out": 4}.items()
             if d in G.default_sizes(cell)}
    params = G.random_params(cell, sizes, rng, radius=1.1)
    T = 5
    x = rng.standard_normal((T, 1, D_IN))
    step = rnnsym.compile(cell).step
    states = [{s: 0.3 * rng.standard_normal((1, D_H)) for s in cell.states}]
    for t in range(T):
        states.append(step(params, x[t], states[-1]))
    J = G.step_jacobians(cell, params, x[:, 0], [{k: v[0] for k, v in s.items()}
                                                 for s in states])
    P, chain = np.eye(J.shape[1]), []
    for t in range(T):
        P = J[t] @ P
        chain.append(P)
    h = cell.states.index("h") * D_H
    expected = G.state_jacobians(cell, params, x, states[0])[:, 0]
    np.testing.assert_allclose(np.array(chain)[:, h:h + D_H, h:h + D_H], expected,
                               rtol=1e-10, atol=1e-12)
