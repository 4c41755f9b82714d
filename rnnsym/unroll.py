"""N steps of a cell written out: nested, as a chain of named steps, or element by element.

Time indices run 1..N; the initial states carry index 0 (``h_{0}``), the inputs ``x_{1}..x_{N}``.

* ``"chain"``: one named quantity per state (and readout) per step, each written in terms of the
  previous step's named states: ``h_{2} = \\tanh(W_{xh} x_{2} + W_{hh} h_{1} + b_{h})``. The gates
  are substituted into the states. Linear in N for every cell.
* ``"nested"``: the final states (and readouts) as closed expressions in ``h_{0}, x_{1..N}``. A cell
  that reads a previous state k > 1 times per step (LSTM, GRU) grows like k^N, so the size is
  computed from the step before anything is built, and above ``limit`` nodes
  :class:`UnrollTooLarge` says to use the chain form. Elman grows linearly.
* ``"elementwise"``: the chain form for concrete sizes, one scalar equation per element per step
  (``h[2][0]``), built from unevaluated scalar SymPy expressions (each activation's
  ``spec.scalar``).

Every step is the same template: the chain and element-wise forms print one step once, with
sentinel time indices, and instantiate the text per step (exact, since the printers keep the
written order and a time index only appears in symbol names). The nested form is printed step by
step, reusing the text of the previous step's states, so no printer recursion goes deeper than one
step.
"""
from __future__ import annotations

from typing import Callable, Iterator

import sympy as sp
from sympy import Basic, Expr, MatAdd, MatMul, MatrixExpr, MatrixSymbol, OneMatrix
from sympy.matrices.expressions import HadamardProduct

from rnnsym.cells.cell import Cell, quantity, split_name
from rnnsym.cells.nodes import Activation, Chunk, HadamardQuotient, LayerNorm, layernorm_scalars
from rnnsym.printing.latex import RnnLatexPrinter, aligned, symbol_latex
from rnnsym.printing.text import TextPrinter

FORMS = ("nested", "chain", "elementwise")
DEFAULT_LIMIT = 200_000

# sentinel time indices of the one-step templates: "#" never occurs in a quantity name or in the
# printed text of anything else
NOW, PREV = "#k", "#p"


class UnrollError(ValueError):
    """An unroll that cannot be done as asked (bad form, step count or sizes)."""


class UnrollTooLarge(UnrollError):
    """A nested unroll whose expression tree would exceed the size limit."""


# --- expression helpers ---------------------------------------------------------------------
def tree_size(expr, weights: dict | None = None, memo: dict | None = None) -> int:
    """Number of nodes of ``expr`` as a tree, counted over its DAG without expanding it.

    Matrix symbols, symbols and numbers are leaves; activation names and parameters are not
    counted. ``weights`` gives the tree size of leaves that stand for larger expressions;
    ``memo`` (``id → (node, size)``) may be shared between calls over one growing DAG. The walk
    is iterative, so depth costs nothing.
    """
    weights = weights or {}
    memo = {} if memo is None else memo
    stack = [expr]
    while stack:
        node = stack[-1]
        if id(node) in memo:
            stack.pop()
            continue
        if isinstance(node, MatrixSymbol) and node in weights:
            memo[id(node)] = (node, weights[node])
            stack.pop()
            continue
        kids = [] if isinstance(node, MatrixSymbol) else [a for a in node.args if isinstance(a, Expr)]
        todo = [k for k in kids if id(k) not in memo]
        if todo:
            stack.extend(todo)
            continue
        memo[id(node)] = (node, 1 + sum(memo[id(k)][1] for k in kids))
        stack.pop()
    return memo[id(expr)][1]


def substitute(expr: MatrixExpr, rule: dict) -> MatrixExpr:
    """``expr.xreplace(rule)`` for matrix expressions, without re-validating shapes.

    SymPy's matrix constructors validate their arguments' shapes, and a matrix expression's
    ``shape`` walks down its first argument: rebuilding ``W h + U x`` around a nested ``h`` of
    depth N recurses N levels (RecursionError near N = 300). The template was validated when the
    cell was built and a substitution keeps every shape, so nodes are rebuilt with
    ``Basic.__new__``. Shared sub-expressions of ``expr`` stay shared.
    """
    memo: dict = {}

    def walk(node):
        if id(node) in memo:
            return memo[id(node)]
        if node in rule:
            out = rule[node]
        elif not node.args or isinstance(node, MatrixSymbol):
            out = node
        else:
            args = [walk(a) for a in node.args]
            changed = any(a is not b for a, b in zip(args, node.args))
            out = Basic.__new__(type(node), *args) if changed else node
        memo[id(node)] = out
        return out

    return walk(expr)


