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
from rnnsym.codegen.plan import readout_after_loop
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
    late = _late(st, ad)
    for entry in vjp.steps:
        if id(entry) in late:
            _before_loop(st, ad, entry)
            continue
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


def _late(st, ad) -> set:
    """The walk's entries of the readouts the forward computes after its loop
    (``plan.readout_after_loop``): they read ``d_outputs`` and forward values only, so they run
    once over all T steps before the loop (ids of the entries)."""
    readouts, groups = readout_after_loop(st.cell, st.plan)
    slots = {p.slot for g in groups for p in g.products}
    if not readouts or slots & (set(ad.secondary) | set(ad.secondary.values())) \
            or any(id(g) in ad.shared_buffer for g in groups):
        return set()
    known = {f"dL:{r}[t]" for r in readouts}
    late = set()
    for entry in st.vjp.steps:
        if isinstance(entry, tuple):
            if entry[0] == "slot" and entry[1] in slots and all(
                    _adjoints(term) <= known for term in st.vjp.slot_terms.get(entry[1], [])):
                late.add(id(entry))
            elif entry[0] == "gemm" and entry[1] in groups:
                late.add(id(entry))
        elif _adjoints(entry.expr) <= known:
            late.add(id(entry))
            known.add(entry.target.name)
    return late


def _adjoints(expr) -> set:
    """Names of the adjoints ``expr`` reads (``d:y[t]``, ``dL:y[t]``, ``dn:h[t]``)."""
    return {s.name for s in expr.atoms(MatrixSymbol) if re.match(r"d[Ln]?:", s.name)}


def _before_loop(st, ad, entry) -> None:
    """One late entry over all T steps (into ``ad.pre_b``); the loop reads its step t."""
    whole_b, bcode_names, dslot, vjp = ad.whole_b, ad.bcode_names, ad.dslot, st.vjp
    if isinstance(entry, tuple) and entry[0] == "slot":
        terms = vjp.slot_terms.get(entry[1], [])
        if terms and not (len(terms) == 1 and terms[0] in ad.alias
                          and dslot[ad.alias[terms[0]]] == dslot[entry[1]]):
            ad.pre_b.append(into(madd(*terms), f"{dslot[entry[1]]}[...]", whole_b))
    elif isinstance(entry, tuple):         # the group's GEMM: δ(state) from the readout
        g = entry[1]
        name = ad.adjoint_names[f"d:{g.name}_u[t]"]
        d = ad.dgroup[id(g)]
        rows_ = st.table.shape(g.products[0].weight)[-1]
        ad.pre_b.append(f"{name} = ({d}.reshape(T * B, W_{g.name}.shape[0]) @ W_{g.name})"
                        f".reshape(T, B, {rows_})  # δ({text(g.operand)}) from "
                        f"{', '.join(p.weight for p in g.products)}, every step")
        bcode_names[f"d:{g.name}_u[t]"] = f"{name}[t]"
        whole_b[f"d:{g.name}_u[t]"] = name
    else:
        a = entry.target
        if a in ad.alias:
            ad.pre_b.append(into(entry.expr, f"{dslot[ad.alias[a]]}[...]", whole_b))
            bcode_names[a.name] = f"{dslot[ad.alias[a]]}[t]"
        else:
            name = ad.adjoint_names[a.name]
            ad.pre_b.append(f"{name} = {bcode(entry.expr, whole_b)}")
            bcode_names[a.name] = f"{name}[t]"
            whole_b[a.name] = name


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
