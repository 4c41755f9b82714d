"""rnnsym's printers: SymPy printer subclasses with small overrides, each with its reason.

* :mod:`rnnsym.printing.latex`: conventional LaTeX (``\\sigma``, ``\\odot``, ``h_{t-1}``, terms in
  the order written);
* :mod:`rnnsym.printing.text`: plain text in the definition language (``@``, ``*``);
* :mod:`rnnsym.printing.numpy`: NumPy code for the code generator.

May import :mod:`rnnsym.cells` (quantity names, activations) and SymPy's printers, nothing
above: shapes, unroll, codegen and the rest import the printers.
"""
from rnnsym.printing.latex import latex
from rnnsym.printing.text import text

__all__ = ["latex", "text"]
