"""The element-wise form: the chain form for concrete sizes, one scalar equation per element per
step (``h[2][0]``), built from unevaluated scalar SymPy expressions in the order written (each
activation's ``spec.scalar``). SymPy's ``as_explicit`` would evaluate and reorder them, and knows
nothing of rnnsym's nodes."""
from __future__ import annotations

import sympy as sp
from sympy import MatAdd, MatMul, MatrixSymbol, OneMatrix
from sympy.matrices.expressions import HadamardProduct, Transpose

from rnnsym.cells.cell import Cell, split_name
from rnnsym.cells.nodes import (Activation, Chunk, HadamardQuotient, L2Norm, LayerNorm, Maximum, Outer, RowScale,
                                layernorm_scalars)
from rnnsym.shapes import derive
from rnnsym.unroll.result import Unrolled, UnrollError, UnrollTooLarge, _TemplateUnrolled
from rnnsym.unroll.template import NOW, PREV, retime, step_template


def elementwise(cell: Cell, steps: int, sizes: dict | None, limit: int | None = None) -> Unrolled:
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
    if limit is not None:           # entries x (one term per column of every parameter), bounded
        terms = 2 + sum(shapes[p][-1] for p in cell.params)
        size = steps * sum(shapes[e.name][0] for e in cell.equations) * terms
        if size > limit:
            raise UnrollTooLarge(
                f"the elementwise form of {cell.name} over {steps} steps at "
                + ", ".join(f"{k}={v}" for k, v in sizes.items())
                + f" exceeds the limit of {limit:,} nodes (about {size:,}); give smaller "
                "--sizes or fewer --steps, or use --form chain")
    template = step_template(cell)

    def build_step(now, prev):
        out = []
        for name, rhs in template:
            rows = _entries(rhs, _ScalarEnv(cell, shapes, now, prev))
            matrix = len(shapes[name]) == 2           # a matrix state: S[t][i,j]
            out += [(f"{name}[{now}][{i},{j}]" if matrix else f"{name}[{now}][{i}]", entry)
                    for i, row in enumerate(rows) for j, entry in enumerate(row)]
        return out

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
    if isinstance(expr, OneMatrix):         # c·1 added elementwise (mLSTM's eps): broadcasts
        return [[sp.S.One]]
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
    if isinstance(expr, Transpose):
        return [list(col) for col in zip(*_entries(expr.arg, env))]
    if isinstance(expr, Outer):
        a, b = _entries(expr.left, env), _entries(expr.right, env)
        return [[_prod([u[0], w[0]]) for w in b] for u in a]
    if isinstance(expr, L2Norm):
        u = [row[0] for row in _entries(expr.arg, env)]
        norm = sp.sqrt(_sum([*(v ** 2 for v in u), expr.eps]), evaluate=False)
        return [[v / norm] for v in u]
    if isinstance(expr, (MatAdd, HadamardProduct, HadamardQuotient, Maximum, RowScale)):
        # one number per step (1 × 1) broadcasts, and a column over a matrix's columns (a * S)
        parts = [_entries(a, env) if not isinstance(a, OneMatrix) else None for a in expr.args]
        shaped = max((p for p in parts if p is not None), key=lambda p: (len(p), len(p[0])))

        def at(p, i, j):
            return sp.S.One if p is None else p[i if len(p) > 1 else 0][j if len(p[0]) > 1 else 0]

        def combine(items):
            if isinstance(expr, HadamardQuotient):
                return items[0] / items[1]
            if isinstance(expr, Maximum):
                return sp.Max(*items, evaluate=False)
            return _sum(items) if isinstance(expr, MatAdd) else _prod(items)
        return [[combine([at(p, i, j) for p in parts]) for j in range(len(shaped[0]))]
                for i in range(len(shaped))]
    if isinstance(expr, MatMul):
        coeff, matrices = expr.as_coeff_matrices()
        if len(matrices) == 1 and isinstance(matrices[0], OneMatrix):
            return [[coeff]]
        out = _entries(matrices[0], env)
        for m in matrices[1:]:
            right = _entries(m, env)
            out = [[_sum([_prod([row[k], right[k][j]]) for k in range(len(right))])
                    for j in range(len(right[0]))] for row in out]
        return out if coeff == 1 else [[_prod([coeff, e]) for e in row] for row in out]
    raise UnrollError(f"cannot write {type(expr).__name__} element by element")
