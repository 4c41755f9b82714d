"""The table of bad inputs (issue 17): every one, on the command line or in the Python API, must
end in one line that names the argument. The data of ``tests/test_bad_inputs.py`` and the source
of ``docs/bad-inputs.md``, rendered by ``render`` (rewrite it with
``PYTHONPATH=$PWD python tests/bad_inputs.py --write``).

A case is ``Cli(argv, code, names)``: ``rnnsym ARGV`` (run in-process, in a scratch folder that
``prepare`` fills) exits with ``code`` and one line on stderr containing ``names``; or
``Api(text, call, error, names)``: ``call()`` raises ``error`` with a one-line message containing
``names``, ``text`` being the call as the table shows it.
"""
from __future__ import annotations

import contextlib
import io
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

DOC = Path(__file__).resolve().parent.parent / "docs" / "bad-inputs.md"
CELL = "h = tanh(W @ h + U @ x)"


@dataclass(frozen=True)
class Cli:
    argv: tuple
    code: int
    names: str

    @property
    def text(self):
        import shlex
        return shlex.join(["rnnsym", *(a if len(a) < 60 else a[:40] + "..." for a in self.argv)])


@dataclass(frozen=True)
class Api:
    text: str
    call: Callable
    error: type
    names: str


@dataclass(frozen=True)
class Outcome:
    result: str         # "exit 2" or the exception's class name
    message: str        # the stderr line or the exception's message
    lines: int          # lines on stderr, or in the message
    stdout: str = ""
    error: type = type(None)    # the exception raised (API cases)


def cli(*argv, code=2, names=""):
    return Cli(tuple(argv), code, names)


# --- fixtures of the API cases -------------------------------------------------------------
def _elman():
    import rnnsym
    return rnnsym.compile(rnnsym.elman())


def _params(**change):
    """Elman parameters with d_in=3, d_h=4 (distinct), changed as given."""
    rng = np.random.default_rng(0)
    p = {"W_xh": rng.normal(size=(4, 3)), "W_hh": rng.normal(size=(4, 4)),
         "b_h": rng.normal(size=4)}
    p.update(change)
    return {k: v for k, v in p.items() if v is not None}


X = np.random.default_rng(1).normal(size=(5, 2, 3))        # (T, B, d_in) = (5, 2, 3)


def _forward(params=None, x=X, state0=None):
    return _elman().forward(_params() if params is None else params, x, state0)


def _backward(d_outputs, d_final_state=None):
    m = _elman()
    _, _, cache = m.forward(_params(), X, return_cache=True)
    return m.backward(_params(), cache, d_outputs, d_final_state)


def _table():
    import rnnsym
    return rnnsym.shapes(rnnsym.elman())


def _check(**kw):
    import rnnsym.conformance
    kw = {"examples": 1, **kw}
    return rnnsym.check(kw.pop("target", "torch"), kw.pop("cell", "gru"), **kw)


def _unroll(*args, cell="elman", **kw):
    import rnnsym
    from rnnsym.unroll import unroll
    return unroll(rnnsym.builtin(cell), *args, **kw)


def _curves(**kw):
    import rnnsym
    from rnnsym import vanishing
    return vanishing.curves([rnnsym.elman()], **{"steps": 3, **kw})


def _onnx(model):
    import rnnsym.onnx
    return rnnsym.onnx.run(model, [X.astype(np.float32)])


def _builtin(factory, **kw):
    import rnnsym.cells
    if factory == "builtin":
        return rnnsym.cells.builtin(kw.pop("kind"), **kw)
    return getattr(rnnsym.cells, factory)(**kw)


def _parse(text, **kw):
    import rnnsym
    return rnnsym.parse_cell(text, **kw)


def _compile(cell):
    import rnnsym
    return rnnsym.compile(cell)


def _jacobian(steps):
    import rnnsym
    from rnnsym.jacobian import chain_jacobian
    return chain_jacobian(rnnsym.elman(), steps)


DEEP = "h = " + " + ".join(["W @ h"] * 1000)


