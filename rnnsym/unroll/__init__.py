"""N steps of a cell written out: nested, as a chain of named steps, or element by element.

Time indices run 1..N; the initial states carry index 0 (``h_{0}``), the inputs ``x_{1}..x_{N}``.

* ``"chain"``: one named quantity per state (and readout) per step, each written in terms of the
  previous step's named states: ``h_{2} = \\tanh(W_{xh} x_{2} + W_{hh} h_{1} + b_{h})``. The gates
  are substituted into the states. Linear in N for every cell.
* ``"nested"``: the final states (and readouts) as closed expressions in ``h_{0}, x_{1..N}``. A cell
  that reads a previous state k > 1 times per step (LSTM, GRU) grows like k^N, so the size is
  computed from the step before anything is built, and above ``limit`` nodes
  :class:`UnrollTooLarge` says to use the chain form. Elman grows linearly.
* ``"elementwise"``: the chain form for concrete sizes, one scalar equation per element per step
  (``h[2][0]``), built from unevaluated scalar SymPy expressions (each activation's
  ``spec.scalar``).

Every step is the same template: the chain and element-wise forms print one step once, with
sentinel time indices, and instantiate the text per step (exact, since the printers keep the
written order and a time index only appears in symbol names). The nested form is printed step by
step, reusing the text of the previous step's states, so no printer recursion goes deeper than one
step.

The package: :mod:`~.template` (one step as a template, substitution, tree sizes),
:mod:`~.result` (:class:`Unrolled`, its printers, the errors), :mod:`~.elementwise` (the
scalar form) and here :func:`unroll` with the chain and nested forms. May import
:mod:`rnnsym.cells`, :mod:`rnnsym.printing` and :mod:`rnnsym.shapes`; :mod:`rnnsym.jacobian`
builds on the template helpers.
"""
from __future__ import annotations

from rnnsym.cells.cell import Cell, quantity
from rnnsym.unroll.elementwise import elementwise
from rnnsym.unroll.result import Unrolled, UnrollError, UnrollTooLarge, _NestedUnrolled, \
    _TemplateUnrolled
from rnnsym.unroll.template import (NOW, PREV, instantiate, retime, step_template, substitute,
                                    tree_size)

__all__ = ["DEFAULT_LIMIT", "FORMS", "NOW", "PREV", "UnrollError", "UnrollTooLarge", "Unrolled",
           "instantiate", "retime", "step_template", "substitute", "tree_size", "unroll"]

FORMS = ("nested", "chain", "elementwise")
DEFAULT_LIMIT = 200_000


def unroll(cell: Cell, steps: int, form: str = "chain", sizes: dict | None = None, *,
           limit: int = DEFAULT_LIMIT) -> Unrolled:
    """Unroll ``cell`` over ``steps`` steps in ``form`` (see the module docstring).

    Args:
        sizes: the free dimensions for ``form="elementwise"``, e.g. ``{"d_h": 2, "d_in": 1}``.
        limit: the largest tree size the nested form may reach (the elementwise form: its
            estimated number of nodes).

    Raises:
        UnrollTooLarge: the nested form would exceed ``limit`` nodes.
        UnrollError: an unknown form, a step count below 1, missing or unknown sizes.
    """
    if form not in FORMS:
        raise UnrollError(f"unknown form {form!r}; choose one of {', '.join(FORMS)}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise UnrollError(f"steps must be a positive integer, got {steps!r}")
    if form == "nested":
        return _nested(cell, steps, limit)
    if form == "chain":
        return _chain(cell, steps)
    return elementwise(cell, steps, sizes, limit)


def _chain(cell: Cell, steps: int) -> Unrolled:
    template = step_template(cell)

    def build_step(k):
        rule = retime(cell, k, k - 1)
        return [(f"{name}[{k}]", substitute(rhs, rule)) for name, rhs in template]

    sentinel = retime(cell, NOW, PREV)
    return _TemplateUnrolled(cell, "chain", steps,
                             [(f"{n}[{NOW}]", substitute(rhs, sentinel)) for n, rhs in template],
                             build_step)


def _nested(cell: Cell, steps: int, limit: int) -> Unrolled:
    outputs = step_template(cell)
    readouts = set(cell.readouts)

    # sizes first, from the template alone: a quantity's size at step k is the template's tree
    # size with each symbol it reads weighted by that symbol's size at k (or k-1)
    sizes = {quantity(s, "t-1"): 1 for s in cell.states}
    size = 0
    for k in range(1, steps + 1):
        weights = dict(sizes)
        for name, rhs in outputs:
            weights[quantity(name, "t")] = tree_size(rhs, weights)
        sizes = {quantity(s, "t-1"): weights[quantity(s, "t")] for s in cell.states}
        last = [weights[quantity(name, "t")] for name, _ in outputs
                if name not in readouts or k == steps]
        size = sum(last)
        if size > limit:
            raise UnrollTooLarge(
                f"the nested form of {cell.name} over {steps} steps exceeds the limit of "
                f"{limit:,} nodes (it reaches {size:,} at step {k}); use --form chain, which "
                f"names one quantity per step and grows linearly")

    history: list = []
    previous = {quantity(s, "t-1"): quantity(s, 0) for s in cell.states}
    final: list = []
    for k in range(1, steps + 1):
        rule = {quantity(i, "t"): quantity(i, k) for i in cell.inputs}
        rule.update(previous)
        for name, rhs in outputs:
            if name in readouts and k < steps:
                continue
            rule[quantity(name, "t")] = substitute(rhs, rule)
        history.append([rule[quantity(s, "t")] for s in cell.states])
        previous = {quantity(s, "t-1"): rule[quantity(s, "t")] for s in cell.states}
        if k == steps:
            final = [(f"{name}[{k}]", rule[quantity(name, "t")]) for name, _ in outputs]
    return _NestedUnrolled(cell, steps, size, history, final)
