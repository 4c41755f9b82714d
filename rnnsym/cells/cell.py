"""The symbolic cell: an ordered list of update equations over SymPy matrix expressions.

One step of a recurrence reads the inputs at ``t``, the states at ``t-1`` and the parameters, and
computes, in order, intermediate quantities (gates), the new states and optional readouts. Every
quantity is a ``MatrixSymbol`` whose name carries its time index: ``x[t]``, ``h[t-1]``, ``i[t]``;
parameters carry none (``W_hh``). Sizes are placeholders (``rows(W_hh)``) until
:mod:`rnnsym.shapes` derives them from the equations.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable

import sympy as sp
from sympy import MatrixExpr, MatrixSymbol

IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
KINDS = ("gate", "state", "output")


def rows(name: str) -> sp.Symbol:
    """Placeholder for the number of rows of quantity ``name``."""
    return sp.Symbol(f"rows({name})", integer=True, positive=True)


def cols(name: str) -> sp.Symbol:
    """Placeholder for the number of columns of quantity ``name``."""
    return sp.Symbol(f"cols({name})", integer=True, positive=True)


def quantity(name: str, time: str | int | None = None) -> MatrixSymbol:
    """The matrix symbol of ``name`` at ``time`` (``None`` for parameters): ``quantity("h", "t-1")``."""
    label = name if time is None else f"{name}[{time}]"
    return MatrixSymbol(label, rows(name), cols(name))


def split_name(label: str) -> tuple[str, str | None]:
    """``"h[t-1]"`` → ``("h", "t-1")``; ``"W_hh"`` → ``("W_hh", None)``."""
    if label.endswith("]") and "[" in label:
        base, _, time = label[:-1].partition("[")
        return base, time
    return label, None


def param(name: str) -> MatrixSymbol:
    """A parameter for a cell defined in Python: ``W = param("W_hh")``."""
    return quantity(name)


def prev(name: str) -> MatrixSymbol:
    """The previous value of state ``name``: ``prev("h")`` is ``h_{t-1}``."""
    return quantity(name, "t-1")


def now(name: str) -> MatrixSymbol:
    """The value at step t of an input or of a quantity computed earlier in the same step."""
    return quantity(name, "t")


@dataclass(frozen=True)
class Equation:
    """``name_t = rhs``; ``kind`` is ``gate`` (intermediate), ``state`` or ``output`` (readout)."""

    name: str
    kind: str
    rhs: MatrixExpr

    @property
    def lhs(self) -> MatrixSymbol:
        return now(self.name)


@dataclass(frozen=True)
class Cell:
    """A recurrent cell.

    Attributes:
        name: short name (``lstm``); ``title`` says what it is in words.
        inputs: names of the per-step inputs (``x``).
        equations: the update equations, in evaluation order.
        params: parameter names, in a stable documented order.
        dim_names: the dimension name of each anchored quantity's rows (``{"x": "d_in", "h": "d_h"}``).
        soft_dim_names: names used only if no anchored dimension claims that size.
        equal_dims: pairs of dimension names the user declared equal (``("d_in", "d_h")``).
        options: the options the cell was built with (for headers and reproducibility).
    """

    name: str
    title: str
    inputs: tuple[str, ...]
    equations: tuple[Equation, ...]
    params: tuple[str, ...]
    dim_names: dict = field(default_factory=dict)
    soft_dim_names: dict = field(default_factory=dict)
    equal_dims: tuple = ()
    options: dict = field(default_factory=dict)

    def __post_init__(self):
        seen = set(self.inputs) | set(self.params)
        for n in (*self.inputs, *self.params, *(e.name for e in self.equations)):
            if not IDENT.match(n) or n.startswith("__"):
                raise ValueError(f"invalid quantity name {n!r}")
        for eq in self.equations:
            if eq.kind not in KINDS:
                raise ValueError(f"equation {eq.name}: kind must be one of {KINDS}, got {eq.kind!r}")
            if eq.name in seen:
                raise ValueError(f"{eq.name!r} is assigned twice or is also an input/parameter")
            seen.add(eq.name)
        known = ({quantity(n, "t") for n in self.inputs} | {quantity(p) for p in self.params}
                 | {prev(s) for s in self.states})
        defined: set = set()
        for eq in self.equations:
            for s in eq.rhs.atoms(MatrixSymbol):
                if s not in known and s not in defined:
                    raise ValueError(
                        f"equation {eq.name}: {s.name} is not an input, a parameter, a previous "
                        f"state or a quantity computed earlier in the step")
            defined.add(eq.lhs)
        if not self.states:
            raise ValueError(f"cell {self.name!r} has no state: nothing is carried from t-1 to t")

    # --- views -----------------------------------------------------------------------------
    @property
    def states(self) -> tuple[str, ...]:
        return tuple(e.name for e in self.equations if e.kind == "state")

    @property
    def gates(self) -> tuple[str, ...]:
        return tuple(e.name for e in self.equations if e.kind == "gate")

    @property
    def readouts(self) -> tuple[str, ...]:
        return tuple(e.name for e in self.equations if e.kind == "output")

    @property
    def output(self) -> str:
        """The quantity a sequence run returns per step: the first readout, else the state ``h``,
        else the first state."""
        if self.readouts:
            return self.readouts[0]
        return "h" if "h" in self.states else self.states[0]

    def equation(self, name: str) -> Equation:
        for e in self.equations:
            if e.name == name:
                return e
        raise KeyError(name)

    # --- display ---------------------------------------------------------------------------
    def latex(self) -> str:
        from rnnsym.printing.latex import cell_latex
        return cell_latex(self)

    def text(self) -> str:
        from rnnsym.printing.text import cell_text
        return cell_text(self)

    def _repr_latex_(self) -> str:
        return "$$" + self.latex() + "$$"

    def __str__(self) -> str:
        return self.text()

    def shapes(self):
        """The derived :class:`rnnsym.shapes.ShapeTable` of this cell."""
        from rnnsym.shapes import derive
        return derive(self)


def make_cell(name: str, title: str, equations: Iterable[tuple[str, str, MatrixExpr]], *,
              inputs=("x",), params: Iterable[str] | None = None, dim_names=None,
              soft_dim_names=None, equal_dims=(), options=None) -> Cell:
    """Build a :class:`Cell` from ``(name, kind, rhs)`` triples; parameters default to every
    symbol without a time index, in order of first appearance."""
    eqs = tuple(Equation(n, k, rhs) for n, k, rhs in equations)
    if params is None:
        params = []
        for eq in eqs:
            for s in _ordered_symbols(eq.rhs):
                base, time = split_name(s.name)
                if time is None and base not in params:
                    params.append(base)
    return Cell(name=name, title=title, inputs=tuple(inputs), equations=eqs,
                params=tuple(params), dim_names=dict(dim_names or {}),
                soft_dim_names=dict(soft_dim_names or {}), equal_dims=tuple(equal_dims),
                options=dict(options or {}))


def _ordered_symbols(expr) -> list[MatrixSymbol]:
    """Matrix symbols of ``expr`` in the order they are written (preorder)."""
    out = []
    for node in sp.preorder_traversal(expr):
        if isinstance(node, MatrixSymbol) and node not in out:
            out.append(node)
    return out
