"""rnnsym check onnx2pytorch / onnx2torch / onnx-converter:FILE:NAME: ONNX -> torch converters."""
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import rnnsym
from rnnsym.conformance import cli

HERE = Path(__file__).parent
BROKEN = HERE / "broken" / "converters.py"
ROOT = HERE.parent


def test_onnx2pytorch_lstm_ignores_a_lone_initial_state():
    # LSTMWrapper.forward drops (h_0, c_0) unless both are given; graph inputs are passed by
    # position, so a lone initial_c arrives as h_0 and is dropped too
    report = rnnsym.check("onnx2pytorch", "lstm", examples=20, seed=1)
    assert not report.passed and report.exit_code == 1
    case = report.counterexample.case
    assert report.diagnosis == "input initial_c ignored (zeros used)", report.format()
    assert "initial_c" in case.inputs and "initial_h" not in case.inputs
    assert case.attributes == {"hidden_size": 4}       # shrunk to the plain node
    assert "onnx2pytorch 0.6.0" in report.format().splitlines()[0]
    both = rnnsym.check("onnx2pytorch", "lstm", examples=10, seed=2,
                        attributes="initial_h=present,initial_c=present,sequence_lens=absent")
    assert both.passed, both.format()
    assert any(u.startswith("P=present: NotImplementedError: LSTM P") for u in both.unsupported)


def test_onnx2pytorch_lstm_stack_feeds_an_omitted_output_on():
    # node 0's omitted Y_h ("") is stored as the activation "", then passed for node 1's
    # omitted B and sequence_lens (both "") next to its initial states: six arguments
    report = rnnsym.check("onnx2pytorch", "lstm", layers=(2,), examples=5, seed=1,
                          attributes="initial_h=present,initial_c=present,Y_h=absent,"
                                     "Y_c=present,B=absent,sequence_lens=absent,"
                                     "activations=default")
    assert not report.passed
    assert report.counterexample.error == ("TypeError: LSTMWrapper.forward() takes from 2 to 4 "
                                           "positional arguments but 6 were given")


@pytest.mark.parametrize("cell", ["gru", "elman"])
def test_onnx2pytorch_gru_and_rnn_pass_with_a_note(cell):
    report = rnnsym.check("onnx2pytorch", cell, examples=25, seed=1)
    assert report.passed, report.format()
    assert any(u.startswith("layout=1: NotImplementedError") for u in report.unsupported)
    assert any(u.startswith("clip=given: NotImplementedError") for u in report.unsupported)
    # the state of a length-0 sequence is zeroed, as onnxruntime does: a note, not a failure
    report = rnnsym.check("onnx2pytorch", cell, examples=25, seed=1,
                          attributes="sequence_lens=present,initial_h=present")
    assert report.passed, report.format()
    assert any("Y_h = 0 for length 0" in n for n in report.notes), report.format()
    assert report.coverage["direction"] == ["bidirectional", "forward", "reverse"]
    if cell == "gru":     # both values of linear_before_reset (its own loop for 0)
        assert report.coverage["linear_before_reset"] == [0, 1]


def test_onnx2torch_has_no_recurrent_converter(capsys):
    code = cli.main(["onnx2torch", "--cell", "gru", "--examples", "5", "--seed", "0"])
    out = capsys.readouterr().out
    assert code == 3, out
    assert "UNSUPPORTED: the target rejected every model" in out and "when converting" in out
    assert ("the simplest GRU node (every attribute and optional input at its default): "
            "NotImplementedError: Converter is not implemented (OperationDescription(domain='', "
            "operation_type='GRU', version=22))") in out


def test_hand_written_converter_passes_with_its_refusals():
    report = rnnsym.check(f"onnx-converter:{BROKEN}:convert", "lstm", examples=15, seed=1)
    assert report.passed, report.format()
    refused = {u.split(":")[0] for u in report.unsupported}
    assert {"direction=reverse", "layout=1", "clip=given", "sequence_lens=present",
            "P=present"} <= refused
    assert report.coverage["initial_c"] == ["absent", "present"]


@pytest.mark.parametrize("name, diagnosis", [
    ("convert_torch_gate_order",
     "gate blocks of W, R, B read in PyTorch's order (i,f,g,o), not ONNX's (i,o,f,c)"),
    ("convert_bias_dropped", "input B ignored (zeros used)"),
])
def test_broken_converters_fail_with_their_diagnosis(name, diagnosis):
    report = rnnsym.check(f"onnx-converter:{BROKEN}:{name}", "lstm", examples=15, seed=1)
    assert not report.passed
    assert report.diagnosis == diagnosis, report.format()


def test_torchvision_stand_in(tmp_path):
    """A torchvision that raises when imported is replaced by the stand-in (and only then)."""
    (tmp_path / "torchvision").mkdir()
    (tmp_path / "torchvision" / "__init__.py").write_text(
        "raise RuntimeError('operator torchvision::nms does not exist')\n")
    (tmp_path / "conv").mkdir()
    (tmp_path / "conv" / "__init__.py").write_text(
        "import torchvision\nfrom torchvision.ops import nms\nfrom torchvision.io import x\n")
    script = textwrap.dedent("""
        from rnnsym.frameworks.onnx.converters import import_converter
        module, why = import_converter("conv")
        print(why)
        try:
            getattr(module, "nms", print)(1, 2)
        except NotImplementedError as exc:
            print(exc)
    """)
    env = {"PYTHONPATH": f"{tmp_path}:{ROOT}", "PATH": ""}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                         timeout=120)
    lines = out.stdout.splitlines()
    assert lines[0] == ("import torchvision: RuntimeError: operator torchvision::nms does not "
                        "exist"), out.stderr
    assert lines[1].startswith("torchvision.ops.nms: torchvision could not be imported")
    assert "rnnsym's stand-in" in lines[1]
    (tmp_path / "torchvision" / "__init__.py").write_text("ops = io = None\n")
    (tmp_path / "conv" / "__init__.py").write_text("import torchvision\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.stdout.splitlines()[0] == "None", out.stderr     # a working one is kept
