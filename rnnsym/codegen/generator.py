"""Turn a cell into a NumPy module: plan (plan.py) → print (printing/numpy.py) → template.

The module source is a pure function of the cell: no timestamps, no versions, sorted nothing
that isn't already ordered, so regenerating ``generated/`` is byte-stable.
"""
from __future__ import annotations

import re
import string
from importlib import resources

from sympy import MatrixSymbol

from rnnsym.cells.cell import Cell, split_name
from rnnsym.cells.nodes import Activation
from rnnsym.codegen.backward import BACKWARD_RESERVED, render_backward
from rnnsym.codegen.groups import WRITE_INTO, fused_lines, gate_views, group_lines, shape_tuple
from rnnsym.codegen.header import HEADER, _defaults, cell_call
from rnnsym.codegen.helpers import HELPERS
from rnnsym.codegen.plan import plan, readout_after_loop
from rnnsym.codegen.prune import drop_dead_assignments
from rnnsym.gradients.display import backward_text
from rnnsym.printing.numpy import numpy_code
from rnnsym.printing.text import equation_text
from rnnsym.shapes import derive

TEMPLATE = "forward.py.tmpl"
BACKWARD_TEMPLATE = "backward.py.tmpl"
RESERVED = {"np", "params", "x", "x_t", "state", "state0", "size", "T", "B", "t", "dtype", "out",
            "step", "forward", "_check", "_sigmoid", "_sigmoid_"} | BACKWARD_RESERVED


class _Names:
    """Python variable names of the quantities in the loop body."""

    def __init__(self, cell: Cell, step_plan, table=None):
        taken = (set(RESERVED) | {g.name for g in step_plan.groups} | {t[0] for t in step_plan.temps}
                 | {str(d) for d in (table or derive(cell)).dims} | {f"W_{g.name}" for g in step_plan.groups}
                 | {p.slot.name for g in step_plan.groups for p in g.products})
        self.taken = taken
        self.var = {}
        self.param = {}             # local names of parameters read in the loop
        for p in cell.params:
            v = p
            while v in taken:
                v += "_"
            self.param[p] = v
            taken.add(v)
        for q in (*cell.inputs, *(e.name for e in cell.equations)):
            v = q
            while v in taken:
                v += "_"
            self.var[q] = v
            taken.add(v)
        # inputs: the whole (T, B, d) array and its value at step t; one input keeps the
        # canonical x / x_t, several are x["u"] → u_seq / u_t
        if len(cell.inputs) == 1:
            self.seq, self.step = {cell.inputs[0]: "x"}, {cell.inputs[0]: "x_t"}
        else:
            self.seq, self.step = {}, {}
            for i in cell.inputs:
                for names, suffix in ((self.seq, "_seq"), (self.step, "_t")):
                    v = i + suffix
                    while v in taken:
                        v += "_"
                    names[i] = v
                    taken.add(v)
        # outputs: the (T, B, d) array of each quantity forward returns per step
        if len(cell.readouts) > 1:
            self.out = {}
            for r in cell.readouts:
                v = f"out_{r}"
                while v in taken:
                    v += "_"
                self.out[r] = v
                taken.add(v)
        else:
            self.out = {cell.output: "out"}
        # a state read (as t-1) after its own update needs its own name
        self.prev = {}
        for k, eq in enumerate(step_plan.equations):
            if eq[0] in cell.states:
                later = step_plan.equations[k + 1:]
                late_read = any(s.name == f"{eq[0]}[t-1]"
                                for _, e in later for s in e.atoms(MatrixSymbol))
                self.prev[eq[0]] = self.var[eq[0]] + "_prev" if late_read else self.var[eq[0]]

    def fresh(self, name: str) -> str:
        """``name``, or with ``_`` appended until no other variable has it; then taken."""
        while name in self.taken or name in self.var.values():
            name += "_"
        self.taken.add(name)
        return name

    def mapping(self, cell, step_plan) -> dict:
        m = {}
        for i in cell.inputs:
            m[f"{i}[t]"] = self.step[i]
        for e in cell.equations:
            m[f"{e.name}[t]"] = self.var[e.name]
        for s, v in self.prev.items():
            m[f"{s}[t-1]"] = v
        for p in cell.params:
            m[p] = self.param[p]
        for g in step_plan.groups:
            for prod in g.products:
                m[prod.slot.name] = f"{prod.slot.name}[t]" if g.hoisted else prod.slot.name
        for name, _, _ in step_plan.temps:
            m[name] = name
        return m


