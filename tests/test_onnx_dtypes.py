"""onnxruntime (CPU) has no float64 kernels for its recurrent operators: the checker says so
(UNSUPPORTED, the dtype and the reason) instead of passing or inventing a counterexample, and
only onnxruntime's own refusals count as such."""
import textwrap

from onnxruntime.capi import onnxruntime_pybind11_state as state

from rnnsym.conformance import check
from rnnsym.frameworks.onnx.targets import ort_refusal

REFUSED = ("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Non-zero status code returned while "
           "running GRU node. Name:'' Status Message: GRU operator does not support double yet")


def test_a_model_rejected_when_loading_in_the_dtype_is_unsupported():
    report = check("onnxruntime", "rnn", dtype="float64", examples=5, seed=0)
    assert not report.passed and report.exit_code == 3 and report.verdict == "UNSUPPORTED"
    text = report.format()
    assert "nothing could be checked: the target refuses --dtype float64" in text
    assert "dtype=float64" in text and "NOT_IMPLEMENTED" in text


def test_a_kernel_refusing_the_dtype_when_run_is_unsupported_not_a_failure():
    report = check("onnxruntime", "gru", dtype="float64", examples=5, seed=0)
    assert report.exit_code == 3 and report.counterexample is None, report.format()
    assert "dtype=float64 (the simplest model runs in float32): onnxruntime: GRU operator " \
        "does not support double yet" in report.format()
    strict = check("onnxruntime", "gru", dtype="float64", examples=5, seed=0, strict=True)
    assert strict.exit_code == 1 and "--strict: a failure" in strict.format()


def test_only_onnxruntimes_own_refusals_are_unsupported():
    assert ort_refusal(state.RuntimeException(REFUSED)) == \
        "onnxruntime: GRU operator does not support double yet"
    assert ort_refusal(state.NotImplemented("[ONNXRuntimeError] : 9 : NOT_IMPLEMENTED : x"))
    assert ort_refusal(state.RuntimeException("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : "
                                              "Non-zero status code ... Status Message: bad"))\
        is None
    assert ort_refusal(RuntimeError(REFUSED)) is None        # not onnxruntime's exception
    assert ort_refusal(ValueError("operator does not support double yet")) is None


def test_a_backend_raising_something_else_on_float64_fails(tmp_path):
    plugin = tmp_path / "f64.py"
    plugin.write_text(textwrap.dedent("""
        import rnnsym.onnx

        def run(model_bytes, inputs):
            if inputs[0].dtype.itemsize == 8:
                raise RuntimeError("GRU operator does not support double yet")
            return [y for y in rnnsym.onnx.run(model_bytes, inputs) if y is not None]

        def run_some(model_bytes, inputs):   # refuses float64 for two directions only
            if inputs[0].dtype.itemsize == 8 and b"bidirectional" in model_bytes:
                raise NotImplementedError("no float64 for two directions")
            return [y for y in rnnsym.onnx.run(model_bytes, inputs) if y is not None]
    """))
    report = check(f"onnx:{plugin}:run", "gru", dtype="float64", examples=5, seed=0)
    assert report.exit_code == 1 and "target failed: RuntimeError" in report.format()
    some = check(f"onnx:{plugin}:run_some", "gru", dtype="float64", examples=10, seed=0,
                 attributes="activations=default")
    assert some.exit_code == 0, some.format()
    assert "direction=bidirectional: NotImplementedError: no float64 for two directions" in \
        some.format()
