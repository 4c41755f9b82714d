"""`rnnsym check torch-onnx`: torch.nn modules through torch.onnx.export and onnxruntime."""
import rnnsym
from rnnsym.frameworks.torch_onnx import TorchOnnxHarness


def test_exported_gru_stack_passes():
    report = rnnsym.check("torch-onnx", cell="gru", examples=4, seed=1, layers=(2,),
                          features="layers,bidirectional,initial_state")
    assert report.passed, str(report)


def test_lstm_projection_is_refused_by_the_exporter_not_wrong():
    report = rnnsym.check("torch-onnx", cell="lstm", examples=3, seed=1, features="projection")
    assert report.passed and report.verdict == "OK", str(report)
    assert [u.feature for u in report.unsupported] == ["projection"], str(report)
    assert "LSTMs with projections" in str(report.unsupported[0]), str(report)


def test_a_pipeline_that_drops_the_initial_state_fails(monkeypatch):
    """Broken beside correct: the same pipeline exporting without the state input."""
    call = TorchOnnxHarness.call
    monkeypatch.setattr(TorchOnnxHarness, "call",
                        lambda self, config, module, args: call(self, config, module, args[:1]))
    report = rnnsym.check("torch-onnx", cell="gru", examples=20, seed=2,
                          features="initial_state", in_process=True)     # patched here
    assert not report.passed
    assert "initial state ignored" in report.diagnosis, str(report)



def test_onnxruntime_refusing_float64_leaves_nothing_to_check():
    report = rnnsym.check("torch-onnx", cell="gru", dtype="float64", examples=3, seed=0)
    assert report.exit_code == 3 and report.verdict == "UNSUPPORTED", str(report)
    assert "dtype=float64" in str(report) and "GRU operator does not support double yet" in \
        str(report)