def retime(cell: Cell, now, prev) -> dict:
    """The renaming of one step's quantities: ``x[t] → x[now]``, ``h[t-1] → h[prev]``, and every
    quantity computed at t to index ``now``."""
    rule = {quantity(s, "t-1"): quantity(s, prev) for s in cell.states}
    for name in (*cell.inputs, *(e.name for e in cell.equations)):
        rule[quantity(name, "t")] = quantity(name, now)
    return rule


def instantiate(template: str, k: int) -> str:
    """Printed text of step ``k`` from the text of the template step (sentinel indices)."""
    return template.replace(PREV, str(k - 1)).replace(NOW, str(k))


def step_template(cell: Cell) -> list[tuple[str, MatrixExpr]]:
    """One step with the gates substituted: ``(name, rhs)`` for each state and readout, in
    order, over ``x[t]``, previous states ``s[t-1]`` and states/readouts already computed at t."""
    gates: dict = {}
    out = []
    for eq in cell.equations:
        rhs = substitute(eq.rhs, gates)
        if eq.kind == "gate":
            gates[eq.lhs] = rhs
        else:
            out.append((eq.name, rhs))
    return out


# --- printers -------------------------------------------------------------------------------
def entry_latex(name: str) -> str:
    """LaTeX of a scalar entry: ``h[2][0]`` → ``h_{2,0}``, ``W_hh[0,1]`` → ``W_{hh,0,1}``."""
    label, _, index = name[:-1].rpartition("[")
    base, time = split_name(label)
    head, _, sub = base.partition("_")
    return head + "_{" + ",".join(s for s in (sub, time, index) if s) + "}"


class _Composing:
    """Printer mixin: sub-expressions registered in ``known`` (by identity) print as stored."""

    def __init__(self):
        super().__init__({"order": "none"})      # keep scalar sums in the order written
        self.known: dict = {}

    def _print(self, expr, **kwargs):
        text = self.known.get(id(expr))
        return text if text is not None else super()._print(expr, **kwargs)


class UnrollLatexPrinter(_Composing, RnnLatexPrinter):
    """rnnsym's LaTeX printer for unrolls: scalar entries as subscripts, ``\\tanh\\left(u\\right)``
    for scalars as for matrices (SymPy writes ``\\tanh{\\left(u \\right)}``)."""

    def _print_Symbol(self, expr, style="plain"):
        return entry_latex(expr.name)

    def _print_tanh(self, expr, exp=None):
        return rf"\tanh\left({self._print(expr.args[0])}\right)"


class UnrollTextPrinter(_Composing, TextPrinter):
    """rnnsym's text printer for unrolls."""


# --- the result -----------------------------------------------------------------------------
class Unrolled:
    """``steps`` steps of a cell in one form; made by :func:`unroll`.

    Attributes:
        form: ``"nested"``, ``"chain"`` or ``"elementwise"``.
        steps: N.
        size: total tree size of the equations' right-hand sides (see :func:`tree_size`).
    """

    def __init__(self, cell: Cell, form: str, steps: int, size: int):
        self.cell, self.form, self.steps, self.size = cell, form, steps, size

    @property
    def equations(self) -> list[tuple[str, Expr]]:
        """``(label, rhs)`` in evaluation order; labels ``h[3]``, ``y[1]``, ``h[3][0]``."""
        raise NotImplementedError

    def _lines(self, printer, label: Callable[[str], str], sep: str) -> Iterator[str]:
        raise NotImplementedError

    def latex(self) -> str:
        """The equations as a LaTeX ``aligned`` block."""
        return aligned(self._lines(UnrollLatexPrinter(), self._label_latex, " &= "))

    def text(self) -> str:
        """The equations as plain text, one per line."""
        return "\n".join(self._lines(UnrollTextPrinter(), str, " = "))

    def _label_latex(self, label: str) -> str:
        return entry_latex(label) if self.form == "elementwise" else symbol_latex(label)

    def __repr__(self):
        return f"<Unrolled {self.cell.name} {self.form}, {self.steps} steps, size {self.size:,}>"


class _TemplateUnrolled(Unrolled):
    """Chain and element-wise forms: every step is ``template`` with its time indices renamed."""

    def __init__(self, cell, form, steps, template, build_step: Callable[[int], list]):
        per_step = sum(tree_size(rhs) for _, rhs in template)
        super().__init__(cell, form, steps, steps * per_step)
        self._template = template
        self._build_step = build_step
        self._equations = None

    @property
    def equations(self):
        if self._equations is None:
            self._equations = [eq for k in range(1, self.steps + 1) for eq in self._build_step(k)]
        return self._equations

    def _lines(self, printer, label, sep):
        lines = [label(name) + sep + printer.doprint(rhs) for name, rhs in self._template]
        for k in range(1, self.steps + 1):
            yield from (instantiate(line, k) for line in lines)


