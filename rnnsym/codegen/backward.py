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
"""
from __future__ import annotations

import functools
import re

import sympy as sp
from sympy import HadamardProduct, MatAdd, MatrixSymbol, Transpose

from rnnsym.cells.cell import split_name
from rnnsym.cells.nodes import Activation, hadamard, madd
from rnnsym.codegen.plan import INPLACE, plan
from rnnsym.gradients.nodes import AdjointSymbol
from rnnsym.gradients.vjp import ParamTerm, StepVJP
from rnnsym.printing.numpy import RnnNumPyPrinter
from rnnsym.printing.text import text

#: names the backward's code uses itself (user names that clash are renamed)
BACKWARD_RESERVED = {"cache", "d_outputs", "d_final_state", "d_final", "d_x", "d_params",
                     "d_state0", "_check_grads", "_forward_cached", "backward"}


class BackwardNumPyPrinter(RnnNumPyPrinter):
    """Adds the backward's nodes to the NumPy printer."""

    def _print_T(self, a):
        """``Wᵀ δ`` in batched rows is ``δ @ W``: a transposed factor prints untransposed."""
        if isinstance(a, Transpose):
            return self._child(a.arg, 5)
        return super()._print_T(a)

    def _print_ActGrad(self, expr):
        """The derivative's NumPy form (nodes.DERIVATIVES), in terms of the activation's output."""
        params = [self._print(sp.Float(p)) if not p.is_Integer else self._print(p) for p in expr.params]
        a, b = (params + ["", ""])[:2]
        y = self._print(expr.y)
        if not isinstance(expr.y, MatrixSymbol) and not y.endswith(")"):
            y = f"({y})"
        return expr.form.numpy.format(y=y, a=a, b=b)


    def _print_FeatureMean(self, expr):
        """Mean over the feature (last) axis, kept for broadcasting."""
        return f"{self._child(expr.arg, 5)}.mean(axis=-1, keepdims=True)"

    def _print_InvStd(self, expr):
        """1 / sqrt(var + eps) over the feature (last) axis, kept for broadcasting."""
        return (f"(1 / np.sqrt({self._child(expr.arg, 5)}.var(axis=-1, keepdims=True) + "
                f"{self._print(sp.Float(expr.eps))}))")

    def _print_Unchunk(self, expr):
        """Block k of n of a zero vector: the adjoint of ``chunk``."""
        d = self._print(expr.arg)
        zeros = [f"np.zeros_like({d})"]
        return ("np.concatenate([" + ", ".join(zeros * expr.index + [d]
                                              + zeros * (expr.count - expr.index - 1))
                + "], axis=-1)")


def bcode(expr, names) -> str:
    return BackwardNumPyPrinter(names).doprint(expr)


class _PlannedVJP(StepVJP):
    """The backward walk over the planned equations: products (slots) are leaves whose adjoints
    go to their group's buffer; an in-loop group's GEMM is emitted once all its products'
    adjoints are known, and its result walked back into the group's operand."""

    def __init__(self, equations, cell, step_plan, slot_readers, group_readers):
        super().__init__(equations, set(cell.params), set(cell.inputs), cell.states)
        self.plan = step_plan
        self.slot_of = {p.slot: (g, p) for g in step_plan.groups for p in g.products}
        self.slot_terms: dict = {}
        self.slot_readers = slot_readers      # slot -> equations reading it
        self.group_readers = group_readers    # slot -> in-loop groups whose operand reads it
        self.done_eqs: set = set()
        self.written: set = set()
        self.emitted: set = set()

    def leaf(self, sym, adj, eq):
        if sym in self.slot_of:
            self.slot_terms.setdefault(sym, []).append(adj)
            return None
        return super().leaf(sym, adj, eq)

    def after_equation(self, name):
        self.done_eqs.add(name)
        changed = True
        while changed:
            changed = False
            for slot, (g, _) in self.slot_of.items():
                if slot in self.written:
                    continue
                if self.slot_readers[slot] <= self.done_eqs and \
                        all(id(h) in self.emitted for h in self.group_readers[slot]):
                    self.written.add(slot)
                    self.steps.append(("slot", slot))
                    changed = True
            for g in self.plan.groups:
                if g.hoisted or id(g) in self.emitted:
                    continue
                if all(p.slot in self.written for p in g.products):
                    self.emitted.add(id(g))
                    self.steps.append(("gemm", g))
                    rows = g.products[0].slot.shape[1]
                    adj = AdjointSymbol.of(MatrixSymbol(f"{g.name}_u[t]", g.operand.shape[0], rows), "d")
                    self.propagate(g.operand, adj, name)
                    changed = True


