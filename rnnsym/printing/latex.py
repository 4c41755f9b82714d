"""LaTeX in the conventional form: ``h_{t} = \\tanh\\left(W_{xh} x_{t} + W_{hh} h_{t-1} + b_{h}\\right)``."""
from __future__ import annotations

from sympy.printing.latex import LatexPrinter, greek_letters_set

from rnnsym.cells.cell import split_name
from rnnsym.cells.nodes import ACTIVATIONS
from rnnsym.printing.common import OrderedMatrixPrinterMixin


def symbol_latex(label: str) -> str:
    """``W_hh`` → ``W_{hh}``, ``h[t-1]`` → ``h_{t-1}``, ``h_a[t]`` → ``h_{a,t}``."""
    base, time = split_name(label)
    head, _, sub = base.partition("_")
    if head in greek_letters_set or head in ("Delta", "Gamma", "Lambda", "Sigma"):   # beta → \beta
        head = "\\" + head
    subs = [s for s in (sub, time) if s]
    return head + ("_{" + ",".join(subs) + "}" if subs else "")


class RnnLatexPrinter(OrderedMatrixPrinterMixin, LatexPrinter):
    """LatexPrinter with the conventions of RNN papers."""

    matmul_sep = " "
    scalar_sep = " "
    hadamard_sep = r" \odot "
    quotient_sep = r" \oslash "      # elementwise division, the companion of \odot
    #: LaTeX heads of the nodes that are not activations
    heads = {"layernorm": r"\operatorname{LN}", "chunk": r"\operatorname{chunk}",
             "l2norm": r"\operatorname{L2norm}", "max": r"\max"}

    def paren(self, s):
        return rf"\left({s}\right)"

    def _print_MatrixSymbol(self, expr):
        """Time indices become subscripts (``h[t-1]`` → ``h_{t-1}``); SymPy would print ``h[t-1]``."""
        return symbol_latex(expr.name)

    def _print_Outer(self, expr):
        """``k_t v_t^T``, as the papers write ``k_t ⊗ v_t`` (``^T`` as SymPy prints transposes)."""
        return f"{self._child(expr.left, 4)} {self._child(expr.right, 5)}^{{T}}"

    def _print_Maximum(self, expr):
        """``\\max\\left(a, b\\right)`` (both arguments inside, not as a subscript)."""
        return rf"\max\left({self._print(expr.args[0])}, {self._print(expr.args[1])}\right)"

    def function(self, name, arg, params):
        """``\\tanh``, ``\\sigma``; parametrised activations show their parameters as subscripts."""
        if name == "identity":
            return arg
        head = ACTIVATIONS[name].latex if name in ACTIVATIONS else \
            self.heads.get(name, rf"\operatorname{{{name}}}")
        if params:
            head += "_{" + ", ".join(params) + "}"
        return rf"{head}\left({arg}\right)"


def latex(expr) -> str:
    """LaTeX of a matrix expression, terms in the order written."""
    return RnnLatexPrinter().doprint(expr)


def equation_latex(name: str, rhs, time: str = "t") -> str:
    return f"{symbol_latex(f'{name}[{time}]')} &= {latex(rhs)}"


def aligned(lines) -> str:
    return "\\begin{aligned}\n" + " \\\\\n".join(lines) + "\n\\end{aligned}"


def cell_latex(cell) -> str:
    """The cell's equations as an ``aligned`` block."""
    return aligned(equation_latex(e.name, e.rhs) for e in cell.equations)
