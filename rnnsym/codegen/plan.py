"""Plan one step of a cell for fast NumPy: fused GEMMs, hoisted input projections, CSE.

From the symbolic equations (column vectors, ``W v``) the planner finds every product of a
parameter matrix with an operand and groups the products by operand:

* products whose operand is an input (``W_xi x_t``) are *hoisted*: one GEMM over all T steps
  before the loop, with the bias vectors that are added to them folded in;
* products that share an in-loop operand (``W_hi h_{t-1}``, ``W_hf h_{t-1}``, …) are *fused*:
  one GEMM per step into a buffer that is reused across steps;
* subtrees that occur more than once are computed once (common sub-expressions).

The result is a :class:`StepPlan` the generator prints; nothing here writes code.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import sympy as sp
from sympy import MatAdd, MatMul, MatrixSymbol

from rnnsym.cells.cell import Cell, split_name
from rnnsym.cells.nodes import Activation, madd
from rnnsym.shapes import derive


@dataclass
class Product:
    weight: str                 # parameter name
    slot: MatrixSymbol          # symbol that stands for the product in the rewritten equations
    biases: list = field(default_factory=list)   # bias parameters folded in (hoisted only)


@dataclass
class Group:
    """Products that share one operand: one GEMM with the weights concatenated."""

    name: str                   # variable holding the GEMM result
    operand: sp.MatrixExpr
    hoisted: bool
    products: list = field(default_factory=list)
    add_hoisted: tuple = ()     # (hoisted Group, m): its first m slices are added in, once
    inplace: list = field(default_factory=list)   # (activation, k0, k1): applied in place


#: activations with an in-place NumPy form: name -> format string with {v} the view
INPLACE = {"tanh": "np.tanh({v}, out={v})", "sigmoid": "_sigmoid_({v})"}


@dataclass
class StepPlan:
    cell: Cell
    groups: list                # Group, in order of first use
    equations: list             # (name, rewritten rhs)
    temps: list                 # (name, expr, index of first equation using it)
    gemm_before: dict           # equation index -> [Group] to compute just before it


def _is_param(e, cell) -> bool:
    return isinstance(e, MatrixSymbol) and split_name(e.name)[1] is None and e.name in cell.params


def _is_hoistable(operand, cell) -> bool:
    """An operand that depends on inputs and parameters only can be computed for all t at once."""
    for s in operand.atoms(MatrixSymbol):
        base, time = split_name(s.name)
        if not (base in cell.inputs and time == "t") and not _is_param(s, cell):
            return False
    return True


def _operand_name(operand) -> str:
    """Short name of a product's operand for variable names: ``x``, ``h``, else ``u``."""
    if isinstance(operand, MatrixSymbol):
        return split_name(operand.name)[0]
    return "u"


