"""The backward step as LaTeX and text, in the conventional BPTT form.

    δh_t = ∂L/∂h_t + δ_{t+1} h_t                     (upstream, and what step t+1 sends back)
    δa_{h,t} = δh_t ⊙ (1 − h_t ⊙ h_t)                (the pre-activation's adjoint)
    δ_t h_{t−1} = W_hhᵀ δa_{h,t}                     (sent back to step t−1)
    ∂L/∂x_t = W_xhᵀ δa_{h,t}
    ∂L/∂W_hh = Σ_t δa_{h,t} h_{t−1}ᵀ

Printer subclasses add the backward's nodes (adjoints, transposes, activation derivatives) to
the cell printers; the layout of sums and products is theirs.
"""
from __future__ import annotations

from sympy import MatMul, MatrixSymbol, Transpose

from rnnsym.cells.cell import split_name
from rnnsym.cells.nodes import madd
from rnnsym.gradients.nodes import AdjointSymbol
from rnnsym.gradients.vjp import StepVJP, step_vjp
from rnnsym.printing.latex import RnnLatexPrinter, aligned, symbol_latex
from rnnsym.printing.text import TextPrinter


def _params(printer, expr):
    return [printer._print(p) for p in expr.params]


class BackwardLatexPrinter(RnnLatexPrinter):
    """Adds ``\\delta h_t``, ``\\frac{\\partial L}{\\partial h_t}``, ``W^\\top`` and ``f'``."""

    def _print_AdjointSymbol(self, expr):
        """``d:`` δq, ``dL:`` ∂L/∂q, ``dn:`` δ_{t+1} q (the cell printer would print the label)."""
        q = symbol_latex(expr.target)
        if expr.kind == "dL":
            return rf"\frac{{\partial L}}{{\partial {q}}}"
        if expr.kind == "dn":
            base, time = split_name(expr.target)
            sender = {"t": "t+1", "t-1": "t"}.get(time, f"{time}+1")
            return rf"\delta_{{{sender}}} {symbol_latex(f'{base}[{time}]')}"
        return rf"\delta {q}"

    def _print_Transpose(self, expr):
        """``W^\\top`` (SymPy prints ``W^{T}``)."""
        return f"{self._child(expr.arg, 5)}^\\top"

    def _print_ActGrad(self, expr):
        """The derivative's own LaTeX form, in terms of the activation's output."""
        a, b = (_params(self, expr) + ["", ""])[:2]
        return expr.form.latex.format(y=self._child(expr.y, 5), a=a, b=b)


    def _print_FeatureMean(self, expr):
        return rf"\overline{{{self._print(expr.arg)}}}"

    def _print_InvStd(self, expr):
        return rf"\frac{{1}}{{\sqrt{{\operatorname{{var}}\left({self._print(expr.arg)}\right) + \epsilon}}}}"

    def _print_Unchunk(self, expr):
        return rf"\operatorname{{unchunk}}_{{{expr.index},{expr.count}}}\left({self._print(expr.arg)}\right)"


class BackwardTextPrinter(TextPrinter):
    """Adds ``dh[t]``, ``dL/dh[t]``, ``d_next(h[t])``, ``W.T`` and ``f'`` in text."""

    def _print_AdjointSymbol(self, expr):
        """``d:`` dq, ``dL:`` dL/dq, ``dn:`` d_next(q): what the next step sends back to q."""
        if expr.kind == "dL":
            return f"dL/d{expr.target}"
        if expr.kind == "dn":
            return f"d_next({expr.target})"
        return f"d{expr.target}"

    def _print_Transpose(self, expr):
        """``W.T`` (SymPy prints ``W.T`` for symbols but ``(…).T`` without our parentheses)."""
        return f"{self._child(expr.arg, 5)}.T"

    def _print_ActGrad(self, expr):
        a, b = (_params(self, expr) + ["", ""])[:2]
        return expr.form.text.format(y=self._child(expr.y, 5), a=a, b=b)


    def _print_FeatureMean(self, expr):
        return f"mean({self._print(expr.arg)})"

    def _print_InvStd(self, expr):
        return f"1/std({self._print(expr.arg)}, {self._print(expr.eps)})"

    def _print_Unchunk(self, expr):
        return f"unchunk({self._print(expr.arg)}, {expr.index}, {expr.count})"


def _lines(vjp: StepVJP, printer, fmt):
    p = printer._print
    out = [fmt["assign"](p(a.target), p(a.expr)) for a in vjp.steps]
    for s in vjp.states:
        if s in vjp.state_terms:
            sym = MatrixSymbol(f"{s}[t-1]", *vjp.state_terms[s][0].shape)
            out.append(fmt["assign"](p(AdjointSymbol.of(sym, "dn")), p(madd(*vjp.state_terms[s]))))
    for x, terms in vjp.input_terms.items():
        out.append(fmt["assign"](fmt["grad"](fmt["sym"](f"{x}[t]")), p(madd(*terms))))
    for name in vjp.params_order:
        terms = vjp.param_terms.get(name)
        if not terms:
            out.append(fmt["assign"](fmt["grad"](fmt["sym"](name)), "0"))
            continue
        exprs = [MatMul(t.left, Transpose(t.right), evaluate=False) if t.kind == "outer" else t.left
                 for t in terms]
        body = p(madd(*exprs))
        out.append(fmt["assign"](fmt["grad"](fmt["sym"](name)), fmt["sum"](body, len(exprs) > 1)))
    return out


def backward_latex(cell) -> str:
    """The backward step of ``cell`` as an ``aligned`` LaTeX block."""
    vjp = _vjp(cell)
    fmt = {"assign": lambda a, b: f"{a} &= {b}",
           "grad": lambda q: rf"\frac{{\partial L}}{{\partial {q}}}",
           "sym": symbol_latex,
           "sum": lambda body, many: r"\sum_{t} " + (rf"\left({body}\right)" if many else body)}
    return aligned(_lines(vjp, BackwardLatexPrinter(), fmt))


def backward_text(cell) -> str:
    """The backward step of ``cell``, one line per quantity."""
    vjp = _vjp(cell)
    fmt = {"assign": lambda a, b: f"{a} = {b}",
           "grad": lambda q: f"dL/d{q}",
           "sym": lambda s: s,
           "sum": lambda body, many: f"sum_t({body})"}
    return "\n".join(_lines(vjp, BackwardTextPrinter(), fmt))


def _vjp(cell) -> StepVJP:
    vjp = step_vjp(cell)
    vjp.params_order = cell.params
    return vjp