def _errors():
    """The exception classes the API cases expect (imported late: rnnsym.conformance needs hypothesis)."""
    from rnnsym.cells.parse import DefinitionError
    from rnnsym.conformance.checker import OptionTypeError
    from rnnsym.frameworks import UsageError
    from rnnsym.jacobian import JacobianError
    from rnnsym.onnx import OnnxError
    from rnnsym.shapes import ArrayShapeError, ShapeError
    from rnnsym.unroll import UnrollError, UnrollTooLarge
    from rnnsym.vanishing import GradientsError
    return dict(DefinitionError=DefinitionError, OptionTypeError=OptionTypeError,
                UsageError=UsageError, JacobianError=JacobianError, OnnxError=OnnxError,
                ArrayShapeError=ArrayShapeError, ShapeError=ShapeError, UnrollError=UnrollError,
                UnrollTooLarge=UnrollTooLarge, GradientsError=GradientsError)


def api_cases():
    E = _errors()
    c = complex
    return [
        # parse_cell
        Api("rnnsym.parse_cell(42)", lambda: _parse(42), TypeError, "text"),
        Api("rnnsym.parse_cell(None)", lambda: _parse(None), TypeError, "text"),
        Api("rnnsym.parse_cell('')", lambda: _parse(""), E["DefinitionError"], "empty"),
        Api("rnnsym.parse_cell('h = ' + ' + '.join(['W @ h'] * 1000))", lambda: _parse(DEEP),
            E["DefinitionError"], "limit of 150"),
        Api(f"rnnsym.parse_cell({CELL!r}, dims=[('d_in', 'd_q')])",
            lambda: _parse(CELL, dims=[("d_in", "d_q")]), E["DefinitionError"], "d_q"),
        Api("rnnsym.parse_cell('h = W @ h', readouts=['y'])",
            lambda: _parse("h = W @ h", readouts=["y"]), E["DefinitionError"], "readout `y`"),
        Api("rnnsym.parse_cell('h = open(W @ h)')", lambda: _parse("h = open(W @ h)"),
            E["DefinitionError"], "open"),
        Api("rnnsym.parse_cell('h = W.T @ h')", lambda: _parse("h = W.T @ h"),
            E["DefinitionError"], "W.T"),
        Api("rnnsym.parse_cell('h = W @ h', inputs=['h'])",
            lambda: _parse("h = W @ h", inputs=["h"]), E["DefinitionError"], "`h` is an input"),
        # built-in cells and compile
        Api("rnnsym.lstm(clip=-1.0)", lambda: _builtin("lstm", clip=-1.0), ValueError, "clip"),
        Api("rnnsym.lstm(clip=float('nan'))", lambda: _builtin("lstm", clip=float("nan")),
            ValueError, "clip"),
        Api("rnnsym.lstm(clip='3')", lambda: _builtin("lstm", clip="3"), ValueError, "clip"),
        Api("rnnsym.gru(clip=0)", lambda: _builtin("gru", clip=0), ValueError, "clip"),
        Api("rnnsym.elman(clip=float('inf'))", lambda: _builtin("elman", clip=float("inf")),
            ValueError, "clip"),
        Api("rnnsym.cells.lnlstm(eps=-1e-5)", lambda: _builtin("lnlstm", eps=-1e-5), ValueError,
            "eps"),
        Api("rnnsym.elman(activation='swish')", lambda: _builtin("elman", activation="swish"),
            ValueError, "activation"),
        Api("rnnsym.builtin('lsmt')", lambda: _builtin("builtin", kind="lsmt"), ValueError,
            "unknown cell"),
        Api("rnnsym.compile('lsmt')", lambda: _compile("lsmt"), ValueError, "unknown cell"),
        Api("rnnsym.compile(42)", lambda: _compile(42), TypeError, "cell"),
        Api("rnnsym.compile(None)", lambda: _compile(None), TypeError, "cell"),
        # shapes
        Api("rnnsym.shapes(rnnsym.elman()).concrete(d_in=-3, d_h=0)",
            lambda: _table().concrete(d_in=-3, d_h=0), E["ShapeError"], "d_h=0"),
        Api("rnnsym.shapes(rnnsym.elman()).concrete(d_in=2.5, d_h=3)",
            lambda: _table().concrete(d_in=2.5, d_h=3), E["ShapeError"], "d_in=2.5"),
        Api("rnnsym.shapes(rnnsym.elman()).concrete(d_h=3)", lambda: _table().concrete(d_h=3),
            E["ShapeError"], "d_in"),
        Api("rnnsym.shapes(rnnsym.elman()).validate({W_xh: (4, 3), W_hh: (4, 5), b_h: (4,)})",
            lambda: _table().validate(_params(W_hh=np.zeros((4, 5)))), E["ArrayShapeError"],
            "W_hh"),
        # unroll, jacobian
        Api("unroll(rnnsym.elman(), 0)", lambda: _unroll(0), E["UnrollError"], "steps"),
        Api("unroll(rnnsym.elman(), 2.5)", lambda: _unroll(2.5), E["UnrollError"], "steps"),
        Api("unroll(rnnsym.elman(), 2, form='tree')", lambda: _unroll(2, form="tree"),
            E["UnrollError"], "form"),
        Api("unroll(rnnsym.elman(), 2, form='elementwise')", lambda: _unroll(2, form="elementwise"),
            E["UnrollError"], "sizes"),
        Api("unroll(rnnsym.elman(), 2, form='elementwise', sizes={'d_h': 100000, 'd_in': 1})",
            lambda: _unroll(2, form="elementwise", sizes={"d_h": 100000, "d_in": 1}),
            E["UnrollTooLarge"], "d_h=100000"),
        Api("unroll(rnnsym.elman(), 2, form='elementwise', sizes={'d_h': 0, 'd_in': 1})",
            lambda: _unroll(2, form="elementwise", sizes={"d_h": 0, "d_in": 1}),
            E["ShapeError"], "d_h=0"),
        Api("unroll(rnnsym.lstm(), 40, form='nested')",
            lambda: _unroll(40, form="nested", cell="lstm"), E["UnrollTooLarge"], "limit"),
        Api("chain_jacobian(rnnsym.elman(), 0)", lambda: _jacobian(0), E["JacobianError"],
            "steps"),
        # the compiled forward and backward (elman, d_in=3, d_h=4; x is (T, B, d_in) = (5, 2, 3))
        Api("forward(params, x + 1j)", lambda: _forward(x=X + 1j), TypeError, "x: "),
        Api("forward({..., 'W_hh': W_hh + 0j}, x)",
            lambda: _forward(_params(W_hh=_params()["W_hh"] + 0j)), TypeError, "W_hh"),
        Api("forward(params, x, {'h': h0 * 1j})",
            lambda: _forward(state0={"h": np.ones((2, 4)) * c(0, 1)}), TypeError, "state0['h']"),
        Api("forward({..., 'W_hh': 'abc'}, x)", lambda: _forward(_params(W_hh="abc")),
            TypeError, "W_hh"),
        Api("forward({..., 'b_h': ['1', '2', '3', '4']}, x)",
            lambda: _forward(_params(b_h=["1", "2", "3", "4"])), TypeError, "b_h"),
        Api("forward({..., 'b_h': [1, [2, 3]]}, x)", lambda: _forward(_params(b_h=[1, [2, 3]])),
            TypeError, "b_h"),
        Api("forward({..., 'b_h': np.array([None] * 4)}, x)",
            lambda: _forward(_params(b_h=np.array([None] * 4))), TypeError, "b_h"),
        Api("forward(params, x with d_in=7)", lambda: _forward(x=np.zeros((5, 2, 7))),
            ValueError, "x: expected shape (T, B, d_in) = (5, 2, 3)"),
        Api("forward(params, x[0])  # 2-D", lambda: _forward(x=X[0]), ValueError, "x: "),
        Api("forward([W_xh, W_hh, b_h], x)", lambda: _forward(list(_params().values())),
            TypeError, "params"),
        Api("forward({W_xh, W_hh}, x)  # b_h missing", lambda: _forward(_params(b_h=None)),
            ValueError, "b_h"),
        Api("forward({..., 'W_hy': W}, x)  # unknown", lambda: _forward(_params(W_hy=np.eye(4))),
            ValueError, "W_hy"),
        Api("forward({..., 'W_xh': W_xh.T}, x)",
            lambda: _forward(_params(W_xh=_params()["W_xh"].T)), ValueError, "W_xh"),
        Api("forward(params, x, {'h': zeros((2, 5))})",
            lambda: _forward(state0={"h": np.zeros((2, 5))}), ValueError, "state0['h']"),
        Api("forward(params, x, {'c': zeros((2, 4))})",
            lambda: _forward(state0={"c": np.zeros((2, 4))}), ValueError, "c"),
        Api("backward(params, cache, d_outputs of shape (5, 2, 3))",
            lambda: _backward(np.zeros((5, 2, 3))), ValueError, "d_outputs"),
        Api("backward(params, cache, d_outputs * 1j)",
            lambda: _backward(np.ones((5, 2, 4)) * c(0, 1)), TypeError, "d_outputs"),
        Api("backward(params, cache, d_outputs, {'h': 'abc'})",
            lambda: _backward(np.ones((5, 2, 4)), {"h": "abc"}), TypeError, "d_final_state['h']"),
        # ONNX
        Api("rnnsym.onnx.run('bad.onnx', [x])  # not ONNX", lambda: _onnx("bad.onnx"),
            E["OnnxError"], "bad.onnx"),
        Api("rnnsym.onnx.run('missing.onnx', [x])", lambda: _onnx("missing.onnx"),
            E["OnnxError"], "missing.onnx"),
        Api("rnnsym.onnx.run(b'garbage', [x])", lambda: _onnx(b"\x08\xff\xff garbage"),
            E["OnnxError"], "model"),
        Api("rnnsym.onnx.run(42, [x])", lambda: _onnx(42), E["OnnxError"], "model"),
        # the checker's Python API
        Api("rnnsym.check('torch', 'gru', examples='ten')", lambda: _check(examples="ten"),
            TypeError, "examples"),
        Api("rnnsym.check('torch', 'gru', examples=2.5)", lambda: _check(examples=2.5),
            TypeError, "examples"),
        Api("rnnsym.check('torch', 'gru', examples=0)", lambda: _check(examples=0),
            E["UsageError"], "examples"),
        Api("rnnsym.check('torch', 'gru', rtol=-1)", lambda: _check(rtol=-1), E["UsageError"],
            "rtol"),
        Api("rnnsym.check('torch', 'gru', atol=float('nan'))", lambda: _check(atol=float("nan")),
            E["UsageError"], "atol"),
        Api("rnnsym.check('torch', 'gru', rtol='1e-3')", lambda: _check(rtol="1e-3"),
            E["UsageError"], "rtol"),
        Api("rnnsym.check('torch', 'gru', seed='x')", lambda: _check(seed="x"), TypeError,
            "seed"),
        Api("rnnsym.check('torch', 'lsmt')", lambda: _check(cell="lsmt"), E["UsageError"],
            "cell"),
        Api("rnnsym.check('torch', 'gru', dtype='float16')", lambda: _check(dtype="float16"),
            E["UsageError"], "dtype"),
        Api("rnnsym.check('torch', 'gru', timeout=-1)", lambda: _check(timeout=-1),
            E["UsageError"], "timeout"),
        Api("rnnsym.check('nope', 'gru')", lambda: _check(target="nope"), E["UsageError"],
            "nope"),
        Api("rnnsym.check('onnxruntime', 'gru', gradients=True)",
            lambda: _check(target="onnxruntime", gradients=True), E["UsageError"], "gradients"),
        # the gradient analysis
        Api("vanishing.curves([rnnsym.elman()], steps=0)", lambda: _curves(steps=0),
            E["GradientsError"], "steps"),
        Api("vanishing.curves([rnnsym.elman()], 3, radii=(-1,))", lambda: _curves(radii=(-1,)),
            E["GradientsError"], "radius"),
        Api("vanishing.curves([rnnsym.elman()], 3, sizes={'d_h': 100000})",
            lambda: _curves(sizes={"d_h": 100000}), E["GradientsError"], "d_h=100000"),
        Api("vanishing.curves([rnnsym.elman()], 3, sizes={'d_h': 0})",
            lambda: _curves(sizes={"d_h": 0}), E["GradientsError"], "sizes"),
        Api("vanishing.curves([rnnsym.elman()], 3, weights='afile')",
            lambda: _curves(weights="afile"), E["GradientsError"], "weights"),
    ]


