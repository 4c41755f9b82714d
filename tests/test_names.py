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


def test_the_glossary_names_each_term_once_and_owners_that_exist():
    """docs/architecture.md's glossary: the issue's terms each have a row, and every owner it
    names exists (a module, or a module's attribute)."""
    import importlib
    import pathlib
    import re
    text = (pathlib.Path(__file__).parents[1] / "docs" / "architecture.md").read_text()
    glossary = text[text.index("## Glossary"):]
    rows = [line.split("|")[1:4] for line in glossary.splitlines() if line.startswith("| **")]
    terms = [term.strip().strip("*") for term, _, _ in rows]
    assert len(terms) == len(set(terms)), terms
    for needed in ("gradients", "gradient check", "vanishing curves", "math options", "bug model",
                   "generated modules", "contract check", "feature survey", "attribute survey",
                   "perturbation", "target", "harness", "oracle", "case", "configuration",
                   "space", "feature", "reading", "mutation", "tolerance", "worker"):
        assert needed in terms, f"glossary: no row for {needed!r}"
    in_progress = {"rnnsym.check.mutations"}     # another branch's module
    owners = {name for _, _, owner in rows for name in re.findall(r"`(rnnsym[\w.]*)`", owner)}
    assert len(owners) > 15
    for name in sorted(owners - in_progress):
        module, attr = name, None
        while True:
            try:
                obj = importlib.import_module(module)
                break
            except ModuleNotFoundError:
                module, _, tail = module.rpartition(".")
                attr = tail if attr is None else f"{tail}.{attr}"
        for part in (attr.split(".") if attr else []):
            assert hasattr(obj, part), f"glossary owner {name}: {module} has no {attr}"
            obj = getattr(obj, part)
