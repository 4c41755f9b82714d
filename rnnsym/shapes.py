"""Derive every quantity's shape from a cell's equations, by unification.

SymPy accepts ``MatrixSymbol`` products and sums with mismatched *symbolic* sizes without a word
(``sympy/matrices/expressions/_shape.py`` only raises for integer sizes), so rnnsym collects the
constraints itself, the way ``_shape.is_matmul_valid``/``is_matadd_valid`` phrase them:

* a product ``A B``: columns of A = rows of B;
* a sum or elementwise product: all terms have one shape; an activation keeps its argument's shape;
* an equation: the left side has the right side's shape, so a state keeps its shape from ``t-1``
  to ``t`` (``h[t-1]`` and ``h[t]`` share one pair of size placeholders);
* inputs, states and readouts are column vectors;
* ``layernorm(u, g, b)``: g and b have the shape of u; ``a / b`` elementwise: one shape;
* ``chunk(u, k, n)``: u has n times the rows of the block (a *scaled* constraint, solved after the
  unification: a class of rows may be labelled ``4*d_h``).
* matrix states (linear attention, Mamba, mLSTM): a state or quantity whose equation is
  matrix-valued (an ``outer(k, v)``, a broadcast product ``a * S``) keeps its columns free
  (``S: d_k × d_v``); ``outer(a, b)`` is ``rows(a) × rows(b)``; ``a * M`` broadcasts the column
  ``a`` over ``M``'s columns (same rows), or, where ``a`` is one number per step (declared
  1 × 1, e.g. a per-head gate), over all of ``M``; in sums, elementwise products, quotients and
  ``max``, a term already known to be 1 × 1 broadcasts the same way.

The sizes are merged class by class (union-find). The rows of the anchored quantities (``x`` →
``d_in``, ``h`` → ``d_h``, readout → ``d_out``, LSTM projection → ``d_proj``) name the classes;
two differently named classes that must merge are a :class:`ShapeConflict` naming the equation,
the term and both dimensions, unless the user declared them equal.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass, field

import sympy as sp
from sympy import MatAdd, MatMul, MatrixSymbol, OneMatrix
from sympy.matrices.expressions import HadamardProduct, Transpose

from rnnsym.cells.cell import Cell, cols, rows, split_name
from rnnsym.cells.nodes import (Activation, Chunk, Diag, HadamardQuotient, L2Norm, LayerNorm, Maximum, Outer,
                                RowScale, matrix_valued)
from rnnsym.errors import RnnsymError


class ShapeError(RnnsymError, ValueError):
    """Shapes that cannot be, or have not been, determined."""


class ShapeConflict(ShapeError):
    """Two dimensions that the equations require to be equal, but that are declared distinct."""


class ShapeUndetermined(ShapeError):
    """A parameter whose shape the equations do not determine."""


class ArrayShapeError(ShapeError):
    """Concrete arrays whose shapes do not fit the cell; lists every wrong one."""


def _fmt_term(expr) -> str:
    from rnnsym.printing.text import text
    return text(expr)


class _Classes:
    """Union-find over size placeholders; a class may carry a name (``d_h``) or a number."""

    def __init__(self):
        self.parent: dict = {}
        self.label: dict = {}       # root -> dimension name (Symbol) or Integer
        self.soft: dict = {}        # root -> soft name
        self.origin: dict = {}      # placeholder -> words (for undetermined reports)
        self.scaled: list = []      # (big, n, small, context): size(big) = n * size(small)
        self.soft_rank: dict = {}   # soft name -> rank: merging soft-named classes keeps the first
        self.matrices: set = set()  # labels of matrix-valued quantities (S[t-1], S[t])

    def find(self, a):
        self.parent.setdefault(a, a)
        root = a
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[a] != root:
            self.parent[a], a = root, self.parent[a]
        return root

    def describe(self, root) -> str:
        lab = self.label.get(root)
        if lab is None:
            return self.soft.get(root) or "an undetermined size"
        return str(lab)

    def union(self, a, b, context: str):
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        la, lb = self.label.get(ra), self.label.get(rb)
        if la is not None and lb is not None and la != lb:
            raise ShapeConflict(f"{context}: would need {la} = {lb}, but {la} and {lb} are "
                                f"independent dimensions"
                                + (f" (declare them equal with --dims {la}={lb} if you mean it)"
                                   if not (la.is_Integer or lb.is_Integer) else ""))
        self.parent[rb] = ra
        if la is None and lb is not None:
            self.label[ra] = lb
        if rb in self.soft and (ra not in self.soft or self.soft_rank.get(self.soft[rb], 0)
                                < self.soft_rank.get(self.soft[ra], 0)):
            self.soft[ra] = self.soft[rb]
        self.label.pop(rb, None)
        self.soft.pop(rb, None)

    def resolve_scaled(self):
        """Label the classes tied by ``size(big) = n · size(small)`` (chunk) until nothing changes;
        a class whose label cannot be n times the other's is a :class:`ShapeConflict`."""
        changed = True
        while changed:
            changed = False
            for big, n, small, context in self.scaled:
                rb, rs = self.find(big), self.find(small)
                lb, ls = self.label.get(rb), self.label.get(rs)
                if ls is not None:
                    want = n * ls
                    if lb is None:
                        self.label[rb] = want
                        changed = True
                    elif sp.simplify(lb - want) != 0:
                        raise ShapeConflict(f"{context}: would need {lb} = {want}, but the rows of "
                                            f"the chunked vector must be {n} times those of a chunk")
                elif lb is not None:
                    self.label[rs] = lb / n
                    changed = True

    def anchor(self, a, value, soft=False):
        r = self.find(a)
        if soft:
            self.soft_rank.setdefault(value, len(self.soft_rank))
            self.soft.setdefault(r, value)
            return
        node = ("dim", value)               # one node per name: same names are one class
        root = self.find(node)
        if root not in self.label:
            self.label[root] = sp.Symbol(value, integer=True, positive=True) \
                if isinstance(value, str) else sp.Integer(value)
        self.union(node, a, f"the size of {a}")