def cli_cases():
    long_sum = "h = " + " + ".join(["W @ h"] * 200)
    plot = ("gradients", "elman", "--steps", "3", "--plot")
    weights = ("gradients", "elman", "--steps", "3", "--weights")
    ew = ("unroll", "elman", "--steps", "2", "--form", "elementwise", "--sizes")
    gen = ("generate", "--define", CELL)
    chk = ("check", "torch", "--cell", "gru")
    return [
        cli(names="COMMAND"),
        cli("frobnicate", names="invalid choice"),
        cli("show", names="CELL"),
        cli("show", "lsmt", names="unknown cell 'lsmt'"),
        cli("show", "lstm", "--define", CELL, names="--define"),
        cli("show", "gru", "--peepholes", names="--peepholes"),
        cli("show", "elman", "--reset", "after", names="--reset"),
        cli("show", "lstm", "--clip", "-1", names="clip"),
        cli("show", "lstm", "--clip", "nan", names="clip"),
        cli("show", "lstm", "--clip", "0", names="clip"),
        cli("show", "lstm", "--clip", "inf", names="clip"),
        cli("show", "lstm", "--clip", "x", names="--clip"),
        cli("show", "lnlstm", "--eps", "-1", names="eps"),
        cli("show", "lnlstm", "--eps", "nan", names="eps"),
        cli("show", "elman", "--activation", "swish", names="--activation"),
        cli("show", "gru", "--reset", "sideways", names="--reset"),
        cli("show", "qrnn", "--pooling", "ifo", names="--pooling"),
        cli("show", "--define", "h = tanh(W @ h", names="cannot parse"),
        cli("show", "--define", "h = __import__('os')", names="__import__"),
        cli("show", "--define", "h = W @ h; h = U @ x", names="assigned twice"),
        cli("show", "--define", "x = W @ x", names="`x` is an input"),
        cli("show", "--define", "h = tanh(U @ x)", names="no state"),
        cli("show", "--define", "h = swish(W @ h)", names="swish"),
        cli("show", "--define", "h = W @ h", "--readout", "y", names="readout `y`"),
        cli("show", "--define", "h = W @ h", "--state", "c", names="state `c`"),
        cli("show", "--define", "h = 2 @ h", names="`@` with a scalar"),
        cli("show", "--define", "h = W @ h / 0", names="division by zero"),
        cli("show", "--define", "h = _W @ h", names="`_W`"),
        cli("show", "--define", "h = W @ h + 'a'", names="constant 'a'"),
        cli("show", "--define", long_sum, names="limit of 150"),
        cli("shapes", "--define", long_sum, names="limit of 150"),
        cli("show", "--define", "h = tanh(W @ h + U @ x)", "--latex", "--backward", "--name", "x",
            "--input", "h", names="`h` is an input"),
        cli("shapes", "--define", CELL, "--dims", "d_in=d_q", names="d_q"),
        cli("shapes", "--define", CELL, "--dims", "d_in", names="--dims"),
        cli("shapes", "--define", "h = tanh(W @ h + W @ x)", "--dims", "d_out=d_h",
            names="d_out"),
        cli("shapes", "--define", "h = tanh(W @ h + W @ x)", names="W"),
        cli("shapes", "--define", "h = tanh(W @ h + U @ x)", "--readout", "h", names="`h`"),
        cli("unroll", "elman", names="--steps"),
        cli("unroll", "elman", "--steps", "0", names="--steps"),
        cli("unroll", "elman", "--steps", "-3", names="--steps"),
        cli("unroll", "elman", "--steps", "two", names="--steps"),
        cli("unroll", "elman", "--steps", "2", "--form", "tree", names="--form"),
        cli("unroll", "elman", "--steps", "2", "--form", "elementwise", names="d_h"),
        cli(*ew, "d_h=0,d_in=1", names="d_h"),
        cli(*ew, "d_h=-1,d_in=1", names="--sizes"),
        cli(*ew, "d_h=2,d_q=1", names="d_q"),
        cli(*ew, "d_h=100000,d_in=1", names="d_h=100000"),
        cli(*ew, "d_h", names="--sizes"),
        cli("unroll", "lstm", "--steps", "40", "--form", "nested", names="nested"),
        cli("unroll", "elman", "--steps", "2", "--latex", "--text", names="--text"),
        cli("jacobian", "elman", "--steps", "0", names="--steps"),
        cli("jacobian", "sru", names="--steps"),
        cli("jacobian", "elman", "--steps", "2", "--clip", "1", names="--clip"),
        cli("gradients", "--steps", "3", names="CELL"),
        cli("gradients", "elman", "--steps", "0", names="--steps"),
        cli("gradients", "elman", "--steps", "3", "--every", "0", names="--every"),
        cli("gradients", "elman", "--steps", "3", "--radius", "a,b", names="--radius"),
        cli("gradients", "elman", "--steps", "3", "--radius", "-1", names="radius"),
        cli("gradients", "elman", "--steps", "3", "--radius", "nan", names="radius"),
        cli(*plot, "out.pdf", names="--plot"),
        cli(*plot, "missing/x.png", names="--plot missing/x.png"),
        cli(*plot, "afile/x.png", names="--plot afile/x.png"),
        cli(*plot, "/proc/rnnsym.png", names="--plot /proc/rnnsym.png"),
        cli(*weights, "afile", names="weights"),
        cli(*weights, "missing.npz", names="weights"),
        cli(*weights, "w_shapes.npz", names="W_hh"),
        cli(*weights, "w_strings.npz", names="b_h"),
        cli("gradients", "elman", "lstm", "--steps", "3", "--weights", "w_shapes.npz",
            names="weights"),
        cli("gradients", "elman", "--steps", "3", "--sizes", "d_h=100000", names="d_h=100000"),
        cli("gradients", "elman", "--steps", "3", "--sizes", "d_h=0", names="d_h"),
        cli("gradients", "elman", "--steps", "3", "--sizes", "d_q=3", names="d_q"),
        cli("gradients", "elman", "--steps", "3", "--set", "b_q=1", names="b_q"),
        cli("gradients", "elman", "--steps", "3", "--set", "b_h=x", names="--set"),
        cli("gradients", "elman", "--steps", "3", "--seed", "x", names="--seed"),
        cli("generate", "lstm", "--out", "afile/sub", names="--out afile/sub"),
        cli("generate", "lstm", "--out", "afile", names="--out afile"),
        cli("generate", "lstm", "--out", "/proc/rnnsym", names="--out /proc/rnnsym"),
        cli("generate", "lstm", "--out", "missing/deeper/gen", names="--out missing/deeper/gen"),
        cli(*gen, "--name", "../escape", "--out", "gen", names="--name"),
        cli(*gen, "--name", "my cell!", "--out", "gen", names="--name"),
        cli(*gen, "--name", "import", "--out", "gen", names="--name"),
        cli(*gen, "--name", "", "--out", "gen", names="--name"),
        cli("generate", "--check", "--out", "MISSING", names="--out MISSING"),
        cli("generate", "--check", "--out", "afile", names="--out afile"),
        cli("generate", "--check", "lstm", names="--check"),
        cli("generate", "lsmt", names="unknown cell"),
        cli("bench", "lsmt", names="lsmt"),
        cli("bench", "--shape", "1,2,3", names="--shape"),
        cli("bench", "--shape", "0,1,1,1", names="--shape"),
        cli("bench", "--repeats", "0", names="--repeats"),
        cli("bench", "--shape", "100000,100000,1000,1000", names="--shape"),
        cli("bench", "--dtype", "float16", names="--dtype"),
        cli("check", names="target"),
        cli("check", "torch", names="--cell"),
        cli("check", "torch", "--cell", "lsmt", names="--cell"),
        cli("check", "onnxruntime", "--cell", "sru", names="--cell"),
        cli("check", "torch", "--cell", "sru", names="torch"),
        cli("check", "nope", "--cell", "gru", names="nope"),
        cli("check", "transformers:qwen3-gdn", names="transformers:qwen3-next-gdn"),
        cli("check", "fla:gla", "--cell", "lstm", names="--cell"),
        cli("check", "fla:gla", "--path", "chunked", names="--path"),
        cli("check", "torch", "--cell", "gru", "--property", "decode", names="--path/--property"),
        cli(*chk, "--rtol", "-1", names="--rtol"),
        cli(*chk, "--atol", "nan", names="--atol"),
        cli(*chk, "--examples", "0", names="--examples"),
        cli(*chk, "--examples", "ten", names="--examples"),
        cli(*chk, "--timeout", "-1", names="--timeout"),
        cli(*chk, "--layers", "0", names="--layers"),
        cli(*chk, "--bidirectional", "maybe", names="--bidirectional"),
        cli(*chk, "--dtype", "float16", names="--dtype"),
        cli(*chk, "--seed", "x", names="--seed"),
        cli(*chk, "--attributes", "layout=0", names="--attributes"),
        cli("check", "onnxruntime", "--cell", "gru", "--gradients", names="--gradients"),
        cli("check", "no_such_module_xyz:GRU", "--cell", "gru", names="no_such_module_xyz"),
        cli("check", "missing.py:GRU", "--cell", "gru", names="missing.py"),
    ]


