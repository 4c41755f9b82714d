"""Plain-text printing in the definition language: ``h[t] = tanh(W_xh @ x[t] + W_hh @ h[t-1] + b_h)``."""
from __future__ import annotations

from sympy.printing.str import StrPrinter

from rnnsym.printing.common import OrderedMatrixPrinterMixin


class TextPrinter(OrderedMatrixPrinterMixin, StrPrinter):
    """StrPrinter with ``@`` for matrix products, ``*`` for elementwise ones, terms in order."""

    matmul_sep = " @ "
    scalar_sep = "*"
    hadamard_sep = " * "

    def paren(self, s):
        return f"({s})"

    def function(self, name, arg, params):
        """Activations with parameters print them after the argument: ``clip(u, 3)``."""
        return f"{name}({', '.join([arg, *params])})"

    def _print_Transpose(self, expr):
        """``transpose(S)``, the definition language's spelling (StrPrinter writes ``S.T``)."""
        return f"transpose({self._print(expr.arg)})"


def text(expr) -> str:
    """Plain text of a matrix expression."""
    return TextPrinter().doprint(expr)


def equation_text(name: str, rhs, time: str = "t") -> str:
    return f"{name}[{time}] = {text(rhs)}"


def cell_text(cell) -> str:
    """The cell's equations, one per line."""
    return "\n".join(equation_text(e.name, e.rhs) for e in cell.equations)
