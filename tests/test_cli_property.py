"""Issue 17, "a property that keeps it so": random command lines, made of real subcommands and
options with valid and invalid values and of paths that exist, do not exist or cannot be written,
end in an exit code of 0-3; exit 2 prints exactly one line on stderr and no traceback; nothing is
written outside the requested output (generate's --out folder, gradients' --plot file).

Run in-process (``rnnsym.cli.main``) in a fresh scratch folder per example. ``bench`` and
``check`` always get one invalid option, so that only their validation runs (no timing, no
framework import)."""
import os
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bad_inputs import run_cli

CELL = "h = tanh(W @ h + U @ x)"

cells = st.sampled_from(["elman", "rnn", "lstm", "gru", "mingru", "sru", "qrnn", "lsmt", "RNN"])
steps = st.sampled_from(["1", "2", "3", "0", "-1", "two", "2.5"])
texts = st.sampled_from([CELL, "h = W @ h", "h = tanh(U @ x)", "h = tanh(W @ h", "h = _W @ h",
                         "z = sigmoid(A @ x); h = z * h + U @ x", "h = open(W @ h)", ""])
# paths: the output folder and things inside it, a file, a missing folder, an unwritable place
paths = st.sampled_from(["out", "out/sub", "afile", "afile/sub", "missing/deep", "/proc/rnnsym",
                         ".", ""])
plots = st.sampled_from(["out/g.svg", "out/g.pdf", "missing/g.svg", "afile/g.svg",
                         "/proc/g.svg", "out"])
numbers = st.sampled_from(["1", "0.5", "3", "0", "-1", "nan", "inf", "x", ""])
sizes = st.sampled_from(["d_h=2,d_in=1", "d_h=3", "d_h=0", "d_h=100000,d_in=1", "d_q=2", "d_h",
                         "d_h=2,d_in=3"])
names = st.sampled_from(["mine", "../escape", "my cell!", "import", "", "out/x", "a.b"])
weights = st.sampled_from(["w.npz", "afile", "missing.npz", "out"])


def option(flag, values):
    return st.tuples(st.just(flag), values).map(list)


def flag(name):
    return st.just([name])


cell_options = st.one_of(
    option("--activation", st.sampled_from(["tanh", "relu", "swish"])), flag("--peepholes"),
    flag("--coupled"), flag("--projection"), flag("--with-readout"), option("--clip", numbers),
    option("--reset", st.sampled_from(["after", "before", "sideways"])),
    option("--pooling", st.sampled_from(["f", "fo", "x"])), option("--eps", numbers),
    option("--define", texts), option("--dims", st.sampled_from(["d_in=d_h", "d_in=d_q", "d_in"])),
    option("--readout", st.sampled_from(["y", "h", ""])),
    option("--input", st.sampled_from(["x", "u"])),
    option("--state", st.sampled_from(["h", "c"])), option("--name", names),
    st.just(["--bogus"]))

per_command = {
    "cells": st.just([]),
    "show": st.one_of(flag("--latex"), flag("--backward")),
    "shapes": st.just([]),
    "unroll": st.one_of(option("--steps", steps), option("--sizes", sizes), flag("--text"),
                        flag("--latex"), option("--form", st.sampled_from(
                            ["chain", "nested", "elementwise", "tree"]))),
    "jacobian": st.one_of(option("--steps", steps), flag("--text")),
    "gradients": st.one_of(option("--steps", steps), option("--sizes", sizes),
                           option("--radius", st.sampled_from(["0.9,1.1", "-1", "a", "nan"])),
                           option("--plot", plots), option("--weights", weights),
                           option("--set", st.sampled_from(["b_h=1", "b_q=1", "b_h=x"])),
                           option("--every", steps), option("--seed", steps)),
    "generate": st.one_of(option("--out", paths), flag("--check"), option("--name", names)),
}
# bench and check: one invalid option each, so that they stop at validation
invalid_bench = st.sampled_from([["--repeats", "0"], ["--shape", "1,2"], ["--shape", "0,1,1,1"],
                                 ["--dtype", "float16"], ["lsmt"], ["--repeats", "x"]])
invalid_check = st.sampled_from([["--rtol", "-1"], ["--atol", "nan"], ["--examples", "0"],
                                 ["--examples", "ten"], ["--timeout", "-1"], ["--layers", "0"],
                                 ["--seed", "x"], ["--dtype", "float16"],
                                 ["--bidirectional", "maybe"], ["--cell", "lsmt"]])


@st.composite
def command_lines(draw):
    command = draw(st.sampled_from([*per_command, "bench", "check", "nope"]))
    if command == "bench":
        return ["bench", *draw(invalid_bench), *draw(st.lists(cells, max_size=1))]
    if command == "check":
        target = draw(st.sampled_from(["torch", "nope", "onnxruntime", "missing.py:GRU"]))
        head = ["check", target] + draw(st.sampled_from([[], ["--cell", "gru"]]))
        return head + draw(invalid_check)
    if command == "nope":
        return ["nope"]
    argv = [command] + draw(st.lists(cells, max_size=2 if command in ("gradients", "generate")
                                     else 1))
    if command == "generate" and len(argv) == 1 and not draw(st.booleans()):
        argv.append("elman")          # keep most examples off the 24-module default
    for part in draw(st.lists(st.one_of(cell_options, per_command[command]), max_size=4)):
        argv += part
    if command == "generate" and "--define" not in argv and len(argv) == 1:
        argv += ["--define", CELL]    # the whole generated/ folder would take seconds
    return argv


def requested(argv) -> list[str]:
    """The outputs the command line asks for: generate's --out folder, gradients' --plot file."""
    def last(flag, default=None):
        values = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == flag]
        return values[-1] if values else default
    out = [last("--out", "generated")] if argv[0] == "generate" else []
    plot = last("--plot") if argv[0] == "gradients" else None
    return [os.path.normpath(p) for p in out + ([plot] if plot else [])]


def inside(path: str, outputs: list[str]) -> bool:
    return any(o == "." or path == o or path.startswith(o + os.sep) for o in outputs)


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(argv=command_lines())
def test_any_command_line_exits_0_to_3_and_errors_in_one_line(argv, tmp_path):
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    (folder / "afile").write_text("a file, not a folder\n")
    rng = np.random.default_rng(0)
    np.savez(folder / "w.npz", W_xh=rng.normal(size=(4, 3)), W_hh=rng.normal(size=(4, 4)),
             b_h=rng.normal(size=4))
    before, around = snapshot(folder), sorted(os.listdir(tmp_path))
    here = os.getcwd()
    os.chdir(folder)
    try:
        code, _, err = run_cli(argv)
    finally:
        os.chdir(here)
    assert code in (0, 1, 2, 3), f"rnnsym {argv}: exit {code}\n{err}"
    assert "Traceback" not in err, f"rnnsym {argv}:\n{err}"
    if code == 2:
        assert len(err.strip().splitlines()) == 1, f"rnnsym {argv}: exit 2 with\n{err}"
    after = snapshot(folder)
    changed = {p for p in after if before.get(p) != after[p]} | (set(before) - set(after))
    outside = {p for p in changed if not inside(p, requested(argv))}
    assert not outside, f"rnnsym {argv} wrote {sorted(outside)} outside {requested(argv)}"
    assert sorted(os.listdir(tmp_path)) == around, f"rnnsym {argv} wrote beside its folder"
    assert not os.path.exists("/proc/rnnsym")
