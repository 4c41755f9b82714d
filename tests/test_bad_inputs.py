"""Issue 17: every bad input in tests/bad_inputs.py ends in one line naming the argument (exit 2,
no traceback; or the Python exception shown), and docs/bad-inputs.md is that table, current."""
import os

import pytest

import bad_inputs as B

CASES = B.cases()


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad_inputs")
    return B.run_all(folder), folder


def test_the_table_is_long_enough():
    assert len(CASES) >= 115
    texts = [c.text for c in CASES]
    assert len(set(texts)) == len(texts), "a case is listed twice"


@pytest.mark.parametrize("i", range(len(CASES)),
                         ids=[f"{i}:{c.text[:50]}" for i, c in enumerate(CASES)])
def test_bad_input_gets_one_line_naming_it(i, results):
    case, out = results[0][i]
    assert case is CASES[i] or case.text == CASES[i].text
    assert out.lines == 1, f"{case.text}: {out.lines} lines:\n{out.message}"
    assert "Traceback" not in out.message
    assert case.names in out.message, f"{case.text}: {out.message!r} does not name {case.names!r}"
    if isinstance(case, B.Cli):
        assert out.result == f"exit {case.code}", f"{case.text}: {out.result}, {out.message}"
        assert out.message.startswith("rnnsym") and ": error: " in out.message
    else:
        assert out.result != "returned", f"{case.text} returned instead of raising"
        assert issubclass(out.error, case.error), f"{case.text}: {out.result}: {out.message}"


def test_nothing_escaped_the_scratch_folder(results):
    """`generate --name ../escape` once wrote escape.py beside --out; nothing may leave it."""
    _, folder = results
    assert not (folder.parent / "escape.py").exists() and not (folder / "escape.py").exists()
    assert not os.path.exists("/proc/rnnsym")
    assert sorted(p.name for p in folder.iterdir()) == [
        "afile", "bad.onnx", "w_shapes.npz", "w_strings.npz"]


def test_docs_table_is_current(results):
    text = B.render(results[0])
    assert B.DOC.read_text() == text, (
        "docs/bad-inputs.md is stale: PYTHONPATH=$PWD python tests/bad_inputs.py --write")


def test_compile_takes_a_builtin_name():
    import rnnsym
    assert rnnsym.compile("elman") is rnnsym.compile(rnnsym.elman())
    assert rnnsym.compile("lstm").PARAM_SHAPES == rnnsym.compile(rnnsym.lstm()).PARAM_SHAPES


def test_write_never_leaves_its_folder(tmp_path):
    from rnnsym.codegen.files import write
    out = tmp_path / "out"
    for name in ("../escape.py", "sub/x.py", ".."):
        with pytest.raises(ValueError, match="not a file name"):
            write(out, {name: "x = 1\n"})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv,hint", [
    (["show", "elman"], "split the equations"),
    (["shapes", "elman"], "split the equations"),
    (["unroll", "elman", "--steps", "2", "--form", "nested"], "use --form chain"),
])
def test_recursion_limit_hint_fits_the_command(argv, hint, monkeypatch):
    """`show`/`shapes` have no --form: their message must not offer one."""
    import rnnsym.cli as cli

    def deep(*a, **k):
        raise RecursionError("maximum recursion depth exceeded")
    monkeypatch.setattr(cli, "cells_from_args", deep)
    code, _, err = B.run_cli(argv)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert hint in err and ("--form" in err) == ("--form" in hint)


def test_wrong_d_in_blames_x_with_distinct_sizes():
    """d_in=3, d_h=4, d_out=2 (elman with readout): a wrong x is named, the weights are not."""
    import numpy as np
    import rnnsym
    m = rnnsym.compile(rnnsym.elman(readout=True))
    rng = np.random.default_rng(0)
    p = {"W_xh": rng.normal(size=(4, 3)), "W_hh": rng.normal(size=(4, 4)), "b_h": np.zeros(4),
         "W_hy": rng.normal(size=(2, 4)), "b_y": np.zeros(2)}
    with pytest.raises(ValueError) as e:
        m.forward(p, rng.normal(size=(5, 2, 6)))
    assert str(e.value) == "x: expected shape (T, B, d_in) = (5, 2, 3), got (5, 2, 6)"
    out, _ = m.forward(p, rng.normal(size=(5, 2, 3)))
    assert out.shape == (5, 2, 2)