def plan(cell: Cell, fuse: bool = True, table=None) -> StepPlan:
    """The step plan of ``cell``; ``fuse=False`` leaves out step 4 (hoisted slices added into
    the in-loop buffers, activations in place), so that every product keeps its own value: the
    forward that caches for the backward reads them."""
    table = derive(cell)
    table.check_determined()
    # 1. every (parameter) @ (operand) product, in written order
    products: list[tuple[str, sp.MatrixExpr, MatMul]] = []
    for eq in cell.equations:
        for node in sp.preorder_traversal(eq.rhs):
            if isinstance(node, MatMul):
                mats = [a for a in node.args if isinstance(a, sp.MatrixExpr)]
                scal = [a for a in node.args if not isinstance(a, sp.MatrixExpr)]
                if len(mats) == 2 and not scal and _is_param(mats[0], cell):
                    products.append((mats[0].name, mats[1], node))
    counts = Counter(p[2] for p in products)

    # 2. group them by operand
    groups: list[Group] = []
    slots: dict = {}
    used_names = set(cell.params) | set(cell.inputs) | {e.name for e in cell.equations}
    for weight, operand, node in products:
        if node in slots:
            continue
        group = next((g for g in groups if g.operand == operand), None)
        if group is None:
            hoisted = _is_hoistable(operand, cell)
            base = f"{_operand_name(operand)}W"
            name, k = base, 1
            while name in used_names or name in {g.name for g in groups}:
                k += 1
                name = f"{base}{k}"
            group = Group(name, operand, hoisted)
            groups.append(group)
        label = f"{weight}_{_operand_name(operand)}"
        while label in used_names:
            label += "_"
        used_names.add(label)
        slot = MatrixSymbol(label, *node.shape)
        slots[node] = slot
        group.products.append(Product(weight, slot))

    # 3. rewrite the equations: products → slots; bias vectors added to a hoisted product are
    #    folded into its GEMM (only where that product occurs once, so the fold is exact)
    by_slot = {p.slot: p for g in groups for p in g.products}
    foldable = {slots[node] for node, c in counts.items()
                if c == 1 and any(g.hoisted for g in groups if by_slot[slots[node]] in g.products)}
    vectors = {p for p in cell.params if table.shapes[p][1] == 1}

    def fold(add):
        terms = list(add.args)
        target = next((t for t in terms if t in foldable), None)
        if target is None:
            return add
        kept = []
        for t in terms:
            if t != target and isinstance(t, MatrixSymbol) and t.name in vectors:
                by_slot[target].biases.append(t.name)
            else:
                kept.append(t)
        return madd(*kept)

    equations = [(eq.name, eq.rhs.xreplace(slots).replace(lambda e: isinstance(e, MatAdd), fold))
                 for eq in cell.equations]

    # 4. per step, add the hoisted slices to the in-loop GEMM's buffer in one operation where
    #    every pre-activation is `W_x* x + W_h* h` (LSTM, GRU's r and z), then apply runs of
    #    the same activation in place on adjacent gate slices (one call for i and f)
    if fuse:
        equations = _pair_and_fuse(cell, table, groups, equations)

    # 5. common sub-expressions across equations, computed once
    equations, temps = _cse(equations, used_names | {g.name for g in groups})

    # 6. when to run each in-loop GEMM: just before the first equation that reads it, and before
    #    any GEMM whose operand reads it (an operand may itself contain a fused product)
    for g in groups:
        g.operand = g.operand.xreplace(slots)
    owner = {p.slot: g for g in groups for p in g.products}
    deps = {id(g): [owner[s] for s in g.operand.atoms(MatrixSymbol) if s in owner]
            for g in groups}
    exprs = [(i, e) for i, (_, e) in enumerate(equations)] + [(i, e) for _, e, i in temps]
    position = {}
    for g in groups:
        if not g.hoisted:
            gslots = {p.slot for p in g.products}
            # products read only inside another GEMM's operand are placed by the loop below
            position[id(g)] = min((i for i, e in exprs if e.atoms(MatrixSymbol) & gslots),
                                  default=len(equations))
    changed = True
    while changed:
        changed = False
        for g in groups:
            for d in deps[id(g)]:
                if not d.hoisted and not g.hoisted and position[id(d)] > position[id(g)]:
                    position[id(d)] = position[id(g)]
                    changed = True
    ordered, seen = [], set()

    def visit(g):
        if id(g) in seen:
            return
        seen.add(id(g))
        for d in deps[id(g)]:
            visit(d)
        ordered.append(g)
    for g in groups:
        visit(g)
    gemm_before: dict = {}
    for g in ordered:
        if not g.hoisted:
            gemm_before.setdefault(position[id(g)], []).append(g)
    groups = ordered            # a GEMM whose operand reads another's result comes after it
    return StepPlan(cell, groups, equations, temps, gemm_before)


def readout_after_loop(cell: Cell, step_plan: StepPlan) -> tuple[list, list]:
    """Readouts computed after the time loop, for all T steps at once: ``(readout names, their
    GEMM groups)``. A readout ``y = W_hy h_t + b_y`` depends on the new states only, and nothing
    in the step reads it, so its GEMM runs once over the (T·B, d_h) states of every step instead
    of once per step. It qualifies when its right-hand side reads only parameters, states at t
    and products of groups whose operand is a state at t and whose every product only such
    readouts read (no temporary, no other group's operand)."""
    states = set(cell.states)
    readers: dict = {}
    for name, rhs in step_plan.equations:
        for s in rhs.atoms(MatrixSymbol):
            readers.setdefault(s.name, set()).add(name)
    for _, expr, _ in step_plan.temps:
        for s in expr.atoms(MatrixSymbol):
            readers.setdefault(s.name, set()).add(None)
    for g in step_plan.groups:
        for s in g.operand.atoms(MatrixSymbol):
            readers.setdefault(s.name, set()).add(None)
    candidates = {r for r in cell.readouts if r not in states
                  and not readers.get(f"{r}[t]") and not readers.get(f"{r}[t-1]")}
    groups = [g for g in step_plan.groups if not g.hoisted and isinstance(g.operand, MatrixSymbol)
              and split_name(g.operand.name)[0] in states
              and split_name(g.operand.name)[1] == "t"
              and all(readers.get(p.slot.name, set()) <= candidates for p in g.products)]
    slots = {p.slot.name for g in groups for p in g.products}
    temps = {name for name, _, _ in step_plan.temps}
    readouts = []
    for name, rhs in step_plan.equations:
        if name not in candidates:
            continue
        ok, gemm = True, False
        for s in rhs.atoms(MatrixSymbol):
            base, time = split_name(s.name)
            if s.name in slots:
                gemm = True
            elif s.name in temps or not (_is_param(s, cell) or (base in states and time == "t")):
                ok = False
        if ok and gemm:
            readouts.append(name)
    groups = [g for g in groups if any(readers.get(p.slot.name, set()) & set(readouts)
                                       for p in g.products)
              and all(readers.get(p.slot.name, set()) <= set(readouts) for p in g.products)]
    return readouts, groups


