"""rnnsym: symbolic RNN, LSTM and GRU cells, their shapes, unrolled equations, generated NumPy
code, and a property-based conformance checker for other implementations.

Imports go one way, from the bottom layer up (README "Layout"; ``[tool.importlinter]`` in
pyproject.toml, checked by ``lint-imports``): cells (:mod:`rnnsym.cells`) → printing
(:mod:`rnnsym.printing`) → shapes (:mod:`rnnsym.shapes`) → unrolled formulas, Jacobians, code
generation (:mod:`rnnsym.unroll`, :mod:`rnnsym.jacobian`, :mod:`rnnsym.codegen`) → hand-written
references (:mod:`rnnsym.reference`, sharing nothing with the rest) → ONNX semantics
(:mod:`rnnsym.onnx`) → target harnesses (:mod:`rnnsym.frameworks`) → the checker
(:mod:`rnnsym.conformance`) → helpers for users' tests (:mod:`rnnsym.testing`) → the command line.
This file re-exports the symbolic core's entry points and :func:`check`, which imports the checker\n(hypothesis) when first called.
"""
__version__ = "0.1.0"   # the one place (pyproject.toml reads it: [tool.setuptools.dynamic])

from typing import TYPE_CHECKING

from rnnsym.cells import Cell, builtin, elman, gru, lstm, parse_cell
from rnnsym.check_options import CheckOptions, check_doc, keyword_signature
from rnnsym.codegen.compile import compile_cell as compile  # noqa: A001 - the public name
from rnnsym.errors import RnnsymError, Unsupported, UsageError
from rnnsym.shapes import derive as derive_shapes

if TYPE_CHECKING:                # rnnsym.check's return type; the checker loads on first call
    from rnnsym.conformance.report import Report

#: ``rnnsym.shapes(cell)``, the older name of :func:`derive_shapes` (deprecated, kept working).
#: It shadows the module: ``rnnsym.shapes`` and ``import rnnsym.shapes as m`` give this
#: function; the module's names come with ``from rnnsym.shapes import ShapeTable, ShapeError``.
shapes = derive_shapes

__all__ = ["Cell", "CheckOptions", "RnnsymError", "Unsupported", "UsageError", "builtin", "check", "compile",
           "derive_shapes", "elman", "gru", "lstm", "parse_cell", "shapes"]


def check(target, cell=None, *, options=None, **kwargs) -> "Report":
    # the checker (rnnsym.conformance) needs hypothesis (the ``check`` extra), which the symbolic
    # core and the generated code do not: it is imported on the first call
    from rnnsym.conformance.checker import check as conformance_check
    return conformance_check(target, cell, options=options, **kwargs)


check.__signature__ = keyword_signature(check)
check.__doc__ = check_doc()
