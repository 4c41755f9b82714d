"""The generated modules read as code a person can copy: no dead assignments, gates computed in
place live in views named after them, one dtype rule in forward and cached forward, docstrings
that name only functions that exist and the module's own weights, and a module generated from
--define says how to regenerate itself."""
import ast
import re
import shlex
from pathlib import Path

import pytest

from rnnsym.cli import main
from rnnsym.cells import parse_cell
from rnnsym.codegen.files import GENERATED as GENERATED_CELLS
from rnnsym.codegen.files import GENERATED_MATRIX, generated_cell
from rnnsym.codegen.generator import render
from rnnsym.codegen.prune import drop_dead_assignments

GENERATED = Path(__file__).resolve().parents[1] / "generated"
#: every generated module: the vector-state ones (codegen/generator.py) and the matrix-state ones
#: (codegen/matrix.py: linear attention, GLA, DeltaNet, Mamba, mLSTM)
FILES = sorted(GENERATED.glob("*.py"))
#: user cells beside the built-ins: several inputs and readouts, a readout, a layer norm
DEFINED = {
    "two_inputs": parse_cell("h = tanh(W @ h + U @ x + V @ u); y = A @ h; z = sigmoid(B @ h)",
                             inputs=("x", "u"), readouts=("y", "z")),
    "gated_readout": parse_cell("z = sigmoid(U @ x + V @ h); h = (1 - z) * h + z * tanh(W @ x); "
                                "y = relu(C @ h + c)", readouts=("y",)),
    "layernormed": parse_cell("h = tanh(layernorm(W @ h + U @ x, g))"),
    # a matrix state (codegen/matrix.py) with a weight, a readout's extra term and a decay
    "matrix_state": parse_cell("S = exp(g) * S + outer(W @ k, v); o = transpose(S) @ q + D * v",
                               inputs=("q", "k", "v", "g"), readouts=("o",)),
    # no readout: the output is the state S, the equation o is read by nothing
    "matrix_unread": parse_cell("S = exp(g) * S + outer(W @ k, v); o = transpose(S) @ q + D * v",
                                inputs=("q", "k", "v", "g")),
}
SOURCES = ({p.name: p.read_text() for p in FILES}
           | {f"{k} (--define)": render(c) for k, c in DEFINED.items()})


def functions(source):
    return {n.name: n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef)}


def test_every_built_in_variant_is_checked():
    assert {p.stem for p in FILES} == set(GENERATED_CELLS) | set(GENERATED_MATRIX) and len(FILES) >= 30
    assert set(GENERATED_MATRIX) and not set(GENERATED_MATRIX) & set(GENERATED_CELLS)


def test_every_built_in_variant_is_generated():
    assert ({p.stem for p in GENERATED.glob("*.py")} == set(GENERATED_CELLS) | set(GENERATED_MATRIX))


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_no_assignment_is_dead(name):
    """Every name a generated function binds, it reads (an ast walk per function)."""
    dead = []
    for fn in functions(SOURCES[name]).values():
        stored, loaded = set(), set()
        for node in ast.walk(fn):
            if isinstance(node, ast.Name):
                (stored if isinstance(node.ctx, ast.Store) else loaded).add(node.id)
        dead += [f"{fn.name}: {v}" for v in sorted(stored - loaded - {"_"})]   # `_`: discarded
    assert not dead, f"{name}: assigned and never read: {dead}"


def test_the_pruning_pass_keeps_what_is_read_and_stores_into_arrays():
    src = ("def f(a, out):\n"
           "    v = a[:, 0:2]  # a view nobody reads\n"
           "    w = a[:, 2:4]\n"
           "    y = out[0] = w + 1\n"
           "    z = g(a)  # a call may raise: kept\n"
           "    return out\n")
    pruned = drop_dead_assignments(src)
    assert "v = " not in pruned and "w = a[:, 2:4]" in pruned
    assert "    out[0] = w + 1\n" in pruned and "z = g(a)" in pruned
    assert drop_dead_assignments(pruned) == pruned


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_gates_are_not_aliases_of_product_named_buffers(name):
    """`i = W_hi_h  # gate i` is gone: a gate computed in place in a GEMM buffer is bound to the
    view that holds it, named after the gate (forward: `i = hW[:, 0:d_h]`; cached forward and
    backward: `i_all = hW[:, :, 0:d_h]`, then `i = i_all[t]`)."""
    stem = Path(name).stem
    cell = (generated_cell(stem) if stem in GENERATED_CELLS or stem in GENERATED_MATRIX
            else DEFINED[name.split()[0]])
    gates = {e.name for e in cell.equations if e.kind == "gate"}
    views = set()               # names bound to a view of an array: `W_hi_h = hW[:, 0:d_h]`
    aliases = []
    for fn in functions(SOURCES[name]).values():
        for node in ast.walk(fn):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Subscript):
                views |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        for node in ast.walk(fn):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Name) \
                    and node.value.id in views and node.value.id not in gates \
                    and any(isinstance(t, ast.Name) and t.id in gates for t in node.targets):
                aliases.append(f"{fn.name}: {ast.unparse(node)}")
    assert not aliases, f"{name}: {aliases}"


