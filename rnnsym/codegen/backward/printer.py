"""The backward's printer and the small code-string helpers its phases share."""
from __future__ import annotations

import functools
import re

import sympy as sp
from sympy import HadamardProduct, MatrixSymbol, Transpose

from rnnsym.cells.nodes import hadamard
from rnnsym.printing.numpy import RnnNumPyPrinter


class BackwardNumPyPrinter(RnnNumPyPrinter):
    """Adds the backward's nodes to the NumPy printer."""

    def _print_T(self, a):
        """``Wᵀ δ`` in batched rows is ``δ @ W``: a transposed factor prints untransposed."""
        if isinstance(a, Transpose):
            return self._child(a.arg, 5)
        return super()._print_T(a)

    def _print_ActGrad(self, expr):
        """The derivative's NumPy form (nodes.DERIVATIVES), in terms of the activation's output."""
        params = [self._print(sp.Float(p)) if not p.is_Integer else self._print(p) for p in expr.params]
        a, b = (params + ["", ""])[:2]
        y = self._print(expr.y)
        if not isinstance(expr.y, MatrixSymbol) and not y.endswith(")"):
            y = f"({y})"
        return expr.form.numpy.format(y=y, a=a, b=b)


    def _print_FeatureMean(self, expr):
        """Mean over the feature (last) axis, kept for broadcasting: a helper, so that the
        checker's tolerance can model its rounding (rnnsym.conformance.tolerance.noisy_normalization)."""
        return f"_feature_mean({self._print(expr.arg)})"

    def _print_InvStd(self, expr):
        """1 / sqrt(var + eps) over the feature (last) axis, kept for broadcasting."""
        return (f"(1 / np.sqrt({self._child(expr.arg, 5)}.var(axis=-1, keepdims=True) + "
                f"{self._print(sp.Float(expr.eps))}))")

    def _print_Unchunk(self, expr):
        """Block k of n of a zero vector: the adjoint of ``chunk``."""
        d = self._print(expr.arg)
        zeros = [f"np.zeros_like({d})"]
        return ("np.concatenate([" + ", ".join(zeros * expr.index + [d]
                                              + zeros * (expr.count - expr.index - 1))
                + "], axis=-1)")


def bcode(expr, names) -> str:
    return BackwardNumPyPrinter(names).doprint(expr)


def alloc_grad(pname):
    return f"d_{pname}"


def into(expr, target, names) -> str:
    """``target = expr`` for a slice of a buffer, the last product or sum written straight into
    it (``np.multiply(a, b, out=…)``: no temporary to copy)."""
    if isinstance(expr, HadamardProduct):
        first = expr.args[0] if len(expr.args) == 2 else hadamard(*expr.args[:-1])
        return f"np.multiply({bcode(first, names)}, {bcode(expr.args[-1], names)}, out={target})"
    return f"{target} = {bcode(expr, names)}"


def dim_code(n, table) -> str:
    """A placeholder size (``rows(h)``) as the dimension the shape table derived (``d_h``)."""
    subs = {}
    for s in n.free_symbols:
        m = re.match(r"^(rows|cols)\((.+)\)$", s.name)
        if m:
            shape = table.shape(m.group(2))
            subs[s] = shape[0] if m.group(1) == "rows" else (shape[1] if len(shape) > 1 else 1)
    return str(n.xreplace(subs))


def rows(code):
    return code if code.isidentifier() else f"({code})"


@functools.lru_cache(maxsize=4096)
def _word(name):
    return re.compile(rf"(?<![\w.\"]){re.escape(name)}(?![\w\"])")


def word_used(name, lines) -> bool:
    """Whether ``name`` is read or written in ``lines`` (code only, not their ``  # `` comments)."""
    pat = _word(name)
    return any(pat.search(line.split("  # ")[0]) for line in lines)


def indent(lines):
    return "\n".join(("    " + line) if line else "" for line in lines)
