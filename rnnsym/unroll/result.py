"""What :func:`rnnsym.unroll.unroll` returns (:class:`Unrolled`), how it prints, and its errors."""
from __future__ import annotations

from typing import Callable, Iterator

from sympy import Expr

from rnnsym.cells.cell import Cell, split_name
from rnnsym.errors import RnnsymError
from rnnsym.printing.latex import RnnLatexPrinter, aligned, symbol_latex
from rnnsym.printing.text import TextPrinter
from rnnsym.unroll.template import instantiate, tree_size


class UnrollError(RnnsymError, ValueError):
    """An unroll that cannot be done as asked (bad form, step count or sizes)."""


class UnrollTooLarge(UnrollError):
    """A nested unroll whose expression tree would exceed the size limit."""


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
        if not expr.name.endswith("]"):     # a size in a coefficient (1/sqrt(d_k)), not an entry
            return super()._print_Symbol(expr, style)
        return entry_latex(expr.name)

    def _print_tanh(self, expr, exp=None):
        return rf"\tanh\left({self._print(expr.args[0])}\right)"


class UnrollTextPrinter(_Composing, TextPrinter):
    """rnnsym's text printer for unrolls."""


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