def render(cell: Cell, regen: str = "rnnsym generate --out generated", *,
           backward: bool = True) -> str:
    """The complete source of the generated module for ``cell``; ``backward=False`` leaves the
    backward out (the checker's diagnosis compiles many edited cells and runs only forwards)."""
    table = derive(cell)
    table.check_determined()
    from rnnsym.codegen.matrix import TEMPLATE as MATRIX_TEMPLATE, has_matrix_state, render_matrix
    if has_matrix_state(cell, table):       # a matrix state: written node by node (matrix.py)
        return render_matrix(cell, HEADER.format(call=cell_call(cell), template=MATRIX_TEMPLATE,
                                                 regen=regen))
    if not cell.inputs:
        raise ValueError(f"code generation needs at least one input, {cell.name} has none")
    sp_ = plan(cell, table=table)
    names = _Names(cell, sp_, table)
    code = names.mapping(cell, sp_)

    def dims_code(name):
        return ", ".join(shape_tuple(table, name))

    body: list[str] = []
    emit = body.append
    if len(cell.inputs) > 1:
        emit("# the inputs, each (T, B, d)")
        emit(", ".join(names.seq[i] for i in cell.inputs) + " = "
             + ", ".join(f'x["{i}"]' for i in cell.inputs))
    emit("# sizes, read off the arrays by _check")
    emit(", ".join(map(str, table.dims)) + " = " + ", ".join(f'size["{d}"]' for d in table.dims))
    # sizes that are formulas of the free ones (4*d_h of stacked gates): _check read them off
    # the arrays as they are, so check them against the formula here
    derived: dict = {}
    for q in (*cell.params, *cell.states):
        for s_ in table.shape(q):
            if not (s_.is_Symbol or s_.is_Integer):
                derived.setdefault(s_, []).append(q)
    for expr_, users in derived.items():
        emit(f'if size["{expr_}"] != {expr_}:')
        emit(f'    raise ValueError(f"{", ".join(users)}: expected {expr_} = {{{expr_}}} '
             f'({", ".join(f"{d} = {{{d}}}" for d in sorted(map(str, expr_.free_symbols)))}), '
             f'got {{size[\'{expr_}\']}}")')
    sizes_end = len(body)
    # parameters used directly in the loop
    in_loop = ([e for _, e in sp_.equations] + [e for _, e, _ in sp_.temps]
               + [g.operand for g in sp_.groups])
    direct = sorted({s.name for e in in_loop for s in e.atoms(MatrixSymbol) if s.name in cell.params},
                    key=cell.params.index)
    # hoisted operands read whole arrays: x for x[t], a hoisted product's (T, B, d) slice
    whole = {**code, **{f"{i}[t]": names.seq[i] for i in cell.inputs},
             **{p.slot.name: p.slot.name for g in sp_.groups if g.hoisted for p in g.products}}

    if direct:
        emit("# parameters the equations read directly, in the input's dtype")
        for p in direct:
            emit(f'{names.param[p]} = np.asarray(params["{p}"], dtype=dtype)')
    views = gate_views(cell, sp_, names.var)
    # readouts of the new states only (y = W_hy h + b_y): one GEMM over all T steps after the
    # loop, from the states of every step kept in (T, B, d) arrays
    late, late_groups = readout_after_loop(cell, sp_)
    late_rhs = {name: rhs for name, rhs in sp_.equations if name in late}
    kept = {}
    for s in cell.states:
        if any(a.name == f"{s}[t]" for rhs in late_rhs.values() for a in rhs.atoms(MatrixSymbol)) \
                or any(a.name == f"{s}[t]" for g in late_groups for a in g.operand.atoms(MatrixSymbol)):
            kept[s] = names.fresh(f"{names.var[s]}_all")
    into_array = {**{q: v for q, v in names.out.items() if q not in late}, **kept}
    for g in sp_.groups:
        if g not in late_groups:
            body.extend(group_lines(g, table, code, whole, seq=names.seq, views=views))

    emit("")
    emit("# states, and the output of every step" + (" (the states too, for the readout)"
                                                     if kept else ""))
    for s in cell.states:
        emit(f'{names.prev[s]} = state["{s}"]')
    for q, v in into_array.items():
        emit(f"{v} = np.empty((T, B, {dims_code(q)}), dtype=dtype)")
    # quantities that vary over the batch: those reading an input, a state or such a quantity
    batched = set(cell.inputs)
    for eq in cell.equations:
        reads = [split_name(a.name) for a in eq.rhs.atoms(MatrixSymbol)]
        if any(time == "t-1" or (time == "t" and base in batched) for base, time in reads):
            batched.add(eq.name)
    loop = ["for t in range(T):"]
    loop.extend(f"    {names.step[i]} = {names.seq[i]}[t]" for i in cell.inputs)
    for k, (name, rhs) in enumerate(sp_.equations):
        for g in sp_.gemm_before.get(k, []):
            if g in late_groups:
                continue
            loop.append(f"    np.matmul({numpy_code(g.operand, code)}, W_{g.name}, out={g.name})")
            loop.extend(fused_lines(g, table, every_step=False, views=views))
        for tname, texpr, first in sp_.temps:
            if first == k:
                loop.append(f"    {tname} = {numpy_code(texpr, code)}")
        eq = cell.equation(name)
        if isinstance(rhs, MatrixSymbol) and rhs.name in views:
            continue                # the gate is the view of the GEMM buffer it was computed in
        if name in late:
            continue                # after the loop
        if name in into_array and isinstance(rhs, Activation) and rhs.name in WRITE_INTO:
            # computed straight into the output array: no temporary, no copy
            loop.append("    " + WRITE_INTO[rhs.name].format(u=numpy_code(rhs.arg, code),
                                                             o=f"{into_array[name]}[t]")
                        + f"  # {eq.kind} {name}")
            loop.append(f"    {names.var[name]} = {into_array[name]}[t]")
        elif name in into_array:    # written straight into the output array, no copy
            loop.append(f"    {into_array[name]}[t] = {numpy_code(rhs, code)}  # {eq.kind} {name}")
            loop.append(f"    {names.var[name]} = {into_array[name]}[t]")
        elif name in cell.states and name not in batched:
            # reads parameters only: broadcast, so that the state keeps its (B, d) shape
            loop.append(f"    {names.var[name]} = np.broadcast_to({numpy_code(rhs, code)}, "
                        f"(B, {dims_code(name)})).copy()  # {eq.kind} {name}")
        else:
            loop.append(f"    {names.var[name]} = {numpy_code(rhs, code)}  # {eq.kind} {name}")
    for s in cell.states:
        if names.prev[s] != names.var[s]:
            loop.append(f"    {names.prev[s]} = {names.var[s]}")
    n_in = len(cell.inputs)
    unused = [k for k, i in enumerate(cell.inputs, start=1)
              if not any(re.search(rf"\b{names.step[i]}\b", line) for line in loop[1 + n_in:])]
    loop = [line for k, line in enumerate(loop) if k not in unused]
    body.extend(loop)
    late_whole = {**whole, **{f"{s}[t]": v for s, v in kept.items()},
                  **{p.slot.name: p.slot.name for g in late_groups for p in g.products}}
    for g in late_groups:
        body.extend(group_lines(g, table, code, late_whole, seq=kept, views=views, after_loop=True))
    for name in late:
        emit(f"{names.out[name]} = {numpy_code(late_rhs[name], late_whole)}  "
             f"# {cell.equation(name).kind} {name}, every step")
    # copies: a state may be a view of `out` or of a reused buffer
    final = ", ".join(f'"{s}": {names.prev[s]}.copy()' for s in cell.states)
    outs = next(iter(names.out.values())) if len(names.out) == 1 else \
        "{" + ", ".join(f'"{q}": {v}' for q, v in names.out.items()) + "}"
    body.append(f"return {outs}, {{{final}}}")

    state_doc = "{" + ", ".join(f'"{s}": (B, {", ".join(shape_tuple(table, s))})'
                               for s in cell.states) + "}"
    no_rule = _missing_backward_rule(cell)
    if len(cell.inputs) == 1 and len(names.out) == 1 and no_rule is None and backward:
        dims_line = body[:sizes_end]       # the sizes and their checks
        bw = render_backward(cell, table, names, code, dims_line)
        eq_bw = "\n".join("    " + line for line in backward_text(cell).splitlines())
        backward_src = string.Template(
            resources.files("rnnsym.codegen").joinpath("templates").joinpath(BACKWARD_TEMPLATE).read_text()
        ).substitute(cached_body=bw["cached_body"], backward_body=bw["backward_body"],
                     backward_equations=eq_bw, state_doc=state_doc, first_state=cell.states[0],
                     output_dim=", ".join(shape_tuple(table, cell.output)),
                     input_dim=", ".join(shape_tuple(table, cell.inputs[0])))
        gradients_doc = GRADIENTS_DOC
        cache_doc = CACHE_DOC
    elif no_rule is not None:       # a node without a backward rule (abs, max): forward only
        backward_src = NO_RULE_BACKWARD.format(reason=repr(f"backward: {no_rule}"))
        gradients_doc = f"Gradients: not generated ({no_rule})."
        cache_doc = ""
    else:       # the backward is generated for one input and one output array
        backward_src = NO_BACKWARD.format(inputs=", ".join(cell.inputs),
                                          outputs=", ".join(names.out))
        gradients_doc = "Gradients: not generated for several inputs or readouts."
        cache_doc = ""
    scanned = body + backward_src.splitlines()
    used_helpers = [h for h in HELPERS if any(h + "(" in line for line in scanned)]
    helpers = "".join("\n" + HELPERS[h] for h in used_helpers)

    eq_lines = "\n".join("    " + equation_text(e.name, e.rhs) for e in cell.equations)
    shape_table = "\n".join("    " + line for line in table.format().splitlines()
                            if not line.startswith("signature"))
    sub = dict(
        header=HEADER.format(call=cell_call(cell), template=TEMPLATE, regen=regen),
        title=cell.title,
        equations=eq_lines,
        shape_table=shape_table,
        signature=table.signature(),
        state_keys=", ".join(f'"{s}"' for s in cell.states),
        output=cell.output,
        param_shapes=_dict_literal({p: shape_tuple(table, p) for p in cell.params}),
        state_shapes=_dict_literal({s: shape_tuple(table, s) for s in cell.states}),
        input_shape=repr(shape_tuple(table, cell.inputs[0])),
        output_shape=repr(shape_tuple(table, cell.output)),
        input_shapes=repr({i: shape_tuple(table, i) for i in cell.inputs}),
        output_shapes=repr({q: shape_tuple(table, q) for q in names.out}),
        first_state=cell.states[0],
        **_io_docs(cell, table, names),
        **_orientation_doc(cell, table, sp_),
        state_doc=state_doc,
        body="\n".join(("    " + line) if line else "" for line in body),
        backward=backward_src,
        gradients_doc=gradients_doc,
        cache_doc=cache_doc,
        helpers=helpers,
    )
    tmpl = resources.files("rnnsym.codegen").joinpath("templates").joinpath(TEMPLATE).read_text()
    return drop_dead_assignments(string.Template(tmpl).substitute(sub))


