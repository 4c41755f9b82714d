"""Generated NumPy for cells with a matrix state (linear attention, DeltaNet, Mamba, mLSTM).

The vector-state generator (generator.py) plans fused GEMMs over ``(B, d)`` arrays; a matrix
state is ``(B, d_k, d_v)`` and its step is outer products, ``Sᵀ q`` contractions and broadcast
decays, so this module writes it differently, node by node, sharing the printer's activation
forms (``ACTIVATIONS``), the file header and the helpers:

1. **Tape**: each equation's right-hand side becomes a list of single-operation lines (one per
   distinct sub-expression: a sub-expression written twice, such as Gated DeltaNet's
   ``exp(g) ⊙ S``, is computed once), each with its kind (one number, vector, matrix per sample)
   and whether it varies over the batch.
2. **Forward**: ``_step`` prints the tape; ``forward`` loops it over T.
3. **Backward**: ``_step_backward`` recomputes the step from the state at t-1 and walks the tape
   backwards with one rule per operation (the rules are in :data:`_RULES`' docstrings); an
   adjoint that arrives at something broadcast (a per-head gate, a parameter) is summed back to
   its shape (``_sum_to``).

Cache: the backward needs every step's state at t-1. Storing T copies of ``d_k × d_v`` is what
a matrix state makes expensive, and recomputing a step is cheap (one step's forward), so the
cache holds the inputs and the state every ``CHECKPOINT`` steps only; the backward recomputes
each segment's states from its checkpoint (at most ``CHECKPOINT`` of them alive at once): one
extra forward pass, ``T / CHECKPOINT + CHECKPOINT`` state copies instead of ``T``.
"""
from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from importlib import resources

import sympy as sp
from sympy import HadamardProduct, MatAdd, MatMul, MatrixSymbol, OneMatrix, Transpose

from rnnsym.cells.cell import Cell
from rnnsym.cells.nodes import Activation, HadamardQuotient, L2Norm, Maximum, Outer, RowScale
from rnnsym.codegen.groups import shape_tuple
from rnnsym.codegen.helpers import HELPERS
from rnnsym.codegen.scalars import coef_source as _coef
from rnnsym.errors import RnnsymError
from rnnsym.printing.text import equation_text
from rnnsym.shapes import derive

TEMPLATE = "matrix.py.tmpl"
SCALAR, VECTOR, MATRIX = 0, 1, 2
#: names the generated step functions use for themselves
RESERVED = {"np", "params", "x_t", "state", "size", "d_params", "d_out", "d_state"}


def has_matrix_state(cell: Cell, table=None) -> bool:
    """Whether some state of ``cell`` is a matrix per sample (``S: d_k × d_v``)."""
    table = table or derive(cell)
    return any(table.shapes[s][1] not in (1, None) for s in cell.states)


@dataclass
class Line:
    """One operation of the step: ``var = code``; ``children`` are the operands' variables.

    ``op`` names the backward rule; ``parts``/``signs`` are an elementwise node's operands in
    order (a sign of None marks a constant: ``1``, ``eps``), ``coef`` a product's scalar factor,
    ``eps`` an l2norm's."""

    var: str
    expr: sp.Basic
    kind: int
    batched: bool
    children: list = field(default_factory=list)
    code: str = ""
    op: str = ""
    parts: list = field(default_factory=list)
    signs: list = field(default_factory=list)
    coef: sp.Basic = sp.S.One
    eps: str = ""


class NoMatrixRule(RnnsymError, NotImplementedError):
    """An operation the matrix-state generator cannot write (yet); says which."""


