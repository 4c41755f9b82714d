"""onnxruntime (CPU) has no float64 kernels for its recurrent operators: the checker says so
instead of passing or inventing a counterexample."""
from rnnsym.check import check


def test_a_target_that_loads_nothing_is_unsupported_not_passed():
    report = check("onnxruntime", "rnn", dtype="float64", examples=5, seed=0)
    assert not report.passed and report.exit_code == 3
    assert "UNSUPPORTED: the target rejected every model" in report.format()


def test_a_target_that_raises_at_run_time_is_a_failure_with_its_error():
    report = check("onnxruntime", "gru", dtype="float64", examples=5, seed=0)
    assert not report.passed and report.exit_code == 1
    assert "does not support double" in report.format()
    assert report.diagnosis.startswith("the target raised an error")
