"""After the backward's loop: each group's weight gradient in one GEMM over all T steps,
``Σ_t δ(W u)_t u_tᵀ`` (the mirror of the forward's hoisted input GEMM), a hoisted group's input
gradient another, and every parameter's gradient terms collected."""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp
from sympy import MatrixSymbol

from rnnsym.cells.cell import split_name
from rnnsym.cells.nodes import madd
from rnnsym.codegen.backward.printer import alloc_grad, bcode, dim_code
from rnnsym.gradients.nodes import AdjointSymbol
from rnnsym.gradients.vjp import StepVJP


@dataclass(eq=False)
class AfterLoop:
    post: list                   # the lines after the loop
    grads: dict                  # param -> its gradient's code terms
    dx_per_step: bool            # d_x is written in the loop
    dx_started: bool             # d_x is written after the loop


def after_loop(st, ad) -> AfterLoop:
    cell, table, alloc, whole_b, dslot = st.cell, st.table, st.alloc, ad.whole_b, ad.dslot
    post: list[str] = [""]
    dx_per_step = bool(st.vjp.input_terms.get(cell.inputs[0]))
    dx_started = []

    def dx_op():
        """``=`` for the first contribution to d_x after the loop (when none came per step)."""
        op = "+=" if dx_per_step or dx_started else "="
        dx_started.append(True)
        return op
    post.append("# after the loop: each group's weight gradient (and a hoisted group's input")
    post.append("# gradient) in one GEMM over all T steps")
    grads: dict = {}
    for g in st.groups:
        n_rows = table.shape(g.products[0].weight)[-1]
        d = ad.dgroup[id(g)]
        if g.hoisted:
            for p in g.products:
                if p.slot in ad.secondary and id(g) not in ad.shared_buffer:
                    post.append(f"{dslot[p.slot]}[...] = {dslot[ad.secondary[p.slot]]}")
        u_all = _operand_over_t(st, ad, g)
        gw = alloc(f"dW_{g.name}")
        post.append(f"{gw} = {d}.reshape(T * B, W_{g.name}.shape[0]).T @ {u_all}.reshape(T * B, {n_rows})")
        off = sp.Integer(0)
        for p in g.products:
            end = off + table.shape(p.weight)[0]
            grads.setdefault(p.weight, []).append(f"{gw}[{off}:{end}]")
            for b in p.biases:
                grads.setdefault(b, []).append(f"{dslot[p.slot]}.sum(axis=(0, 1))")
            off = end
        if g.hoisted:
            du = f"({d}.reshape(T * B, W_{g.name}.shape[0]) @ W_{g.name}).reshape(T, B, {n_rows})"
            if isinstance(g.operand, MatrixSymbol) and split_name(g.operand.name)[0] in cell.inputs:
                post.append(f"d_x {dx_op()} {du}")
                continue
            sub = StepVJP([("__u", g.operand)], set(cell.params), set(cell.inputs), ())
            adj = AdjointSymbol.of(MatrixSymbol(f"{g.name}_u[t]", g.operand.shape[0], 1), "d")
            du_name = alloc(f"d_{g.name}_u")
            sub.propagate(g.operand, adj, "__u")
            post.append(f"{du_name} = {du}")
            wb = {**whole_b, adj.name: du_name}
            for e in sub.steps:
                nm = alloc(f"d_{g.name}_{e.target.target.split('[')[0]}")
                wb[e.target.name] = nm
                post.append(f"{nm} = {bcode(e.expr, wb)}")
            for xname, terms in sub.input_terms.items():
                post.append(f"d_x {dx_op()} {bcode(madd(*terms), wb)}")
            for pname, terms in sub.param_terms.items():
                for term in terms:
                    if term.kind == "sum":
                        grads.setdefault(pname, []).append(f"({bcode(term.left, wb)}).sum(axis=(0, 1))")
                    else:
                        grads.setdefault(pname, []).append(
                            f"{bcode(term.left, wb)}.reshape(T * B, {dim_code(term.left.shape[0], table)}).T @ "
                            f"{bcode(term.right, wb)}.reshape(T * B, {dim_code(term.right.shape[0], table)})")
    for pname, terms in ad.accum.items():
        grads.setdefault(pname, []).extend(terms)
    for pname in ad.per_step_params:
        grads.setdefault(pname, []).append(alloc_grad(pname))
    return AfterLoop(post, grads, dx_per_step, bool(dx_started))


def _operand_over_t(st, ad, g) -> str:
    """The group's operand over all T steps, (T, B, ·), as code."""
    cell, whole_b = st.cell, ad.whole_b
    if isinstance(g.operand, MatrixSymbol):
        base, time = split_name(g.operand.name)
        if base in cell.inputs:
            return "x"
        if base in cell.states:
            return f"{st.store[base]}[:-1]" if time == "t-1" else f"{st.store[base]}[1:]"
        if f"{base}[t]" in whole_b and time == "t":
            return st.value_all[base]
        return bcode(g.operand, whole_b)
    if g.name in st.group_in:
        return st.group_in[g.name]
    return f"({bcode(g.operand, whole_b)})"