class Tape:
    """The step of a matrix-state cell as single-operation lines (see the module docstring)."""

    def __init__(self, cell: Cell, table):
        self.cell, self.table = cell, table
        self.lines: list[Line] = []
        self.leaves: dict = {}          # label -> Line (inputs, states at t-1, parameters)
        self.memo: dict = {}            # expr -> variable
        self.byvar: dict = {}
        self.count = 0
        self.dims: set = set()          # size symbols read by coefficients
        self.seeded: set = set()        # adjoints set before the reverse sweep (d_out, d_state)
        self.started: set = set()       # adjoints the reverse sweep assigned
        for i in cell.inputs:
            self._leaf(f"{i}[t]", i, self._kind(i), True)
        for s in cell.states:
            self._leaf(f"{s}[t-1]", f"{s}_prev", self._kind(s), True)
        for p in cell.params:
            self._leaf(p, p, self._kind(p), False)
        for eq in cell.equations:
            if eq.name in RESERVED or eq.name in self.byvar:
                raise NoMatrixRule(f"{cell.name}: the name {eq.name!r} is taken in the generated code")
            var = self.value(eq.rhs, name=eq.name)
            self.memo[sp.MatrixSymbol(f"{eq.name}[t]", *eq.lhs.shape)] = var
            self.named(eq.name, var)

    def _kind(self, name) -> int:
        r, c = self.table.shapes[name]
        return MATRIX if c != 1 else SCALAR if r == 1 else VECTOR

    def _leaf(self, label, var, kind, batched):
        line = Line(var, None, kind, batched, op="leaf")
        self.leaves[label] = line
        self.byvar[var] = line

    def named(self, name, var):
        """Equation ``name``'s value is ``var``; when ``var`` is a leaf or a shared temporary,
        the equation gets a copy-free alias line."""
        if var == name:
            return
        src = self.byvar[var]
        line = Line(name, None, src.kind, src.batched, [var], var, op="alias")
        self.lines.append(line)
        self.byvar[name] = line

    def fresh(self):
        self.count += 1
        return f"_{self.count}"

    def value(self, expr, name=None) -> str:
        """The variable holding ``expr`` (writing the lines that compute it)."""
        if isinstance(expr, MatrixSymbol):
            if expr.name in self.leaves:
                return self.leaves[expr.name].var
            if expr in self.memo:
                return self.memo[expr]
            raise NoMatrixRule(f"{expr.name} is read before it is computed")
        if expr in self.memo:
            return self.memo[expr]
        line = self._line(expr)
        line.var = name or self.fresh()
        self.lines.append(line)
        self.byvar[line.var] = line
        self.memo[expr] = line.var
        return line.var

    def _const(self, expr):
        """``1`` or ``c·1`` (a number added elementwise): no line, no adjoint."""
        if isinstance(expr, OneMatrix):
            return "1"
        if isinstance(expr, MatMul) and len(expr.args) == 2 and expr.args[0].is_number \
                and isinstance(expr.args[1], OneMatrix):
            return _coef(expr.args[0])
        return None

    def _line(self, expr) -> Line:
        kids = []

        def v(e):
            var = self.value(e)
            kids.append(var)
            return var

        def info(var):
            return self.byvar[var]

        if isinstance(expr, Activation):
            a = v(expr.arg)
            spec = expr.spec
            params = dict(zip(("a", "b"), (_coef(p) for p in expr.params)))
            code = spec.numpy.format(u=a, pu=a, **params)
            return Line("", expr, info(a).kind, info(a).batched, kids, code, op="act")
        if isinstance(expr, (MatAdd, HadamardProduct, Maximum, HadamardQuotient)):
            parts, signs = [], []
            for term in expr.args:
                const = self._const(term)
                if const is not None:
                    parts.append(const)
                    signs.append(None)
                    continue
                neg = isinstance(term, MatMul) and term.args[0] == -1 and isinstance(expr, MatAdd)
                inner = (MatMul(*term.args[1:], evaluate=False) if len(term.args) > 2 else term.args[1]) \
                    if neg else term
                parts.append(v(inner))
                signs.append(-1 if neg else 1)
            real = [p for p, s in zip(parts, signs) if s is not None]
            kind = max(info(p).kind for p in real)
            batched = any(info(p).batched for p in real)
            if isinstance(expr, MatAdd):
                code = parts[0] if signs[0] != -1 else f"-{parts[0]}"
                code += "".join((" - " if s == -1 else " + ") + p for p, s in zip(parts[1:], signs[1:]))
                op = "add"
            elif isinstance(expr, HadamardProduct):
                code, op = " * ".join(parts), "mul"
            elif isinstance(expr, Maximum):
                code, op = f"np.maximum({parts[0]}, {parts[1]})", "max"
            else:
                code, op = f"{parts[0]} / {parts[1]}", "div"
            return Line("", expr, kind, batched, kids, code, op=op, parts=parts, signs=signs)
        if isinstance(expr, RowScale):
            s, m = v(expr.scale), v(expr.matrix)
            return Line("", expr, MATRIX, info(s).batched or info(m).batched, kids,
                        f"{s}[..., None] * {m}", op="rowscale")
        if isinstance(expr, Outer):
            a, b = v(expr.left), v(expr.right)
            return Line("", expr, MATRIX, True, kids, f"{a}[..., :, None] * {b}[..., None, :]", op="outer")
        if isinstance(expr, L2Norm):
            a = v(expr.arg)
            return Line("", expr, info(a).kind, info(a).batched, kids, op="l2norm", eps=_coef(expr.eps))
        if isinstance(expr, MatMul):
            coef = sp.Mul(*[a for a in expr.args if not isinstance(a, sp.MatrixExpr)])
            mats = [a for a in expr.args if isinstance(a, sp.MatrixExpr)]
            self.dims |= {str(s) for s in coef.free_symbols}
            c = "" if coef == 1 else f"{_coef(coef)} * "
            if len(mats) == 1:
                a = v(mats[0])
                return Line("", expr, info(a).kind, info(a).batched, kids, f"{c}{a}", op="scale", coef=coef)
            if len(mats) != 2:
                raise NoMatrixRule(f"a product of {len(mats)} matrices: {expr}")
            A, b = mats
            if isinstance(A, Transpose):
                X = v(A.arg)
                bv = v(b)
                if info(X).kind == MATRIX:
                    code, op, kind = f'np.einsum("...kv,...k->...v", {X}, {bv})', "STb", VECTOR
                else:
                    code, op, kind = f"np.sum({X} * {bv}, axis=-1, keepdims=True)", "dot", SCALAR
            else:
                X = v(A)
                bv = v(b)
                if info(X).kind != MATRIX:
                    raise NoMatrixRule(f"{expr}: the left factor of a product must be a matrix")
                if info(X).batched:
                    code, op, kind = f'np.einsum("...kv,...v->...k", {X}, {bv})', "Sb", VECTOR
                else:
                    code, op, kind = f"{bv} @ {X}.T", "Wb", VECTOR
            return Line("", expr, kind, True, kids, c + code, op=op, coef=coef)
        raise NoMatrixRule(f"the matrix-state generator has no rule for {type(expr).__name__}: {expr}")

    # --- printing ------------------------------------------------------------------------
    def forward_lines(self) -> list[str]:
        out = []
        for line in self.lines:
            if line.op == "l2norm":
                a = line.children[0]
                out.append(f"{line.var}_r = 1 / np.sqrt(np.sum({a} * {a}, axis=-1, keepdims=True) + {line.eps})")
                out.append(f"{line.var} = {a} * {line.var}_r")
            else:
                out.append(f"{line.var} = {line.code}")
        return out

    def backward_lines(self, adj) -> list[str]:
        """The reverse sweep; ``adj`` maps a variable to its adjoint's name. Adjoints of the
        states and the output are set before (from step t+1 and from d_outputs)."""
        out: list[str] = []
        started = set(self.seeded)

        def add(child, code, kind, batched):
            """Add ``code`` (of kind ``kind``) into ``child``'s adjoint, summed to its shape."""
            info = self.byvar[child]
            if info.var in self.cell.params:
                out.append(f'd_params["{child}"] += _sum_to({code}, {child}.shape)')
                return
            if info.kind != kind or (batched and not info.batched):
                code = f"_sum_to({code}, {child}.shape)"
            d = adj(child)
            if d in started:
                out.append(f"{d} = {d} + {code}")
            else:
                out.append(f"{d} = {code}")
                started.add(d)

        for line in reversed(self.lines):
            g = adj(line.var)
            if g not in started:
                continue                # nothing depends on it (or the state is not read)
            y, k, kind, bat = line.var, line.children, line.kind, line.batched
            op = line.op
            if op == "alias":
                add(k[0], g, kind, bat)
            elif op == "act":
                u = k[0]
                grad = _ACT_GRAD.get(line.expr.name)
                if grad is None:
                    raise NoMatrixRule(f"no backward rule for the activation {line.expr.name}")
                add(u, grad.format(g=g, y=y, u=u), kind, bat)
            elif op == "add":
                for p, s in zip(line.parts, line.signs):
                    if s is not None:
                        add(p, g if s == 1 else f"-{g}", kind, bat)
            elif op == "mul":
                for i, p in enumerate(line.parts):
                    if line.signs[i] is None:
                        continue
                    others = [q for j, q in enumerate(line.parts) if j != i]
                    add(p, " * ".join([g, *others]), kind, bat)
            elif op == "max":
                a, b = line.parts
                for p, code in ((a, f"{g} * ({a} >= {b})"), (b, f"{g} * ({a} < {b})")):
                    if p in self.byvar:         # not a constant bound (a clamp's)
                        add(p, code, kind, bat)
            elif op == "div":
                a, b = line.parts
                if line.signs[0] is not None:
                    add(a, f"{g} / {b}", kind, bat)
                add(b, f"-{g} * {y} / {b}", kind, bat)
            elif op == "rowscale":
                s, m = k
                add(m, f"{s}[..., None] * {g}", MATRIX, True)
                add(s, f"np.sum({g} * {m}, axis=-1)", VECTOR, True)
            elif op == "outer":
                a, b = k
                add(a, f'np.einsum("...kv,...v->...k", {g}, {b})', VECTOR, True)
                add(b, f'np.einsum("...kv,...k->...v", {g}, {a})', VECTOR, True)
            elif op == "l2norm":
                a = k[0]
                add(a, f"{y}_r * ({g} - {y} * np.sum({g} * {y}, axis=-1, keepdims=True))", kind, bat)
            else:
                c = "" if line.coef == 1 else f"{_coef(line.coef)} * "
                if op == "scale":
                    add(k[0], f"{c}{g}", kind, bat)
                elif op == "STb":           # y = c Xᵀ b
                    X, b = k
                    add(X, f"{c}{b}[..., :, None] * {g}[..., None, :]", MATRIX, True)
                    add(b, f'{c}np.einsum("...kv,...v->...k", {X}, {g})', VECTOR, True)
                elif op == "dot":           # y = c Σ X b
                    X, b = k
                    add(X, f"{c}{g} * {b}", VECTOR, True)
                    add(b, f"{c}{g} * {X}", VECTOR, True)
                elif op == "Sb":            # y = c X b
                    X, b = k
                    add(X, f"{c}{g}[..., :, None] * {b}[..., None, :]", MATRIX, True)
                    add(b, f'{c}np.einsum("...kv,...k->...v", {X}, {g})', VECTOR, True)
                elif op == "Wb":            # y = c W b, W a parameter
                    W, b = k
                    add(W, f'{c}np.einsum("...i,...j->...ij", {g}, {b})', MATRIX, False)
                    add(b, f"{c}{g} @ {W}", VECTOR, True)
        self.started = started
        return out


