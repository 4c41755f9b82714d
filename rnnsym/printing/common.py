"""What the LaTeX and text printers share: how sums, products and activations are laid out.

SymPy sorts the terms of a ``MatAdd`` when printing and has no printer for rnnsym's nodes; this
mixin prints terms in the order written and delegates only the tokens (``@`` or juxtaposition,
``*`` or ``\\odot``) to the concrete printer.
"""
from __future__ import annotations

from sympy import MatAdd, MatMul, MatrixExpr, OneMatrix
from sympy.matrices.expressions import HadamardProduct

from rnnsym.cells.nodes import L2NORM_EPS, LAYERNORM_EPS, HadamardQuotient, RowScale

# binding strength, loosest first: a child looser than its parent gets parentheses
# (a Hadamard product inside a matrix product, or the reverse, is always parenthesised: in the
# definition language `W @ r * h` would read as `(W @ r) * h`)
_SUM, _NEG, _HAD, _MUL, _ATOM = 1, 2, 3, 4, 5


def _strength(expr) -> int:
    if isinstance(expr, MatAdd):
        return _SUM
    if isinstance(expr, MatMul) and expr.args and expr.args[0].is_number and expr.args[0].is_negative:
        return _NEG
    if isinstance(expr, (HadamardProduct, HadamardQuotient, RowScale)):
        return _HAD
    if isinstance(expr, MatMul):
        return _MUL
    return _ATOM


class OrderedMatrixPrinterMixin:
    """Overrides for matrix expressions; the subclass defines the tokens below."""

    matmul_sep = " @ "
    hadamard_sep = " * "
    quotient_sep = " / "
    one = "1"

    def paren(self, s: str) -> str:          # pragma: no cover - overridden
        return f"({s})"

    def _child(self, expr, needs):
        """Print ``expr`` as an operand that must bind at least as tightly as ``needs``."""
        s = self._print(expr)
        return self.paren(s) if _strength(expr) < needs else s

    def _print_MatAdd(self, expr):
        """Keep the terms in the order written (SymPy sorts them)."""
        out = []
        for i, term in enumerate(expr.args):
            neg = isinstance(term, MatMul) and term.args[0].is_number and term.args[0].is_negative
            if neg:
                coeff = -term.args[0]
                rest = term.args[1:]
                body = MatMul(*rest, evaluate=False) if len(rest) > 1 else rest[0]
                s = self._child(body, _HAD) if coeff == 1 else \
                    self._print(MatMul(coeff, *rest, evaluate=False))
                out.append(("- " if i == 0 else " - ") + s)
            else:
                out.append(("" if i == 0 else " + ") + self._child(term, _SUM + 1))
        return "".join(out)

    def _print_MatMul(self, expr):
        """Juxtapose factors in order; a leading -1 prints as a minus sign; ``c 𝟙`` (a number
        added elementwise, mLSTM's eps) prints as ``c``."""
        args = list(expr.args)
        if len(args) == 2 and args[0].is_number and isinstance(args[1], OneMatrix):
            return self._print(args[0])
        sign = ""
        if args[0].is_number and args[0].is_negative:
            sign = "-"
            args[0] = -args[0]
            if args[0] == 1:
                args = args[1:]
        parts = []
        for a in args:
            if a.is_number:
                parts.append(self._print(a))
            else:
                parts.append(self._child(a, _MUL))
        return sign + self._join_factors(args, parts)

    def _join_factors(self, args, parts):
        out = parts[0]
        for prev, a, p in zip(args, args[1:], parts[1:]):
            # a scalar factor: a number or a formula of sizes (1/sqrt(d_k)); a bare Symbol is a
            # weight (the code generator's comments write W_xh @ x with sp.Symbol("W_xh"))
            scalar = prev.is_number or not (prev.is_Symbol or isinstance(prev, MatrixExpr))
            out += (self.scalar_sep if scalar else self.matmul_sep) + p
        return out

    def _print_HadamardProduct(self, expr):
        """Elementwise product with its conventional symbol (SymPy's LaTeX uses ``\\circ``)."""
        return self.hadamard_sep.join(
            self._child(a, _ATOM if isinstance(a, MatMul) and not a.args[0].is_number else _HAD + 1)
            for a in expr.args)

    def _print_OneMatrix(self, expr):
        """The all-ones vector in ``1 - z`` reads as the scalar 1."""
        return self.one

    def _print_Activation(self, expr):
        return self.function(expr.name, self._print(expr.arg), [self._print(p) for p in expr.params])

    def _print_Diag(self, expr):
        return self.function("diag", self._print(expr.arg), [])

    def _print_HadamardQuotient(self, expr):
        """``a / b`` elementwise; both sides parenthesised unless atoms (``f / (f + i)``)."""
        return self._child(expr.numerator, _ATOM) + self.quotient_sep + self._child(expr.denominator, _ATOM)

    def _print_LayerNorm(self, expr):
        """``layernorm(u, g, b)``; eps shown only when it is not torch's default 1e-5."""
        params = [self._print(p) for p in (expr.gain, expr.bias) if p is not None]
        if expr.eps != LAYERNORM_EPS:
            params.append(self._print(expr.eps))
        return self.function("layernorm", self._print(expr.arg), params)

    def _print_Chunk(self, expr):
        return self.function("chunk", self._print(expr.arg), [str(expr.index), str(expr.count)])

    def _print_Outer(self, expr):
        return self.function("outer", self._print(expr.left), [self._print(expr.right)])

    def _print_RowScale(self, expr):
        """``a * M``: printed as the elementwise product it broadcasts (``exp(g) * S``)."""
        return self._child(expr.scale, _HAD + 1) + self.hadamard_sep + self._child(expr.matrix, _HAD + 1)

    def _print_L2Norm(self, expr):
        """``l2norm(u)``; eps shown only when it is not fla's default 1e-6."""
        params = [] if expr.eps == L2NORM_EPS else [self._print(expr.eps)]
        return self.function("l2norm", self._print(expr.arg), params)

    def _print_Maximum(self, expr):
        return self.function("max", self._print(expr.args[0]), [self._print(expr.args[1])])