def prepare(folder) -> None:
    """The files the cases name, in ``folder`` (the cases run with it as the working folder)."""
    folder = Path(folder)
    (folder / "afile").write_text("not a folder, not an npz archive\n")
    (folder / "bad.onnx").write_bytes(b"\x08\xff\xff not a protobuf " * 4)
    np.savez(folder / "w_shapes.npz", **_params(W_hh=np.zeros((4, 5))))
    np.savez(folder / "w_strings.npz", **_params(b_h=np.array(["a", "b", "c", "d"])))


def run_cli(argv) -> tuple[int, str, str]:
    """``rnnsym ARGV`` in-process: (exit code, stdout, stderr); argparse's SystemExit is a code."""
    from rnnsym.cli import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
    return code, out.getvalue(), err.getvalue()


def outcome(case) -> Outcome:
    """Run one case (in the current folder) and record what it did."""
    if isinstance(case, Cli):
        code, out, err = run_cli(case.argv)
        return Outcome(f"exit {code}", err.strip(), len(err.strip().splitlines()), out)
    try:
        case.call()
    except Exception as e:      # noqa: BLE001 - the table records whatever it raised
        msg = str(e)
        return Outcome(type(e).__name__, msg, len(msg.splitlines()), error=type(e))
    return Outcome("returned", "", 0)