#: the derivative of each elementwise function, times the adjoint g: y is f(u)
_ACT_GRAD = {
    "identity": "{g}",
    "tanh": "{g} * (1 - {y} * {y})",
    "sigmoid": "{g} * {y} * (1 - {y})",
    "exp": "{g} * {y}",
    "log": "{g} / {u}",
    "softplus": "{g} * _sigmoid({u})",
    "logsigmoid": "{g} * _sigmoid(-{u})",
    "abs": "{g} * np.sign({u})",
    "relu": "{g} * ({u} > 0)",
}


def _live(lines: list[str], after: list[str]) -> list[str]:
    """``lines`` (comments, ``var = code`` in pure NumPy, ``a, b = x_t["a"], x_t["b"]``) without
    the names that neither ``after`` nor a kept line reads: the backward's recomputed step keeps
    what the reverse sweep needs (the step's output itself, ``o = Sᵀ q``, is often not needed:
    its adjoint rules read q and S), an unpacking keeps the inputs and parameters still read."""
    def names(code):                # the names ``code`` reads (not the words in its strings)
        return set(re.findall(r"[A-Za-z_]\w*", re.sub(r'"[^"]*"', "", code)))

    read = names("\n".join(after))
    kept = []
    for line in reversed(lines):
        if line.startswith("#"):
            kept.append(line)
            continue
        lhs, rhs = line.split(" = ", 1)
        pairs = list(zip(lhs.split(", "), rhs.split(", "))) if ", " in lhs else [(lhs, rhs)]
        pairs = [(v, c) for v, c in pairs if v in read]
        if pairs:
            kept.append(", ".join(v for v, _ in pairs) + " = " + ", ".join(c for _, c in pairs))
            read |= {w for _, c in pairs for w in names(c)}
    return kept[::-1]


