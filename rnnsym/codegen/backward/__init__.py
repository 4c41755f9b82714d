"""The generated backward pass (BPTT): a forward that caches every step, and ``backward``.

From the step plan without in-place fusion (``plan(cell, fuse=False)``: every product keeps its
value) and the symbolic backward walk of :mod:`rnnsym.gradients` over the planned equations:

* ``_forward_cached`` is the forward pass with every quantity of every step stored, (T, B, d)
  arrays, states as (T + 1, B, d) with the initial state first; the products' GEMM buffers
  hold all T steps too.
* ``backward`` walks t = T-1 … 0. Every product ``W u`` has an adjoint buffer over all T steps
  (per GEMM group, the products side by side, as in the forward); per step it writes the
  adjoints, and runs one GEMM per in-loop group, ``δu = δ[W_1 u, W_2 u, …] [W_1; W_2; …]`` (the
  recurrent GEMM, batched over the batch). After the loop, each group's weight gradient is one
  GEMM over all T steps, ``Σ_t δ(W u)_t u_tᵀ`` (the mirror of the forward's hoisted input GEMM),
  and a hoisted group's input gradient another. A pre-activation's adjoint that is exactly a
  product's adjoint (``W_xh x + W_hh h + b``) is computed straight into that buffer, and a
  hoisted group whose every product shares an in-loop group's adjoint reuses its buffer.
  Parameter sums (biases, peepholes) whose terms are all kept over T are summed after the loop.

The package, one phase per module: :mod:`~.step` (the unfused plan walked back, what the cached
forward stores), :mod:`~.cached` (``_forward_cached``), :mod:`~.adjoints` (the adjoints' names
and shared buffers), :mod:`~.loop` (the time loop), :mod:`~.after` (the GEMMs after it),
:mod:`~.assemble` (``backward``'s body); :mod:`~.printer` holds the printer and code helpers.
Here :func:`render_backward` runs them in order (the names they allocate depend on it).
"""
from __future__ import annotations

from rnnsym.codegen.backward.adjoints import adjoints
from rnnsym.codegen.backward.after import after_loop
from rnnsym.codegen.backward.assemble import assemble
from rnnsym.codegen.backward.cached import IN_PLACE, cached_forward
from rnnsym.codegen.backward.loop import backward_loop
from rnnsym.codegen.backward.printer import BackwardNumPyPrinter, alloc_grad, bcode, indent
from rnnsym.codegen.backward.step import BACKWARD_RESERVED, walk

__all__ = ["BACKWARD_RESERVED", "BackwardNumPyPrinter", "IN_PLACE", "alloc_grad", "bcode",
           "render_backward"]


def render_backward(cell, table, names, forward_code, dims_line) -> dict:
    """Source pieces for the template: ``cached_body`` and ``backward_body`` (indented lines)."""
    st = walk(cell, table, names, forward_code)
    cached = cached_forward(st, dims_line)
    ad = adjoints(st)
    backward_loop(st, ad)
    after = after_loop(st, ad)
    body = assemble(st, ad, after, dims_line)
    return {"cached_body": indent(cached), "backward_body": indent(body)}
