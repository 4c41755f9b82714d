"""Scalar coefficients of matrix-state code (``1/sqrt(d_k)``, ``eps``) as NumPy source, shared
by the matrix-state generator (matrix.py) and its chunked form (chunked.py)."""
from __future__ import annotations

import sympy as sp


def coef_source(c) -> str:
    """A scalar coefficient as source: ``0.125``, ``d_k ** -0.5``. Python numbers only
    (``1 / np.sqrt(d_k)`` is a float64 scalar, which would turn float32 arrays into float64)."""
    c = sp.sympify(c)
    if c.is_number:
        return repr(int(c)) if c.is_Integer else repr(float(c))
    base, exp = c.as_base_exp()
    if exp.is_Rational and base.is_Symbol:
        return f"{base} ** {float(exp)!r}"
    num, den = sp.fraction(c)
    if num.is_number and den.is_Symbol:
        return f"{coef_source(num)} / {den}"
    raise ValueError(f"cannot print the coefficient {c} as NumPy source")