@dataclass
class ShapeTable:
    """The derived shapes of a cell: every quantity's ``(rows, cols)`` in the free dimensions.

    ``None`` in a shape means undetermined; :attr:`undetermined` says why.
    """

    cell: Cell
    shapes: dict                     # name -> (rows, cols) with Symbols/Integers/None
    dims: tuple                      # free dimensions, in order of first use
    undetermined: dict = field(default_factory=dict)

    # --- lookups ---------------------------------------------------------------------------
    def shape(self, name: str) -> tuple:
        """Array shape of ``name``: ``(rows,)`` for vectors (cols = 1), else ``(rows, cols)``."""
        r, c = self.shapes[name]
        return (r,) if c == 1 else (r, c)

    @property
    def params(self) -> dict:
        return {p: self.shape(p) for p in self.cell.params}

    def check_determined(self):
        """Raise :class:`ShapeUndetermined` if any parameter's shape is left open."""
        if self.undetermined:
            raise ShapeUndetermined("; ".join(f"{k}: {v}" for k, v in self.undetermined.items()))

    def concrete(self, **sizes) -> dict:
        """Shapes with numbers: ``table.concrete(d_in=3, d_h=5)`` → ``{"W_xh": (5, 3), ...}``."""
        missing = [str(d) for d in self.dims if str(d) not in sizes]
        if missing:
            raise ShapeError(f"give a size for {', '.join(missing)} (free dimensions: "
                             f"{', '.join(map(str, self.dims))})")
        bad = [f"{d}={sizes[str(d)]!r}" for d in self.dims if isinstance(sizes[str(d)], bool)
               or not isinstance(sizes[str(d)], numbers.Integral) or sizes[str(d)] < 1]
        if bad:
            raise ShapeError(f"sizes must be integers >= 1, got {', '.join(bad)}")
        subs = {d: sizes[str(d)] for d in self.dims}
        out = {}
        for name in self.shapes:
            if name in self.undetermined:
                continue
            out[name] = tuple(int(sp.sympify(s).xreplace(subs)) for s in self.shape(name))
        return out

    # --- formats ---------------------------------------------------------------------------
    def signature(self) -> str:
        """gufunc-style signature: parameters, inputs and previous states → new states, readouts.

        Vectors are ``(d_h)``; usable with ``hypothesis.extra.numpy.mutually_broadcastable_shapes``.
        """
        self.check_determined()
        cell = self.cell

        def fmt(name):
            return "(" + ",".join(str(s) for s in self.shape(name)) + ")"

        ins = [fmt(p) for p in cell.params] + [fmt(i) for i in cell.inputs] + \
              [fmt(s) for s in cell.states]
        outs = [fmt(s) for s in cell.states] + [fmt(r) for r in cell.readouts]
        return ",".join(ins) + "->" + ",".join(outs)

    def rows_table(self) -> list[tuple[str, str, str]]:
        """``(name, role, shape)`` rows for printing."""
        cell = self.cell
        roles = {**{p: "parameter" for p in cell.params}, **{i: "input" for i in cell.inputs},
                 **{e.name: {"gate": "intermediate", "state": "state", "output": "readout"}[e.kind]
                    for e in cell.equations}}
        out = []
        for name in (*cell.params, *cell.inputs, *(e.name for e in cell.equations)):
            if name in self.undetermined:
                out.append((name, roles[name], f"undetermined ({self.undetermined[name]})"))
            else:
                out.append((name, roles[name], " × ".join(str(s) for s in self.shape(name))))
        return out

    def format(self) -> str:
        rows_ = self.rows_table()
        w0 = max(len(r[0]) for r in rows_)
        w1 = max(len(r[1]) for r in rows_)
        lines = [f"{n:<{w0}}  {role:<{w1}}  {s}" for n, role, s in rows_]
        lines.append("free dimensions: " + ", ".join(map(str, self.dims)))
        if not self.undetermined:
            lines.append("signature: " + self.signature())
        return "\n".join(lines)

    # --- concrete arrays -------------------------------------------------------------------
    def infer_sizes(self, arrays: dict, **known) -> dict:
        """Read the free dimensions off concrete arrays (the majority wins where they disagree),
        so that one wrong array is the one reported."""
        votes: dict = {}
        for name, arr in arrays.items():
            if name not in self.shapes or name in self.undetermined:
                continue
            shp = tuple(getattr(arr, "shape", ()))
            exp = self.shape(name)
            if len(shp) != len(exp):
                continue
            for s, n in zip(exp, shp):
                if isinstance(s, sp.Symbol):
                    votes.setdefault(str(s), []).append(int(n))
        sizes = dict(known)
        for d, vs in votes.items():
            if d not in sizes:
                sizes[d] = max(set(vs), key=lambda v: (vs.count(v), -vs.index(v)))
        return sizes

    def validate(self, params: dict, **known) -> dict:
        """Check concrete parameter arrays against the derived shapes.

        Returns the free dimensions read off the arrays. Raises :class:`ArrayShapeError` naming
        every wrong, missing or unknown parameter with its expected shape in symbols and numbers.
        """
        self.check_determined()
        problems = []
        missing = [p for p in self.cell.params if p not in params]
        unknown = [p for p in params if p not in self.cell.params]
        sizes = self.infer_sizes({k: v for k, v in params.items() if k in self.cell.params}, **known)
        for p in self.cell.params:
            if p not in params:
                continue
            exp = self.shape(p)
            got = tuple(getattr(params[p], "shape", ()))
            nums = tuple(int(sp.sympify(s).xreplace({sp.Symbol(k, integer=True, positive=True): v
                                                      for k, v in sizes.items()}))
                         if all(str(f) in sizes for f in sp.sympify(s).free_symbols) else s
                         for s in exp)
            if got != nums:
                problems.append(f"{p}: expected shape ({', '.join(map(str, exp))}) = {nums}, got {got}")
        if missing:
            problems.append("missing parameter(s): " + ", ".join(missing))
        if unknown:
            problems.append(f"unknown parameter(s): {', '.join(unknown)} (the {self.cell.name} "
                            f"cell has {', '.join(self.cell.params)})")
        if problems:
            raise ArrayShapeError(f"{self.cell.name}: " + "; ".join(problems))
        return sizes


