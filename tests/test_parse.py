"""User-defined cells from text: the whitelist, the semantics, the derived shapes and errors."""
import pytest

from rnnsym.cells import DefinitionError, parse_cell
from rnnsym.cells.cell import make_cell, now, param, prev
from rnnsym.cells.nodes import Activation, madd, mmul
from rnnsym.shapes import ShapeConflict, derive


def test_the_seed_in_text():
    cell = parse_cell("h = tanh(W_h @ h + W_x @ x + b_h); y = W_y @ h + b_y", readouts=["y"])
    assert cell.text() == "h[t] = tanh(W_h @ h[t-1] + W_x @ x[t] + b_h)\ny[t] = W_y @ h[t] + b_y"
    t = derive(cell)
    assert {p: tuple(map(str, t.shape(p))) for p in cell.params} == {
        "W_h": ("d_h", "d_h"), "W_x": ("d_h", "d_in"), "b_h": ("d_h",),
        "W_y": ("d_out", "d_h"), "b_y": ("d_out",)}
    assert t.signature() == "(d_h,d_h),(d_h,d_in),(d_h),(d_out,d_h),(d_out),(d_in),(d_h)->(d_h),(d_out)"


def test_sequential_semantics_gates_and_states():
    cell = parse_cell("z = sigmoid(U @ x + V @ h)\nh = (1 - z) * h + z * tanh(W @ x)")
    assert cell.states == ("h",) and cell.gates == ("z",)
    assert cell.text().splitlines()[1] == "h[t] = (1 - z[t]) * h[t-1] + z[t] * tanh(W @ x[t])"
    forced = parse_cell("z = sigmoid(U @ x); h = z * h", states=["h", "z"])
    assert forced.states == ("z", "h")


def test_python_built_cell_matches_text():
    py = make_cell("mine", "mine", [("h", "state", Activation(
        "tanh", madd(mmul(param("W_h"), prev("h")), mmul(param("W_x"), now("x")))))])
    assert py.text() == parse_cell("h = tanh(W_h @ h + W_x @ x)").text()


@pytest.mark.parametrize("text, message", [
    ("h = x.__class__", "Attribute"),
    ("h = tanh(h).real", "Attribute"),
    ("h = h[0]", "Subscript"),
    ("h = __import__('os')", "only the activations"),
    ("h = open(h)", "only the activations"),
    ("h = np.tanh(h)", "only the activations"),
    ("h = tanh(W @ h, 1)", "exactly one argument"),
    ("h = tanh(x=h)", "keyword"),
    ("h = lambda: h", "Lambda"),
    ("h = __dict__ + h", "not allowed"),
    ("h = _secret @ h", "not allowed"),
    ("h = 'a' * h", "constant"),
    ("h = h if h else h", "IfExp"),
    ("h = W ** h", "Pow"),
    ("h = [h]", "List"),
    ("import os", "name = expression"),
    ("h += 1", "name = expression"),
    ("h = h; h = h", "assigned twice"),
    ("x = tanh(W @ h)", "is an input"),
    ("h = tanh(W @ x)", "no state"),
    ("h = tanh(W @ x", "cannot parse"),
    ("", "empty"),
])
def test_parser_rejects_everything_outside_the_whitelist(text, message):
    with pytest.raises(DefinitionError, match=message):
        parse_cell(text)


def test_weight_shared_by_input_and_state_conflicts_unless_declared():
    with pytest.raises(ShapeConflict) as e:
        derive(parse_cell("h = tanh(W @ h + W @ x + b)"))
    msg = str(e.value)
    assert "equation h_t = tanh(W @ h[t-1] + W @ x[t] + b)" in msg
    assert "in the product W @ x[t]" in msg and "d_h = d_in" in msg
    t = derive(parse_cell("h = tanh(W @ h + W @ x + b)", dims=[("d_in", "d_h")]))
    assert tuple(map(str, t.shape("W"))) == ("d_h", "d_h")


def test_conflict_names_the_term_of_a_sum():
    with pytest.raises(ShapeConflict, match=r"the term x\[t\] must have the shape of h\[t\].*d_h = d_in"):
        derive(parse_cell("h = tanh(W @ h + x)"))
    with pytest.raises(ShapeConflict, match=r"the term b must have the shape of y\[t\].*d_out = d_h"):
        derive(parse_cell("h = tanh(W @ h + U @ x + b); y = V @ h + b", readouts=["y"]))


def test_undetermined_parameters_are_reported():
    t = derive(parse_cell("h = tanh(W @ h + U @ z)"))
    assert set(t.undetermined) == {"U", "z"}
    assert "columns of U" in t.undetermined["U"]
    with pytest.raises(ValueError, match="U: the columns of U are not fixed"):
        t.signature()
