"""Cells from text: ``"h = tanh(W_h @ h + W_x @ x + b)"``, parsed, never evaluated.

The text is read with :func:`ast.parse` and walked over a whitelist of node types: assignments to a
plain name, ``+ - * / @``, unary minus, numbers, names, calls of known activations and of the
structural functions ``layernorm(u[, g, b][, eps])``, ``chunk(u, k, n)``, and, for matrix
states, ``outer(a, b)``, ``transpose(S)``, ``l2norm(u[, eps])`` and ``max(a, b)``. Anything else
(attribute access, subscripts, lambdas, keyword arguments, dunder names, unknown functions) is a
:class:`DefinitionError` that says what was found and where.

Semantics, one step at a time, like Python: a name read *before* it is assigned in the step (or in
its own right-hand side) is its previous value, so it is a **state**; a name read after it is
assigned is the value just computed. Assigned names whose previous value is never read are
intermediate quantities (gates). ``inputs`` (default ``x``) are per-step inputs; every other name
is a parameter. ``*`` is the elementwise product, ``/`` the elementwise quotient, ``@`` the matrix
product.
"""
from __future__ import annotations

import ast
from typing import Iterable

import sympy as sp

from rnnsym.cells.cell import IDENT, Cell, make_cell, now, param, prev
from rnnsym.cells.nodes import (ACTIVATIONS, Activation, Chunk, HadamardQuotient, L2Norm, LayerNorm, Maximum,
                                Outer, RowScale, hadamard, madd, matrix_valued, mmul)
from rnnsym.errors import RnnsymError

# activation names accepted in text, with their aliases
FUNCTIONS = {name: name for name in ACTIVATIONS if name != "clip"}
FUNCTIONS.update({"σ": "sigmoid", "sigma": "sigmoid"})
#: functions that are not activations: how they are called, for error messages
STRUCTURAL = {"layernorm": "layernorm(u), layernorm(u, g), layernorm(u, g, b), layernorm(u, g, b, eps)",
              "chunk": "chunk(u, k, n) (block k of n equal blocks of rows, k from 0)",
              "outer": "outer(a, b) (the outer product a bᵀ of two vectors: a matrix state's update)",
              "transpose": "transpose(S) (S transposed, as in transpose(S) @ q)",
              "l2norm": "l2norm(u) or l2norm(u, eps) (u / sqrt(sum(u²) + eps), eps 1e-6)",
              "max": "max(a, b) (elementwise maximum)"}
CALLABLE = {**FUNCTIONS, **{f: f for f in STRUCTURAL}}


class DefinitionError(RnnsymError, ValueError):
    """A text cell definition that rnnsym cannot accept; the message says why and where."""


def _where(node, src_lines) -> str:
    line = src_lines[node.lineno - 1] if 0 < getattr(node, "lineno", 0) <= len(src_lines) else ""
    return f"in `{line.strip()}`" if line else ""


def _statements(text: str) -> list[str]:
    out = []
    for line in text.replace(";", "\n").splitlines():
        line = line.strip()
        if line:
            out.append(line)
    return out