def cases():
    return cli_cases() + api_cases()


def run_all(folder) -> list[tuple[object, Outcome]]:
    """Every case's outcome, run in ``folder`` (prepared here)."""
    import os
    prepare(folder)
    here = os.getcwd()
    os.chdir(folder)
    try:
        return [(c, outcome(c)) for c in cases()]
    finally:
        os.chdir(here)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(results) -> str:
    """docs/bad-inputs.md from the outcomes."""
    n_cli = sum(isinstance(c, Cli) for c, _ in results)
    lines = [
        "# Bad inputs and what rnnsym says",
        "",
        f"Every bad input below ({len(results)}: {n_cli} command lines, "
        f"{len(results) - n_cli} Python calls) ends in one line that names the argument: the",
        "command line exits 2 (no traceback), the Python API raises the exception shown. It "
        "holds every",
        "case issue 17's audit named, and more; `tests/test_bad_inputs.py` runs every row and "
        "checks that",
        "this file is current (rewrite it with `PYTHONPATH=$PWD python tests/bad_inputs.py "
        "--write`). The files the",
        "commands name are made by `prepare` in `tests/bad_inputs.py`: `afile` is a text file, "
        "`bad.onnx`",
        "is not ONNX, `w_shapes.npz` has `W_hh` of shape (4, 5), `w_strings.npz` a `b_h` of "
        "strings. In",
        "the calls, `forward`/`backward` are `rnnsym.compile(rnnsym.elman())`'s, with "
        "d_in = 3 and d_h = 4,",
        "and `x` is (T, B, d_in) = (5, 2, 3). `tests/test_cli_property.py` adds random command "
        "lines: exit",
        "codes 0-3 only, exit 2 with one line on stderr, nothing written outside the requested "
        "output.",
        "",
        "| # | input | result | message |",
        "|---|---|---|---|",
    ]
    for i, (case, out) in enumerate(results, 1):
        lines.append(f"| {i} | `{_cell(case.text)}` | {out.result} | {_cell(out.message)} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        text = render(run_all(tmp))
    if sys.argv[1:] == ["--write"]:
        DOC.write_text(text)
        print(f"wrote {DOC}")
    else:
        sys.stdout.write(text)
