"""NumPy code for one step of a cell, batched: every column-vector quantity is a ``(B, d)`` array.

A subclass of SymPy's ``NumPyPrinter`` with small overrides, each with its reason. In the batched
layout a matrix product ``W v`` becomes ``v @ W.T``; the code generator replaces most products
by slices of fused GEMMs before printing, so what reaches ``_print_MatMul`` is what is left.
"""
from __future__ import annotations

import sympy as sp
from sympy import MatrixSymbol
from sympy.printing.numpy import NumPyPrinter
from sympy.printing.precedence import PRECEDENCE, precedence

from rnnsym.cells.cell import split_name
from rnnsym.printing.common import OrderedMatrixPrinterMixin


class RnnNumPyPrinter(OrderedMatrixPrinterMixin, NumPyPrinter):
    """Batched, row-major NumPy for rnnsym's matrix expressions.

    Args:
        names: maps each MatrixSymbol label (``h[t-1]``, ``W_hh``, a fused slice) to its code.
    """

    matmul_sep = " @ "
    scalar_sep = " * "
    hadamard_sep = " * "

    def __init__(self, names: dict, settings=None):
        super().__init__(settings or {"fully_qualified_modules": False})
        self.names = names

    def paren(self, s):
        return f"({s})"

    def _print_MatrixSymbol(self, expr):
        """Quantities are local variables (``h[t-1]`` is ``h`` before its update), not names."""
        try:
            return self.names[expr.name]
        except KeyError:
            base, time = split_name(expr.name)
            raise KeyError(f"no variable for {expr.name}") from None

    def _print_MatMul(self, expr):
        """Batched rows: ``W v`` is ``v @ W.T``; a scalar factor multiplies (NumPyPrinter emits
        ``(W).dot(v).dot(2)``)."""
        args = list(expr.args)
        coeff = sp.S.One
        while args and args[0].is_number:
            coeff *= args.pop(0)
        if len(args) > 1:
            # W1 W2 ... v  →  v @ (W1 W2 ...).T  =  v @ ... @ W2.T @ W1.T
            operand = self._child(args[-1], 4)
            body = operand + "".join(f" @ {self._print_T(a)}" for a in reversed(args[:-1]))
        else:
            body = self._child(args[0], 4)
        if coeff == 1:
            return body
        if coeff == -1:
            return f"-{body}"
        return f"{self._print(coeff)} * {body}"

    def _print_T(self, a):
        if isinstance(a, MatrixSymbol) and a.name + ".T" in self.names:
            return self.names[a.name + ".T"]
        return f"{self._child(a, 5)}.T"

    def _print_OneMatrix(self, expr):
        """``1 - z``: the ones vector broadcasts as the scalar 1."""
        return "1"

    def _print_Activation(self, expr):
        """Each activation's NumPy form lives with its definition (``ACTIVATIONS``); the
        default printer would print ``Lambda(...)`` for SymPy's own elementwise functions."""
        spec = expr.spec
        params = dict(zip(("a", "b"), (self._print(sp.Float(p)) if not p.is_Integer
                                       else self._print(p) for p in expr.params)))
        u = self._print(expr.arg)
        pu = u if precedence(expr.arg) >= PRECEDENCE["Mul"] else f"({u})"
        return spec.numpy.format(u=u, pu=pu, **params)

    def _print_LayerNorm(self, expr):
        """``_layernorm(u, eps)`` (a helper of the generated module: mean and variance over the
        feature axis), then ``* g + b``; parenthesised, so that it reads as one operand."""
        body = f"_layernorm({self._print(expr.arg)}, {self._print(sp.Float(expr.eps))})"
        if expr.gain is not None:
            body = f"{body} * {self._child(expr.gain, 5)}"
        if expr.bias is not None:
            body = f"({body} + {self._child(expr.bias, 2)})"
        return body

    def _print_Chunk(self, expr):
        """Block k of n of the last (feature) axis: ``_chunk(u, k, n)``, a generated helper."""
        return f"_chunk({self._print(expr.arg)}, {expr.index}, {expr.count})"

    def _print_Maximum(self, expr):
        """``max(a, b)`` elementwise (SymPy has no printer for rnnsym's node)."""
        return f"np.maximum({self._print(expr.args[0])}, {self._print(expr.args[1])})"

    def _print_L2Norm(self, expr):
        """``u / sqrt(Σ u² + eps)`` over the feature axis, parenthesised as one operand."""
        u = self._child(expr.arg, 5)
        return f"({u} / np.sqrt(np.sum({u} * {u}, axis=-1, keepdims=True) + {self._print(sp.Float(expr.eps))}))"

    def _print_Pow(self, expr):
        """A constant power (``sqrt(3)``, SRU's highway scale) as its float: NumPyPrinter writes
        ``sqrt(3)`` unqualified, a NameError in the generated module."""
        if expr.is_number:
            return repr(float(expr))
        return super()._print_Pow(expr)

    def _print_Float(self, expr):
        """Shortest round-tripping repr: byte-stable and exact (``3.0`` not ``3.00000000000000``)."""
        return repr(float(expr))

    def _print_Diag(self, expr):  # pragma: no cover - Jacobians are not generated
        raise NotImplementedError("diag() is not generated as code")


def numpy_code(expr, names: dict) -> str:
    """NumPy source of ``expr`` with quantities named by ``names``."""
    return RnnNumPyPrinter(names).doprint(expr)
