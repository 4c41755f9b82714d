"""rnnsym: symbolic RNN, LSTM and GRU cells, their shapes, unrolled equations, generated NumPy
code, and a property-based conformance checker for other implementations.

Data flows one way: cells (:mod:`rnnsym.cells`) → shapes (:mod:`rnnsym.shapes`), unrolled
formulas (:mod:`rnnsym.unroll`, :mod:`rnnsym.jacobian`), printing (:mod:`rnnsym.printing`) →
code generation (:mod:`rnnsym.codegen`) → checking (:mod:`rnnsym.check`) through the framework
conventions (:mod:`rnnsym.frameworks`).
"""
from rnnsym.cells import Cell, builtin, elman, gru, lstm, parse_cell
from rnnsym.codegen.compile import compile_cell as compile  # noqa: A001 - the public name
from rnnsym.shapes import derive as shapes

__all__ = ["Cell", "builtin", "check", "compile", "elman", "gru", "lstm", "parse_cell", "shapes"]


def __getattr__(name):
    """``rnnsym.check`` is imported on first use: it needs hypothesis (the ``check`` extra),
    which the symbolic core and the generated code do not."""
    if name == "check":             # the package, callable as check(target, cell, ...)
        import importlib
        return importlib.import_module("rnnsym.check")
    raise AttributeError(f"module 'rnnsym' has no attribute {name!r}")
