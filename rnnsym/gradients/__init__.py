"""Gradients: the symbolic backward step of any cell (BPTT's vector-Jacobian products).

``step_vjp(cell)`` walks a cell's equations in reverse by rules over rnnsym's nodes
(:mod:`rnnsym.gradients.vjp`) and gives what flows into each previous state, input and parameter;
``backward_latex``/``backward_text`` print it in the conventional form. The generated NumPy
backward (``rnnsym.compile(cell).backward``, ``generated/``) is built from the same walk by
:mod:`rnnsym.codegen`.

May import :mod:`rnnsym.cells`, :mod:`rnnsym.printing` and :mod:`rnnsym.shapes` (it needs only
the first two); :mod:`rnnsym.codegen` imports it for the generated backward.
"""
from rnnsym.gradients.display import backward_latex, backward_text
from rnnsym.gradients.nodes import ActGrad, AdjointSymbol, derivative
from rnnsym.gradients.vjp import NoBackwardRule, ParamTerm, StepVJP, step_vjp

__all__ = ["ActGrad", "AdjointSymbol", "NoBackwardRule", "ParamTerm", "StepVJP", "backward_latex",
           "backward_text", "derivative", "step_vjp"]
