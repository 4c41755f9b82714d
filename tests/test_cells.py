"""Built-in cells: exact equations (text and LaTeX), options, and the documented shapes."""
import pytest

from rnnsym.cells import builtin, elman, gru, lstm
from rnnsym.shapes import derive


def test_elman_latex_is_the_seed_equation():
    assert elman().latex() == (
        "\\begin{aligned}\n"
        r"h_{t} &= \tanh\left(W_{xh} x_{t} + W_{hh} h_{t-1} + b_{h}\right)"
        "\n\\end{aligned}")


def test_elman_readout_and_activation():
    assert elman("relu", readout=True).text() == (
        "h[t] = relu(W_xh @ x[t] + W_hh @ h[t-1] + b_h)\n"
        "y[t] = W_hy @ h[t] + b_y")
    assert elman("identity").text() == "h[t] = W_xh @ x[t] + W_hh @ h[t-1] + b_h"
    assert elman("sigmoid")._repr_latex_().startswith("$$\\begin{aligned}")


def test_lstm_latex_exact():
    assert lstm().latex().splitlines()[1:-1] == [
        r"i_{t} &= \sigma\left(W_{xi} x_{t} + W_{hi} h_{t-1} + b_{xi} + b_{hi}\right) \\",
        r"f_{t} &= \sigma\left(W_{xf} x_{t} + W_{hf} h_{t-1} + b_{xf} + b_{hf}\right) \\",
        r"g_{t} &= \tanh\left(W_{xg} x_{t} + W_{hg} h_{t-1} + b_{xg} + b_{hg}\right) \\",
        r"c_{t} &= f_{t} \odot c_{t-1} + i_{t} \odot g_{t} \\",
        r"o_{t} &= \sigma\left(W_{xo} x_{t} + W_{ho} h_{t-1} + b_{xo} + b_{ho}\right) \\",
        r"h_{t} &= o_{t} \odot \tanh\left(c_{t}\right)",
    ]


def test_lstm_options_text():
    text = lstm(peepholes=True, coupled=True, projection=True, clip=3.0).text().splitlines()
    assert text[0] == "i[t] = sigmoid(clip(W_xi @ x[t] + W_hi @ h[t-1] + p_i * c[t-1] + b_xi + b_hi, 3.0))"
    assert text[1] == "f[t] = 1 - i[t]"
    # the output peephole reads the new cell state (ONNX)
    assert text[4] == "o[t] = sigmoid(clip(W_xo @ x[t] + W_ho @ h[t-1] + p_o * c[t] + b_xo + b_ho, 3.0))"
    assert text[5] == "h[t] = W_hr @ (o[t] * tanh(clip(c[t], 3.0)))"
    # onnxruntime's reading: no clip before h(c_t)
    assert lstm(clip=3.0, clip_before_h=False).text().splitlines()[-1] == "h[t] = o[t] * tanh(c[t])"


def test_gru_both_reset_placements_latex():
    after = gru("after").latex().splitlines()
    before = gru("before").latex().splitlines()
    assert after[3] == (r"n_{t} &= \tanh\left(W_{xn} x_{t} + b_{xn} + r_{t} \odot "
                        r"\left(W_{hn} h_{t-1} + b_{hn}\right)\right) \\")
    assert before[3] == (r"n_{t} &= \tanh\left(W_{xn} x_{t} + W_{hn} \left(r_{t} \odot h_{t-1}\right)"
                         r" + b_{xn} + b_{hn}\right) \\")
    assert after[4] == r"h_{t} &= \left(1 - z_{t}\right) \odot n_{t} + z_{t} \odot h_{t-1}"


def test_builtin_lookup_and_alias():
    assert builtin("rnn").text() == elman().text()
    with pytest.raises(ValueError, match="unknown cell 'mlp'"):
        builtin("mlp")
    with pytest.raises(ValueError, match="reset must be 'after' or 'before'"):
        gru("middle")
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        elman("swish")


# --- shapes: PyTorch/ONNX documentation, gate by gate --------------------------------------------
def shapes(cell, **dims):
    return derive(cell).concrete(**dims)


def test_elman_shapes_are_the_seeds():
    t = derive(elman(readout=True))
    assert t.params == {"W_xh": t.shape("W_xh"), "W_hh": t.shape("W_hh"), "b_h": t.shape("b_h"),
                        "W_hy": t.shape("W_hy"), "b_y": t.shape("b_y")}
    s = shapes(elman(readout=True), d_in=3, d_h=5, d_out=2)
    # torch.nn.RNN: weight_ih_l0 (hidden_size, input_size), weight_hh_l0 (hidden, hidden)
    assert (s["W_xh"], s["W_hh"], s["b_h"], s["W_hy"], s["b_y"]) == ((5, 3), (5, 5), (5,), (2, 5), (2,))
    assert [str(d) for d in t.dims] == ["d_h", "d_in", "d_out"]


def test_lstm_shapes_match_torch_blocks_and_projection():
    s = shapes(lstm(), d_in=3, d_h=5)
    # torch weight_ih_l0 is (4*hidden, input): four (hidden, input) gate blocks i|f|g|o
    assert all(s[f"W_x{g}"] == (5, 3) and s[f"W_h{g}"] == (5, 5) for g in "ifgo")
    assert all(s[f"b_x{g}"] == (5,) and s[f"b_h{g}"] == (5,) for g in "ifgo")
    p = shapes(lstm(projection=True, peepholes=True), d_in=3, d_h=5, d_proj=2)
    # proj_size: weight_hh_l0 (4*hidden, proj_size), weight_hr_l0 (proj_size, hidden)
    assert p["W_hi"] == (5, 2) and p["W_hr"] == (2, 5) and p["h"] == (2,) and p["c"] == (5,)
    # ONNX P is [3*hidden]: p_i, p_o, p_f each (hidden,)
    assert p["p_i"] == p["p_f"] == p["p_o"] == (5,)
    assert "W_xf" not in derive(lstm(coupled=True)).shapes


def test_gru_shapes_match_onnx_blocks():
    s = shapes(gru("before"), d_in=4, d_h=6)
    # ONNX W [1, 3*hidden, input], R [1, 3*hidden, hidden], B [1, 6*hidden]
    assert all(s[f"W_x{g}"] == (6, 4) and s[f"W_h{g}"] == (6, 6) for g in "rzn")
    assert all(s[f"b_x{g}"] == (6,) and s[f"b_h{g}"] == (6,) for g in "rzn")