class _NestedUnrolled(Unrolled):
    """Nested form: ``history[k]`` holds the closed expressions of step k's states."""

    def __init__(self, cell, steps, size, history, final):
        super().__init__(cell, "nested", steps, size)
        self._history = history
        self._final = final

    @property
    def equations(self):
        return list(self._final)

    def _lines(self, printer, label, sep):
        # print step by step, each step reusing the text of the one before: the printer never
        # recurses deeper than one step, and only two steps' texts are held at a time
        previous: list = []
        for states in self._history:
            for expr in states:
                printer.known[id(expr)] = printer.doprint(expr)
            for expr in previous:
                del printer.known[id(expr)]
            previous = states
        for name, rhs in self._final:
            yield label(name) + sep + printer.doprint(rhs)


# --- the three forms ------------------------------------------------------------------------
def unroll(cell: Cell, steps: int, form: str = "chain", sizes: dict | None = None, *,
           limit: int = DEFAULT_LIMIT) -> Unrolled:
    """Unroll ``cell`` over ``steps`` steps in ``form`` (see the module docstring).

    Args:
        sizes: the free dimensions for ``form="elementwise"``, e.g. ``{"d_h": 2, "d_in": 1}``.
        limit: the largest tree size the nested form may reach.

    Raises:
        UnrollTooLarge: the nested form would exceed ``limit`` nodes.
        UnrollError: an unknown form, a step count below 1, missing or unknown sizes.
    """
    if form not in FORMS:
        raise UnrollError(f"unknown form {form!r}; choose one of {', '.join(FORMS)}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise UnrollError(f"steps must be a positive integer, got {steps!r}")
    if form == "nested":
        return _nested(cell, steps, limit)
    if form == "chain":
        return _chain(cell, steps)
    return _elementwise(cell, steps, sizes)


def _chain(cell: Cell, steps: int) -> Unrolled:
    template = step_template(cell)

    def build_step(k):
        rule = retime(cell, k, k - 1)
        return [(f"{name}[{k}]", substitute(rhs, rule)) for name, rhs in template]

    sentinel = retime(cell, NOW, PREV)
    return _TemplateUnrolled(cell, "chain", steps,
                             [(f"{n}[{NOW}]", substitute(rhs, sentinel)) for n, rhs in template],
                             build_step)


def _nested(cell: Cell, steps: int, limit: int) -> Unrolled:
    outputs = step_template(cell)
    readouts = set(cell.readouts)

    # sizes first, from the template alone: a quantity's size at step k is the template's tree
    # size with each symbol it reads weighted by that symbol's size at k (or k-1)
    sizes = {quantity(s, "t-1"): 1 for s in cell.states}
    size = 0
    for k in range(1, steps + 1):
        weights = dict(sizes)
        for name, rhs in outputs:
            weights[quantity(name, "t")] = tree_size(rhs, weights)
        sizes = {quantity(s, "t-1"): weights[quantity(s, "t")] for s in cell.states}
        last = [weights[quantity(name, "t")] for name, _ in outputs
                if name not in readouts or k == steps]
        size = sum(last)
        if size > limit:
            raise UnrollTooLarge(
                f"the nested form of {cell.name} over {steps} steps exceeds the limit of "
                f"{limit:,} nodes (it reaches {size:,} at step {k}); use --form chain, which "
                f"names one quantity per step and grows linearly")

    history: list = []
    previous = {quantity(s, "t-1"): quantity(s, 0) for s in cell.states}
    final: list = []
    for k in range(1, steps + 1):
        rule = {quantity(i, "t"): quantity(i, k) for i in cell.inputs}
        rule.update(previous)
        for name, rhs in outputs:
            if name in readouts and k < steps:
                continue
            rule[quantity(name, "t")] = substitute(rhs, rule)
        history.append([rule[quantity(s, "t")] for s in cell.states])
        previous = {quantity(s, "t-1"): rule[quantity(s, "t")] for s in cell.states}
        if k == steps:
            final = [(f"{name}[{k}]", rule[quantity(name, "t")]) for name, _ in outputs]
    return _NestedUnrolled(cell, steps, size, history, final)


def _elementwise(cell: Cell, steps: int, sizes: dict | None) -> Unrolled:
    from rnnsym.shapes import derive

    table = derive(cell)
    table.check_determined()
    sizes = dict(sizes or {})
    free = [str(d) for d in table.dims]
    missing = [d for d in free if d not in sizes]
    unknown = [d for d in sizes if d not in free]
    if missing or unknown:
        what = [f"give a size for {', '.join(missing)}"] if missing else []
        what += [f"{', '.join(unknown)} is not a dimension"] if unknown else []
        raise UnrollError(f"--form elementwise needs concrete sizes: {'; '.join(what)} (the "
                          f"{cell.name} cell's dimensions are {', '.join(free)}; e.g. --sizes "
                          + ",".join(f"{d}=2" for d in free) + ")")
    shapes = table.concrete(**sizes)
    template = step_template(cell)

    def build_step(now, prev):
        return [(f"{name}[{now}][{i}]", entry)
                for name, rhs in template
                for i, (entry,) in enumerate(_entries(rhs, _ScalarEnv(cell, shapes, now, prev)))]

    return _TemplateUnrolled(cell, "elementwise", steps, build_step(NOW, PREV),
                             lambda k: build_step(k, k - 1))


class _ScalarEnv:
    """The scalar symbols of one step's matrix symbols: ``h[t-1]`` → ``[[h[prev][0]], ...]``,
    ``W_hh`` → ``[[W_hh[0,0], ...], ...]``; ``shapes`` are the concrete array shapes."""

    def __init__(self, cell: Cell, shapes: dict, now, prev):
        self.rule = retime(cell, now, prev)
        self.shapes = shapes

    def __call__(self, sym: MatrixSymbol) -> list[list]:
        name = self.rule.get(sym, sym).name
        shape = self.shapes[split_name(name)[0]]
        if len(shape) == 1:
            return [[sp.Symbol(f"{name}[{i}]")] for i in range(shape[0])]
        rows, cols = shape
        return [[sp.Symbol(f"{name}[{i},{j}]") for j in range(cols)] for i in range(rows)]


def _flat(op, items: list):
    """``op(*items)`` unevaluated, in the order given, with nested ``op``s spliced in."""
    flat = [a for item in items for a in (item.args if isinstance(item, op) else (item,))]
    return flat[0] if len(flat) == 1 else op(*flat, evaluate=False)


def _sum(terms: list):
    return _flat(sp.Add, terms)


def _prod(factors: list):
    return _flat(sp.Mul, factors)


def _entries(expr, env: _ScalarEnv) -> list[list]:
    """The entries of a matrix expression as unevaluated scalar expressions (rows of a list)."""
    if isinstance(expr, MatrixSymbol):
        return env(expr)
    if isinstance(expr, Activation):
        return [[expr.spec.scalar(u, *expr.params) for u in row] for row in _entries(expr.arg, env)]
    if isinstance(expr, LayerNorm):
        u = _entries(expr.arg, env)
        g = None if expr.gain is None else [row[0] for row in _entries(expr.gain, env)]
        b = None if expr.bias is None else [row[0] for row in _entries(expr.bias, env)]
        return [[v] for v in layernorm_scalars([row[0] for row in u], g, b, expr.eps)]
    if isinstance(expr, Chunk):
        u = _entries(expr.arg, env)
        d = len(u) // expr.count
        return u[expr.index * d:(expr.index + 1) * d]
    if isinstance(expr, HadamardQuotient):
        den = _entries(expr.denominator, env)
        num = None if isinstance(expr.numerator, OneMatrix) else _entries(expr.numerator, env)
        return [[(sp.S.One if num is None else num[i][j]) / e for j, e in enumerate(row)]
                for i, row in enumerate(den)]
    if isinstance(expr, (MatAdd, HadamardProduct)):
        combine = _sum if isinstance(expr, MatAdd) else _prod
        parts = [_entries(a, env) if not isinstance(a, OneMatrix) else None for a in expr.args]
        shaped = next(p for p in parts if p is not None)
        return [[combine([sp.S.One if p is None else p[i][j] for p in parts])
                 for j in range(len(shaped[0]))] for i in range(len(shaped))]
    if isinstance(expr, MatMul):
        coeff, matrices = expr.as_coeff_matrices()
        out = _entries(matrices[0], env)
        for m in matrices[1:]:
            right = _entries(m, env)
            out = [[_sum([_prod([row[k], right[k][j]]) for k in range(len(right))])
                    for j in range(len(right[0]))] for row in out]
        return out if coeff == 1 else [[_prod([coeff, e]) for e in row] for row in out]
    raise UnrollError(f"cannot write {type(expr).__name__} element by element")