def _state_orientation(cell: Cell, table, tape: Tape, code: list[str]) -> str:
    """The docstring's orientation sentence, with this cell's own matrix state and the line of
    the step (one of ``code``'s) that reads it: ``S`` is (d_k, d_v) and is read as Sᵀ q,
    ``np.einsum(...)``."""
    mats = [s for s in cell.states if table.shapes[s][1] not in (1, None)]
    live = [ln for ln in tape.lines if f"{ln.var} = {ln.code}" in code]
    reads = [ln for ln in live if ln.op in ("STb", "Sb")]
    line = next((ln for ln in reads if ln.children[0] in mats),
                next((ln for ln in reads if ln.children[0] in {f"{s}_prev" for s in mats}), None))
    if line is None:                # the step's output is the state itself
        sentence = f"``{mats[0]}`` is ({', '.join(shape_tuple(table, mats[0]))}): rows first"
    else:
        X, b = line.children
        s = X.removesuffix("_prev")
        code = line.code[0 if line.coef == 1 else len(f"{_coef(line.coef)} * "):]
        math = f"{s}ᵀ {b}" if line.op == "STb" else f"{s} {b}"
        sentence = f"``{s}`` is ({', '.join(shape_tuple(table, s))}) and is read as {math}: ``{code}``"
    weight = next((ln for ln in live if ln.op == "Wb"), None)
    if weight is not None:          # a weight applied to a vector, as the vector modules say it
        W, b = weight.children
        sentence += (f"; a weight too: ``{W}`` is ({', '.join(shape_tuple(table, W))}) and maps "
                     f"{b}, applied as ``{b} @ {W}.T``")
    return sentence


