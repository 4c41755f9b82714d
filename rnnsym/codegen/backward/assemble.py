"""The body of ``backward``: parameters and what the forward kept, the adjoint buffers, the
loop with the step's values bound, the lines after it, and the gradients returned."""
from __future__ import annotations

import sympy as sp

from rnnsym.codegen.backward.printer import alloc_grad, word_used
from rnnsym.printing.text import text


def assemble(st, ad, after, dims_line) -> list[str]:
    """The body of ``backward`` (unindented lines)."""
    cell, names, table, store, group_in = st.cell, st.names, st.table, st.store, st.group_in
    loop_b, dgroup, grads = ad.loop_b, ad.dgroup, after.grads
    body = [dims_line[0], dims_line[1]]
    body.append("d_outputs, d_final = _check_grads(cache, d_outputs, d_final_state)")
    used_params = sorted({p for p in cell.params if word_used(names.param[p], loop_b + after.post)
                          or any(word_used(names.param[p], v) for v in grads.values())},
                         key=cell.params.index)
    if used_params:
        body.append("# parameters read by the step's derivatives, in the input's dtype")
        for p in used_params:
            body.append(f'{names.param[p]} = np.asarray(params["{p}"], dtype=dtype)')
    body.append("# what the forward kept")
    for g in st.groups:
        if g.name in group_in:
            body.append(f'{group_in[g.name]} = cache["{group_in[g.name]}"]')
        if g.name in st.transient:
            continue
        body.append(f'{g.name} = cache["{g.name}"]')
        off = sp.Integer(0)
        views = st.gate_views
        for p in g.products:
            end = off + table.shape(p.weight)[0]
            body.append(f"{views[p.slot.name][0]} = {g.name}[:, :, {off}:{end}]  # "
                        + views[p.slot.name][1].replace(", computed in place", "")
                        if p.slot.name in views else f"{p.slot.name} = {g.name}[:, :, {off}:{end}]")
            off = end
    for q, _, _ in st.quantities:
        if q in store:
            body.append(f'{store[q]} = cache["{store[q]}"]')
    body.append("")
    body.append("# adjoints of the products, every step, side by side per GEMM group as in the forward")
    for g in sorted(st.groups, key=lambda g: id(g) in ad.shared_buffer):
        ws = [p.weight for p in g.products]
        body.append(f"W_{g.name} = " + (f'np.asarray(params["{ws[0]}"], dtype=dtype)' if len(ws) == 1
                    else "np.concatenate([" + ", ".join(f'params["{w}"]' for w in ws)
                    + "], axis=0).astype(dtype)") + f"  # [{'; '.join(ws)}]")
        if id(g) in ad.shared_buffer:
            h = ad.shared_buffer[id(g)]
            body.append(f"{dgroup[id(g)]} = {dgroup[id(h)]}  # δ({text(g.operand)} products) = "
                        f"δ({text(h.operand)} products), slice for slice")
            continue
        body.append(f"{dgroup[id(g)]} = np.zeros((T, B, W_{g.name}.shape[0]), dtype=dtype)")
        off = sp.Integer(0)
        for p in g.products:
            end = off + table.shape(p.weight)[0]
            body.append(f"{ad.dslot[p.slot]} = {dgroup[id(g)]}[:, :, {off}:{end}]")
            off = end
    if after.dx_per_step or not after.dx_started:
        body.append("d_x = np.zeros_like(x)")
    for pname in ad.per_step_params:
        body.append(f"{alloc_grad(pname)} = np.zeros(np.shape(params[\"{pname}\"]), dtype=dtype)")
    body.append("# what step t+1 sends back to each state; at T, the final state's gradient")
    for s in cell.states:
        body.append(f'{ad.dnext[s]} = d_final["{s}"]')
    if ad.pre_b:
        body.append("# the readout's adjoints, all T steps at once: they read d_outputs only")
        body.extend(ad.pre_b)
    body.extend(_loop_head(st, ad) + loop_b)
    body.extend(after.post)
    body.append("d_params = {")
    for p in cell.params:
        terms = grads.get(p)
        body.append(f'    "{p}": ' + (" + ".join(terms) if terms
                                      else f'np.zeros(np.shape(params["{p}"]), dtype=dtype)') + ",")
    body.append("}")
    body.append("d_state0 = {" + ", ".join(f'"{s}": {ad.dnext[s]}' for s in cell.states) + "}")
    body.append("return d_params, d_x, d_state0")
    return body


def _loop_head(st, ad) -> list[str]:
    """``for t in reversed(range(T)):`` and the step's stored values its body reads."""
    cell, var, loop_b = st.cell, st.var, ad.loop_b
    bind = ["for t in reversed(range(T)):"]
    if word_used("x_t", loop_b):
        bind.append("    x_t = x[t]")
    for q, _, _ in st.quantities:
        if q in cell.states:
            if word_used(var[q], loop_b):
                bind.append(f"    {var[q]} = {st.store[q]}[t + 1]")
        elif word_used(var[q], loop_b):
            bind.append(f"    {var[q]} = {st.value_all[q]}[t]")
    for s in cell.states:
        if word_used(ad.prev_b[s], loop_b):
            bind.append(f"    {ad.prev_b[s]} = {st.store[s]}[t]")
    return bind
