"""Random user-defined cells: the generated forward equals a direct evaluation of the parsed
equations (an interpreter written here, sharing nothing with the planner or the printer)."""
import functools

import numpy as np
import sympy as sp
from hypothesis import assume, given, note, settings
from hypothesis import strategies as st

import rnnsym
from rnnsym.cells import parse_cell
from rnnsym.cells.cell import split_name
from rnnsym.cells.nodes import Activation

# the activations, written independently of rnnsym's ACTIVATIONS table, with the ONNX operators'
# default parameters (what a call in the text form gets)
FUNCS = {
    "tanh": np.tanh,
    "sigmoid": lambda u: 1 / (1 + np.exp(-u)),
    "relu": lambda u: np.maximum(u, 0),
    "leakyrelu": lambda u: np.where(u >= 0, u, 0.01 * u),
    "thresholdedrelu": lambda u: np.where(u > 1.0, u, 0.0),
    "hardsigmoid": lambda u: np.clip(0.2 * u + 0.5, 0, 1),
    "affine": lambda u: 1.0 * u + 0.0,
    "scaledtanh": lambda u: 1.0 * np.tanh(1.0 * u),
    "elu": lambda u: np.where(u >= 0, u, np.exp(np.minimum(u, 0)) - 1),
    "softsign": lambda u: u / (1 + np.abs(u)),
    "softplus": lambda u: np.log1p(np.exp(u)),
}


@st.composite
def expressions(draw, depth, counter, names):
    """Text of a d_h-sized vector expression over h, x, the names computed so far and fresh
    parameters (W0, W1, ... and b0, ...)."""
    def fresh(prefix):
        counter[0] += 1
        return f"{prefix}{counter[0]}"
    if depth == 0 or draw(st.integers(0, 3)) == 0:
        leaf = draw(st.sampled_from(["h", "Wx", "Wxa", "Wh", "b", *names]))
        return {"Wx": f"({fresh('W')} @ x)", "Wh": f"({fresh('U')} @ h)", "b": fresh("b"),
                "Wxa": f"({fresh('W')} @ (x * {fresh('a')}))"}.get(leaf, leaf)
    kind = draw(st.sampled_from(["act", "one_minus", "add", "mul", "matmul", "scale"]))
    sub = lambda: draw(expressions(depth - 1, counter, names))  # noqa: E731
    if kind == "act":
        return f"{draw(st.sampled_from(sorted(FUNCS)))}({sub()})"
    if kind == "one_minus":
        return f"(1 - {sub()})"
    if kind == "add":
        return f"({sub()} + {sub()})"
    if kind == "mul":
        return f"({sub()} * {sub()})"
    if kind == "scale":
        return f"(0.5 * {sub()})"
    return f"({fresh('V')} @ ({sub()}))"


@st.composite
def cell_texts(draw):
    """Gates, then an optional second state ``c`` (read before it is assigned), then ``h``, then
    an optional readout ``y``; returns ``(text, states, readouts)``."""
    counter = [0]
    lines, names = [], []
    for gate in draw(st.sampled_from([[], ["z"], ["z", "r"]])):
        lines.append(f"{gate} = sigmoid({draw(expressions(2, counter, names))})")
        names.append(gate)
    states = ["h"]
    if draw(st.booleans()):
        lines.append(f"c = c * {draw(expressions(1, counter, names))} + "
                     f"{draw(expressions(2, counter, names))}")
        names.append("c")
        states.insert(0, "c")
    lines.append(f"h = tanh({draw(expressions(3, counter, names))})")
    readouts = []
    if draw(st.booleans()):
        lines.append(f"y = Q @ ({draw(expressions(1, counter, names))} * h) + b_y")
        readouts = ["y"]
    return "; ".join(lines), states, readouts


def interpret(cell, params, x, state0):
    """Evaluate the cell's SymPy equations step by step, batched (rows), by walking the trees."""
    def ev(e, env):
        if isinstance(e, sp.MatrixSymbol):
            base, time = split_name(e.name)
            return params[base] if time is None else env[e.name]
        if isinstance(e, sp.OneMatrix):
            return 1.0
        if isinstance(e, Activation):
            return FUNCS[e.name](ev(e.arg, env))
        if isinstance(e, sp.MatAdd):
            return sum(ev(a, env) for a in e.args)
        if isinstance(e, sp.HadamardProduct):
            return functools.reduce(np.multiply, [ev(a, env) for a in e.args])
        if isinstance(e, sp.MatMul):
            coeff = float(np.prod([float(a) for a in e.args if a.is_number]))
            mats = [a for a in e.args if not a.is_number]
            v = ev(mats[-1], env)
            for W in reversed(mats[:-1]):
                v = v @ ev(W, env).T
            return coeff * v
        raise TypeError(type(e))
    state, outs = dict(state0), []
    for t in range(x.shape[0]):
        env = {"x[t]": x[t], **{f"{s}[t-1]": v for s, v in state.items()}}
        for eq in cell.equations:
            env[f"{eq.name}[t]"] = ev(eq.rhs, env)
        # a batch-free right-hand side broadcasts to (B, d)
        state = {s: np.broadcast_to(env[f"{s}[t]"], state0[s].shape) for s in state}
        outs.append(env[f"{cell.output}[t]"] + np.zeros((x.shape[1], 1)))
    return np.stack(outs) if outs else None, state


@settings(max_examples=150)      # cheap (~5 ms an example) and the space of cells is large
@given(case=cell_texts(), seed=st.integers(0, 2**16), T=st.integers(1, 4), B=st.integers(1, 3))
def test_generated_forward_equals_an_interpreter_of_the_equations(case, seed, T, B):
    text, states, readouts = case
    note(text)
    cell = parse_cell(text, states=states, readouts=readouts)
    table = rnnsym.shapes(cell)
    assume(not table.undetermined)      # e.g. V @ (W @ x): the inner size is genuinely free
    sizes = {"d_h": 3, "d_in": 2, "d_out": 4}
    shapes = table.concrete(**{str(d): sizes[str(d)] for d in table.dims})
    rng = np.random.default_rng(seed)
    params = {p: rng.uniform(-1, 1, shapes[p]) for p in cell.params}
    x = rng.uniform(-1, 1, (T, B, 2))
    state0 = {s: rng.uniform(-1, 1, (B,) + shapes[s]) for s in cell.states}
    out, state = rnnsym.compile(cell).forward(params, x, state0)
    want, want_state = interpret(cell, params, x, state0)
    np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-13, err_msg=text)
    for s in cell.states:
        np.testing.assert_allclose(state[s], want_state[s], rtol=1e-12, atol=1e-13, err_msg=text)
