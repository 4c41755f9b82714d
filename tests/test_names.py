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
    in_progress = {"rnnsym.conformance.mutations"}     # another branch's module
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


def test_contract_check_is_check_contract_and_probe_its_deprecated_alias():
    import pytest
    from rnnsym.frameworks import Config, ContractError, Harness
    from rnnsym.frameworks.torch import TorchHarness
    config = Config("gru", T=2, B=3, d_in=4, d_h=5)
    import torch
    harness = TorchHarness(torch.nn.GRU, "gru")
    assert harness.check_contract(config) is None
    with pytest.warns(DeprecationWarning, match="call check_contract"):
        harness.probe(config)

    class Legacy(Harness):          # a harness written against the old name still works
        calls = []

        def probe(self, config):
            self.calls.append(config)
            raise ContractError("legacy contract")
    legacy = Legacy.__new__(Legacy)
    with pytest.warns(DeprecationWarning, match="Legacy.probe: the contract check is now"), \
            pytest.raises(ContractError, match="legacy contract"):
        legacy.check_contract(config)
    assert Legacy.calls == [config]


def test_feature_survey_and_the_old_probe_names():
    import warnings

    import pytest
    from rnnsym.conformance.survey import FeatureSurvey
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from rnnsym.conformance.probe import Probe
    assert issubclass(Probe, FeatureSurvey) and FeatureSurvey.__module__ == "rnnsym.conformance.survey"
    with pytest.warns(DeprecationWarning, match="use rnnsym.conformance.survey.FeatureSurvey"):
        with pytest.raises(TypeError):          # the warning comes before the arguments
            Probe()


def test_bug_model_and_the_old_variant_names():
    import pytest
    from rnnsym.conformance import bug_models, variants
    assert variants.variant_outputs is bug_models.bug_model_outputs
    assert variants.fits is bug_models.fits
    assert bug_models.BugModel("x").text == "x"
    with pytest.warns(DeprecationWarning, match="use rnnsym.conformance.bug_models.BugModel"):
        old = variants.Variant("x", step_restart=True)
    assert isinstance(old, bug_models.BugModel) and old.step_restart


def test_generated_modules_and_the_old_variants_names():
    import pytest
    from rnnsym.codegen import files
    assert files.VARIANTS is files.GENERATED and files.MATRIX_VARIANTS is files.GENERATED_MATRIX
    assert "gru_reset_after" in files.GENERATED and "gla" in files.GENERATED_MATRIX
    cell = files.generated_cell("gru_reset_before")
    with pytest.warns(DeprecationWarning, match="use generated_cell"):
        old = files.variant_cell("gru_reset_before")
    assert old.name == cell.name == "gru" and old.options == cell.options