def parse_cell(text: str, *, inputs: Iterable[str] = ("x",), states: Iterable[str] | None = None,
               readouts: Iterable[str] = (), dims: Iterable[tuple[str, str]] = (),
               name: str = "custom", scalars: Iterable[str] = (), matrices: Iterable[str] = ()) -> Cell:
    """Parse equations (separated by newlines or ``;``) into a :class:`Cell`.

    Args:
        inputs: names of the per-step inputs (default ``x``).
        states: override which assigned names are states (default: those whose previous value
            is read).
        readouts: assigned names that are readouts (outputs, e.g. ``y``).
        dims: dimension names declared equal, e.g. ``[("d_in", "d_h")]``.
        scalars: inputs, parameters or states that are one number per step (1 × 1), e.g. a
            per-head gate ``beta``: they broadcast over vectors and matrices.
        matrices: parameters that are matrices used elementwise (Mamba's ``A`` in
            ``exp(delta * A)``), so that ``*`` broadcasts a vector over their columns. A state
            whose equation holds an ``outer(...)`` is a matrix without saying so.
    """
    if not isinstance(text, str):
        raise TypeError(f"parse_cell: text must be a str of equations like "
                        f"'h = tanh(W @ h + U @ x)', got {type(text).__name__}")
    stmts = _statements(text)
    if not stmts:
        raise DefinitionError("empty cell definition: give at least one equation like "
                              "'h = tanh(W_h @ h + W_x @ x + b)'")
    src = "\n".join(stmts)
    try:
        tree = ast.parse(src, mode="exec")
    except SyntaxError as e:
        raise DefinitionError(f"cannot parse `{(e.text or '').strip()}`: {e.msg}") from None
    lines = src.splitlines()
    inputs = tuple(inputs)
    readouts = tuple(readouts)

    # pass 1: the assignments, their targets, and which names are read before being assigned
    assigned: list[str] = []
    read_before: set[str] = set()
    for st in tree.body:
        if not isinstance(st, ast.Assign) or len(st.targets) != 1 or not isinstance(st.targets[0], ast.Name):
            raise DefinitionError(f"each statement must be `name = expression` {_where(st, lines)}")
        target = st.targets[0].id
        _check_name(target, st, lines)
        if target in inputs:
            raise DefinitionError(f"`{target}` is an input and cannot be assigned {_where(st, lines)}")
        if target in assigned:
            raise DefinitionError(f"`{target}` is assigned twice {_where(st, lines)}")
        for n in ast.walk(st.value):
            _validate(n, st, lines)
            if isinstance(n, ast.Name) and n.id not in assigned:
                read_before.add(n.id)
        assigned.append(target)

    state_names = set(states) if states is not None else {a for a in assigned if a in read_before}
    for s in state_names:
        if s not in assigned:
            raise DefinitionError(f"state `{s}` is never assigned: add an equation `{s} = ...`")
    for r in readouts:
        if r not in assigned:
            raise DefinitionError(f"readout `{r}` is never assigned: add an equation `{r} = ...`")
        if r in state_names:
            raise DefinitionError(f"`{r}` cannot be both a state and a readout")
    if not state_names:
        raise DefinitionError("no state: no assigned name is read before it is assigned "
                              "(write e.g. `h = tanh(W @ h + U @ x)`), or name one with --state")

    # matrix-valued quantities, for `*` between a matrix and a vector (a broadcast product)
    scalars, matrices = tuple(scalars), set(matrices)
    for st in tree.body:
        if st.targets[0].id in state_names and any(
                isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "outer"
                for n in ast.walk(st.value)):
            matrices.add(f"{st.targets[0].id}[t-1]")

    # pass 2: translate each right-hand side over the whitelist
    done: set[str] = set()
    equations = []
    for st in tree.body:
        target = st.targets[0].id
        depth = _depth(st.value)
        if depth > MAX_DEPTH:
            raise DefinitionError(f"`{target} = ...` nests {depth} operations deep, more than the "
                                  f"limit of {MAX_DEPTH}: split it into several equations")
        conv = _Translator(inputs, state_names, done, lines, st, matrices)
        rhs = conv.visit(st.value)
        if matrix_valued(rhs, matrices):
            matrices |= {f"{target}[t]", f"{target}[t-1]"}
        if not isinstance(rhs, sp.MatrixExpr):
            raise DefinitionError(f"`{target}` must be a vector expression, got the scalar {rhs} "
                                  f"{_where(st, lines)}")
        kind = "state" if target in state_names else "output" if target in readouts else "gate"
        equations.append((target, kind, rhs))
        done.add(target)

    first_state = next(a for a in assigned if a in state_names)
    for q in scalars:
        if q not in (*inputs, *assigned) and not _reads(tree, q):
            raise DefinitionError(f"scalar `{q}` is not a name of the cell")
    if any(f"{a}[t]" in matrices for a in state_names):
        # a matrix state (linear attention): its sizes come from the outer products, and every
        # input and readout is named after itself (d_k, d_v) unless the equations tie them
        soft = {q: f"d_{q}" for q in (*inputs, *readouts)}
        return make_cell(name, f"user-defined cell: {'; '.join(stmts)}", equations, inputs=inputs,
                         dim_names={q: 1 for q in scalars}, soft_dim_names=soft,
                         equal_dims=tuple(dims), options={"definition": "; ".join(stmts)})
    dim_names = {inputs[0]: "d_in", first_state: "d_h"} if inputs else {first_state: "d_h"}
    for extra in inputs[1:]:
        dim_names[extra] = f"d_{extra}"
    if readouts:
        dim_names[readouts[0]] = "d_out"
        for extra in readouts[1:]:
            dim_names[extra] = f"d_{extra}"
    dim_names.update({q: 1 for q in scalars})
    soft = {s: f"d_{s}" for s in assigned if s in state_names and s != first_state}
    known = [*dict.fromkeys([*dim_names.values(), *soft.values()])]
    for pair in dims:
        for d in pair:
            if d not in known:
                raise DefinitionError(f"dims: unknown dimension {d!r} in {'='.join(pair)} (this "
                                      f"cell's dimensions: {', '.join(known)})")
    return make_cell(name, f"user-defined cell: {'; '.join(stmts)}", equations, inputs=inputs,
                     dim_names=dim_names, soft_dim_names=soft, equal_dims=tuple(dims),
                     options={"definition": "; ".join(stmts)})