def _pair_and_fuse(cell, table, groups, equations):
    occurrences = Counter(n for _, e in equations for n in sp.preorder_traversal(e)
                          if isinstance(n, MatrixSymbol))
    # the sum each single-use slot is a term of
    container = {t: n for _, e in equations for n in sp.preorder_traversal(e)
                 if isinstance(n, MatAdd) for t in n.args if isinstance(t, MatrixSymbol)}
    hoisted = [g for g in groups if g.hoisted]
    dropped: dict = {}                  # sum -> hoisted slots now added into the GEMM buffer
    for g in groups:
        if g.hoisted:
            continue
        for h in hoisted:
            m = 0
            while m < min(len(g.products), len(h.products)):
                a, b = h.products[m], g.products[m]
                if not (occurrences[a.slot] == 1 and occurrences[b.slot] == 1
                        and a.slot in container and container[a.slot] == container.get(b.slot)
                        and table.shape(a.weight)[0] == table.shape(b.weight)[0]):
                    break
                dropped.setdefault(container[a.slot], set()).add(a.slot)
                m += 1
            if m:
                g.add_hoisted = (h, m)
                break
    mapping = {add: madd(*[t for t in add.args if t not in gone]) for add, gone in dropped.items()}
    equations = [(n, e.xreplace(mapping)) for n, e in equations]

    # in-place activations: gates whose whole right-hand side is act(slot of a paired buffer)
    kinds = {e.name: e.kind for e in cell.equations}
    rewrite = {}
    for g in groups:
        if not g.add_hoisted:
            continue
        owner = {}
        for name, rhs in equations:
            if kinds[name] == "gate" and isinstance(rhs, Activation) and rhs.name in INPLACE \
                    and not rhs.params and rhs.arg in {p.slot for p in g.products[:g.add_hoisted[1]]}:
                owner[rhs.arg] = (name, rhs.name)
        k = 0
        while k < g.add_hoisted[1]:
            slot = g.products[k].slot
            if slot not in owner:
                k += 1
                continue
            act = owner[slot][1]
            k1 = k
            while k1 < g.add_hoisted[1] and owner.get(g.products[k1].slot, (None, None))[1] == act:
                rewrite[owner[g.products[k1].slot][0]] = g.products[k1].slot
                k1 += 1
            g.inplace.append((act, k, k1))
            k = k1
    return [(n, rewrite.get(n, e)) for n, e in equations]


def _cse(equations, used_names):
    """Name the non-trivial subtrees that occur more than once (in order of first use)."""
    def candidates(expr):
        for node in sp.preorder_traversal(expr):
            if isinstance(node, sp.MatrixExpr) and not isinstance(node, (MatrixSymbol, sp.OneMatrix)) \
                    and not (isinstance(node, MatMul) and node.args[0] == -1 and len(node.args) == 2):
                yield node

    counts = Counter(n for _, e in equations for n in candidates(e))
    repeated = [n for n, c in counts.items() if c > 1]
    if not repeated:
        return equations, []
    repeated.sort(key=lambda n: sum(1 for _ in sp.preorder_traversal(n)))   # inner ones first
    temps, mapping = [], {}
    for k, node in enumerate(repeated):
        name = f"tmp{k}"
        while name in used_names:
            name += "_"
        sym = MatrixSymbol(name, *node.shape)
        temps.append((name, node.xreplace(mapping), sym))
        mapping[node] = sym
    new_eqs = [(n, e.xreplace(mapping)) for n, e in equations]
    out = [(name, body, min(i for i, (_, e) in enumerate(new_eqs) if _uses(e, sym, temps)))
           for name, body, sym in temps]
    return new_eqs, out


def _uses(expr, sym, temps) -> bool:
    """Does ``expr`` read ``sym``, directly or through other temporaries?"""
    atoms = expr.atoms(MatrixSymbol)
    if sym in atoms:
        return True
    return any(s in atoms and _uses(b, sym, temps) for _, b, s in temps if s != sym)
