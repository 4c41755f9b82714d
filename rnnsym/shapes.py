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
from rnnsym.cells.nodes import Activation, Chunk, Diag, HadamardQuotient, LayerNorm


class ShapeError(ValueError):
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
        if ra not in self.soft and rb in self.soft:
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
    # vectors: inputs, states, gates and readouts have one column
    for name in (*cell.inputs, *(e.name for e in cell.equations)):
        uf.anchor(cols(name), 1)
    # declared equalities first, so that they never read as conflicts
    for a, b in cell.equal_dims:
        uf.union(("dim", b), ("dim", a), f"--dims {a}={b}")
        uf.label[uf.find(("dim", b))] = sp.Symbol(str(b), integer=True, positive=True)
    for q, d in cell.dim_names.items():
        if q in (*cell.inputs, *(e.name for e in cell.equations)):
            uf.anchor(rows(q), d)
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
    if isinstance(expr, (Activation,)):
        return _shape_of(expr.arg, uf, context, expect)
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
    if isinstance(expr, (MatAdd, HadamardProduct, HadamardQuotient)):
        kind = {MatAdd: "sum", HadamardProduct: "elementwise product"}.get(type(expr), "elementwise quotient")
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