def _reads(tree, name) -> bool:
    return any(isinstance(n, ast.Name) and n.id == name for n in ast.walk(tree))


_ALLOWED = (ast.BinOp, ast.UnaryOp, ast.Call, ast.Name, ast.Constant, ast.Load, ast.Add, ast.Sub,
            ast.Mult, ast.Div, ast.MatMult, ast.USub, ast.UAdd)


#: the deepest right-hand side accepted (operations nested in one another): deeper ones would
#: exhaust Python's recursion limit in SymPy and the printers
MAX_DEPTH = 150


def _depth(node) -> int:
    """How deeply the operations of an expression nest (a name or a number: 1); no recursion."""
    deepest, todo = 0, [(node, 1)]
    while todo:
        n, d = todo.pop()
        deepest = max(deepest, d)
        todo.extend((c, d + 1) for c in ast.iter_child_nodes(n))
    return deepest


def _validate(node, stmt, lines):
    """Reject any node outside the whitelist before anything else looks at the text."""
    allowed = ", ".join(sorted(FUNCTIONS))
    if not isinstance(node, _ALLOWED):
        raise DefinitionError(f"`{ast.unparse(node)}` ({type(node).__name__}) is not allowed in a "
                              f"cell definition {_where(stmt, lines)} (allowed: names, numbers, "
                              f"+ - * / @, and calls of {allowed}, {', '.join(STRUCTURAL)})")
    if isinstance(node, ast.Name):
        _check_name(node.id, stmt, lines) if node.id not in CALLABLE else None
    if isinstance(node, ast.Call) and (not isinstance(node.func, ast.Name)
                                       or node.func.id not in CALLABLE):
        raise DefinitionError(f"the call `{ast.unparse(node)}` is not allowed {_where(stmt, lines)}"
                              f": only the activations {allowed} and {', '.join(STRUCTURAL)} can be called")


def _check_name(name, node, lines):
    if name.startswith("_") or not IDENT.match(name):
        raise DefinitionError(f"name `{name}` is not allowed (letters, digits and `_`, "
                              f"not starting with `_`) {_where(node, lines)}")