def derive(cell: Cell) -> ShapeTable:
    """Collect and solve the shape constraints of ``cell``; see the module docstring."""
    uf = _Classes()
    # vectors: inputs, states, gates and readouts have one column, unless matrix-valued
    matrices: set = set()
    for _ in range(2):          # a matrix state read before its own equation: a second pass
        for e in cell.equations:
            if matrix_valued(e.rhs, matrices):
                matrices |= {f"{e.name}[t]", f"{e.name}[t-1]"}
    uf.matrices = matrices
    for name in (*cell.inputs, *(e.name for e in cell.equations)):
        if f"{name}[t]" not in matrices:
            uf.anchor(cols(name), 1)
    # declared equalities first, so that they never read as conflicts
    for a, b in cell.equal_dims:
        uf.union(("dim", b), ("dim", a), f"--dims {a}={b}")
        uf.label[uf.find(("dim", b))] = sp.Symbol(str(b), integer=True, positive=True)
    for q, d in cell.dim_names.items():
        if q in (*cell.inputs, *(e.name for e in cell.equations)):
            uf.anchor(rows(q), d)
        elif q in cell.params and d == 1:          # a parameter declared one number (1 × 1)
            uf.anchor(rows(q), 1)
            uf.anchor(cols(q), 1)
    for q, d in cell.soft_dim_names.items():
        uf.anchor(rows(q), d, soft=True)

    for eq in cell.equations:
        context = f"equation {eq.name}_t = {_fmt_term(eq.rhs)}"
        r, c = _shape_of(eq.rhs, uf, context, expect=(rows(eq.name), cols(eq.name), f"{eq.name}[t]"))
        uf.union(rows(eq.name), r, f"{context}: the rows of {eq.name} (kept from t-1 to t)")
        uf.union(cols(eq.name), c, f"{context}: the columns of {eq.name}")
    uf.resolve_scaled()

    # name the classes and build the table
    names = (*cell.params, *cell.inputs, *(e.name for e in cell.equations))
    shapes, undetermined, dims = {}, {}, []
    for n in names:
        out = []
        for ph, what in ((rows(n), "rows"), (cols(n), "columns")):
            root = uf.find(ph)
            lab = uf.label.get(root)
            if lab is None and root in uf.soft:
                lab = sp.Symbol(uf.soft[root], integer=True, positive=True)
            if lab is None:
                undetermined.setdefault(n, f"the {what} of {n} are not fixed by any equation")
            else:
                dims.extend(d for d in sorted(lab.free_symbols, key=str) if d not in dims)
            out.append(lab)
        shapes[n] = tuple(out)
    return ShapeTable(cell, shapes, tuple(dims), undetermined)


