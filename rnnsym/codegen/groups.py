"""Code of the GEMM groups of a plan, shared by the forward (:mod:`rnnsym.codegen.generator`)
and the cached forward of the backward (:mod:`rnnsym.codegen.backward.cached`): a group's set-up
(:func:`group_lines`), the lines after its in-loop GEMM (:func:`fused_lines`), the names of the
views that hold a gate computed in place (:func:`gate_views`), and the activations NumPy
computes into a given array (:data:`WRITE_INTO`)."""
from __future__ import annotations

import sympy as sp
from sympy import MatrixSymbol

from rnnsym.cells.cell import split_name
from rnnsym.cells.nodes import mmul
from rnnsym.codegen.plan import INPLACE
from rnnsym.printing.numpy import numpy_code
from rnnsym.printing.text import equation_text, text

#: activations NumPy can compute into a given array
WRITE_INTO = {"tanh": "np.tanh({u}, out={o})", "relu": "np.maximum({u}, 0, out={o})"}


def shape_tuple(table, name) -> tuple:
    """The shape of quantity or parameter ``name`` as strings: ``("d_h", "d_in")``."""
    return tuple(str(s) for s in table.shape(name))


def group_lines(g, table, code, whole, train: bool = False, seq: dict | None = None,
                views: dict | None = None, after_loop: bool = False) -> list[str]:
    """Set-up of one GEMM group: its concatenated weights, the hoisted GEMM over all T steps or
    the in-loop buffer, and the named views of its products. ``train``: the in-loop buffer holds
    every step, (T, B, ·), so that the backward reads each product's value. ``seq``: the (T, B, d)
    array of each input (default: the one input is ``x``). ``views``: product slot -> (variable,
    comment) for a view named after what it holds (a gate activated in place in it).
    ``after_loop``: a readout's group (``plan.readout_after_loop``), one GEMM over the states of
    all T steps (``seq`` names their (T, B, d) array), written after the loop."""
    lines: list[str] = []
    emit = lines.append
    ws = [p.weight for p in g.products]
    # transposed once into a C-contiguous copy: BLAS runs faster than on a transposed view
    wcode = (f'np.ascontiguousarray(np.asarray(params["{ws[0]}"], dtype=dtype).T)' if len(ws) == 1
             else "np.ascontiguousarray(np.concatenate([" + ", ".join(f'params["{w}"]' for w in ws)
             + "], axis=0).astype(dtype).T)")
    operand_txt = equation_text("", g.operand).split(" = ", 1)[1]
    sizes = [table.shape(p.weight)[0] for p in g.products]
    if g.hoisted or after_loop:
        inp = split_name(g.operand.name)[0] if isinstance(g.operand, MatrixSymbol) else None
        emit("")
        emit((f"# after the loop, the readout's GEMM of all T steps at once: {operand_txt} times "
              if after_loop else f"# input projection of all T steps in one GEMM: {operand_txt} times ")
             + ", ".join(ws) + (" (biases folded in)" if any(p.biases for p in g.products) else ""))
        emit(f"W_{g.name} = {wcode}")
        if any(p.biases for p in g.products):
            parts = []
            for p, sz in zip(g.products, sizes):
                parts.append(" + ".join(f'params["{b}"]' for b in p.biases) if p.biases
                             else f"np.zeros({sz})")
            emit(f"b_{g.name} = np.concatenate([" + ", ".join(parts) + "]).astype(dtype)")
        if inp is not None:
            rows_code = f"{(seq or {}).get(inp, 'x')}.reshape(T * B, {', '.join(shape_tuple(table, inp))})"
        else:   # an expression of the input alone: evaluated for all T steps at once
            rows_code = (f"({numpy_code(g.operand, whole)})"
                         f".reshape(T * B, {table.shape(g.products[0].weight)[-1]})")
        emit(f"{g.name} = ({rows_code} @ W_{g.name}"
             + (f" + b_{g.name}" if any(p.biases for p in g.products) else "")
             + f").reshape(T, B, W_{g.name}.shape[1])")
    else:
        emit("")
        emit(f"# one fused GEMM per step for {', '.join(ws)} (all applied to {operand_txt}); "
             "its buffer is reused")
        emit(f"W_{g.name} = {wcode}")
        emit(f"{g.name} = np.empty(({'T, ' if train else ''}B, W_{g.name}.shape[1]), dtype=dtype)")
    off = sp.Integer(0)
    for p, sz in zip(g.products, sizes):
        end = off + sz
        sl = f"[:, :, {off}:{end}]" if g.hoisted or train or after_loop else f"[:, {off}:{end}]"
        if p.slot.name in (views or {}):
            emit(f"{views[p.slot.name][0]} = {g.name}{sl}  # {views[p.slot.name][1]}")
        else:
            emit(f"{p.slot.name} = {g.name}{sl}  # {text(mmul(sp.Symbol(p.weight), g.operand))}"
                 + (f" + {' + '.join(p.biases)}" if p.biases else ""))
        off = end
    return lines

def gate_views(cell, step_plan, var: dict, every: str = "") -> dict:
    """Views of a GEMM buffer named after the gate activated in place in them: product slot ->
    (variable, comment). The forward names the view ``i`` (it holds gate i); the cached forward,
    whose buffer keeps every step, passes its own names (``i_all``) as ``var`` and
    ``every=" (every step)"``."""
    slots = {p.slot.name for g in step_plan.groups for act, k0, k1 in g.inplace
             for p in g.products[k0:k1]}
    return {rhs.name: (var[name],
                       equation_text(name, cell.equation(name).rhs).replace(" = ", every + " = ", 1)
                       + ", computed in place")
            for name, rhs in step_plan.equations
            if isinstance(rhs, MatrixSymbol) and rhs.name in slots}


def fused_lines(g, table, every_step=True, views: dict | None = None) -> list[str]:
    """After an in-loop GEMM: the hoisted slices added in, gates activated in place (indented
    for the loop body). ``every_step``: the buffer holds every step, (T, B, ·), and is indexed
    by ``t``; else it is the reused (B, ·) buffer. ``views``: as for :func:`group_lines`."""
    lines = []
    if not every_step:
        return [line.replace(f"{g.name}[t, :, ", f"{g.name}[:, ").replace(f"{g.name}[t]", g.name)
                for line in fused_lines(g, table, views=views)]
    if g.add_hoisted:
        h, m = g.add_hoisted
        end = sum((table.shape(p.weight)[0] for p in g.products[:m]), sp.Integer(0))
        whole = m == len(g.products) == len(h.products)
        lines.append(f"    {g.name}[t] += {h.name}[t]" if whole else
                     f"    {g.name}[t, :, :{end}] += {h.name}[t, :, :{end}]")
    for act, k0, k1 in g.inplace:
        a = sum((table.shape(p.weight)[0] for p in g.products[:k0]), sp.Integer(0))
        b = a + sum((table.shape(p.weight)[0] for p in g.products[k0:k1]), sp.Integer(0))
        view = f"{g.name}[t]" if (a == 0 and k1 == len(g.products)) else f"{g.name}[t, :, {a}:{b}]"
        held = [(views or {}).get(p.slot.name, (p.slot.name,))[0] for p in g.products[k0:k1]]
        lines.append("    " + INPLACE[act].format(v=view) + f"  # {', '.join(held)} in place")
    return lines