GRADIENTS_DOC = """\
Gradients: ``outputs, final_state, cache = forward(params, x, state0, return_cache=True)``, then
``d_params, d_x, d_state0 = backward(params, cache, d_outputs, d_final_state)``."""
CACHE_DOC = """ With ``return_cache=True``: ``(outputs, final_state, cache)``,
    where cache holds every step's quantities for ``backward``."""
#: the backward of a cell with several inputs or readouts: not generated, and it says so
NO_BACKWARD = '''

def _forward_cached(params, x, state0=None):
    """Gradients are generated for cells with one input and one output array."""
    raise NotImplementedError("backward: rnnsym generates gradients for one input and one output "
                              "array; this cell has inputs {inputs} and outputs {outputs}")
'''


#: the backward of a cell with a node that has no backward rule: not generated, and it says why
NO_RULE_BACKWARD = '''

def _forward_cached(params, x, state0=None):
    """Gradients are not generated for this cell: see the module docstring."""
    raise NotImplementedError({reason})
'''


def _missing_backward_rule(cell: Cell):
    """Why the backward step of ``cell`` cannot be written (a node without a rule), or None."""
    from rnnsym.gradients.vjp import NoBackwardRule, step_vjp
    try:
        step_vjp(cell)
    except NoBackwardRule as e:
        return str(e)
    return None