class _Translator(ast.NodeVisitor):
    """Whitelisted AST → SymPy matrix expression."""

    def __init__(self, inputs, states, done, lines, stmt, matrices=frozenset()):
        self.inputs, self.states, self.done = inputs, states, done
        self.matrices = matrices
        self.lines, self.stmt = lines, stmt

    def fail(self, node, what):
        raise DefinitionError(f"{what} is not allowed in a cell definition {_where(self.stmt, self.lines)}"
                              " (allowed: names, numbers, + - * / @, and calls of "
                              f"{', '.join(sorted(FUNCTIONS))}, {', '.join(STRUCTURAL)})")

    def generic_visit(self, node):
        self.fail(node, f"`{ast.unparse(node)}` ({type(node).__name__})")

    def visit_Name(self, node):
        n = node.id
        _check_name(n, self.stmt, self.lines)
        if n in self.inputs:
            return now(n)
        if n in self.done:
            return now(n)
        if n in self.states:
            return prev(n)
        return param(n)

    def visit_Constant(self, node):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            self.fail(node, f"the constant {node.value!r}")
        return sp.nsimplify(node.value) if isinstance(node.value, float) else sp.Integer(node.value)

    def visit_UnaryOp(self, node):
        if isinstance(node.op, ast.USub):
            v = self.visit(node.operand)
            return mmul(sp.S.NegativeOne, v) if isinstance(v, sp.MatrixExpr) else -v
        if isinstance(node.op, ast.UAdd):
            return self.visit(node.operand)
        self.fail(node, f"the operator in `{ast.unparse(node)}`")

    def visit_BinOp(self, node):
        a, b = self.visit(node.left), self.visit(node.right)
        am, bm = isinstance(a, sp.MatrixExpr), isinstance(b, sp.MatrixExpr)
        op = node.op
        if isinstance(op, (ast.Add, ast.Sub)):
            if isinstance(op, ast.Sub):
                b = mmul(sp.S.NegativeOne, b) if bm else -b
            if am and bm:
                return madd(a, b)
            if not am and not bm:
                return a + b
            # scalar ± vector: the scalar times a matrix of ones of the vector's shape
            s, v = (a, b) if not am else (b, a)
            ones = sp.OneMatrix(*v.shape)
            sterm = ones if s == 1 else mmul(s, ones)
            return madd(sterm, v) if not am else madd(v, sterm)
        if isinstance(op, ast.MatMult):
            if not (am and bm):
                self.fail(node, f"`@` with a scalar in `{ast.unparse(node)}`")
            return mmul(a, b)
        if isinstance(op, ast.Mult):
            if am and bm:
                ma, mb = matrix_valued(a, self.matrices), matrix_valued(b, self.matrices)
                if ma != mb:        # a vector (or one number) times a matrix: broadcast
                    return RowScale(b, a) if ma else RowScale(a, b)
                return hadamard(a, b)
            if am or bm:
                return mmul(a, b) if not am else mmul(b, a)
            return a * b
        if isinstance(op, ast.Div):
            if not bm:
                if b == 0:
                    self.fail(node, f"the division by zero in `{ast.unparse(node)}`")
                return mmul(1 / b, a) if am else a / b
            # scalar / vector: the scalar times a vector of ones, divided elementwise
            num = a if am else (sp.OneMatrix(*b.shape) if a == 1 else mmul(a, sp.OneMatrix(*b.shape)))
            return HadamardQuotient(num, b)
        self.fail(node, f"the operator `{type(op).__name__}` in `{ast.unparse(node)}`")

    def visit_Call(self, node):
        if not isinstance(node.func, ast.Name):
            self.fail(node, f"the call `{ast.unparse(node)}`")
        fname = node.func.id
        if fname in STRUCTURAL:
            return self._structural(node, fname)
        if fname not in FUNCTIONS:
            self.fail(node, f"the unknown function `{fname}`")
        if node.keywords or len(node.args) != 1:
            self.fail(node, f"`{ast.unparse(node)}` (activations take exactly one argument)")
        arg = self.visit(node.args[0])
        if not isinstance(arg, sp.MatrixExpr):
            self.fail(node, f"`{ast.unparse(node)}` on a scalar")
        name = FUNCTIONS[fname]
        return arg if name == "identity" else Activation(name, arg)

    def _structural(self, node, fname):
        """``layernorm(u[, g, b][, eps])`` and ``chunk(u, k, n)``: checked argument by argument."""
        usage = STRUCTURAL[fname]
        if node.keywords:
            self.fail(node, f"`{ast.unparse(node)}` (keyword arguments; write {usage})")
        args = [self.visit(a) for a in node.args]
        vector = [isinstance(a, sp.MatrixExpr) for a in args]
        if not args or not vector[0]:
            self.fail(node, f"`{ast.unparse(node)}` (the first argument must be a vector; write {usage})")
        if fname in ("outer", "max"):
            if len(args) != 2 or not vector[1]:
                self.fail(node, f"`{ast.unparse(node)}` (write {usage})")
            return Outer(*args) if fname == "outer" else Maximum(*args)
        if fname == "transpose":
            if len(args) != 1:
                self.fail(node, f"`{ast.unparse(node)}` (write {usage})")
            return sp.Transpose(args[0])
        if fname == "l2norm":
            if len(args) > 2 or (len(args) == 2 and (vector[1] or not args[1].is_number or args[1] < 0)):
                self.fail(node, f"`{ast.unparse(node)}` (write {usage}; eps a number >= 0)")
            return L2Norm(*args)
        if fname == "chunk":
            if len(args) != 3 or any(vector[1:]) or not all(sp.sympify(a).is_Integer for a in args[1:]):
                self.fail(node, f"`{ast.unparse(node)}` (write {usage})")
            k, n = int(args[1]), int(args[2])
            if not 0 <= k < n:
                self.fail(node, f"`{ast.unparse(node)}` (chunk(u, k, n) needs 0 <= k < n)")
            return Chunk(args[0], k, n)
        eps = None
        if len(args) > 1 and not vector[-1]:
            eps = args.pop()
            vector.pop()
            if not (eps.is_number and eps >= 0):
                self.fail(node, f"`{ast.unparse(node)}` (eps must be a number >= 0)")
        if len(args) > 3 or not all(vector):
            self.fail(node, f"`{ast.unparse(node)}` (write {usage}: gain g and bias b are vectors)")
        return LayerNorm(*args, eps=eps)
