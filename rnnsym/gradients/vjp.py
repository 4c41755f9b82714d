"""Reverse mode over one step's equations: the vector-Jacobian products, by rules per node.

Given the adjoints of a step's outputs (the upstream ``∂L/∂y_t``, and ``δ_{t+1} s_t`` that step
``t+1`` sends back to each state), :class:`StepVJP` walks the equations last to first and each
right-hand side top-down, and says what flows into every leaf:

=====================  ===========================================================================
node                    rule (``δ`` is the adjoint arriving at the node)
=====================  ===========================================================================
``a + b + …``          each term gets ``δ``
``c · A R``            ``R`` gets ``c Aᵀ δ``; a parameter matrix ``A`` gets ``Σ_t c δ Rᵀ``
``a ⊙ b ⊙ …``          ``a`` gets ``δ ⊙ b ⊙ …`` (each factor the product of the others)
``f(u)``               ``u`` gets ``δ ⊙ f'(u)``, with ``f'`` written from ``f(u)`` (see nodes.py);
                       clip: ``𝟙[|clip(u)| < a]``, zero outside the clip range
``1``, numbers          nothing
=====================  ===========================================================================

Leaves: a quantity computed earlier in the step adds to its own adjoint (assigned when the walk
reaches its equation), a previous state ``s_{t-1}`` to what this step sends back (``δ_t s_{t-1}``),
the input to ``∂L/∂x_t``, a parameter to its gradient, summed over t (and over the batch).

The walk names an adjoint (``δa_{h,t}`` for the argument of an equation's top activation, the
conventional pre-activation) wherever it would otherwise be written twice. Subclasses (the code
generator) add leaves of their own through :meth:`StepVJP.leaf` and hooks after each equation.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp
from sympy import HadamardProduct, MatAdd, MatMul, MatrixExpr, MatrixSymbol, OneMatrix, Transpose

from rnnsym.cells.cell import split_name
from rnnsym.cells.nodes import Activation, hadamard, madd, mmul
from rnnsym.errors import RnnsymError
from rnnsym.gradients.nodes import AdjointSymbol, FeatureMean, InvStd, Unchunk, derivative


class NoBackwardRule(RnnsymError, NotImplementedError):
    """A node that rnnsym cannot differentiate (yet); the message names the node and equation."""


@dataclass(frozen=True)
class ParamTerm:
    """One term of a parameter's gradient, summed over t and the batch: ``left rightᵀ`` (``outer``)
    or ``left`` (``sum``; elementwise, for vectors)."""

    kind: str
    left: MatrixExpr
    right: MatrixExpr | None = None


@dataclass
class Assign:
    """``target = expr`` in the backward step (target an :class:`AdjointSymbol`)."""

    target: AdjointSymbol
    expr: MatrixExpr
    equation: str = ""


@dataclass
class StepVJP:
    """Reverse-mode walk over ``equations`` (``(name, rhs)`` pairs in evaluation order).

    Attributes after :meth:`run`:
        steps: :class:`Assign` (and subclass hook) entries, in the order the backward runs them.
        states: ``{state: [terms]}`` flowing into ``s_{t-1}``; inputs: ``{input: [terms]}`` into
            ``x_t``; params: ``{param: [ParamTerm]}``.
    """

    equations: list
    params: set
    inputs: set
    states: tuple
    steps: list = field(default_factory=list)
    pending: dict = field(default_factory=dict)
    state_terms: dict = field(default_factory=dict)
    input_terms: dict = field(default_factory=dict)
    param_terms: dict = field(default_factory=dict)
    _counter: dict = field(default_factory=dict)

    # --- driving ---------------------------------------------------------------------------
    def seed(self, label: str, term):
        """Add ``term`` to the adjoint of quantity ``label`` (``h[t]``) before the walk."""
        self.pending.setdefault(label, []).append(term)

    def run(self):
        for name, rhs in reversed(self.equations):
            terms = self.pending.pop(f"{name}[t]", [])
            if terms:
                adj = self.assign(AdjointSymbol.of(_sym(name, rhs), "d"), factored(terms), name)
                self.propagate(rhs, adj, name, top=True)
            self.after_equation(name)
        return self

    def after_equation(self, name):
        """Hook: called once the walk has passed equation ``name`` (code generation)."""

    def assign(self, target: AdjointSymbol, expr, equation: str = "") -> AdjointSymbol:
        self.steps.append(Assign(target, expr, equation))
        return target

    def fresh(self, equation: str, shape) -> AdjointSymbol:
        """A named adjoint of an inner node of ``equation``: ``a_h``, then ``a2_h``, ``a3_h``..."""
        k = self._counter.get(equation, 0) + 1
        self._counter[equation] = k
        label = f"a{'' if k == 1 else k}_{equation}[t]"
        return AdjointSymbol.of(MatrixSymbol(label, *shape), "d")

    def named(self, adj, equation, node):
        """``adj`` itself if it is a symbol, else a fresh named adjoint holding it."""
        if isinstance(adj, MatrixSymbol):
            return adj
        return self.assign(self.fresh(equation, node.shape), adj, equation)

    # --- the rules -------------------------------------------------------------------------
    def propagate(self, node, adj, eq, top=False):
        if isinstance(node, MatrixSymbol):
            return self.leaf(node, adj, eq)
        if isinstance(node, OneMatrix) or not isinstance(node, MatrixExpr):
            return None
        if isinstance(node, MatAdd):
            live = [t for t in node.args if _depends(t)]
            if len(live) > 1:
                adj = self.named(adj, eq, node)
            for t in live:
                self.propagate(t, adj, eq)
            return None
        if isinstance(node, MatMul):
            return self._matmul(node, adj, eq)
        if isinstance(node, HadamardProduct):
            factors = list(node.args)
            live = [k for k, f in enumerate(factors) if _depends(f)]
            if len(live) > 1:
                adj = self.named(adj, eq, node)
            for k in live:
                others = factors[:k] + factors[k + 1:]
                self.propagate(factors[k], _hadamard(adj, *others), eq)
            return None
        if isinstance(node, Activation):
            y = sp.MatrixSymbol(f"{eq}[t]", *node.shape) if top else node
            try:
                d = derivative(node.name, y, node.params)
            except ValueError:      # abs: its derivative is not a function of its output
                raise NoBackwardRule(f"no backward rule for {node.name} (in equation {eq}: its "
                                     "derivative is not written from its output)") from None
            if d is None:
                inner = adj
            elif d == 0:
                return None
            elif isinstance(d, MatrixExpr):
                inner = _hadamard(adj, d)
            else:
                inner = _scale(d, adj)
            if not _depends(node.arg):
                return None
            if top or not isinstance(node.arg, MatrixSymbol):
                inner = self.assign(self.fresh(eq, node.shape), inner, eq)
            return self.propagate(node.arg, inner, eq)
        rule = getattr(self, f"_rule_{type(node).__name__}", None)
        if rule is None:
            raise NoBackwardRule(f"no backward rule for {type(node).__name__} (in equation {eq}: "
                                 f"{node})")
        return rule(node, adj, eq)

    # --- normalisation, division, blocks (rnnsym.cells.nodes) ----------------------------
    def _rule_LayerNorm(self, node, adj, eq):
        """``y = n̂ ⊙ g + b`` with ``n̂ = (u − mean u) / s``, ``s = sqrt(var u + eps)``:
        ``b`` gets ``δ``, ``g`` gets ``δ ⊙ n̂``, and with ``δn̂ = δ ⊙ g``,
        ``u`` gets ``(δn̂ − mean(δn̂) − n̂ ⊙ mean(δn̂ ⊙ n̂)) / s``."""
        norm = type(node)(node.arg, None, None, node.eps)
        live = [v for v in (node.gain, node.bias) if v is not None and _depends(v)]
        if live or _depends(node.arg):
            adj = self.named(adj, eq, node)
        if node.bias is not None and _depends(node.bias):
            self.propagate(node.bias, adj, eq)
        if node.gain is not None and _depends(node.gain):
            self.propagate(node.gain, _hadamard(adj, norm), eq)
        if not _depends(node.arg):
            return None
        dn = adj if node.gain is None else self.named(_hadamard(adj, node.gain), eq, node)
        inner = madd(dn, _scale(-1, FeatureMean(dn)),
                     _scale(-1, _hadamard(norm, FeatureMean(_hadamard(dn, norm)))))
        du = self.assign(self.fresh(eq, node.shape), _hadamard(InvStd(node.arg, node.eps), inner), eq)
        return self.propagate(node.arg, du, eq)

    def _rule_HadamardQuotient(self, node, adj, eq):
        """``a ⊘ b``: ``a`` gets ``δ ⊘ b``, ``b`` gets ``−δ ⊙ a ⊘ (b ⊙ b)``."""
        a, b = node.numerator, node.denominator
        if _depends(a) and _depends(b):
            adj = self.named(adj, eq, node)
        if _depends(a):
            self.propagate(a, type(node)(adj, b), eq)
        if _depends(b):
            num = adj if isinstance(a, OneMatrix) else _hadamard(adj, a)
            self.propagate(b, _scale(-1, type(node)(num, _hadamard(b, b))), eq)
        return None

    def _rule_Chunk(self, node, adj, eq):
        """``chunk(u, k, n)``: ``u`` gets ``δ`` in its block ``k``, zeros elsewhere."""
        return self.propagate(node.arg, Unchunk(adj, node.index, node.count), eq)

    def _matmul(self, node, adj, eq):
        scalars = [a for a in node.args if not isinstance(a, MatrixExpr)]
        mats = [a for a in node.args if isinstance(a, MatrixExpr)]
        c = sp.Mul(*scalars)
        if c != 1:
            adj = _scale(c, adj)
        if len(mats) == 1:
            return self.propagate(mats[0], adj, eq)
        A, rest = mats[0], (mats[1] if len(mats) == 2 else mmul(*mats[1:]))
        if _depends(rest) and _depends(A):
            adj = self.named(adj, eq, node)
        if _depends(A):
            self.matrix_leaf(A, adj, rest, eq)
        if _depends(rest):
            self.propagate(rest, mmul(Transpose(A), adj), eq)
        return None

    def matrix_leaf(self, A, adj, right, eq):
        """``A`` (a parameter matrix, a sum or scalar multiple of them) in ``A R``: gets
        ``Σ_t δ Rᵀ``."""
        if isinstance(A, MatrixSymbol) and A.name in self.params:
            self.param_terms.setdefault(A.name, []).append(ParamTerm("outer", adj, right))
        elif isinstance(A, MatAdd):
            for t in A.args:
                self.matrix_leaf(t, adj, right, eq)
        elif isinstance(A, MatMul) and len([a for a in A.args if isinstance(a, MatrixExpr)]) == 1:
            c = sp.Mul(*[a for a in A.args if not isinstance(a, MatrixExpr)])
            self.matrix_leaf(next(a for a in A.args if isinstance(a, MatrixExpr)),
                             _scale(c, adj), right, eq)
        else:
            raise NoBackwardRule(f"no backward rule for the matrix factor {A} (in equation {eq}): "
                                 "only parameter matrices, their sums and multiples")

    def leaf(self, sym, adj, eq):
        base, time = split_name(sym.name)
        if time is None:
            if base in self.params:
                self.param_terms.setdefault(base, []).append(ParamTerm("sum", adj))
            return None
        if time == "t-1":
            self.state_terms.setdefault(base, []).append(adj)
        elif base in self.inputs:
            self.input_terms.setdefault(base, []).append(adj)
        else:
            self.pending.setdefault(sym.name, []).append(adj)
        return None


def _sym(name, rhs):
    return MatrixSymbol(f"{name}[t]", *rhs.shape)


def _depends(e) -> bool:
    """Does ``e`` have a non-zero derivative with respect to anything (a symbol)?"""
    return isinstance(e, MatrixExpr) and bool(e.atoms(MatrixSymbol))


def _scale(c, adj):
    if c == 1:
        return adj
    if isinstance(adj, MatMul) and not isinstance(adj.args[0], MatrixExpr):
        c = c * adj.args[0]
        rest = adj.args[1:]
        return mmul(c, *rest) if c != 1 else (rest[0] if len(rest) == 1 else mmul(*rest))
    return mmul(c, adj)


def _hadamard(*factors):
    flat = []
    for f in factors:
        flat.extend(f.args if isinstance(f, HadamardProduct) else (f,))
    return flat[0] if len(flat) == 1 else hadamard(*flat)


def _split_term(t):
    """``t`` as ``(coefficient, [elementwise factors])``."""
    coeff = sp.S.One
    if isinstance(t, MatMul) and not isinstance(t.args[0], MatrixExpr):
        mats = [a for a in t.args if isinstance(a, MatrixExpr)]
        coeff = sp.Mul(*[a for a in t.args if not isinstance(a, MatrixExpr)])
        t = mats[0] if len(mats) == 1 else mmul(*mats)
    return coeff, list(t.args) if isinstance(t, HadamardProduct) else [t]


def factored(terms):
    """``Σ terms`` with a factor they all share taken out: ``-δh ⊙ n + δh ⊙ h_{t-1}`` is
    ``δh ⊙ (h_{t-1} - n)``, as one would write it (and one product fewer to compute)."""
    if len(terms) < 2:
        return madd(*terms)
    split = [_split_term(t) for t in terms]
    common = next((f for f in split[0][1] if all(f in fs for _, fs in split[1:])), None)
    if common is None or any(len(fs) < 2 for _, fs in split):
        return madd(*terms)
    rest = []
    for coeff, fs in split:
        fs = list(fs)
        fs.remove(common)
        r = fs[0] if len(fs) == 1 else hadamard(*fs)
        rest.append(_scale(coeff, r))
    pos = [r for r in rest if not _negative(r)] + [r for r in rest if _negative(r)]
    return _hadamard(common, madd(*pos))


def _negative(e):
    return isinstance(e, MatMul) and not isinstance(e.args[0], MatrixExpr) and e.args[0].is_negative


def step_vjp(cell) -> StepVJP:
    """The symbolic backward step of ``cell``: upstream ``∂L/∂(output)_t`` plus ``δ_{t+1} s_t``
    for every state, walked back through the original equations."""
    vjp = StepVJP([(e.name, e.rhs) for e in cell.equations], set(cell.params), set(cell.inputs),
                  cell.states)
    shapes = {e.name: e.rhs.shape for e in cell.equations}
    out = cell.output
    vjp.seed(f"{out}[t]", AdjointSymbol.of(MatrixSymbol(f"{out}[t]", *shapes[out]), "dL"))
    for s in cell.states:
        vjp.seed(f"{s}[t]", AdjointSymbol.of(MatrixSymbol(f"{s}[t]", *shapes[s]), "dn"))
    return vjp.run()
