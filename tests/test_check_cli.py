"""CLI exit codes: 0 agree, 1 counterexample, 2 usage error (one line, no traceback)."""
import sys
from pathlib import Path

import pytest

from rnnsym.conformance.cli import main

BROKEN = Path(__file__).parent / "broken"


def test_exit_0_when_all_agree(capsys, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)   # as on a terminal
    assert main(["torch", "--cell", "rnn", "--examples", "10", "--seed", "0"]) == 0
    out = capsys.readouterr()
    assert ": OK" in out.out and "10 examples" in out.out
    assert "rnnsym check torch --cell elman" in out.err      # progress line


def test_exit_1_with_counterexample_and_diagnosis(capsys):
    code = main([f"{BROKEN / 'impls.py'}:GRUResetBefore", "--cell", "gru", "--examples", "50",
                 "--seed", "0", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 1
    assert "MISMATCH" in out and "output[t=0" in out and "max abs error" in out
    assert "ONNX linear_before_reset=0" in out and "--seed 0" in out


@pytest.mark.parametrize("argv,message", [
    (["nope", "--cell", "gru"], "unknown; expected torch, keras, flax, flax-linen, flax-nnx, "
                                "torch-onnx, MODULE:NAME, FILE.py:NAME, onnxruntime, "
                                "onnx-reference, onnx:MODULE:NAME, onnx2pytorch, onnx2torch, "
                                "onnx-converter:MODULE:NAME"),
    (["no_such_module_xyz:GRU", "--cell", "gru"], "cannot import no_such_module_xyz"),
    ([f"{BROKEN / 'impls.py'}:Missing", "--cell", "gru"], "has no attribute 'Missing'"),
    (["torch:Tensor", "--cell", "gru"], "raised TypeError"),
    (["keras", "--cell", "gru", "--layers", "2"], "--layers=2 is not supported"),
    (["torch", "--cell", "gru", "--variant", "reset=sideways"], "expected after or before"),
])
def test_exit_2_usage_errors_are_one_line(argv, message, capsys):
    assert main(argv + ["--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_exit_2_for_unknown_flag(capsys):
    assert main(["torch", "--cell", "gru", "--bogus"]) == 2
