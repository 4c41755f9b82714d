"""``_forward_cached``: the forward pass with every quantity of every step stored for the
backward, (T, B, d) arrays, states (T + 1, B, d) with the initial state first."""
from __future__ import annotations

import sympy as sp
from sympy import MatAdd, MatrixSymbol

from rnnsym.cells.nodes import Activation
from rnnsym.codegen.backward.printer import bcode, dim_code, word_used
from rnnsym.codegen.groups import WRITE_INTO, fused_lines, group_lines, shape_tuple
from rnnsym.codegen.plan import readout_after_loop

#: activations applied in place on a stored step
IN_PLACE = {"tanh": "np.tanh({v}, out={v})", "sigmoid": "_sigmoid_({v})",
            "relu": "np.maximum({v}, 0, out={v})"}


def cached_forward(st, dims_line) -> list[str]:
    """The body of ``_forward_cached`` (unindented lines)."""
    cell, table, names, forward_code = st.cell, st.table, st.names, st.forward_code
    groups, var, store, group_in, transient = st.groups, st.var, st.store, st.group_in, st.transient
    inplace_gate, fused, quantities = st.inplace_gate, st.fused, st.quantities

    def dims(name):
        return ", ".join(shape_tuple(table, name))

    # code names in the cached forward's loop
    fcode = dict(forward_code)
    for q in var:
        fcode[f"{q}[t]"] = var[q]
    for g in groups:
        for p in g.products:
            fcode[p.slot.name] = p.slot.name if g.name in transient else f"{p.slot.name}[t]"
    whole = {**fcode, "x[t]": "x",
             **{p.slot.name: p.slot.name for g in groups for p in g.products}}

    # readouts of the new states only: after the loop, one GEMM over the stored states
    late, late_groups = readout_after_loop(cell, fused or st.plan)
    late_names = {g.name for g in late_groups}

    cached = [dims_line[0], dims_line[1]]
    direct = sorted({s.name for _, e, _ in quantities for s in e.atoms(MatrixSymbol) if s.name in cell.params}
                    | {s.name for g in groups for s in g.operand.atoms(MatrixSymbol)
                       if s.name in cell.params}, key=cell.params.index)
    if direct:
        cached.append("# parameters the equations read directly, in the input's dtype")
        for p in direct:
            cached.append(f'{names.param[p]} = np.asarray(params["{p}"], dtype=dtype)')
    for g in (fused or st.plan).groups:
        if g.name in late_names:
            continue
        cached.extend(group_lines(g, table, forward_code, whole, train=g.name not in transient,
                                  views=st.gate_views))
        if g.name in group_in:
            cached.append(f"{group_in[g.name]} = np.empty((T, B, {table.shape(g.products[0].weight)[-1]}), "
                          "dtype=dtype)  # its operand, every step")
    cached.append("")
    cached.append("# every quantity of every step, for the backward; states (T + 1, B, d), initial first")
    for q, _, kind in quantities:
        if q in inplace_gate or q in late:
            continue
        if q in cell.states:
            cached.append(f"{store[q]} = np.empty((T + 1, B, {dims(q)}), dtype=dtype)")
            cached.append(f'{store[q]}[0] = state["{q}"]')
        else:
            rows = dims(q) if kind != "temp" else dim_code(st.shape_of[q][0], table)
            cached.append(f"{store[q]} = np.empty((T, B, {rows}), dtype=dtype)")
    cached.extend(_loop(st, fcode, WRITE_INTO, late, late_names))
    late_whole = {**whole, **{f"{s}[t]": f"{store[s]}[1:]" for s in cell.states}}
    for g in late_groups:
        cached.extend(group_lines(g, table, forward_code, late_whole, views=st.gate_views,
                                  seq={s: f"{store[s]}[1:]" for s in cell.states}, after_loop=True))
    crhs = dict((fused or st.plan).equations)
    for q in late:
        cached.append(f"{store[q]} = {bcode(crhs[q].xreplace(st.tsym), late_whole)}  "
                      f"# {cell.equation(q).kind} {q}, every step")
    out = cell.output
    outputs = f"{store[out]}[1:]" if out in cell.states else store[out]
    cache_items = ['"x": x', '"size": size']
    for g in groups:
        if g.name not in transient:
            cache_items.append(f'"{g.name}": {g.name}')
        if g.name in group_in:
            cache_items.append(f'"{group_in[g.name]}": {group_in[g.name]}')
    cache_items += [f'"{store[q]}": {store[q]}' for q, _, _ in quantities if q in store]
    final = ", ".join(f'"{s}": {store[s]}[T].copy()' for s in cell.states)
    cached.append("cache = {" + ", ".join(cache_items) + "}")
    cached.append(f"return {outputs}, {{{final}}}, cache")
    return cached


