"""The target cannot end, hang or fake the check (rnnsym.conformance.isolation; targets in
tests/broken/escapes.py, escapes_torch.py and, for the any-cell check, escapes_cell.py): every
escape is a MISMATCH of kind exited/crashed/timed out with exit code 1, shrunk like any
failure; correct but odd targets still pass in their worker; the target gets copies of what it
is given."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rnnsym.conformance import check
from rnnsym.conformance.cases import build_case
from rnnsym.conformance.cli import main
from rnnsym.conformance.isolation import TargetDied, isolate_harness
from rnnsym.conformance.target import TargetTimeout, call_target, limited_call
from rnnsym.frameworks import Config
from rnnsym.frameworks.registry import resolve_harness

ROOT = Path(__file__).resolve().parent.parent
BROKEN_DIR = Path(__file__).parent / "broken"
sys.path.insert(0, str(BROKEN_DIR))

from escapes import ESCAPE_B, ESCAPES  # noqa: E402

ESC = f"{BROKEN_DIR / 'escapes.py'}"
ESC_TORCH = f"{BROKEN_DIR / 'escapes_torch.py'}"
ARGS = ["--cell", "gru", "--examples", "20", "--seed", "0", "--no-progress"]


@pytest.mark.parametrize("name", sorted(ESCAPES))
def test_an_escaping_target_is_a_mismatch_with_its_kind_and_exit_1(name, capfd):
    kind, text = ESCAPES[name]
    assert main([f"{ESC}:{name}"] + ARGS) == 1
    out = capfd.readouterr().out
    assert ": MISMATCH after" in out and f"diagnosis: {kind}" in out and text in out, out
    # shrunk to the smallest escaping case: the batch size where it starts, one step
    assert f" T=1 B={ESCAPE_B} " in out, out


def test_sys_exit_in_process_is_still_a_verdict():
    for name in ("exit_0", "exit_3", "exit_bye"):
        report = check(f"{ESC}:{name}", "gru", examples=20, seed=0, in_process=True)
        assert report.verdict == "MISMATCH" and report.failure_kind == "exited", report.format()
        assert report.exit_code == 1 and report.counterexample.config.B == ESCAPE_B
        assert report.command.endswith("--in-process")


def test_a_hang_inside_a_c_call_is_killed_and_the_worker_restarted():
    report = check(f"{ESC}:hangs_in_c", "gru", examples=5, seed=0, timeout=0.3)
    assert report.failure_kind == "timed out" and report.exit_code == 1, report.format()
    assert "its process was killed" in report.counterexample.error
    assert report.counterexample.config.B >= ESCAPE_B

    harness, note = isolate_harness(resolve_harness(f"{ESC}:hangs_in_c", "gru")[0],
                                    f"{ESC}:hangs_in_c", "gru", False)
    assert note is None
    try:
        config = Config("gru", T=2, B=ESCAPE_B, d_in=4, d_h=5, dtype="float64",
                        variant=(("reset", "after"),))
        with pytest.raises(TargetTimeout):
            limited_call(harness, "run", _args(harness, config), timeout=0.2)
        small = config.replace(B=ESCAPE_B - 1)
        got = limited_call(harness, "run", _args(harness, small), timeout=0.2)   # restarted
        assert got["output"].shape == (2, ESCAPE_B - 1, 1, 5)
    finally:
        harness.close()


def _args(harness, config):
    case = build_case(harness, config, seed=0)
    return (case.config, case.values, case.x, case.state0)


@pytest.mark.parametrize("name", ["in_a_thread", "slow_first_call", "caches_weights"])
def test_correct_but_odd_targets_pass_in_their_worker(name, capsys):
    extra = ["--timeout", "0.3", "--examples", "6"] if name == "slow_first_call" else []
    assert main([f"{ESC}:{name}"] + ARGS + extra) == 0
    assert ": OK" in capsys.readouterr().out


def test_a_target_printing_passes_and_its_prints_go_to_stderr():
    """In a fresh process (pytest's capture swaps the file descriptors that the fork server,
    started once, inherits): stdout is the report's alone."""
    done = subprocess.run([sys.executable, "-m", "rnnsym", "check", f"{ESC}:prints"] + ARGS,
                          capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert done.returncode == 0 and ": OK" in done.stdout, done.stdout + done.stderr
    assert "computing a GRU" not in done.stdout and "computing a GRU" in done.stderr


@pytest.mark.parametrize("in_process", [False, True], ids=["worker", "in-process"])
@pytest.mark.parametrize("name", ["scribbles_on_inputs", "replaces_params"])
def test_the_target_gets_copies(name, in_process):
    harness = resolve_harness(f"{ESC}:{name}", "gru")[0]
    if not in_process:
        harness = isolate_harness(harness, f"{ESC}:{name}", "gru", False)[0]
    try:
        config = Config("gru", T=3, B=2, d_in=4, d_h=5, dtype="float64", initial_state=True,
                        variant=(("reset", "after"),))
        case = build_case(harness, config, seed=1)
        before = [dict(case.values), case.x, dict(case.state0)]
        before = [{k: v.copy() for k, v in before[0].items()}, case.x.copy(),
                  {k: v.copy() for k, v in before[2].items()}]
        got, failure = call_target(harness, case)
        assert failure is None and got["output"].shape == (3, 2, 1, 5)
        for k, v in before[0].items():
            assert np.array_equal(case.values[k], v), k
        assert np.array_equal(case.x, before[1])
        assert all(np.array_equal(case.state0[k], v) for k, v in before[2].items())
    finally:
        getattr(harness, "close", lambda: None)()
    assert check(f"{ESC}:{name}", "gru", examples=10, seed=0, in_process=in_process).passed


@pytest.mark.parametrize("in_process", [False, True], ids=["worker", "in-process"])
def test_a_returned_view_of_a_reused_buffer_is_copied(in_process):
    harness = resolve_harness(f"{ESC}:reuses_its_buffer", "gru")[0]
    if not in_process:
        harness = isolate_harness(harness, f"{ESC}:reuses_its_buffer", "gru", False)[0]
    try:
        config = Config("gru", T=3, B=2, d_in=4, d_h=5, dtype="float64",
                        variant=(("reset", "after"),))
        first, _ = call_target(harness, build_case(harness, config, seed=1))
        kept = {k: v.copy() for k, v in first.items()}
        second, _ = call_target(harness, build_case(harness, config, seed=2))
        assert not np.array_equal(second["output"], kept["output"])     # other numbers
        assert all(np.array_equal(first[k], kept[k]) for k in kept)     # first untouched
    finally:
        getattr(harness, "close", lambda: None)()


def test_torch_modules_cells_and_gradients_run_isolated():
    module = check(f"{ESC_TORCH}:GRUExitsBidirectional", "gru", examples=20, seed=0,
                   features="bidirectional")
    assert module.failure_kind == "exited" and module.exit_code == 1, module.format()
    assert "exit code 7" in module.counterexample.error
    assert module.counterexample.config.bidirectional
    grads = check(f"{ESC_TORCH}:GRUExitsBidirectional", "gru", examples=10, seed=0, gradients=True,
                  features="bidirectional")
    assert grads.failure_kind == "exited" and "exit code 7" in grads.counterexample.error
    cell = check(f"{ESC_TORCH}:GRUCellAborts", "gru", examples=20, seed=0, cell_api=True,
                 features="none")
    assert cell.failure_kind == "crashed" and "SIGABRT" in cell.counterexample.error
    assert cell.counterexample.config.B == ESCAPE_B, cell.format()


def test_an_onnx_backend_that_segfaults_is_a_mismatch():
    report = check(f"onnx:{ESC_TORCH}:onnx_segfaults", "gru", examples=10, seed=0,
                   attributes="direction=bidirectional")
    assert report.exit_code == 1 and report.failure_kind == "crashed", report.format()
    assert "SIGSEGV" in report.format()


def test_a_target_that_cannot_be_pickled_runs_in_process_and_says_so():
    from escapes import gru

    def local(params, x, state0=None):
        return gru(params, x, state0)
    report = check(local, "gru", examples=5, seed=0)
    assert report.passed and "ran in-process: it cannot be pickled" in report.format()


def test_worker_death_is_reported_not_raised():
    harness = isolate_harness(resolve_harness(f"{ESC}:kills_itself", "gru")[0],
                              f"{ESC}:kills_itself", "gru", False)[0]
    try:
        config = Config("gru", T=1, B=ESCAPE_B, d_in=2, d_h=3, dtype="float64",
                        variant=(("reset", "after"),))
        with pytest.raises(TargetDied, match="SIGKILL"):
            limited_call(harness, "run", _args(harness, config))
    finally:
        harness.close()


def test_an_exception_that_cannot_be_pickled_still_reads_as_raised():
    report = check(f"{ESC}:raises_unpicklable", "gru", examples=20, seed=0)
    assert report.failure_kind == "raised" and report.exit_code == 1, report.format()
    assert "raised LockedError: batch too large" in report.counterexample.error
    assert report.counterexample.config.B == ESCAPE_B


def test_a_hang_times_out_when_check_runs_outside_the_main_thread():
    """There the checker cannot use SIGALRM (in-process, such a call was never limited); the
    worker's main thread can, and the checker's own deadline backs it."""
    import threading
    reports = []
    thread = threading.Thread(target=lambda: reports.append(
        check(f"{ESC}:hangs_in_python", "gru", examples=5, seed=0, timeout=0.3)))
    thread.start()
    thread.join(120)
    assert reports and reports[0].failure_kind == "timed out", reports
    assert reports[0].counterexample.config.B >= ESCAPE_B


# --- the any-cell check (--cell mingru, --define): tests/broken/escapes_cell.py --------------
import escapes_cell  # noqa: E402

ESC_CELL = f"{BROKEN_DIR / 'escapes_cell.py'}"
CELL_ARGS = {"mingru": ["--cell", "mingru"], "elman": ["--define", escapes_cell.DEFINE]}


@pytest.mark.parametrize("base", sorted(CELL_ARGS))
@pytest.mark.parametrize("name", sorted(escapes_cell.ESCAPES))
def test_an_escaping_any_cell_target_is_a_mismatch_with_its_kind_and_exit_1(name, base, capfd):
    kind, text = escapes_cell.ESCAPES[name]
    argv = [f"{ESC_CELL}:{base}_{name}"] + CELL_ARGS[base] + ["--examples", "20", "--seed", "0",
                                                             "--no-progress"]
    assert main(argv) == 1
    out = capfd.readouterr().out
    assert ": MISMATCH after" in out and f"diagnosis: {kind}" in out and text in out, out
    assert f" T=1 B={escapes_cell.ESCAPE_B} " in out, out
    assert "--in-process" not in out and "ran in-process" not in out, out


def test_any_cell_hang_in_c_and_gradients_escape_are_verdicts():
    hang = check(f"{ESC_CELL}:mingru_hangs_in_c", "mingru", examples=5, seed=0, timeout=0.3)
    assert hang.failure_kind == "timed out" and hang.exit_code == 1, hang.format()
    assert "its process was killed" in hang.counterexample.error
    grads = check(f"{ESC_CELL}:mingru_os_exit_0", "mingru", examples=10, seed=0, gradients=True)
    assert grads.failure_kind == "exited" and grads.exit_code == 1, grads.format()
    assert "exit code 0" in grads.counterexample.error
    assert grads.counterexample.config.B == escapes_cell.ESCAPE_B


@pytest.mark.parametrize("in_process", [False, True], ids=["worker", "in-process"])
def test_correct_any_cell_targets_pass_isolated_and_in_process(in_process):
    for target, cell, kwargs in ((f"{ESC_CELL}:mingru", "mingru", {}),
                                 (f"{ESC_CELL}:elman", None, dict(define=escapes_cell.DEFINE))):
        report = check(target, cell, examples=15, seed=0, in_process=in_process, **kwargs)
        assert report.passed, report.format()
        assert report.command.endswith("--in-process") == in_process, report.command
        assert "ran in-process" not in report.format()
    grads = check(f"{ESC_CELL}:mingru", "mingru", examples=8, seed=0, gradients=True,
                  in_process=in_process)
    assert grads.passed, grads.format()
    if in_process:      # sys.exit is still caught in-process
        ko = check(f"{ESC_CELL}:elman_exit_0", None, define=escapes_cell.DEFINE, examples=20,
                   seed=0, in_process=True)
        assert ko.failure_kind == "exited" and ko.exit_code == 1, ko.format()


def test_the_diagnosis_relative_runs_in_the_worker():
    """``mutations.relative`` (the bigger case that tells fitting edits apart) calls the
    target through its worker: a target that ends its process there gives no relative,
    and the check (this process) goes on."""
    from rnnsym.conformance.anycell import request
    from rnnsym.conformance.cases import Case
    from rnnsym.conformance.isolation import isolate_cell
    from rnnsym.conformance.mutations import relative
    from rnnsym.frameworks.cell_api import CellConfig, cell_target

    req = request("mingru")
    table = req.cell.shapes()
    config = CellConfig(cell="mingru", T=2, B=escapes_cell.ESCAPE_B, dims=(("d_h", 4),
                        ("d_in", 5)))
    shapes = table.concrete(d_h=4, d_in=5)
    rng = np.random.default_rng(0)
    values = {p: rng.uniform(-1, 1, shapes[p]) for p in req.cell.params}
    case = Case(config, values, rng.uniform(-1, 1, (2, config.B, 5)), None)
    for name, survives in (("mingru", True), ("mingru_os_exit_0", False)):
        target = f"{ESC_CELL}:{name}"
        local = cell_target(getattr(escapes_cell, name), req.cell, table, target)
        tgt, note = isolate_cell(local, target, req.recipe, target)
        assert note is None
        try:
            big = relative(req.cell, case, tgt, timeout=30)
        finally:
            tgt.close()
        assert (big is not None) == survives
        if survives:
            assert big.got["output"].shape == (3, config.B, 1, 4)


def test_an_any_cell_target_that_cannot_be_pickled_runs_in_process_and_says_so():
    def local(params, x, state0=None):
        return escapes_cell.mingru(params, x, state0)
    report = check(local, "mingru", examples=5, seed=0)
    assert report.passed and "ran in-process: it cannot be pickled" in report.format()