def _shape_of(expr, uf: _Classes, context: str, expect=None):
    """(rows, cols) placeholders of ``expr``, unifying as it goes.

    ``expect`` is ``(rows, cols, label)`` when the shape is known from above (the left-hand side
    of the equation): each term of a sum is then matched against it, so that a conflict names the
    term at fault rather than the whole equation.
    """
    if isinstance(expr, MatrixSymbol):
        base, _ = split_name(expr.name)
        return rows(base), cols(base)
    if isinstance(expr, OneMatrix):
        return expr.shape
    if isinstance(expr, (Activation, L2Norm)):
        return _shape_of(expr.arg, uf, context, expect)
    if isinstance(expr, Outer):
        (ra, ca), (rb, cb) = (_shape_of(a, uf, context) for a in (expr.left, expr.right))
        for c, a in ((ca, expr.left), (cb, expr.right)):
            uf.union(c, _one(uf), f"{context}: in {_fmt_term(expr)}, {_fmt_term(a)} must be a column vector")
        return ra, rb
    if isinstance(expr, RowScale):
        r, c = _shape_of(expr.matrix, uf, context, expect)
        ra, ca = _shape_of(expr.scale, uf, context)
        where = f"{context}: in {_fmt_term(expr)}, {_fmt_term(expr.scale)} is broadcast over the " \
                f"columns of {_fmt_term(expr.matrix)}"
        uf.union(ca, _one(uf), where)
        if not _is_scalar(uf, (ra, ca)):
            uf.union(ra, r, where + " and must have its rows")
        return r, c
    if isinstance(expr, LayerNorm):
        r, c = _shape_of(expr.arg, uf, context, expect)
        for what, v in (("gain", expr.gain), ("bias", expr.bias)):
            if v is not None:
                _same_shape(uf, (r, c), v, context, f"{context}: in {_fmt_term(expr)}, the {what} "
                            f"{_fmt_term(v)} must have the shape of {_fmt_term(expr.arg)}")
        return r, c
    if isinstance(expr, Chunk):
        r, c = _shape_of(expr.arg, uf, context)
        block = ("chunk rows", expr)
        uf.find(block)
        uf.scaled.append((r, expr.count, block, f"{context}: in {_fmt_term(expr)}"))
        return block, c
    if isinstance(expr, Diag):
        r, c = _shape_of(expr.arg, uf, context)
        uf.anchor(c, 1)
        return r, r
    if isinstance(expr, Transpose):
        r, c = _shape_of(expr.arg, uf, context)
        return c, r
    if isinstance(expr, MatMul):
        mats = [a for a in expr.args if isinstance(a, sp.MatrixExpr)]
        shapes = [_shape_of(a, uf, context) for a in mats]
        for (a, (ra, ca)), (b, (rb, cb)) in zip(zip(mats, shapes), zip(mats[1:], shapes[1:])):
            where = f"{context}: in the product {_fmt_term(MatMul(a, b))}, the columns of " \
                    f"{_fmt_term(a)} must equal the rows of {_fmt_term(b)}"
            uf.union(ca, rb, where)
        return shapes[0][0], shapes[-1][1]
    if isinstance(expr, (MatAdd, HadamardProduct, HadamardQuotient, Maximum)):
        kind = {MatAdd: "sum", HadamardProduct: "elementwise product",
                Maximum: "elementwise max"}.get(type(expr), "elementwise quotient")
        broadcast = _broadcast_terms(expr, uf, context)
        if broadcast is not None:       # a term is one number per step: it broadcasts
            scalars, full = broadcast
            if expect is not None:
                r0, c0, label = expect
            else:
                (r0, c0), label, full = full[0][1], _fmt_term(full[0][0]), full[1:]
            for term, shape in full:
                where = f"{context}: in the {kind} {_fmt_term(expr)}, the term {_fmt_term(term)} " \
                        f"must have the shape of {label}"
                uf.union(r0, shape[0], where)
                uf.union(c0, shape[1], where)
            return r0, c0
        if expect is not None:
            r0, c0, label = expect
            terms = expr.args
        else:
            label = _fmt_term(expr.args[0])
            r0, c0 = _shape_of(expr.args[0], uf, context)
            terms = expr.args[1:]
        for term in terms:
            _same_shape(uf, (r0, c0), term, context, f"{context}: in the {kind} {_fmt_term(expr)}, "
                        f"the term {_fmt_term(term)} must have the shape of {label}")
        return r0, c0
    raise ShapeError(f"{context}: rnnsym cannot derive the shape of {type(expr).__name__} "
                     f"`{_fmt_term(expr)}`")