def _loop(st, fcode, write_into, late=(), late_groups=()) -> list[str]:
    """The cached forward's time loop: each step's GEMMs and quantities written into storage."""
    cell, table, var, store, group_in = st.cell, st.table, st.var, st.store, st.group_in
    transient, inplace_gate, quantities = st.transient, st.inplace_gate, st.quantities
    prev_name = {s: st.names.prev[s] for s in cell.states}
    loop = ["for t in range(T):"]
    for s in cell.states:
        loop.append(f"    {prev_name[s]} = {store[s]}[t]")
    cplan = st.fused or st.plan
    eq_index = {name: k for k, (name, _) in enumerate(cplan.equations)}
    crhs = dict(cplan.equations)
    for q, _, kind in quantities:
        rhs = crhs[q].xreplace(st.tsym) if kind != "temp" else dict((n, e) for n, e, _ in quantities)[q]
        if q in late:
            continue                    # after the loop
        if kind != "temp":
            for g in cplan.gemm_before.get(eq_index[q], []):
                if g.name in late_groups:
                    continue
                if g.name in group_in:
                    loop.append(f"    {group_in[g.name]}[t] = {bcode(g.operand, fcode)}")
                    src = f"{group_in[g.name]}[t]"
                else:
                    src = bcode(g.operand, fcode)
                step = g.name if g.name in transient else f"{g.name}[t]"
                loop.append(f"    np.matmul({src}, W_{g.name}, out={step})")
                loop.extend(fused_lines(g, table, g.name not in transient, views=st.gate_views))
        if q in inplace_gate:
            loop.append(f"    {var[q]} = {st.value_all[q]}[t]  # {kind} {q}, activated in place")
            continue
        slot = f"{store[q]}[t + 1]" if q in cell.states else f"{store[q]}[t]"
        if isinstance(rhs, Activation) and rhs.name in IN_PLACE and not rhs.params \
                and isinstance(rhs.arg, MatAdd) and len(rhs.arg.args) == 2 \
                and not any(_negative_term(a) for a in rhs.arg.args):
            # the sum into the stored step, the activation in place: no temporary, no copy
            a, b = (bcode(a, fcode) for a in rhs.arg.args)
            if q in cell.states:        # its previous value may be read on the right
                loop.append(f"    np.add({a}, {b}, out={slot})")
                loop.append("    " + IN_PLACE[rhs.name].format(v=slot) + f"  # {kind} {q}")
                loop.append(f"    {var[q]} = {slot}")
            else:
                loop.append(f"    {var[q]} = {slot}  # {kind} {q}")
                loop.append(f"    np.add({a}, {b}, out={var[q]})")
                loop.append("    " + IN_PLACE[rhs.name].format(v=var[q]))
        elif isinstance(rhs, Activation) and rhs.name in write_into:   # no temporary, no copy
            loop.append("    " + write_into[rhs.name].format(u=bcode(rhs.arg, fcode), o=slot)
                        + f"  # {kind} {q}")
            loop.append(f"    {var[q]} = {slot}")
        else:
            loop.append(f"    {var[q]} = {slot} = {bcode(rhs, fcode)}  # {kind} {q}")
    for s in cell.states:
        if prev_name[s] != var[s]:
            loop.append(f"    {prev_name[s]} = {var[s]}")
    if word_used("x_t", loop):
        loop.insert(1, "    x_t = x[t]")
    return loop


def _negative_term(t) -> bool:
    return isinstance(t, sp.MatMul) and t.args[0].is_number and t.args[0].is_negative