def test_lstm_gate_views_are_named_after_the_gates():
    fns = functions((GENERATED / "lstm.py").read_text())
    fwd = ast.unparse(fns["forward"])
    for k, gate in enumerate("ifgo"):
        lo = "0" if k == 0 else ("d_h" if k == 1 else f"{k} * d_h")
        assert f"{gate} = hW[:, {lo}:" in fwd
    cached, back = ast.unparse(fns["_forward_cached"]), ast.unparse(fns["backward"])
    for gate in "ifgo":
        assert f"{gate}_all = hW[:, :, " in cached and f"{gate} = {gate}_all[t]" in cached
        assert f"{gate}_all = hW[:, :, " in back and f"{gate} = {gate}_all[t]" in back
    assert "W_hi_h" not in fwd + cached


@pytest.mark.parametrize("name", [p.name for p in FILES])
def test_forward_and_cached_forward_share_one_dtype_rule(name):
    """The function that reruns the forward decides T, B and the dtype as ``forward`` does. A
    vector-state module's is ``_forward_cached``; a matrix-state module has none (its cached
    forward is ``forward(..., return_cache=True)``, the same lines): ``backward`` reruns each
    segment's steps from a checkpoint, so it is the one that must agree with ``forward``."""
    fns = functions(SOURCES[name])
    rerun = "_forward_cached" if Path(name).stem in GENERATED_CELLS else "backward"

    def lines(fn):
        return [ast.unparse(n) for n in fns[fn].body[1:] if isinstance(n, ast.Assign)
                and {getattr(t, "id", None) for t in n.targets} & {"dtype"}
                or isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Tuple)
                and [getattr(e, "id", None) for e in n.targets[0].elts] == ["T", "B"]]
    assert lines("forward") == lines(rerun)
    assert len(lines("forward")) == 2


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_docstrings_name_functions_that_exist(name):
    tree = ast.parse(SOURCES[name])
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    docs = [ast.get_docstring(n) or "" for n in
            [tree] + [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]]
    named = set()
    for doc in docs:
        named |= set(re.findall(r"(?<![\w.])(_[A-Za-z]\w*)", doc))              # private helpers
        named |= set(re.findall(r"``([A-Za-z_]\w*)\(", doc))                     # ``forward(...)``
    assert named <= defined, f"{name}: docstrings name {sorted(named - defined)}, not defined"


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_the_orientation_example_is_one_of_the_modules_own_weights(name):
    """A vector-state module's example names one of its weights and how it is applied
    (``x @ W_xi.T``). A matrix-state module's weights (Mamba's A, D) are not applied as matrix
    products, and what a person copying it must get right is its matrix state's orientation: the
    example names its own matrix state with the shape the table gives, and how the step reads it,
    quoting a line of the module's code (``np.einsum("...kv,...k->...v", S, q)``: Sᵀ q)."""
    doc = ast.get_docstring(ast.parse(SOURCES[name]))
    m = re.search(r"math orientation \(``(\w+)`` is \(([^)]*)\)", doc)
    assert m, doc
    weight, shape = m.groups()
    if "a matrix state\nis in math orientation" in doc:
        rows, cols = shape.split(", ")
        assert re.search(rf"\n    {weight}\s+state\s+{rows} × {cols}\n", doc), (name, weight)
        read = re.search(rf"``{weight}`` is \({shape}\) and is read as [^:]*: ``([^`]+)``", doc)
        code = "\n".join(ast.get_source_segment(SOURCES[name], n)     # statements, not docstrings
                         for f in functions(SOURCES[name]).values() for n in f.body
                         if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)))
        # said how it is read when a step reads it (else the output is the state itself)
        assert bool(read) == bool(re.search(rf'np.einsum\("[^"]*", {weight}(_prev)?, ', code)), doc
        assert not read or read.group(1) in code and f", {weight}, " in read.group(1), read.group(1)
        weights = re.search(r"a weight too: ``(\w+)`` is \([^)]*\) and maps (\w+), applied as "
                            r"``(\w+ @ \w+\.T)``", doc)
        if weights:                                 # the --define cell: W @ k
            assert f"\n    {weights[1]}  " in doc and weights[3] in code, weights.groups()
        assert bool(weights) == bool(re.search(r"\w+ @ \w+\.T\b", code)), doc
        return
    assert f"    {weight}  " in doc or re.search(rf"\n    {weight}\s+parameter", doc)
    assert f"``x @ {weight}.T``" in doc or "@ " + weight in doc