def _same_shape(uf: _Classes, shape, expr, context: str, where: str):
    """Unify the shape of ``expr`` with ``shape`` (rows, cols); ``where`` names the place."""
    r, c = _shape_of(expr, uf, context)
    uf.union(shape[0], r, where)
    uf.union(shape[1], c, where)


def _one(uf: _Classes):
    """The class of the size 1 (created on first use)."""
    node = ("dim", 1)
    root = uf.find(node)
    uf.label.setdefault(root, sp.Integer(1))
    return node


def _is_scalar(uf: _Classes, shape) -> bool:
    """Whether a (rows, cols) pair is already known to be 1 × 1 (one number per step)."""
    return all(uf.label.get(uf.find(s)) == 1 for s in shape)


def _broadcast_terms(expr, uf: _Classes, context: str):
    """For an elementwise node with a term known to be 1 × 1 beside others that are not:
    ``(scalars, others)`` as lists of ``(term, shape)``; ``None`` when no term broadcasts (the
    ordinary one-shape rule applies, with its term-by-term messages)."""
    terms = [a for a in expr.args if isinstance(a, sp.MatrixExpr)]
    if len(terms) < 2 or not any(_is_scalar_term(t, uf) for t in terms):
        return None
    shaped = [(t, _shape_of(t, uf, context)) for t in terms]
    scalars = [(t, sh) for t, sh in shaped if _is_scalar(uf, sh)]
    others = [(t, sh) for t, sh in shaped if not _is_scalar(uf, sh)]
    if not others:
        return None
    return scalars, others


def _is_scalar_term(term, uf: _Classes) -> bool:
    """A quick look (before unifying anything) whether ``term`` is a declared 1 × 1 quantity or an
    expression of such quantities only (``exp(g)``, ``1 - beta``)."""
    if isinstance(term, MatrixSymbol):
        base, _ = split_name(term.name)
        return _is_scalar(uf, (rows(base), cols(base)))
    if isinstance(term, OneMatrix):
        return _is_scalar(uf, term.shape)
    if isinstance(term, (Outer, RowScale)):
        return False
    mats = [a for a in term.args if isinstance(a, sp.MatrixExpr)]
    if isinstance(term, Transpose):
        return _is_scalar_term(term.arg, uf)
    if isinstance(term, MatMul) and len(mats) == 1 and isinstance(mats[0], OneMatrix):
        return _is_scalar(uf, term.shape)     # c·1 (mLSTM's eps): ones of a known shape
    if isinstance(term, MatMul):
        if len(mats) == 2 and isinstance(mats[0], Transpose) and not any(
                matrix_valued(m, uf.matrices) for m in (mats[0].arg, mats[1])):
            return True         # aᵀ b of two vectors: a dot product, one number
        return False if len(mats) > 1 else _is_scalar_term(mats[0], uf)
    return bool(mats) and all(_is_scalar_term(a, uf) for a in mats)