def _io_docs(cell: Cell, table, names) -> dict:
    """The docstring phrases that say what ``x`` and ``outputs`` are: one array each, or dicts
    (several inputs: ``x = {"x": ..., "u": ...}``; several readouts: ``outputs = {"y": ...}``)."""
    def dims(q):
        return ", ".join(shape_tuple(table, q))

    if len(cell.inputs) == 1:
        i = cell.inputs[0]
        docs = dict(input_doc=f"``x`` is time-major, (T, B, {dims(i)})",
                    forward_input=f"``x`` (T, B, {dims(i)})",
                    step_input=f"``x_t`` (B, {dims(i)})", step_call="np.asarray(x_t)[None]")
    else:
        each = ", ".join(f'"{i}": (T, B, {dims(i)})' for i in cell.inputs)
        docs = dict(input_doc=f"``x`` is a dict of time-major inputs {{{each}}}",
                    forward_input=f"the inputs ``x`` = {{{each}}}",
                    step_input="``x_t``, a dict of (B, d) inputs",
                    step_call="{k: np.asarray(v)[None] for k, v in x_t.items()}")
    if len(names.out) == 1:
        q = next(iter(names.out))
        docs.update(output_doc=f"stacks the ``{q}`` of every step",
                    forward_output=f"(T, B, {dims(q)})")
    else:
        each = ", ".join(f'"{q}": (T, B, {dims(q)})' for q in names.out)
        docs.update(output_doc="is a dict of the readouts " + ", ".join(f"``{q}``" for q in names.out)
                    + " of every step", forward_output=f"{{{each}}}")
    return docs