@functools.lru_cache(maxsize=4096)
def _word(name):
    return re.compile(rf"(?<![\w.\"]){re.escape(name)}(?![\w\"])")


def _word_used(name, lines) -> bool:
    pat = _word(name)
    return any(pat.search(line.split("  # ")[0]) for line in lines)


class _Alloc:
    """Fresh Python names, never clashing with the forward's or the user's."""

    def __init__(self, taken):
        self.taken = set(taken)

    def __call__(self, want: str) -> str:
        v = want
        while v in self.taken:
            v += "_"
        self.taken.add(v)
        return v


def render_backward(cell, table, names, forward_code, dims_line) -> dict:
    """Source pieces for the template: ``cached_body`` and ``backward_body`` (indented lines)."""
    from rnnsym.codegen.generator import WRITE_INTO, _shape_tuple, group_lines

    sp_ = plan(cell, fuse=False, table=table)
    kinds = {e.name: e.kind for e in cell.equations}
    alloc = _Alloc(set(names.var.values()) | set(names.param.values()) | set(names.prev.values())
                   | {g.name for g in sp_.groups} | {f"W_{g.name}" for g in sp_.groups}
                   | {f"b_{g.name}" for g in sp_.groups}
                   | {p.slot.name for g in sp_.groups for p in g.products}
                   | {t[0] for t in sp_.temps} | {str(d) for d in table.dims} | BACKWARD_RESERVED
                   | {"np", "params", "x", "x_t", "state", "state0", "size", "T", "B", "t", "dtype",
                      "out", "_sigmoid", "_sigmoid_", "_check"})

    def dims(name):
        return ", ".join(_shape_tuple(table, name))

    # the planned step as one list of named quantities: temporaries before their first reader
    tsym = {sym: MatrixSymbol(f"{name}[t]", *sym.shape)
            for name, _, sym in [(n, e, MatrixSymbol(n, *e.shape)) for n, e, _ in sp_.temps]}
    quantities = []                       # (name, rhs, kind)
    for k, (name, rhs) in enumerate(sp_.equations):
        for tname, texpr, first in sp_.temps:
            if first == k:
                quantities.append((tname, texpr.xreplace(tsym), "temp"))
        quantities.append((name, rhs.xreplace(tsym), kinds[name]))
    groups = sp_.groups
    for g in groups:
        g.operand = g.operand.xreplace(tsym)
    shape_of = {q: rhs.shape for q, rhs, _ in quantities}

    # --- the backward walk ------------------------------------------------------------------
    slot_readers = {p.slot: {q for q, rhs, _ in quantities if p.slot in rhs.atoms(MatrixSymbol)}
                    for g in groups for p in g.products}
    group_readers = {p.slot: [h for h in groups if not h.hoisted and p.slot in h.operand.atoms(MatrixSymbol)]
                     for g in groups for p in g.products}
    vjp = _PlannedVJP([(q, rhs) for q, rhs, _ in quantities], cell, sp_, slot_readers, group_readers)
    out = cell.output
    vjp.seed(f"{out}[t]", AdjointSymbol.of(MatrixSymbol(f"{out}[t]", *shape_of[out]), "dL"))
    for s in cell.states:
        vjp.seed(f"{s}[t]", AdjointSymbol.of(MatrixSymbol(f"{s}[t]", *shape_of[s]), "dn"))
    vjp.run()
    repeated = _repeated_activations(vjp)

    # the cached forward runs the forward's fused plan (hoisted slices added into the in-loop
    # buffers, gates activated in place there) when the backward reads no product it overwrites
    fused = _fused_plan(cell, table, sp_, vjp)
    inplace_gate = {}                     # gate -> the product slot whose buffer holds its value
    if fused is not None:
        for name, rhs in fused.equations:
            if isinstance(rhs, MatrixSymbol) and kinds.get(name) == "gate" and rhs in vjp.slot_of:
                inplace_gate[name] = rhs

    # an in-loop GEMM's buffer holds every step only if the backward reads it (a product's value,
    # a gate activated in place there); else one (B, ·) buffer is reused, as in the forward
    read = _read_symbols(vjp, sp_)
    in_place_slots = set(inplace_gate.values())
    transient = {g.name for g in groups if not g.hoisted
                 and not any(p.slot in read or p.slot in in_place_slots for p in g.products)}

    # --- storage of every quantity over T ------------------------------------------------
    var = {}
    for q, _, kind in quantities:
        var[q] = names.var.get(q, q)
    store = {q: alloc(f"{var[q]}_all") for q, _, _ in quantities if q not in inplace_gate}
    value_all = {q: store.get(q) or inplace_gate[q].name for q, _, _ in quantities}
    group_in = {}
    for g in groups:
        if not g.hoisted and not isinstance(g.operand, MatrixSymbol):
            group_in[g.name] = alloc(f"{g.name}_in")

    # code names in the cached forward's loop
    fcode = dict(forward_code)
    for q in var:
        fcode[f"{q}[t]"] = var[q]
    for g in groups:
        for p in g.products:
            fcode[p.slot.name] = p.slot.name if g.name in transient else f"{p.slot.name}[t]"
    whole = {**fcode, "x[t]": "x",
             **{p.slot.name: p.slot.name for g in groups for p in g.products}}

    cached = [dims_line[0], dims_line[1]]
    direct = sorted({s.name for _, e, _ in quantities for s in e.atoms(MatrixSymbol) if s.name in cell.params}
                    | {s.name for g in groups for s in g.operand.atoms(MatrixSymbol)
                       if s.name in cell.params}, key=cell.params.index)
    if direct:
        cached.append("# parameters read inside the loop, in the input's dtype")
        for p in direct:
            cached.append(f'{names.param[p]} = np.asarray(params["{p}"], dtype=dtype)')
    for g in (fused or sp_).groups:
        cached.extend(group_lines(g, table, forward_code, whole, train=g.name not in transient))
        if g.name in group_in:
            cached.append(f"{group_in[g.name]} = np.empty((T, B, {table.shape(g.products[0].weight)[-1]}), "
                          "dtype=dtype)  # its operand, every step")
    cached.append("")
    cached.append("# every quantity of every step, for the backward; states (T + 1, B, d), initial first")
    for q, _, kind in quantities:
        if q in inplace_gate:
            continue
        if q in cell.states:
            cached.append(f"{store[q]} = np.empty((T + 1, B, {dims(q)}), dtype=dtype)")
            cached.append(f'{store[q]}[0] = state["{q}"]')
        else:
            rows = dims(q) if kind != "temp" else _dim_code(shape_of[q][0], table)
            cached.append(f"{store[q]} = np.empty((T, B, {rows}), dtype=dtype)")
    prev_name = {s: names.prev[s] for s in cell.states}
    loop = ["for t in range(T):"]
    for s in cell.states:
        loop.append(f"    {prev_name[s]} = {store[s]}[t]")
    cplan = fused or sp_
    eq_index = {name: k for k, (name, _) in enumerate(cplan.equations)}
    crhs = dict(cplan.equations)
    for q, _, kind in quantities:
        rhs = crhs[q].xreplace(tsym) if kind != "temp" else dict((n, e) for n, e, _ in quantities)[q]
        if kind != "temp":
            for g in cplan.gemm_before.get(eq_index[q], []):
                if g.name in group_in:
                    loop.append(f"    {group_in[g.name]}[t] = {_ncode(g.operand, fcode)}")
                    src = f"{group_in[g.name]}[t]"
                else:
                    src = _ncode(g.operand, fcode)
                step = g.name if g.name in transient else f"{g.name}[t]"
                loop.append(f"    np.matmul({src}, W_{g.name}, out={step})")
                loop.extend(_fused_lines(g, table, g.name not in transient))
        if q in inplace_gate:
            loop.append(f"    {var[q]} = {inplace_gate[q].name}[t]  # {kind} {q}, activated in place")
            continue
        slot = f"{store[q]}[t + 1]" if q in cell.states else f"{store[q]}[t]"
        if isinstance(rhs, Activation) and rhs.name in IN_PLACE and not rhs.params \
                and isinstance(rhs.arg, MatAdd) and len(rhs.arg.args) == 2 \
                and not any(_negative_term(a) for a in rhs.arg.args):
            # the sum into the stored step, the activation in place: no temporary, no copy
            a, b = (_ncode(a, fcode) for a in rhs.arg.args)
            if q in cell.states:        # its previous value may be read on the right
                loop.append(f"    np.add({a}, {b}, out={slot})")
                loop.append("    " + IN_PLACE[rhs.name].format(v=slot) + f"  # {kind} {q}")
                loop.append(f"    {var[q]} = {slot}")
            else:
                loop.append(f"    {var[q]} = {slot}  # {kind} {q}")
                loop.append(f"    np.add({a}, {b}, out={var[q]})")
                loop.append("    " + IN_PLACE[rhs.name].format(v=var[q]))
        elif isinstance(rhs, Activation) and rhs.name in WRITE_INTO:   # no temporary, no copy
            loop.append("    " + WRITE_INTO[rhs.name].format(u=_ncode(rhs.arg, fcode), o=slot)
                        + f"  # {kind} {q}")
            loop.append(f"    {var[q]} = {slot}")
        else:
            loop.append(f"    {var[q]} = {slot} = {_ncode(rhs, fcode)}  # {kind} {q}")
    for s in cell.states:
        if prev_name[s] != var[s]:
            loop.append(f"    {prev_name[s]} = {var[s]}")
    if _word_used("x_t", loop):
        loop.insert(1, "    x_t = x[t]")
    cached.extend(loop)
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


    # names in the backward loop
    bcode_names = dict(forward_code)
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

    # adjoints that are exactly one product's adjoint: computed into its buffer
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

    # whole-T names (after the loop)
    whole_b = {p: names.param[p] for p in cell.params}
    whole_b["x[t]"] = "x"
    for q, _, _ in quantities:
        if q in cell.states:
            whole_b[f"{q}[t]"] = f"{store[q]}[1:]"
            whole_b[f"{q}[t-1]"] = f"{store[q]}[:-1]"
        else:
            whole_b[f"{q}[t]"] = value_all[q]
    for g in groups:
        for p in g.products:
            whole_b[p.slot.name] = p.slot.name
    for a, slot in alias.items():
        whole_b[a.name] = dslot[slot]
    whole_b[f"dL:{out}[t]"] = "d_outputs"

    def available_whole(expr):
        return all(s.name in whole_b for s in expr.atoms(MatrixSymbol))

    loop_b: list[str] = []
    # activations the step reads more than once, computed once
    act_sub = {}
    for node in sorted(repeated, key=lambda n: sum(1 for _ in sp.preorder_traversal(n))):
        label = re.sub(r"\W+", "_", text(node)).strip("_")
        label = re.sub(r"_t(_1)?(?=_|$)", "", label)
        if len(label) > 24:
            label = "act"
        sym = MatrixSymbol(f"{alloc(label)}[t]", *node.shape)
        bcode_names[sym.name] = split_name(sym.name)[0]
        loop_b.append(f"    {bcode_names[sym.name]} = {bcode(node.xreplace(act_sub), bcode_names)}")
        act_sub[node] = sym
    if act_sub:
        for e in vjp.steps:
            if not isinstance(e, tuple):
                e.expr = e.expr.xreplace(act_sub)
        for terms in (vjp.slot_terms, vjp.state_terms, vjp.input_terms):
            for k in terms:
                terms[k] = [t.xreplace(act_sub) for t in terms[k]]
    accum: dict = {}                 # param -> list of code terms after the loop
    per_step_params: dict = {}       # param -> list of code lines in the loop
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
            loop_b.append("    " + _into(madd(*terms), f"{dslot[slot]}[t]", bcode_names))
        elif isinstance(entry, tuple) and entry[0] == "gemm":
            g = entry[1]
            loop_b.append(f"    {adjoint_names[f'd:{g.name}_u[t]']} = {dgroup[id(g)]}[t] @ W_{g.name}"
                          f"  # δ({text(g.operand)}) from {', '.join(p.weight for p in g.products)}")
        else:
            a = entry.target
            rhs = bcode(entry.expr, bcode_names)
            if a in alias:
                slot = alias[a]
                loop_b.append("    " + _into(entry.expr, f"{dslot[slot]}[t]", bcode_names))
                loop_b.append(f"    {adjoint_names[a.name]} = {dslot[slot]}[t]")
            else:
                loop_b.append(f"    {adjoint_names[a.name]} = {rhs}")
            for slot, prim in secondary.items():
                if alias.get(a) == prim and not vjp.slot_of[slot][0].hoisted:
                    loop_b.append(f"    {dslot[slot]}[t] = {adjoint_names[a.name]}")
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
                    f"    {alloc_grad(pname)} += {_rows(bcode(term.left, bcode_names))}.T @ "
                    f"{_rows(bcode(term.right, bcode_names))}")
    for lines in per_step_params.values():
        loop_b.extend(lines)
    for s in cell.states:
        terms = vjp.state_terms.get(s)
        loop_b.append(f"    {dnext[s]} = " + (bcode(madd(*terms), bcode_names) if terms
                                              else f"np.zeros_like({dnext[s]})"))

    post: list[str] = [""]
    dx_per_step = bool(vjp.input_terms.get(cell.inputs[0]))
    dx_started = []

    def dx_op():
        """``=`` for the first contribution to d_x after the loop (when none came per step)."""
        op = "+=" if dx_per_step or dx_started else "="
        dx_started.append(True)
        return op
    post.append("# after the loop: each group's weight gradient (and a hoisted group's input")
    post.append("# gradient) in one GEMM over all T steps")
    grads: dict = {}
    for g in groups:
        n_rows = table.shape(g.products[0].weight)[-1]
        d = dgroup[id(g)]
        if g.hoisted:
            for p in g.products:
                if p.slot in secondary and id(g) not in shared_buffer:
                    post.append(f"{dslot[p.slot]}[...] = {dslot[secondary[p.slot]]}")
        if isinstance(g.operand, MatrixSymbol):
            base, time = split_name(g.operand.name)
            if base in cell.inputs:
                u_all = "x"
            elif base in cell.states:
                u_all = f"{store[base]}[:-1]" if time == "t-1" else f"{store[base]}[1:]"
            elif f"{base}[t]" in whole_b and time == "t":
                u_all = value_all[base]
            else:
                u_all = bcode(g.operand, whole_b)
        elif g.name in group_in:
            u_all = group_in[g.name]
        else:
            u_all = f"({bcode(g.operand, whole_b)})"
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
            else:
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
                                f"{bcode(term.left, wb)}.reshape(T * B, {_dim_code(term.left.shape[0], table)}).T @ "
                                f"{bcode(term.right, wb)}.reshape(T * B, {_dim_code(term.right.shape[0], table)})")
    for pname, terms in accum.items():
        grads.setdefault(pname, []).extend(terms)
    for pname in per_step_params:
        grads.setdefault(pname, []).append(alloc_grad(pname))
    # a view of a product's adjoint that nothing reads afterwards
    loop_b = [line for k, line in enumerate(loop_b)
              if not (line.strip().split(" = ")[0] in set(adjoint_names.values())
                      and " = d" in line and line.rstrip().endswith("[t]")
                      and not _word_used(line.strip().split(" = ")[0], loop_b[k + 1:]))]

    # --- assemble the backward body ----------------------------------------------------------
    body = [dims_line[0], dims_line[1]]
    body.append("d_outputs, d_final = _check_grads(cache, d_outputs, d_final_state)")
    used_params = sorted({p for p in cell.params if _word_used(names.param[p], loop_b + post)
                          or any(_word_used(names.param[p], v) for v in grads.values())},
                         key=cell.params.index)
    if used_params:
        body.append("# parameters read by the step's derivatives, in the input's dtype")
        for p in used_params:
            body.append(f'{names.param[p]} = np.asarray(params["{p}"], dtype=dtype)')
    body.append("# what the forward kept")
    for g in groups:
        if g.name in group_in:
            body.append(f'{group_in[g.name]} = cache["{group_in[g.name]}"]')
        if g.name in transient:
            continue
        body.append(f'{g.name} = cache["{g.name}"]')
        off = sp.Integer(0)
        for p in g.products:
            end = off + table.shape(p.weight)[0]
            body.append(f"{p.slot.name} = {g.name}[:, :, {off}:{end}]")
            off = end
    for q, _, _ in quantities:
        if q in store:
            body.append(f'{store[q]} = cache["{store[q]}"]')
    body.append("")
    body.append("# adjoints of the products, every step, side by side per GEMM group as in the forward")
    for g in sorted(groups, key=lambda g: id(g) in shared_buffer):
        ws = [p.weight for p in g.products]
        body.append(f"W_{g.name} = " + (f'np.asarray(params["{ws[0]}"], dtype=dtype)' if len(ws) == 1
                    else "np.concatenate([" + ", ".join(f'params["{w}"]' for w in ws)
                    + "], axis=0).astype(dtype)") + f"  # [{'; '.join(ws)}]")
        if id(g) in shared_buffer:
            h = shared_buffer[id(g)]
            body.append(f"{dgroup[id(g)]} = {dgroup[id(h)]}  # δ({text(g.operand)} products) = "
                        f"δ({text(h.operand)} products), slice for slice")
            continue
        body.append(f"{dgroup[id(g)]} = np.zeros((T, B, W_{g.name}.shape[0]), dtype=dtype)")
        off = sp.Integer(0)
        for p in g.products:
            end = off + table.shape(p.weight)[0]
            body.append(f"{dslot[p.slot]} = {dgroup[id(g)]}[:, :, {off}:{end}]")
            off = end
    if dx_per_step or not dx_started:
        body.append("d_x = np.zeros_like(x)")
    for pname in per_step_params:
        body.append(f"{alloc_grad(pname)} = np.zeros(np.shape(params[\"{pname}\"]), dtype=dtype)")
    body.append("# what step t+1 sends back to each state; at T, the final state's gradient")
    for s in cell.states:
        body.append(f'{dnext[s]} = d_final["{s}"]')
    loop_head = ["for t in reversed(range(T)):"]
    bind = []
    if _word_used("x_t", loop_b):
        bind.append("    x_t = x[t]")
    for q, _, _ in quantities:
        if q in cell.states:
            if _word_used(var[q], loop_b):
                bind.append(f"    {var[q]} = {store[q]}[t + 1]")
        elif _word_used(var[q], loop_b):
            bind.append(f"    {var[q]} = {value_all[q]}[t]")
    for s in cell.states:
        if _word_used(prev_b[s], loop_b):
            bind.append(f"    {prev_b[s]} = {store[s]}[t]")
    body.extend(loop_head + bind + loop_b)
    body.extend(post)
    body.append("d_params = {")
    for p in cell.params:
        terms = grads.get(p)
        body.append(f'    "{p}": ' + (" + ".join(terms) if terms
                                      else f'np.zeros(np.shape(params["{p}"]), dtype=dtype)') + ",")
    body.append("}")
    body.append("d_state0 = {" + ", ".join(f'"{s}": {dnext[s]}' for s in cell.states) + "}")
    body.append("return d_params, d_x, d_state0")
    return {"cached_body": _indent(cached), "backward_body": _indent(body)}


