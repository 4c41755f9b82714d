"""Diagnosis by the smallest edit: candidate bugs derived from a cell's equations.

For any symbolic cell, :func:`mutants` lists single edits of its equations:

=======================  ==================================================================
swap                     two parameters of the same derived shape exchanged (``W_xi``/``W_xf``),
                         or two equations' parameters position by position (gate blocks
                         read in another order)
transpose                a square weight used transposed (``W_hh.T @ h[t-1]``)
zero                     a bias vector left out (``+ b_h`` dropped), a layer norm's bias left
                         out, every bias of one family (``b_h*``) left out
ones                     a layer norm's gain left out
drop                     one term of a sum left out (``W_hi @ h[t-1]``)
activation               an activation replaced by another (tanh, sigmoid, relu, none; a sigmoid
                         by the ONNX/Keras hard sigmoids), a clip left out
complement               ``z`` and ``1 - z`` exchanged in one equation
time                     ``c[t]`` read instead of ``c[t-1]`` (or the reverse) in one equation
chunk                    the wrong block of a stacked ``chunk`` (one gate, or two exchanged)
constant                 ``+ 1`` added to a sigmoid gate's pre-activation (a forget bias)
=======================  ==================================================================

Parameter edits (swap, transpose, zero, ones) run the cell's own generated module on edited
parameters; structural edits are compiled with the code generator (``rnnsym.compile``, cached
by the edited cell). Each is run on the shrunk counterexample; the edits whose output the
target's matches within the edit's own backward-error tolerance are the diagnosis, printed as
the edited equation (``h[t] = z[t] * n[t] + (1 - z[t]) * h[t-1]  (instead of ...)``). The
gradient edits (a detached state, a clipped gradient, a missing accumulation) are in
``rnnsym.conformance.cell_gradients``.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import sympy as sp
from sympy import MatAdd, MatMul, MatrixSymbol, OneMatrix, Transpose

from rnnsym.cells.cell import Cell, now, prev
from rnnsym.cells.nodes import Activation, Chunk, LayerNorm, madd, one_minus
from rnnsym.conformance.compare import compare_flat

#: activations an activation may be replaced by (None: left out)
SWAP_ACTIVATIONS = ("tanh", "sigmoid", "relu", None)
#: what a sigmoid may be replaced by besides: the hard sigmoids frameworks use
HARD_SIGMOIDS = (("a hard sigmoid clip(0.2 u + 0.5, 0, 1) (ONNX HardSigmoid, Keras 2)",
                  (sp.Rational(1, 5), sp.Rational(1, 2))),
                 ("a hard sigmoid clip(u/6 + 1/2, 0, 1) (Keras 3)",
                  (sp.Rational(1, 6), sp.Rational(1, 2))))


@dataclass
class Mutant:
    """One edit: ``kind`` (table above), the edited equations ``(name, new rhs)``, and either a
    parameter transform (``params``) or an edited ``cell`` to compile."""

    kind: str
    what: str
    edited: tuple
    params: Optional[Callable] = None
    cell: Optional[Cell] = None

    def describe(self, original: Cell) -> str:
        from rnnsym.printing.text import equation_text
        lines = []
        for name, rhs in self.edited:
            old = equation_text(name, original.equation(name).rhs)
            lines.append(f"{equation_text(name, rhs)}  (instead of {old})")
        return f"{self.what}: " + "; ".join(lines) if lines else self.what


# --- tree edits -----------------------------------------------------------------------------
def _rebuild(node, args):
    if isinstance(node, (MatAdd, MatMul, sp.HadamardProduct)):
        return node.func(*args, evaluate=False)
    if isinstance(node, (LayerNorm, Chunk)):
        return sp.Basic.__new__(type(node), *args)
    return node.func(*args)


def _positions(expr, path=()):
    """Every (path, node) of a tree, preorder."""
    yield path, expr
    if isinstance(expr, (MatrixSymbol, OneMatrix)) or not expr.args:
        return
    for k, arg in enumerate(expr.args):
        if isinstance(arg, sp.Basic):
            yield from _positions(arg, path + (k,))


def _replace(expr, path, new):
    if not path:
        return new
    k = path[0]
    args = list(expr.args)
    args[k] = _replace(args[k], path[1:], new)
    return _rebuild(expr, args)


def _remove_param(expr, name: str):
    """``expr`` without the parameter ``name`` as a term of a sum or a layer norm's gain/bias
    (for display: the parameter set to 0, or 1 for a gain)."""
    if isinstance(expr, (MatrixSymbol, OneMatrix)) or not expr.args:
        return expr
    if isinstance(expr, LayerNorm):
        arg, gain, bias, eps = expr.args
        gain = sp.S.One if isinstance(gain, MatrixSymbol) and gain.name == name else gain
        bias = sp.S.Zero if isinstance(bias, MatrixSymbol) and bias.name == name else bias
        return sp.Basic.__new__(LayerNorm, _remove_param(arg, name), gain, bias, eps)
    args = [a for a in expr.args if not (isinstance(expr, MatAdd) and isinstance(a, MatrixSymbol)
                                         and a.name == name)]
    args = [_remove_param(a, name) if isinstance(a, sp.Basic) else a for a in args]
    if isinstance(expr, MatAdd) and len(args) == 1:
        return args[0]
    return _rebuild(expr, args)


def _uses(expr, name: str) -> bool:
    return any(isinstance(s, MatrixSymbol) and s.name == name for s in expr.atoms(MatrixSymbol))


def _edited_cell(cell: Cell, name, rhs=None) -> Cell:
    """``cell`` with equation ``name`` given ``rhs`` (or ``name`` a dict of them)."""
    new = name if isinstance(name, dict) else {name: rhs}
    eqs = [(e.name, e.kind, new.get(e.name, e.rhs)) for e in cell.equations]
    used = {s.name for _, _, r in eqs for s in r.atoms(MatrixSymbol)}
    params = [p for p in cell.params if p in used]
    return Cell(name=cell.name, title=cell.title + " (edited)", inputs=cell.inputs,
                equations=tuple(type(cell.equations[0])(n, k, r) for n, k, r in eqs),
                params=tuple(params), dim_names=cell.dim_names,
                soft_dim_names=cell.soft_dim_names, equal_dims=cell.equal_dims,
                options=cell.options)


# --- the candidates -------------------------------------------------------------------------
def param_mutants(cell: Cell, table) -> list:
    """Edits of the parameters only: swaps, transposes, left-out biases and gains."""
    from rnnsym.frameworks.cell_api import bias_params
    out = []
    shapes = {p: table.shapes[p] for p in cell.params}
    for a, b in itertools.combinations(cell.params, 2):
        if shapes[a] == shapes[b]:
            edited = tuple((e.name, e.rhs.xreplace({_sym(cell, a): _sym(cell, b),
                                                    _sym(cell, b): _sym(cell, a)}))
                           for e in cell.equations if _uses(e.rhs, a) or _uses(e.rhs, b))
            out.append(Mutant("swap", f"{a} and {b} exchanged", edited,
                              params=lambda p, a=a, b=b: {**p, a: p[b], b: p[a]}))
    for p in cell.params:
        r, c = shapes[p]
        if r == c and c != 1:
            edited = tuple((e.name, e.rhs.xreplace({_sym(cell, p): Transpose(_sym(cell, p))}))
                           for e in cell.equations if _uses(e.rhs, p))
            out.append(Mutant("transpose", f"{p} transposed", edited,
                              params=lambda q, p=p: {**q, p: q[p].T}))
    out += group_mutants(cell, shapes)
    gains = {e.args[1].name for eq in cell.equations for _, e in _positions(eq.rhs)
             if isinstance(e, LayerNorm) and isinstance(e.args[1], MatrixSymbol)}
    lnbias = {e.args[2].name for eq in cell.equations for _, e in _positions(eq.rhs)
              if isinstance(e, LayerNorm) and isinstance(e.args[2], MatrixSymbol)}
    for p in list(bias_params(cell)) + sorted(lnbias):
        edited = tuple((e.name, _remove_param(e.rhs, p)) for e in cell.equations
                       if _uses(e.rhs, p))
        what = f"the layer norm's bias {p} left out" if p in lnbias else f"the bias {p} left out"
        out.append(Mutant("zero", what, edited,
                          params=lambda q, p=p: {**q, p: np.zeros_like(q[p])}))
    for p in sorted(gains):
        edited = tuple((e.name, _remove_param(e.rhs, p)) for e in cell.equations
                       if _uses(e.rhs, p))
        out.append(Mutant("ones", f"the layer norm's gain {p} left out", edited,
                          params=lambda q, p=p: {**q, p: np.ones_like(q[p])}))
    return out


def _params_in(expr, cell: Cell) -> list:
    """The parameters of ``expr`` in written order."""
    from rnnsym.cells.cell import _ordered_symbols
    return [s.name for s in _ordered_symbols(expr) if s.name in cell.params]


def group_mutants(cell: Cell, shapes: dict) -> list:
    """Edits of whole groups of parameters: two equations' parameters exchanged position by
    position (a stacked weight's gate blocks read in another order), and every bias of one
    family left out (``b_h*``: the second bias vector forgotten)."""
    from rnnsym.frameworks.cell_api import bias_params
    out = []
    groups = [(e, _params_in(e.rhs, cell)) for e in cell.equations]
    for (e1, p1), (e2, p2) in itertools.combinations(groups, 2):
        if len(p1) >= 2 and len(p1) == len(p2) and not set(p1) & set(p2) and \
                all(shapes[a] == shapes[b] for a, b in zip(p1, p2)):
            swap = {**dict(zip(p1, p2)), **dict(zip(p2, p1))}
            rules = {_sym(cell, a): _sym(cell, b) for a, b in swap.items()}
            edited = ((e1.name, e1.rhs.xreplace(rules)), (e2.name, e2.rhs.xreplace(rules)))
            out.append(Mutant("swap", f"the parameters of {e1.name} and {e2.name} exchanged "
                              "(their blocks read in each other's place)", edited,
                              params=lambda p, swap=swap: {**p, **{a: p[b] for a, b in
                                                                   swap.items()}}))
    families: dict = {}
    for b in bias_params(cell):
        families.setdefault(b[:-1], []).append(b)
    for prefix, members in families.items():
        if len(members) >= 2 and len(members) < len(bias_params(cell)):
            edited = []
            for e in cell.equations:
                rhs = e.rhs
                for b in members:
                    rhs = _remove_param(rhs, b) if _uses(rhs, b) else rhs
                if rhs != e.rhs:
                    edited.append((e.name, rhs))
            out.append(Mutant("zero", f"every {prefix}* bias left out ({', '.join(members)})",
                              tuple(edited), params=lambda q, m=tuple(members): {
                                  **q, **{b: np.zeros_like(q[b]) for b in m}}))
    return out


def _sym(cell: Cell, name: str):
    for e in cell.equations:
        for s in e.rhs.atoms(MatrixSymbol):
            if s.name == name:
                return s
    raise KeyError(name)


def structural_mutants(cell: Cell) -> list:
    """Edits of the equations' structure (compiled): terms, activations, complements, time
    indices, chunk blocks, a constant."""
    from rnnsym.frameworks.cell_api import bias_params
    biases = set(bias_params(cell))
    out = []
    assigned = []
    for eq in cell.equations:
        rhs = eq.rhs
        for path, node in _positions(rhs):
            if isinstance(node, MatAdd) and len(node.args) >= 2:
                for k, term in enumerate(node.args):
                    if isinstance(term, MatrixSymbol) and term.name in biases:
                        continue            # a parameter edit ("zero")
                    rest = [a for j, a in enumerate(node.args) if j != k]
                    new = rest[0] if len(rest) == 1 else madd(*rest)
                    out.append(("drop", f"a term left out of {eq.name}", eq.name,
                                _replace(rhs, path, new)))
            if isinstance(node, Activation) and node.name == "clip":
                out.append(("activation", f"the clip left out in {eq.name}", eq.name,
                            _replace(rhs, path, node.arg)))
            if isinstance(node, MatMul) and node.args[0].is_number and len(node.args) == 2:
                out.append(("drop", f"the factor {node.args[0]} left out in {eq.name}",
                            eq.name, _replace(rhs, path, node.args[1])))
            if isinstance(node, Activation) and not node.params:
                for other in SWAP_ACTIVATIONS:
                    if other == node.name:
                        continue
                    new = node.arg if other is None else Activation(other, node.arg)
                    what = (f"{node.name} left out" if other is None else
                            f"{other} instead of {node.name}") + f" in {eq.name}"
                    out.append(("activation", what, eq.name, _replace(rhs, path, new)))
                if node.name == "sigmoid":
                    for label, args in HARD_SIGMOIDS:
                        out.append(("activation", f"{label} instead of sigmoid in {eq.name}",
                                    eq.name, _replace(rhs, path,
                                                      Activation("hardsigmoid", node.arg, *args))))
                    new = Activation("sigmoid", madd(node.arg, OneMatrix(*node.arg.shape)))
                    out.append(("constant", f"1 added to {eq.name}'s pre-activation", eq.name,
                                _replace(rhs, path, new)))
            if isinstance(node, Chunk):
                for k in range(node.count):
                    if k != node.index:
                        new = sp.Basic.__new__(Chunk, node.arg, sp.Integer(k), node.args[2])
                        out.append(("chunk", f"block {k} instead of {node.index} in {eq.name}",
                                    eq.name, _replace(rhs, path, new)))
        for g in assigned:
            z = now(g)
            if z in rhs.atoms(MatrixSymbol):
                new = rhs.xreplace({one_minus(z): z, z: one_minus(z)})
                if new != rhs:
                    out.append(("complement", f"{g} and 1 - {g} exchanged in {eq.name}",
                                eq.name, new))
        for s in cell.states:
            if prev(s) in rhs.atoms(MatrixSymbol) and s in assigned:
                out.append(("time", f"{s}[t] instead of {s}[t-1] in {eq.name}", eq.name,
                            rhs.xreplace({prev(s): now(s)})))
            if now(s) in rhs.atoms(MatrixSymbol):
                out.append(("time", f"{s}[t-1] instead of {s}[t] in {eq.name}", eq.name,
                            rhs.xreplace({now(s): prev(s)})))
        assigned.append(eq.name)
    mutants = [Mutant(kind, what, ((name, new),), cell=_edited_cell(cell, name, new))
               for kind, what, name, new in out]
    sigmoids = [e.name for e in cell.equations for _, n in _positions(e.rhs)
                if isinstance(n, Activation) and n.name == "sigmoid"]
    if len(sigmoids) >= 2:        # a framework's own sigmoid: every gate at once
        for label, args in HARD_SIGMOIDS:
            def hard(expr, args=args):
                if isinstance(expr, Activation) and expr.name == "sigmoid":
                    return Activation("hardsigmoid", hard(expr.arg), *args)
                if isinstance(expr, (MatrixSymbol, OneMatrix)) or not expr.args:
                    return expr
                return _rebuild(expr, [hard(a) if isinstance(a, sp.Basic) else a
                                       for a in expr.args])
            new = {e.name: hard(e.rhs) for e in cell.equations if e.name in sigmoids}
            mutants.append(Mutant("activation", f"{label} instead of every sigmoid",
                                  tuple(new.items()), cell=_edited_cell(cell, new)))
    chunks = [(e.name, p, n) for e in cell.equations for p, n in _positions(e.rhs)
              if isinstance(n, Chunk)]
    for (e1, p1, n1), (e2, p2, n2) in itertools.combinations(chunks, 2):
        if n1.arg == n2.arg and n1.count == n2.count and e1 != e2:
            r1 = _replace(cell.equation(e1).rhs, p1,
                          sp.Basic.__new__(Chunk, n1.arg, n2.args[1], n1.args[2]))
            r2 = _replace(cell.equation(e2).rhs, p2,
                          sp.Basic.__new__(Chunk, n2.arg, n1.args[1], n2.args[2]))
            edited = _edited_cell(_edited_cell(cell, e1, r1), e2, r2)
            mutants.append(Mutant("chunk", f"the blocks of {e1} and {e2} exchanged",
                                  ((e1, r1), (e2, r2)), cell=edited))
    return mutants


def mutants(cell: Cell, table=None) -> list:
    """Every single edit of ``cell`` (module docstring), parameter edits first."""
    table = table or cell.shapes()
    return param_mutants(cell, table) + structural_mutants(cell)


# --- running them ---------------------------------------------------------------------------
def mutant_forward(mutant: Mutant, module):
    """The canonical forward computing ``mutant`` (None when the generator cannot write it)."""
    if mutant.params is not None:
        def forward(params, x, state0=None, fn=module.forward, edit=mutant.params):
            return fn(edit(params), x, state0)
        return forward
    from rnnsym.codegen.compile import compile_cell
    try:
        edited = compile_cell(mutant.cell, backward=False)
    except Exception:  # noqa: BLE001 - an edit the generator (or shapes) cannot take
        return None
    keep = set(edited.PARAM_SHAPES)

    def forward(params, x, state0=None, fn=edited.forward):
        return fn({k: v for k, v in params.items() if k in keep}, x, state0)
    return forward


def fitting(cell: Cell, module, outcome, candidates) -> list:
    """The candidates whose output the target's matches (``outcome.got``) within their own
    tolerance: first a cheap screen against the correct oracle's tolerance (x 100), then
    the full test."""
    from rnnsym.conformance.cell_oracle import canonical_params, cell_tolerance, runner
    case = outcome.case
    got = {k: v for k, v in outcome.got.items() if k == "output" or k.endswith("_n")}
    params = canonical_params(cell, case.config, case.values)
    screen = {k: 100 * v + 1e-300 for k, v in outcome.tolerance.arrays.items()}
    found = []
    for mutant in candidates:
        forward = mutant_forward(mutant, module)
        if forward is None:
            continue
        run = runner(module, case, forward)
        try:
            with np.errstate(all="ignore"):
                expected = run(params, case.x, case.state0)
                if any(np.shape(expected[k]) != np.shape(got[k]) for k in got) or \
                        compare_flat(expected, got, screen):
                    continue
                tol = cell_tolerance(case.config, run, params, case.x, case.state0, expected)
        except Exception:  # noqa: BLE001 - an edit its generated code cannot run is no fit
            continue
        if not compare_flat(expected, got, tol.arrays):
            found.append(mutant)
    return found


def relative(cell: Cell, case, target, seed: int = 12345, timeout=None):
    """An outcome-like object for a bigger relative of ``case`` (at least 3 steps, an initial
    state, fixed lengths; the same sizes and features otherwise) with the target's output, or
    None if the target fails there. The shrunk counterexample is often too small to tell edits
    apart (one step from a zero state: ``h[t-1]`` is zero, so is any term that reads it).
    The target is called as in the search (its worker, ``timeout``)."""
    from rnnsym.conformance.cases import Case
    from rnnsym.conformance.cell_oracle import expected_for
    from rnnsym.conformance.target import TargetTimeout, limited_call
    config = case.config.__class__(**{**case.config.__dict__, "T": max(case.config.T, 3),
                                      "initial_state": True})
    rng = np.random.default_rng(seed)
    dtype = np.dtype(config.dtype)
    shapes = cell.shapes().concrete(**dict(config.dims))
    values = {k: rng.uniform(-1, 1, np.shape(v)).astype(dtype) for k, v in case.values.items()}
    x = rng.uniform(-1, 1, (config.T, config.B) + shapes[cell.inputs[0]]).astype(dtype)
    state0 = {s: rng.uniform(-1, 1, (config.B,) + shapes[s]).astype(dtype) for s in cell.states}
    big = Case(config, values, x, state0)
    try:
        got = limited_call(target, "run", (config, values, x, state0), timeout=timeout)
    except (Exception, TargetTimeout):  # noqa: BLE001 - no relative: keep every edit that fits
        return None
    from rnnsym.conformance.target import Outcome
    oracle = expected_for(compile_module(cell), cell, big)
    if oracle is None:
        return None
    outcome = Outcome(big, *oracle)
    outcome.got = got
    return outcome


def compile_module(cell: Cell):
    from rnnsym.codegen.compile import compile_cell
    return compile_cell(cell)


def diagnose_cell(cell: Cell, module, outcome, target=None, timeout=None) -> list:
    """The diagnoses of a failing outcome: the single edits that reproduce it, printed. With
    the ``target``, several fitting edits are told apart on a bigger relative of the case
    (:func:`relative`): only those that fit there too are kept (if any does)."""
    if outcome.kind == "wrong gradients":
        from rnnsym.conformance.cell_gradients import diagnose_gradients
        return diagnose_gradients(cell, module, outcome)
    table = cell.shapes()
    # parameter edits first (they rerun the cell's own module); the structural ones are
    # compiled only when none of those fits
    found = fitting(cell, module, outcome, param_mutants(cell, table)) or \
        fitting(cell, module, outcome, structural_mutants(cell))
    if len(found) > 1 and target is not None:
        big = relative(cell, outcome.case, target, timeout=timeout)
        if big is not None:
            kept = fitting(cell, module, big, found)
            found = kept or found
    return [f"matches the cell with one edit: {m.describe(cell)}" for m in found]
