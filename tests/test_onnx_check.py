"""rnnsym check onnxruntime / onnx-reference / onnx:FILE:NAME: passes, findings, notes, unsupported."""
import textwrap

import pytest

import rnnsym
from rnnsym.conformance import cli
from rnnsym.frameworks import UsageError
from rnnsym.frameworks.onnx import parse_attribute_space

# ORT's defaults of left-out alpha/beta differ and its Softplus overflows (findings below)
ORT_SPACE = ("activation_params=given,activations=default|Relu|Tanh|Sigmoid|Affine|LeakyRelu|"
             "ThresholdedRelu|ScaledTanh|HardSigmoid|Elu|Softsign")


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_onnxruntime_passes_on_its_space(cell):
    report = rnnsym.check("onnxruntime", cell, examples=30, seed=11, attributes=ORT_SPACE)
    assert report.passed, report.format()
    assert report.examples == 30
    text = report.format()
    assert "layout=1: " in text and "(layout == 1) are not supported" in text   # unsupported
    assert "layout" in report.coverage and report.coverage["layout"] == [0]


def test_onnxruntime_clip_before_h_is_a_note_or_a_finding():
    space = "activations=default,clip=given,sequence_lens=absent,input_forget=0"
    noted = rnnsym.check("onnxruntime", "lstm", examples=15, seed=5, attributes=space)
    assert noted.passed
    assert any("no clip before h(C_t)" in n and "--variant clip_before_h=false" in n
               for n in noted.notes)
    strict = rnnsym.check("onnxruntime", "lstm", examples=15, seed=5, attributes=space,
                          variant="clip_before_h=true")
    assert not strict.passed
    assert strict.diagnosis.startswith("clip not applied before h(C_t)")
    ort = rnnsym.check("onnxruntime", "lstm", examples=15, seed=5, attributes=space,
                       variant="clip_before_h=false")
    assert ort.passed and not ort.notes


def test_onnxruntime_zero_state_for_length_zero_is_a_note():
    report = rnnsym.check("onnxruntime", "gru", examples=40, seed=2,
                          attributes="activations=default,sequence_lens=present,Y=absent")
    assert report.passed, report.format()
    assert any("Y_h = 0 for length 0 (onnxruntime)" in n for n in report.notes)


def test_onnxruntime_activation_defaults_finding():
    report = rnnsym.check("onnxruntime", "rnn", examples=60, seed=1,
                          attributes="activations=Affine|ScaledTanh|ThresholdedRelu,"
                                     "activation_params=default")
    assert not report.passed and report.failure_kind == "wrong numbers"
    assert "default to 0 for Affine, ScaledTanh and ThresholdedRelu" in report.diagnosis


def test_onnxruntime_softplus_overflow_finding():
    report = rnnsym.check("onnxruntime", "rnn", examples=100, seed=1,
                          attributes="activations=Softplus")
    assert not report.passed
    assert "got inf" in report.format() or "got nan" in report.format()
    assert "not finite where the exact result is: an overflow inside the target (Softplus" \
        in report.diagnosis, report.format()


@pytest.mark.parametrize("cell, space, diagnosis", [
    ("lstm", "activations=default,clip=given,sequence_lens=absent,input_forget=0",
     "clip ignored"),
    ("gru", "activations=default,clip=none,sequence_lens=present", "sequence_lens ignored"),
    ("lstm", "activations=default,clip=none,sequence_lens=absent,input_forget=1",
     "input_forget ignored"),
    ("gru", "activations=Relu|Softsign,clip=none,sequence_lens=absent", "activations ignored"),
])
def test_onnx_reference_ignored_attributes(cell, space, diagnosis):
    report = rnnsym.check("onnx-reference", cell, examples=40, seed=3, attributes=space)
    assert not report.passed
    assert report.diagnosis.startswith(diagnosis), report.format()


def test_cli_exit_codes_and_plugin(tmp_path, capsys):
    plugin = tmp_path / "backend.py"
    plugin.write_text(textwrap.dedent("""
        import rnnsym.onnx

        def run(model_bytes, inputs):
            if b"layout" in model_bytes:
                raise NotImplementedError("no batch-major layout here")
            return [y for y in rnnsym.onnx.run(model_bytes, inputs) if y is not None]
    """))
    args = ["--cell", "gru", "--examples", "10", "--seed", "1", "--no-progress"]
    assert cli.main([f"onnx:{plugin}:run"] + args) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "no batch-major layout here" in out
    assert cli.main(["onnx-reference", "--attributes", "clip=given,activations=default,"
                     "sequence_lens=absent"] + args) == 1
    assert "diagnosis: wrong numbers: clip ignored" in capsys.readouterr().out
    assert cli.main(["onnxruntime", "--attributes", "colour=red"] + args) == 2
    assert "--attributes colour: unknown" in capsys.readouterr().err
    assert cli.main(["onnxruntime", "--variant", "clip_before_h=maybe"] + args) == 2
    assert cli.main(["torch", "--attributes", "layout=0"] + args) == 2


def test_attribute_space_parsing():
    space = parse_attribute_space("layout=0,activations=Tanh|sigmoid,B=1", "LSTM")
    assert space["layout"] == (0,) and space["activations"] == ("Tanh", "Sigmoid")
    assert space["B"] == ("present",) and "linear_before_reset" not in space
    with pytest.raises(UsageError, match="input_forget: not an attribute or input of GRU"):
        parse_attribute_space("input_forget=1", "GRU")
    with pytest.raises(UsageError, match="layout=2: expected one of 0|1"):
        parse_attribute_space("layout=2", "RNN")


def test_models_are_validated_by_onnx_before_any_target_sees_them():
    import numpy as np

    from rnnsym.frameworks.onnx import build_model

    f = np.float32
    inputs = {"X": np.zeros((2, 3, 4), f), "W": np.zeros((1, 15, 4), f),
              "R": np.zeros((1, 15, 5), f)}
    assert build_model("GRU", {"hidden_size": 5, "linear_before_reset": 1}, inputs, ("Y_h",))
    with pytest.raises(ValueError, match="rnnsym built an invalid GRU model.*input_forget"):
        build_model("GRU", {"hidden_size": 5, "input_forget": 1}, inputs, ("Y_h",))


@pytest.mark.parametrize("body, kind, diagnosis", [
    ("raise RuntimeError('kernel crashed')", "raised",
     "diagnosis: raised: the target raised an error instead of returning outputs"),
    ("return [y[..., :1] for y in rnnsym.onnx.run(model_bytes, inputs) if y is not None]",
     "wrong shape", "diagnosis: wrong shape (see 'target failed' above)"),
])
def test_onnx_failure_kinds_are_reported(tmp_path, body, kind, diagnosis):
    """An ONNX target that raises on a model it loaded, or returns a wrong shape: the report
    names the kind, as the framework reports do, and a wrong shape is not called an error."""
    plugin = tmp_path / "backend.py"
    plugin.write_text("import rnnsym.onnx\n\n\ndef run(model_bytes, inputs):\n"
                      f"    if b'clip' in model_bytes:\n        {body}\n"
                      "    return [y for y in rnnsym.onnx.run(model_bytes, inputs) "
                      "if y is not None]\n")
    report = rnnsym.check(f"onnx:{plugin}:run", "gru", examples=40, seed=1,
                          attributes="clip=given")
    assert not report.passed and report.failure_kind == kind, report.format()
    assert diagnosis in report.format(), report.format()
