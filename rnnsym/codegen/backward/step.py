"""The planned step walked back: its quantities, the backward walk over them (products as
leaves, in-loop GEMMs in order), and what the cached forward stores for the backward."""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp
from sympy import MatrixSymbol

from rnnsym.cells.nodes import Activation
from rnnsym.codegen.groups import gate_views
from rnnsym.codegen.plan import plan
from rnnsym.gradients.nodes import AdjointSymbol
from rnnsym.gradients.vjp import StepVJP

#: names the backward's code uses itself (user names that clash are renamed)
BACKWARD_RESERVED = {"cache", "d_outputs", "d_final_state", "d_final", "d_x", "d_params",
                     "d_state0", "_check_grads", "_forward_cached", "backward"}


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


@dataclass(eq=False)
class Step:
    """What every phase reads: the cell, the unfused plan and its walk, the stored quantities."""
    cell: object
    table: object
    names: object
    forward_code: dict
    plan: object                 # plan(cell, fuse=False): every product keeps its value
    fused: object                # the forward's fused plan when the cached forward may run it
    alloc: _Alloc
    tsym: dict                   # temporary -> its ``name[t]`` symbol
    quantities: list             # (name, rhs, kind), temporaries before their first reader
    shape_of: dict
    vjp: _PlannedVJP
    repeated: list               # activations the step's expressions read more than once
    inplace_gate: dict           # gate -> the product slot whose buffer holds its value
    transient: set               # in-loop groups whose buffer is one reused (B, ·) buffer
    var: dict                    # quantity -> its name in a step
    store: dict                  # quantity -> its (T, B, d) array
    value_all: dict              # quantity -> the array holding its value over T
    group_in: dict               # group -> its stored operand, every step

    @property
    def groups(self):
        return self.plan.groups

    @property
    def gate_views(self) -> dict:
        """Product slot -> (variable, comment) of each view holding an in-place gate over T."""
        if self.fused is None:
            return {}
        return gate_views(self.cell, self.fused, self.value_all, every=" (every step)")


def walk(cell, table, names, forward_code) -> Step:
    """Plan the step unfused, walk it back, and decide what the cached forward keeps."""
    sp_ = plan(cell, fuse=False, table=table)
    kinds = {e.name: e.kind for e in cell.equations}
    alloc = _Alloc(set(names.var.values()) | set(names.param.values()) | set(names.prev.values())
                   | {g.name for g in sp_.groups} | {f"W_{g.name}" for g in sp_.groups}
                   | {f"b_{g.name}" for g in sp_.groups}
                   | {p.slot.name for g in sp_.groups for p in g.products}
                   | {t[0] for t in sp_.temps} | {str(d) for d in table.dims} | BACKWARD_RESERVED
                   | {"np", "params", "x", "x_t", "state", "state0", "size", "T", "B", "t", "dtype",
                      "out", "_sigmoid", "_sigmoid_", "_check"})

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
    # a gate activated in place); else one (B, ·) buffer is reused, as in the forward
    read = _read_symbols(vjp, sp_)
    in_place_slots = set(inplace_gate.values())
    transient = {g.name for g in groups if not g.hoisted
                 and not any(p.slot in read or p.slot in in_place_slots for p in g.products)}

    # --- storage of every quantity over T ------------------------------------------------
    var = {}
    for q, _, kind in quantities:
        var[q] = names.var.get(q, q)
    store = {q: alloc(f"{var[q]}_all") for q, _, _ in quantities if q not in inplace_gate}
    # a gate activated in place: the view of its product's buffer, named after the gate
    value_all = {q: store.get(q) or alloc(f"{var[q]}_all") for q, _, _ in quantities}
    group_in = {}
    for g in groups:
        if not g.hoisted and not isinstance(g.operand, MatrixSymbol):
            group_in[g.name] = alloc(f"{g.name}_in")
    return Step(cell, table, names, forward_code, sp_, fused, alloc, tsym, quantities, shape_of,
                vjp, repeated, inplace_gate, transient, var, store, value_all, group_in)


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
