"""One step of a cell as a template: the expression helpers every unrolled form (and the
Jacobian chain) is built from.

Time indices are renamed by substitution (:func:`retime`, :func:`substitute`); a template step
prints once, with the sentinel indices :data:`NOW` and :data:`PREV`, and :func:`instantiate`
turns its text into step k's.
"""
from __future__ import annotations

from sympy import Basic, Expr, MatrixExpr, MatrixSymbol

from rnnsym.cells.cell import Cell, quantity

# sentinel time indices of the one-step templates: "#" never occurs in a quantity name or in the
# printed text of anything else
NOW, PREV = "#k", "#p"


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