def test_a_defined_module_says_how_to_regenerate_itself(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = "h = tanh(W @ h + U @ x + b)\ny = V @ h"
    assert main(["generate", "--define", text, "--readout", "y", "--name", "mine",
                 "--out", "mycode"]) == 0
    first = (tmp_path / "mycode" / "mine.py").read_text()
    line = first.splitlines()[3]
    assert line.startswith("# Do NOT modify by hand. Regenerate with: rnnsym generate --define ")
    command = line.split("Regenerate with: ", 1)[1]
    assert "--name mine" in command and "--readout y" in command and "--out mycode" in command
    assert "--out generated" not in command
    (tmp_path / "mycode" / "mine.py").unlink()
    assert main(shlex.split(command)[1:]) == 0            # the line, run as written
    assert (tmp_path / "mycode" / "mine.py").read_text() == first
    doc = ast.get_docstring(ast.parse(first))
    assert "``U`` is (d_h, d_in) and maps x to h" in doc and "``x @ U.T``" in doc
    assert "W_xh" not in first


# --- the readout's GEMM after the loop ---------------------------------------------------------
LATE = {   # text, readouts: cells whose readouts read the new states only
    "relu readout": ("z = sigmoid(U @ x + V @ h); h = (1 - z) * h + z * tanh(W @ x); "
                     "y = relu(C @ h + c)", ("y",)),
    "readout of the first state": ("c = c * sigmoid(F @ x) + tanh(W @ x + U @ h); h = tanh(c); "
                                   "y = Q @ c", ("y",)),
    "two readouts": ("h = tanh(W @ h + U @ x); y = A @ h + a; z = sigmoid(P @ h)", ("y", "z")),
}


def _late_cell(key):
    text, readouts = LATE[key]
    return parse_cell(text, readouts=readouts)


@pytest.mark.parametrize("name", [*sorted(LATE), "elman_tanh_readout.py", "elman_relu_readout.py"])
def test_the_readout_gemm_runs_once_after_the_loop(name):
    """`y = W_hy h_t + b_y` depends on h_t only: its GEMM runs once over all T steps after the
    loop (forward and cached forward), and its gradient's GEMM once before the backward's loop."""
    from rnnsym.codegen.plan import plan, readout_after_loop
    cell = _late_cell(name) if name in LATE else generated_cell(name[:-3])
    readouts, groups = readout_after_loop(cell, plan(cell))
    assert readouts == list(cell.readouts) and groups
    source = render(cell)
    fns = functions(source)
    checked = [f for f in ("forward", "_forward_cached", "backward") if f in fns
               and "raise NotImplementedError" not in ast.unparse(fns[f])]
    assert "forward" in checked and (len(cell.readouts) > 1 or len(checked) == 3)
    for f in checked:
        loops = [n for n in ast.walk(fns[f]) if isinstance(n, ast.For)]
        assert loops, f
        for g in groups:
            weights = f"W_{g.name}"
            assert weights in ast.unparse(fns[f]), (f, weights)
            assert not any(re.search(rf"\b{weights}\b", ast.unparse(loop)) for loop in loops), \
                f"{name}: {f} runs the readout GEMM {weights} inside its time loop"


@pytest.mark.parametrize("key", sorted(LATE))
def test_a_late_readout_computes_what_the_equations_say(key):
    """Forward: each readout against the step-by-step interpreter of the equations; backward
    (one readout): against central differences of the forward."""
    import numpy as np

    import rnnsym
    from tests.test_backward import check_against_fd
    from tests.test_codegen_random_cells import interpret
    text, readouts = LATE[key]
    cell = parse_cell(text, readouts=readouts)
    sizes = {"d_h": 3, "d_in": 2, "d_out": 4, "d_z": 5}
    table = rnnsym.shapes(cell)
    shapes = table.concrete(**{str(d): sizes[str(d)] for d in table.dims})
    rng = np.random.default_rng(7)
    params = {p: rng.uniform(-1, 1, shapes[p]) for p in cell.params}
    x = rng.uniform(-1, 1, (5, 3, 2))
    state0 = {s: rng.uniform(-1, 1, (3,) + shapes[s]) for s in cell.states}
    outs, state = rnnsym.compile(cell).forward(params, x, state0)
    outs = outs if isinstance(outs, dict) else {readouts[0]: outs}
    for r in readouts:     # the interpreter returns cell.output: one readout at a time
        lines = [ln for ln in text.split("; ") if ln.split(" = ")[0] not in set(readouts) - {r}]
        single = parse_cell("; ".join(lines), readouts=(r,))
        want, want_state = interpret(single, {p: params[p] for p in single.params}, x, state0)
        np.testing.assert_allclose(outs[r], want, rtol=1e-12, atol=1e-13, err_msg=f"{key}: {r}")
        for s in cell.states:
            np.testing.assert_allclose(state[s], want_state[s], rtol=1e-12, atol=1e-13)
    if len(readouts) == 1:
        check_against_fd(cell, sizes, T=4, B=2, seed=3)


@pytest.mark.parametrize("key", ["matrix_state", "matrix_unread"])
def test_a_pruned_matrix_state_step_computes_what_the_equations_say(key):
    """The --define matrix-state cells, whose generated steps drop unread lines and unpacked
    names (the unread ``o`` in matrix_unread) and apply a weight to an input (``k @ W.T``):
    forward against the equations written out by hand (1e-12), backward against central
    differences of the forward (d_q != d_k != d_v)."""
    import numpy as np

    import rnnsym
    cell = DEFINED[key]
    module = rnnsym.compile(cell)
    table = rnnsym.shapes(cell)
    sizes = {"d_q": 3, "d_k": 4, "d_v": 5}
    shapes = table.concrete(**{str(d): sizes[str(d)] for d in table.dims})
    rng = np.random.default_rng(3)
    T, B = 6, 2
    p = {k: rng.uniform(-1, 1, shapes[k]) for k in cell.params}
    x = {k: rng.uniform(-1, 1, (T, B) + shapes[k]) * (0.3 if k == "g" else 1) for k in cell.inputs}
    state0 = {"S": rng.uniform(-1, 1, (B,) + shapes["S"])}
    out, final, cache = module.forward(p, x, state0, return_cache=True)
    S, want = state0["S"], []
    for t in range(T):
        S = np.exp(x["g"][t])[..., None] * S + (x["k"][t] @ p["W"].T)[:, :, None] * x["v"][t][:, None, :]
        want.append(np.einsum("bkv,bk->bv", S, x["q"][t]) + p["D"] * x["v"][t]
                    if cell.readouts else S)
    np.testing.assert_allclose(out, np.array(want), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(final["S"], S, rtol=1e-12, atol=1e-13)
    d_out, d_final = rng.uniform(-1, 1, out.shape), {"S": rng.uniform(-1, 1, S.shape)}
    grads = dict(zip(("params", "x", "state0"), module.backward(p, cache, d_out, d_final)))

    def loss():
        o, s = module.forward(p, x, state0)
        return np.sum(o * d_out) + np.sum(s["S"] * d_final["S"])
    for what, arrays in (("params", p), ("x", x), ("state0", state0)):
        for k, a in arrays.items():
            for idx in [tuple(int(rng.integers(0, n)) for n in a.shape) for _ in range(3)]:
                old = a[idx]
                a[idx] = old + 1e-6
                up = loss()
                a[idx] = old - 1e-6
                down = loss()
                a[idx] = old
                fd = (up - down) / 2e-6
                assert abs(grads[what][k][idx] - fd) <= 1e-7 * max(1.0, abs(fd)), \
                    f"d_{what}[{k!r}][{idx}]={grads[what][k][idx]}, but should be {fd} [{key}]"
