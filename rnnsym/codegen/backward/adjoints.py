"""Where every adjoint lives: its name in the backward's step, the products' adjoint buffers
(shared where one adjoint is exactly another's), and the names over all T after the loop."""
from __future__ import annotations

from dataclasses import dataclass, field

from rnnsym.cells.cell import split_name


@dataclass(eq=False)
class Adjoints:
    """The backward's names; the loop and after-the-loop phases add their lines and terms."""
    bcode_names: dict            # symbol -> code in the backward's step
    whole_b: dict                # symbol -> code over all T (after the loop)
    prev_b: dict                 # state -> its previous value in the step
    dslot: dict                  # product slot -> its adjoint buffer
    dgroup: dict                 # id(group) -> the group's adjoint buffer
    dnext: dict                  # state -> what step t+1 sends back
    adjoint_names: dict          # adjoint symbol's name -> code name
    alias: dict                  # named adjoint -> the primary slot it is computed into
    secondary: dict              # slot -> primary slot whose buffer holds the same values
    shared_buffer: dict          # id(hoisted group) -> the in-loop group whose buffer it reuses
    loop_b: list = field(default_factory=list)
    pre_b: list = field(default_factory=list)            # before the loop: a late readout's
    accum: dict = field(default_factory=dict)            # param -> code terms after the loop
    per_step_params: dict = field(default_factory=dict)  # param -> code lines in the loop


def adjoints(st) -> Adjoints:
    """Name the adjoints (allocating in a fixed order) and pick the shared buffers."""
    cell, names, var, alloc, vjp, groups = st.cell, st.names, st.var, st.alloc, st.vjp, st.groups
    out = cell.output
    # names in the backward loop
    bcode_names = dict(st.forward_code)
    prev_b = {s: alloc(f"{var[s]}_prev") if names.prev[s] == var[s] else names.prev[s]
              for s in cell.states}
    for q in var:
        bcode_names[f"{q}[t]"] = var[q]
    for s in cell.states:
        bcode_names[f"{s}[t-1]"] = prev_b[s]
    for g in groups:
        for p in g.products:
            bcode_names[p.slot.name] = f"{p.slot.name}[t]"
    dslot = {p.slot: alloc(f"d{p.slot.name}") for g in groups for p in g.products}
    dgroup = {id(g): alloc(f"d_{g.name}") for g in groups}
    dnext = {s: alloc(f"d{var[s]}_next") for s in cell.states}
    adjoint_names = {}
    for entry in vjp.steps:
        if not isinstance(entry, tuple):
            base = entry.target.target
            q, _ = split_name(base)
            adjoint_names[entry.target.name] = alloc(f"d{var.get(q, q)}")
    for g in groups:
        if not g.hoisted:
            adjoint_names[f"d:{g.name}_u[t]"] = alloc(f"d_{g.name}_u")
    bcode_names.update(adjoint_names)
    bcode_names[f"dL:{out}[t]"] = "d_outputs[t]"
    for s in cell.states:
        bcode_names[f"dn:{s}[t]"] = dnext[s]

    alias, secondary, shared_buffer = _shared(vjp, groups, dslot)

    # whole-T names (after the loop)
    whole_b = {p: names.param[p] for p in cell.params}
    whole_b["x[t]"] = "x"
    for q, _, _ in st.quantities:
        if q in cell.states:
            whole_b[f"{q}[t]"] = f"{st.store[q]}[1:]"
            whole_b[f"{q}[t-1]"] = f"{st.store[q]}[:-1]"
        else:
            whole_b[f"{q}[t]"] = st.value_all[q]
    for g in groups:
        for p in g.products:
            whole_b[p.slot.name] = p.slot.name
    for a, slot in alias.items():
        whole_b[a.name] = dslot[slot]
    whole_b[f"dL:{out}[t]"] = "d_outputs"
    return Adjoints(bcode_names, whole_b, prev_b, dslot, dgroup, dnext, adjoint_names, alias,
                    secondary, shared_buffer)


def _shared(vjp, groups, dslot):
    """Adjoints that are exactly one product's adjoint, computed into its buffer; ``dslot`` is
    updated where a hoisted group reuses an in-loop group's buffer."""
    alias = {}          # named adjoint (AdjointSymbol) -> primary slot
    secondary = {}      # slot -> primary slot whose buffer holds the same values
    assigned = {e.target for e in vjp.steps if not isinstance(e, tuple)}
    for slot, terms in vjp.slot_terms.items():
        if len(terms) == 1 and terms[0] in assigned:
            a = terms[0]
            g = vjp.slot_of[slot][0]
            if a not in alias:
                alias[a] = slot
            elif vjp.slot_of[alias[a]][0].hoisted and not g.hoisted:
                secondary[alias[a]] = slot
                alias[a] = slot
            else:
                secondary[slot] = alias[a]
    # a hoisted group whose products all share, in order, one in-loop group's buffer reuses it
    shared_buffer = {}
    for g in groups:
        if not g.hoisted:
            continue
        prim = [secondary.get(p.slot) for p in g.products]
        owners = {id(vjp.slot_of[s][0]) if s is not None else None for s in prim}
        if None in owners or len(owners) != 1:
            continue
        h = vjp.slot_of[prim[0]][0]
        if [p.slot for p in h.products] == prim:
            shared_buffer[id(g)] = h
            for p, ph in zip(g.products, h.products):
                secondary.pop(p.slot)
                dslot[p.slot] = dslot[ph.slot]
    return alias, secondary, shared_buffer