def _orientation_doc(cell: Cell, table, step_plan) -> dict:
    """The docstring's example of the weights' orientation, with one of this cell's own weights:
    the first that multiplies an input (``W_xi`` is (d_h, d_in) and maps x to i), else the first
    weight matrix."""
    def eq_of(weight):
        return next((e.name for e in cell.equations
                     if any(s.name == weight for s in e.rhs.atoms(MatrixSymbol))), None)
    products = [(p, g) for g in step_plan.groups for p in g.products]
    products.sort(key=lambda pg: not (isinstance(pg[1].operand, MatrixSymbol)
                                      and split_name(pg[1].operand.name)[0] in cell.inputs))
    for p, g in products:
        if not isinstance(g.operand, MatrixSymbol) or len(table.shape(p.weight)) != 2:
            continue
        v = split_name(g.operand.name)[0]
        dims = ", ".join(shape_tuple(table, p.weight))
        into = f" to {eq_of(p.weight)}" if eq_of(p.weight) else ""
        return dict(orientation=f"``{p.weight}`` is ({dims}) and maps {v}{into}",
                    orientation_example=f"{v} @ {p.weight}.T")
    return dict(orientation="a (d_out, d_in) matrix maps a d_in vector to d_out",
                orientation_example="x @ W.T")


def _dict_literal(d: dict) -> str:
    if not d:
        return "{}"
    return "{\n" + "".join(f"    {k!r}: {v!r},\n" for k, v in d.items()) + "}"


def module_name(cell: Cell) -> str:
    """File stem of a built-in variant in ``generated/``: ``lstm_peepholes_clip``."""
    parts = [cell.name]
    defaults = _defaults(cell.name)
    for k, v in cell.options.items():
        if defaults.get(k) == v:
            continue
        if v is True:
            parts.append(k)
        elif isinstance(v, (tuple, list)):
            parts.append(k + "_" + "_".join(str(a) for a in v))
        else:
            parts.append(f"{k}_{v}" if not isinstance(v, str) else (v if k == "activation" else f"{k}_{v}"))
    return "_".join(parts).replace(".", "p").replace("-", "m").lower()