def render_matrix(cell: Cell, header: str) -> str:
    """The complete source of the generated module of a matrix-state cell; ``header`` is the
    generator's file header (generator.render passes it: this module does not import it)."""
    table = derive(cell)
    table.check_determined()
    if len(cell.readouts) > 1:
        raise NoMatrixRule(f"{cell.name}: one readout at most for a matrix-state cell")
    tape = Tape(cell, table)
    out_name = cell.output
    adjoint = {}

    def adj(var):
        if var not in adjoint:
            adjoint[var] = f"d{var}"        # dS, dk, d_3 (min-char-rnn's dWxh, dh)
        return adjoint[var]

    # the seeds of the reverse sweep: d_outputs[t] and what step t+1 sends to each state
    tape.seeded = {adj(out_name), *(adj(s) for s in cell.states)}
    seed = [f"{adj(out_name)} = d_out"] if out_name not in cell.states else []
    seed += [f'{adj(s)} = d_state["{s}"]' + (" + d_out" if s == out_name else "") for s in cell.states]
    back = tape.backward_lines(adj)

    def unpack(names, source):
        return ", ".join(names) + " = " + ", ".join(f'{source}["{k}"]' for k in names.values())

    read = [unpack({i: i for i in cell.inputs}, "x_t"),
            unpack({f"{s}_prev": s for s in cell.states}, "state")]
    if cell.params:
        read.append(unpack({p: p for p in cell.params}, "params"))
    read += [f'{d} = size["{d}"]' for d in sorted(tape.dims)]
    fwd = tape.forward_lines()
    new_state = "{" + ", ".join(f'"{s}": {s}' for s in cell.states) + "}"
    step_return = f"return {out_name}, {new_state}"
    step_body = [*_live(read + fwd, [step_return]), step_return]

    d_inputs = ", ".join(f'"{i}": {adj(i) if adj(i) in tape.started else f"np.zeros_like({i})"}'
                         for i in cell.inputs)
    d_prev = ", ".join(f'"{s}": {adj(s + "_prev") if adj(s + "_prev") in tape.started else f"np.zeros_like({s}_prev)"}'
                       for s in cell.states)
    sweep = [*seed, *back, f"return {{{d_inputs}}}, {{{d_prev}}}"]
    back_body = [*_live([*read, "# the step again, from the state at t-1", *fwd,
                         "# back through it, last operation first"], sweep), *sweep]

    def indent(lines):
        return "\n".join("    " + line for line in lines)

    def shapes_of(names):
        return "{" + ", ".join(f'"{n}": {shape_tuple(table, n)!r}' for n in names) + "}"

    from rnnsym.codegen.chunked import chunked_source
    chunked = chunked_source(cell, table)
    source = step_body + back_body + (chunked[0].splitlines() if chunked else [])
    helpers = "".join("\n" + HELPERS[h] for h in ("_sigmoid",) if any(h + "(" in s for s in source))
    if chunked:
        helpers += chunked[1]
    tmpl = resources.files("rnnsym.codegen").joinpath("templates").joinpath(TEMPLATE).read_text()
    return string.Template(tmpl).substitute(
        header=header,
        title=cell.title,
        equations="\n".join("    " + equation_text(e.name, e.rhs) for e in cell.equations),
        shape_table="\n".join("    " + line for line in table.format().splitlines()
                              if not line.startswith("signature")),
        signature=table.signature(),
        param_shapes=shapes_of(cell.params),
        state_shapes=shapes_of(cell.states),
        input_shapes=shapes_of(cell.inputs),
        output_shape=repr(shape_tuple(table, out_name)),
        output=out_name,
        first_input=cell.inputs[0],
        first_state=cell.states[0],
        orientation=_state_orientation(cell, table, tape, step_body + back_body),
        step_body=indent(step_body),
        backward_body=indent(back_body),
        helpers=helpers,
        chunked=chunked[0] if chunked else "",
        chunked_doc=CHUNKED_DOC if chunked else "",
    )


CHUNKED_DOC = """

Chunked: ``forward_chunked(params, x, state0, chunk=64)`` returns the same outputs and final
state, computed chunk steps at a time (masked matrix products within a chunk, the state carried
across chunks); the tests prove it equal to ``forward`` for every chunk size and T."""


def backward_step_source(cell: Cell) -> str:
    """The body of the generated ``_step_backward`` of ``cell`` (``rnnsym show CELL --backward``)."""
    source = render_matrix(cell, header="")
    start = source.index("def _step_backward(")
    return source[start:source.index("\n\n\n", start)]
