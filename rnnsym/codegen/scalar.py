"""Scalar coefficients of matrix-state cells as NumPy source (``0.125``, ``d_k ** -0.5``), shared
by the sequential (:mod:`rnnsym.codegen.matrix`) and chunked (:mod:`rnnsym.codegen.chunked`)
generators."""
from __future__ import annotations

import sympy as sp


class NoMatrixRule(NotImplementedError):
    """An operation the matrix-state generator cannot write (yet); says which."""


def _coef(c) -> str:
    """A scalar coefficient as NumPy source: ``0.125``, ``d_k ** -0.5``. Python numbers only
    (``1 / np.sqrt(d_k)`` is a float64 scalar, which would turn float32 arrays into float64)."""
    c = sp.sympify(c)
    if c.is_number:
        return repr(int(c)) if c.is_Integer else repr(float(c))
    base, exp = c.as_base_exp()
    if exp.is_Rational and base.is_Symbol:
        return f"{base} ** {float(exp)!r}"
    num, den = sp.fraction(c)
    if num.is_number and den.is_Symbol:
        return f"{_coef(num)} / {den}"
    raise NoMatrixRule(f"cannot print the coefficient {c}")
