"""`rnnsym check torch` and `rnnsym check keras` pass: every cell, option and dtype."""
import pytest

from rnnsym.conformance import check

EXAMPLES = 40


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_torch_modules_conform(cell, dtype):
    report = check("torch", cell, examples=EXAMPLES, seed=0, dtype=dtype)
    assert report.passed, report.format()
    assert report.max_error_ratio < 1
    assert report.coverage["bidirectional"] == [False, True]
    assert len(report.coverage["layers"]) >= 2 and report.coverage["unbatched"] == [False, True]


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
def test_torch_cells_conform(cell):
    report = check("torch", cell, examples=EXAMPLES, seed=0, cell_api=True)
    assert report.passed, report.format()


@pytest.mark.parametrize("cell,variant", [("elman", None), ("lstm", None),
                                          ("gru", "reset_after=true"),
                                          ("gru", "reset_after=false")])
def test_keras_layers_conform(cell, variant):
    report = check("keras", cell, examples=EXAMPLES, seed=0, variant=variant)
    assert report.passed, report.format()


def test_keras_float64_is_reported_as_float32_arithmetic():
    """Keras 3 outside TensorFlow casts 64-bit matmul results to 32 bits."""
    report = check("keras", "gru", examples=10, seed=0, dtype="float64")
    assert not report.passed
    assert "computes (at least partly) in float32" in report.diagnosis


def test_options_restrict_the_search():
    report = check("torch", "gru", examples=20, seed=1, layers=(2,), bidirectional="yes")
    assert report.passed, report.format()
    assert report.coverage["layers"] == [2] and report.coverage["bidirectional"] == [True]


def test_explicit_tolerance_replaces_the_estimate():
    report = check("torch", "gru", examples=10, seed=0, rtol=0.0, atol=0.0, dtype="float32")
    assert not report.passed    # float32 torch vs float64 oracle is never bit-exact
    assert "--rtol 0.0 --atol 0.0" in report.command
