"""What a check report prints: what was checked (outputs or --gradients) in its first line, the
coverage without ambiguous lists, and relative errors that mean something where the expected
element is zero up to rounding."""
import numpy as np

from rnnsym.conformance.compare import REL_FLOOR, abs_rel_errors, max_errors
from rnnsym.conformance.report import Report


def _report(**kw):
    base = dict(target="torch", cell="lstm", dtype="float32", seed=1, passed=True, examples=3,
                configurations=2, elapsed=0.1, max_abs_error=1e-7, max_rel_error=1e-5,
                max_error_ratio=0.01, tolerance="backward-error estimate", command="rnnsym check")
    return Report(**{**base, **kw})


def test_the_first_line_says_gradients_were_checked():
    assert _report().format().splitlines()[0] == "rnnsym check torch --cell lstm (float32): OK"
    text = _report(gradients=True).format()
    assert text.splitlines()[0] == "rnnsym check torch --cell lstm --gradients (float32): OK"
    assert "largest gradient error: abs 1e-07" in text


def test_a_gradient_run_says_so_end_to_end():
    import rnnsym
    report = rnnsym.check("torch", cell="elman", examples=3, seed=1, gradients=True)
    assert report.passed
    assert str(report).splitlines()[0].startswith("rnnsym check torch --cell elman --gradients (")


def test_coverage_values_with_commas_are_not_ambiguous():
    values = ["fixed", "packed, enforce_sorted", "packed, unsorted"]
    text = _report(coverage={"layers": [1, 2], "lengths": values}).format()
    line = next(ln for ln in text.splitlines() if ln.startswith("  covered "))
    assert line == ("  covered layers: 1 | 2; lengths: fixed | packed, enforce_sorted | "
                    "packed, unsorted")
    parsed = dict(part.split(": ", 1) for part in line[len("  covered "):].split("; "))
    assert parsed["lengths"].split(" | ") == values          # read back as it was


def test_relative_error_of_an_element_that_is_zero_up_to_rounding():
    expected = np.array([0.9, -0.5, 1e-30])
    # a correct target may round the tiny element to 0: not "relative error 1"
    _, rel = abs_rel_errors(np.array([0.9, -0.5, 0.0]), expected)
    assert rel.max() < 1e-20
    # a real error there is still large relative to the array's scale
    _, rel = abs_rel_errors(np.array([0.9, -0.5, 0.3]), expected)
    assert np.isclose(rel[2], 0.3 / (REL_FLOOR * 0.9))
    # elements of ordinary size: the usual relative error
    _, rel = abs_rel_errors(np.array([0.99, -0.5, 0.0]), expected)
    assert np.isclose(rel[0], 0.09 / 0.9)
    # an all-zero expected array: any error is infinitely large relatively, none is 0
    _, rel = abs_rel_errors(np.array([0.0, 1e-3]), np.zeros(2))
    assert rel[0] == 0 and rel[1] > 1e300
    assert max_errors({"o": expected}, {"o": np.array([0.9, -0.5, 0.0])})[1] < 1e-20