def alloc_grad(pname):
    return f"d_{pname}"


#: activations applied in place on a stored step
IN_PLACE = {"tanh": "np.tanh({v}, out={v})", "sigmoid": "_sigmoid_({v})",
            "relu": "np.maximum({v}, 0, out={v})"}


def _negative_term(t) -> bool:
    return isinstance(t, sp.MatMul) and t.args[0].is_number and t.args[0].is_negative


def _fused_plan(cell, table, unfused, vjp):
    """The forward's own plan (``plan(cell)``) when the cached forward may run it: the same
    products and temporaries as the unfused plan the backward walks, and no product whose buffer
    the fused step overwrites (a hoisted slice added in, a gate activated in place) is read by
    the backward. Else None."""
    fused = plan(cell, table=table)
    if [(n, e) for n, e, _ in fused.temps] != [(n, e) for n, e, _ in unfused.temps] or \
            [[p.slot for p in g.products] for g in fused.groups] != \
            [[p.slot for p in g.products] for g in unfused.groups]:
        return None
    overwritten = {p.slot for g in fused.groups if g.add_hoisted
                   for p in g.products[:g.add_hoisted[1]]}
    if not overwritten:
        return None
    return None if _read_symbols(vjp, unfused) & overwritten else fused


def _read_symbols(vjp, step_plan) -> set:
    """Every symbol the backward's expressions read (values the cached forward must keep)."""
    read = set()
    exprs = [e.expr for e in vjp.steps if not isinstance(e, tuple)]
    exprs += [t for d in (vjp.slot_terms, vjp.state_terms, vjp.input_terms) for ts in d.values()
              for t in ts]
    exprs += [x for ts in vjp.param_terms.values() for t in ts for x in (t.left, t.right)
              if x is not None]
    exprs += [g.operand for g in step_plan.groups]
    for e in exprs:
        read |= e.atoms(MatrixSymbol)
    return read


