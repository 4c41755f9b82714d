"""The backward's time loop, t = T-1 … 0: each step's adjoints (into the products' buffers where
they are one), the in-loop GEMMs ``δu = δ[W_1 u, …] [W_1; …]``, per-step parameter sums and
what flows back to the previous step's states."""
from __future__ import annotations

import re

import sympy as sp
from sympy import MatrixSymbol

from rnnsym.cells.cell import split_name
from rnnsym.cells.nodes import madd
from rnnsym.codegen.backward.printer import alloc_grad, bcode, into, rows, word_used
from rnnsym.printing.text import text


def backward_loop(st, ad) -> None:
    """Fill ``ad.loop_b`` (the loop's body), ``ad.accum`` and ``ad.per_step_params``."""
    cell, vjp = st.cell, st.vjp
    bcode_names, whole_b, alias, secondary, dslot = (ad.bcode_names, ad.whole_b, ad.alias,
                                                     ad.secondary, ad.dslot)
    loop_b, accum, per_step_params = ad.loop_b, ad.accum, ad.per_step_params

    def available_whole(expr):
        return all(s.name in whole_b for s in expr.atoms(MatrixSymbol))

    _repeated(st, ad)
    for entry in vjp.steps:
        if isinstance(entry, tuple) and entry[0] == "slot":
            slot = entry[1]
            terms = vjp.slot_terms.get(slot, [])
            if not terms or (len(terms) == 1 and terms[0] in alias
                             and dslot[alias[terms[0]]] == dslot[slot]):
                continue         # computed straight into this buffer
            if slot in secondary:
                if vjp.slot_of[slot][0].hoisted:
                    continue         # filled after the loop from its primary buffer
            loop_b.append("    " + into(madd(*terms), f"{dslot[slot]}[t]", bcode_names))
        elif isinstance(entry, tuple) and entry[0] == "gemm":
            g = entry[1]
            loop_b.append(f"    {ad.adjoint_names[f'd:{g.name}_u[t]']} = {ad.dgroup[id(g)]}[t] @ W_{g.name}"
                          f"  # δ({text(g.operand)}) from {', '.join(p.weight for p in g.products)}")
        else:
            a = entry.target
            rhs = bcode(entry.expr, bcode_names)
            if a in alias:
                slot = alias[a]
                loop_b.append("    " + into(entry.expr, f"{dslot[slot]}[t]", bcode_names))
                loop_b.append(f"    {ad.adjoint_names[a.name]} = {dslot[slot]}[t]")
            else:
                loop_b.append(f"    {ad.adjoint_names[a.name]} = {rhs}")
            for slot, prim in secondary.items():
                if alias.get(a) == prim and not vjp.slot_of[slot][0].hoisted:
                    loop_b.append(f"    {dslot[slot]}[t] = {ad.adjoint_names[a.name]}")
    # what flows into x_t, per step
    if vjp.input_terms.get(cell.inputs[0]):
        loop_b.append(f"    d_x[t] = {bcode(madd(*vjp.input_terms[cell.inputs[0]]), bcode_names)}")
    # parameter gradients that are not products' GEMMs
    for pname, terms in vjp.param_terms.items():
        for term in terms:
            if term.kind == "sum" and available_whole(term.left):
                accum.setdefault(pname, []).append(f"({bcode(term.left, whole_b)}).sum(axis=(0, 1))")
            elif term.kind == "sum":
                per_step_params.setdefault(pname, []).append(
                    f"    {alloc_grad(pname)} += ({bcode(term.left, bcode_names)}).sum(axis=0)")
            else:
                per_step_params.setdefault(pname, []).append(
                    f"    {alloc_grad(pname)} += {rows(bcode(term.left, bcode_names))}.T @ "
                    f"{rows(bcode(term.right, bcode_names))}")
    for lines in per_step_params.values():
        loop_b.extend(lines)
    for s in cell.states:
        terms = vjp.state_terms.get(s)
        loop_b.append(f"    {ad.dnext[s]} = " + (bcode(madd(*terms), bcode_names) if terms
                                                 else f"np.zeros_like({ad.dnext[s]})"))
    # a view of a product's adjoint that nothing reads afterwards
    views = set(ad.adjoint_names.values())
    ad.loop_b = [line for k, line in enumerate(loop_b)
                 if not (line.strip().split(" = ")[0] in views
                         and " = d" in line and line.rstrip().endswith("[t]")
                         and not word_used(line.strip().split(" = ")[0], loop_b[k + 1:]))]


def _repeated(st, ad) -> None:
    """Activations the step reads more than once, computed once at the top of the step (the
    walk's expressions rewritten to read them)."""
    vjp, bcode_names = st.vjp, ad.bcode_names
    act_sub = {}
    for node in sorted(st.repeated, key=lambda n: sum(1 for _ in sp.preorder_traversal(n))):
        label = re.sub(r"\W+", "_", text(node)).strip("_")
        label = re.sub(r"_t(_1)?(?=_|$)", "", label)
        if len(label) > 24:
            label = "act"
        sym = MatrixSymbol(f"{st.alloc(label)}[t]", *node.shape)
        bcode_names[sym.name] = split_name(sym.name)[0]
        ad.loop_b.append(f"    {bcode_names[sym.name]} = {bcode(node.xreplace(act_sub), bcode_names)}")
        act_sub[node] = sym
    if act_sub:
        for e in vjp.steps:
            if not isinstance(e, tuple):
                e.expr = e.expr.xreplace(act_sub)
        for terms in (vjp.slot_terms, vjp.state_terms, vjp.input_terms):
            for k in terms:
                terms[k] = [t.xreplace(act_sub) for t in terms[k]]
