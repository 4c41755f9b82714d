"""Function targets written the way a user wraps a float32-only fused kernel (issue 19): a
refused dtype is UNSUPPORTED with the dtype that works, the backward is the target file's own
(or the one named with --backward) and the report names it, and every array reaches the
target in the requested dtype (tests/broken/float32_kernel*.py)."""
from pathlib import Path

import pytest

from rnnsym.conformance import UsageError, check
from rnnsym.conformance.cli import main as check_main

BROKEN = Path(__file__).parent / "broken"
KERNEL = f"{BROKEN / 'float32_kernel.py'}:forward"
REEXPORT = f"{BROKEN / 'float32_kernel_reexport.py'}:forward"
FORWARD_ONLY = f"{BROKEN / 'float32_kernel_forward_only.py'}:forward"
GRU = {"cell": "gru", "variant": "reset=before"}


def test_a_kernel_refusing_float64_is_unsupported_and_the_report_names_float32(capsys):
    report = check(KERNEL, **GRU, examples=10, seed=1)        # float64: functions' default
    assert report.verdict == "UNSUPPORTED" and report.exit_code == 3, report.format()
    assert report.counterexample is None and report.checked_nothing
    assert [u.feature for u in report.unsupported] == ["dtype=float64"]
    text = report.format()
    assert "nothing could be checked: the target refuses --dtype float64" in text
    assert "the simplest case runs in float32: check it with --dtype float32" in text
    assert "NotImplementedError: GRUBlockCell: only float32 is implemented" in text
    assert check_main([KERNEL, "--cell", "gru", "--variant", "reset=before", "--examples", "5",
                       "--seed", "1", "--no-progress"]) == 3
    strict = check(KERNEL, **GRU, examples=10, seed=1, strict=True)
    assert strict.exit_code == 1 and "--strict: a failure" in strict.format()


def test_the_same_kernel_passes_in_float32_and_a_wrong_one_still_fails():
    assert check(KERNEL, **GRU, examples=20, seed=1, dtype="float32").passed
    wrong = check(KERNEL, cell="gru", examples=20, seed=1, dtype="float32")  # claims reset=after
    assert wrong.verdict == "MISMATCH" and wrong.failure_kind == "wrong numbers", wrong.format()


def test_not_implemented_in_every_dtype_is_still_a_failure():
    """No other dtype runs core input: the refusal is not about the dtype (exit 1)."""
    def refuses_all(params, x, state0=None):
        raise NotImplementedError("not written yet")
    report = check(refuses_all, "gru", examples=5, seed=0)
    assert report.verdict == "MISMATCH" and report.failure_kind == "raised", report.format()
    assert not report.unsupported


def test_upstream_gradients_reach_a_dtype_asserting_backward_in_float32():
    report = check(KERNEL, **GRU, examples=30, seed=1, dtype="float32", gradients=True)
    assert report.passed, report.format()
    assert report.backward == f"backward in {BROKEN.resolve() / 'float32_kernel.py'}"
    assert "gradients of the target by: backward in" in report.format()


def test_the_backward_is_the_target_files_own_not_the_one_beside_its_forward():
    """float32_kernel_reexport.py imports forward from float32_kernel.py (whose backward is
    right) and has its own, broken backward: that one is checked, and fails."""
    report = check(REEXPORT, **GRU, examples=30, seed=1, dtype="float32", gradients=True)
    assert report.failure_kind == "wrong gradients", report.format()
    assert [m.name for m in report.counterexample.mismatches] == ["param:W_hn"]
    assert "float32_kernel_reexport.py" in report.backward
    assert "gradients of the target by: backward in" in report.format()
    named = check(REEXPORT, **GRU, examples=30, seed=1, dtype="float32", gradients=True,
                  backward="backward_right")
    assert named.passed, named.format()
    assert named.backward.startswith("backward_right in ") and "--backward" in named.backward
    assert "--backward backward_right" in named.command


def test_a_file_without_its_own_backward_is_a_usage_error(capsys):
    with pytest.raises(UsageError, match="name one with --backward NAME"):
        check(FORWARD_ONLY, **GRU, examples=5, seed=1, dtype="float32", gradients=True)
    with pytest.raises(UsageError, match="--backward nope: .* has no function 'nope'"):
        check(REEXPORT, **GRU, examples=5, seed=1, dtype="float32", gradients=True,
              backward="nope")
    with pytest.raises(UsageError, match="add --gradients"):
        check(REEXPORT, **GRU, examples=5, seed=1, backward="backward_right")
    assert check_main([FORWARD_ONLY, "--cell", "gru", "--gradients", "--dtype", "float32",
                       "--examples", "3", "--no-progress"]) == 2
    assert "--backward NAME" in capsys.readouterr().err


def test_a_drop_in_refusing_its_default_dtype_is_unsupported_with_float64_suggested():
    """The same rule for a class (drop-in for torch.nn.GRU, float32 by default) that only runs
    in float64: formerly a failure, since float32 is the default dtype."""
    import torch

    class GRUFloat64Only(torch.nn.GRU):
        def forward(self, input, hx=None):
            if input.dtype != torch.float64:
                raise NotImplementedError(f"only float64, got {input.dtype}")
            return super().forward(input, hx)

    report = check(GRUFloat64Only, "gru", examples=10, seed=0, without="lengths")
    assert report.verdict == "UNSUPPORTED" and report.exit_code == 3, report.format()
    assert "the target refuses --dtype float32" in report.format()
    assert "check it with --dtype float64" in report.format()
    assert check(GRUFloat64Only, "gru", examples=10, seed=0, without="lengths",
                 dtype="float64").passed
