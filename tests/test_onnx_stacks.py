"""rnnsym check onnxruntime|onnx-reference|onnx:... --layers N: stacks of RNN/GRU/LSTM nodes,
node k+1 reading node k's Y as [seq, batch, num_dir * hidden] (Transpose + Reshape)."""
from pathlib import Path

import numpy as np
import pytest

from hypothesis import given, settings

import rnnsym
from rnnsym.conformance import cli
from rnnsym.conformance.compare import compare_flat
from rnnsym.conformance.onnx.oracle import expectation
from rnnsym.conformance.onnx.report import where
from rnnsym.conformance.onnx.strategy import onnx_cases
from rnnsym.frameworks.onnx import onnx_target, parse_attribute_space, run_target
from rnnsym.onnx import Readings
from rnnsym.onnx.driver import next_layer_input

STACKS = Path(__file__).parent / "broken" / "onnx_stacks.py"
# the stacking is under test (activations are the one-node tests'): every drawn activation
# would compile a cell of its own
ORT_SPACE = "activations=default"


def test_next_layer_input_puts_the_directions_side_by_side():
    Y = np.arange(2 * 2 * 3 * 4).reshape(2, 2, 3, 4)          # [T, D, N, H]
    X = next_layer_input(Y)
    assert X.shape == (2, 3, 8)
    assert (X[1, 2, :4] == Y[1, 0, 2]).all() and (X[1, 2, 4:] == Y[1, 1, 2]).all()
    Yb = Y.transpose(2, 0, 1, 3)                              # layout=1: [N, T, D, H]
    assert (next_layer_input(Yb, 1) == X.transpose(1, 0, 2)).all()


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_onnxruntime_passes_on_stacks(cell):
    report = rnnsym.check("onnxruntime", cell, layers=(2, 3), examples=12, seed=7,
                          attributes=ORT_SPACE)
    assert report.passed, report.format()
    assert report.coverage["layers"] == [2, 3]
    assert "--layers 2,3" in report.command


def test_onnx_reference_passes_on_stacks():
    report = rnnsym.check("onnx-reference", "gru", layers=(2, 3), examples=12, seed=7,
                          attributes="activations=default,clip=none,sequence_lens=absent")
    assert report.passed, report.format()


def test_onnx_reference_feeds_an_omitted_output_into_the_next_nodes_omitted_input():
    """Finding: onnx.reference keeps a node's unnamed (omitted) output under the name '' and
    hands it to the next node's omitted optional inputs: LSTM node 1 gets node 0's Y_h as B."""
    report = rnnsym.check("onnx-reference", "lstm", layers=(2,), examples=20, seed=2,
                          attributes="activations=default,clip=none,sequence_lens=absent,"
                                     "input_forget=0,Y_h=absent,Y_c=present,B=absent")
    assert not report.passed and "target failed: ValueError: " \
        in report.format(), report.format()


@pytest.mark.parametrize("runner", ["run", "run_concat"])
def test_correct_stack_runners_pass(runner):
    report = rnnsym.check(f"onnx:{STACKS}:{runner}", "gru", layers=(2, 3), examples=15, seed=4)
    assert report.passed, report.format()


@pytest.mark.parametrize("runner, diagnosis", [
    ("run_interleaved", "the next layer reads Y with direction and hidden interleaved"),
    ("run_lengths_after_first", "sequence_lens ignored (every sequence run to seq_length), "
                                "in layer 1 only"),
])
def test_broken_stack_runners_fail_with_their_diagnosis(runner, diagnosis):
    report = rnnsym.check(f"onnx:{STACKS}:{runner}", "gru", layers=(2, 3), examples=30, seed=4)
    assert not report.passed
    assert report.diagnosis.startswith(diagnosis), report.format()
    assert "[layer=1, " in report.format()


@settings(max_examples=3, derandomize=True, database=None)
@given(case=onnx_cases("RNN", {**parse_attribute_space("Y_h=present", "RNN"), "layers": (2,)},
                       "float64"))
def test_every_node_is_compared_and_located(case):
    """The runner that interprets the graph agrees with the oracle node by node; a wrong
    state of the first node alone is found, and located in it."""
    got = run_target(onnx_target(f"onnx:{STACKS}:run"), case)
    expected, tol = expectation(case, Readings(), "float64")
    assert got["Y_h"].shape == expected["Y_h"].shape and got["Y_h"].shape[0] == 2
    assert not compare_flat(expected, got, tol.arrays)
    got["Y_h"][0] += 1e-6
    (bad,) = [m for m in compare_flat(expected, got, tol.arrays) if m.name == "Y_h"]
    assert bad.index[0] == 0 and where(case, "Y_h", bad.index).startswith("Y_h[layer=0, ")


def test_layers_in_the_cli(capsys):
    args = ["--cell", "gru", "--examples", "3", "--seed", "1", "--no-progress",
            "--attributes", ORT_SPACE]
    assert cli.main(["onnxruntime", "--layers", "2"] + args) == 0
    assert "--layers 2" in capsys.readouterr().out
    assert cli.main(["onnxruntime", "--layers", "0"] + args) == 2
    assert "--layers" in capsys.readouterr().err
