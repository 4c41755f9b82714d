"""One meaning per name (issue 16): the new names and the old ones kept as aliases
(docs/architecture.md, "Glossary")."""
import rnnsym


def test_error_summary_is_the_last_line_and_first_line_its_alias():
    from rnnsym.frameworks.onnx import error_summary, first_line
    exc = RuntimeError("context line\nmore context\nthe reason")
    assert error_summary(exc) == "RuntimeError: the reason"
    assert first_line is error_summary
    assert error_summary(ValueError("")) == "ValueError: "
    assert len(error_summary(ValueError("x" * 900))) == 500


def test_derive_shapes_and_the_old_shapes_name():
    cell = rnnsym.lstm(projection=True)
    assert rnnsym.shapes is rnnsym.derive_shapes
    sizes = dict(d_in=3, d_h=5, d_proj=2)
    assert rnnsym.derive_shapes(cell).concrete(**sizes)["W_hi"] == (5, 2)
    assert rnnsym.derive_shapes(cell).concrete(**sizes)["W_xi"] == (5, 3)
    # the module stays reachable by its names
    from rnnsym.shapes import ShapeTable
    assert isinstance(rnnsym.shapes(cell), ShapeTable)


def test_survey_attributes_is_the_onnx_probe():
    from rnnsym.frameworks.onnx import probe, survey_attributes
    from rnnsym.frameworks.onnx.space import survey_attributes as defined
    assert survey_attributes is defined and probe is survey_attributes


def test_vanishing_is_the_gradients_command(capsys):
    """`rnnsym vanishing` (the curves' own name) prints what `rnnsym gradients` prints."""
    from rnnsym.cli import main
    printed = []
    for command in ("gradients", "vanishing"):
        assert main([command, "elman", "gru", "--steps", "4", "--radius", "0.9,1.1"]) == 0
        printed.append(capsys.readouterr().out)
    assert printed[0] == printed[1]
    assert "‖∂h_t/∂h_0‖" in printed[0] and len(printed[0].splitlines()) >= 5