def _fused_lines(g, table, every_step=True):
    """After an in-loop GEMM of the fused plan: the hoisted slices added in, gates in place."""
    lines = []
    if not every_step:
        return [line.replace(f"{g.name}[t, :, ", f"{g.name}[:, ").replace(f"{g.name}[t]", g.name)
                for line in _fused_lines(g, table)]
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
        lines.append("    " + INPLACE[act].format(v=view)
                     + f"  # {', '.join(p.slot.name for p in g.products[k0:k1])} in place")
    return lines


def _into(expr, target, names) -> str:
    """``target = expr`` for a slice of a buffer, the last product or sum written straight into
    it (``np.multiply(a, b, out=…)``: no temporary to copy)."""
    if isinstance(expr, HadamardProduct):
        first = expr.args[0] if len(expr.args) == 2 else hadamard(*expr.args[:-1])
        return f"np.multiply({bcode(first, names)}, {bcode(expr.args[-1], names)}, out={target})"
    return f"{target} = {bcode(expr, names)}"


def _repeated_activations(vjp):
    """Activations of forward values the step's expressions read more than once (``tanh(c)``
    in the LSTM's ``do`` and ``dc``): computed once at the top of the step."""
    exprs = [e.expr for e in vjp.steps if not isinstance(e, tuple)]
    exprs += [t for ts in vjp.slot_terms.values() for t in ts]
    exprs += [t for ts in vjp.state_terms.values() for t in ts]
    exprs += [t for ts in vjp.input_terms.values() for t in ts]
    counts: dict = {}
    for e in exprs:
        for node in sp.preorder_traversal(e):
            if isinstance(node, Activation):
                counts[node] = counts.get(node, 0) + 1
    return [n for n, c in counts.items() if c > 1]


def _dim_code(n, table) -> str:
    """A placeholder size (``rows(h)``) as the dimension the shape table derived (``d_h``)."""
    subs = {}
    for s in n.free_symbols:
        m = re.match(r"^(rows|cols)\((.+)\)$", s.name)
        if m:
            shape = table.shape(m.group(2))
            subs[s] = shape[0] if m.group(1) == "rows" else (shape[1] if len(shape) > 1 else 1)
    return str(n.xreplace(subs))


def _rows(code):
    return code if code.isidentifier() else f"({code})"


def _ncode(expr, names):
    return bcode(expr, names)


def _indent(lines):
    return "\n".join(("    " + line) if line else "" for line in lines)
