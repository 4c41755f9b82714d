"""Jacobians of one step, ``∂s_t/∂s'_{t-1}``, and their product over N steps.

The derivative is taken at the matrix level in forward mode, node by node, with the local rules
of the backward step (:mod:`rnnsym.gradients`, one source of truth): for a node and each child
that depends on the previous state, the node's reverse-mode rule is applied to a symbolic
cotangent ``δ`` and gives ``Mᵀ δ``, the vector-Jacobian product of the child's partial ``M``;
transposing it gives ``M``, which multiplies the child's own derivative. So ``A u`` (A a
parameter) gives ``A ∂u`` (from ``Aᵀ δ``), ``a ⊙ b`` gives ``diag(b) ∂a + diag(a) ∂b``, ``f(u)``
gives ``diag(f'(u)) ∂u``, ``a ⊘ b`` gives ``diag(1 ⊘ b) ∂a − diag(a ⊘ (b ⊙ b)) ∂b``, layer norm
``diag(g) (I − mean − diag(n̂) mean diag(n̂)) diag(1/std(u))`` and ``chunk(u, k, n)`` the block
``chunk(∂u, k, n)``. ``f'`` is written as the backward writes it: in terms of the output where the
activated expression is a named quantity (``h_t = tanh(u)`` gives ``1 − h_t ⊙ h_t``, a sigmoid
gate ``z_t`` gives ``z_t ⊙ (1 − z_t)``, a relu ``(h_t > 0)``), else in terms of the activation
itself (``1 − tanh(c_t) ⊙ tanh(c_t)``). Quantities computed earlier in the step (gates, LSTM's
``c_t``) are differentiated through their definitions. Elman-tanh gives
``∂h_t/∂h_{t-1} = diag(1 − h_t ⊙ h_t) W_hh``.

``∂h_N/∂h_0 = J_N J_{N-1} … J_1``: a product of N Jacobians, whose norm is at most the product of
their norms: the seed's explanation of vanishing and exploding gradients.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp
from sympy import (Identity, MatAdd, MatMul, MatrixExpr, MatrixSymbol, OneMatrix, Transpose,
                   ZeroMatrix)
from sympy.matrices.expressions import HadamardProduct

from rnnsym.cells.cell import Cell, quantity, rows, split_name
from rnnsym.cells.nodes import (
    Activation,
    Chunk,
    Diag,
    HadamardQuotient,
    hadamard,
    madd,
    mmul,
)
from rnnsym.errors import RnnsymError
from rnnsym.gradients.display import BackwardLatexPrinter, BackwardTextPrinter
from rnnsym.gradients.nodes import AdjointSymbol, FeatureMean, Unchunk
from rnnsym.gradients.vjp import NoBackwardRule, StepVJP
from rnnsym.printing.latex import aligned, symbol_latex
from rnnsym.unroll import NOW, PREV, instantiate, retime, substitute

# sup |f'| of activations, and its inverse, in LaTeX: the bound in the chain's note
DERIVATIVE_BOUNDS = {"tanh": ("1", "1"), "sigmoid": (r"\tfrac{1}{4}", "4"), "relu": ("1", "1")}


class JacobianError(RnnsymError, ValueError):
    """A cell whose step rnnsym cannot differentiate (e.g. a product of two state-dependent
    matrices)."""


def latex(expr) -> str:
    """LaTeX of a Jacobian (the backward's printer: it knows ``f'`` and the normalisation nodes)."""
    return BackwardLatexPrinter().doprint(expr)


def text(expr) -> str:
    """Plain text of a Jacobian."""
    return BackwardTextPrinter().doprint(expr)


class MeanMatrix(MatrixExpr):
    """``mean``: the ``n × n`` averaging matrix ``(1/n) 1 1ᵀ`` (the mean over the feature axis,
    broadcast back); symmetric, so it is its own transpose. Layer norm's Jacobian has it."""

    def __new__(cls, n):
        return sp.Basic.__new__(cls, sp.sympify(n))

    @property
    def shape(self):
        return (self.args[0], self.args[0])

    def _latex(self, printer):
        return r"\operatorname{mean}"

    def _sympystr(self, printer):
        return "mean"


def _product(*factors) -> MatrixExpr:
    """A matrix product with nested products spliced in, the numeric coefficient in front and
    identities dropped."""
    coeff, mats, identity = sp.S.One, [], None
    for f in factors:
        for a in (f.args if isinstance(f, MatMul) else (f,)):
            if a.is_number:
                coeff *= a
            elif isinstance(a, Identity):
                identity = a
            else:
                mats.append(a)
    if not mats:
        mats = [identity]
    if coeff != 1:
        return mmul(coeff, *mats)
    return mats[0] if len(mats) == 1 else mmul(*mats)


# --- local partials from the backward's rules ---------------------------------------------
class _DependentFactor(Exception):
    """A matrix factor other than the last depends on the state (``(W h) (U h)``)."""


class _LocalVJP(StepVJP):
    """The reverse-mode rule of ONE node, applied to a cotangent ``δ``: the node's dependent
    children are replaced by marker symbols, the walk stops at them and records what flows in
    (inline: no named adjoints)."""

    def __init__(self, markers: dict):
        super().__init__([], set(), set(), ())
        self.markers = markers              # marker -> child
        self.flows: dict = {}

    def assign(self, target, expr, equation=""):
        return expr

    def named(self, adj, equation, node):
        return adj

    def _marked(self, node) -> bool:
        return isinstance(node, sp.Basic) and any(node.has(m) for m in self.markers)

    def propagate(self, node, adj, eq, top=False):
        return super().propagate(node, adj, eq, top) if self._marked(node) else None

    def leaf(self, sym, adj, eq):
        self.flows.setdefault(sym, []).append(adj)

    def matrix_leaf(self, A, adj, right, eq):
        if self._marked(A):
            raise _DependentFactor


def _flows(node, children, top: str | None, wrt: str):
    """``{child: [Mᵀ δ, …]}`` for the dependent ``children`` of ``node``, and ``δ``."""
    markers = {MatrixSymbol(f"∂{k}", *c.shape): c for k, c in enumerate(children)}
    marked = node.xreplace({c: m for m, c in markers.items()})
    delta = AdjointSymbol.of(MatrixSymbol("J", *node.shape), "d")
    walk = _LocalVJP(markers)
    try:
        walk.propagate(marked, delta, top or "J", top=top is not None)
    except _DependentFactor:
        raise JacobianError(f"cannot differentiate the product {text(node)}: only its last "
                            f"factor may depend on {wrt}") from None
    except NoBackwardRule as e:
        raise JacobianError(f"cannot differentiate {type(node).__name__} `{text(node)}`: {e}") from None
    back = dict(markers)
    if top is not None:          # the backward names the output f(u) of quantity q as q[t]
        back[MatrixSymbol(f"{top}[t]", *node.shape)] = quantity(top, "t")
    return {back[m]: [f.xreplace(back) for f in fs] for m, fs in walk.flows.items()}, delta


def _transpose(m):
    return m.arg if isinstance(m, Transpose) else Transpose(m)


def _push(e, delta, t):
    """``M t`` where the reverse-mode flow ``e`` is ``Mᵀ δ``: the rules transposed."""
    if e == delta:
        return t
    if isinstance(e, MatAdd):
        return madd(*[_push(a, delta, t) for a in e.args])
    if isinstance(e, MatMul):
        coeff = sp.Mul(*[a for a in e.args if not isinstance(a, MatrixExpr)])
        *left, last = [a for a in e.args if isinstance(a, MatrixExpr)]
        return _push(last, delta, _product(coeff, *[_transpose(m) for m in reversed(left)], t))
    if isinstance(e, HadamardProduct):
        (k,) = [k for k, a in enumerate(e.args) if a.has(delta)]
        others = e.args[:k] + e.args[k + 1:]
        return _push(e.args[k], delta, _product(Diag(others[0] if len(others) == 1 else hadamard(*others)), t))
    if isinstance(e, HadamardQuotient):
        num, den = e.numerator, e.denominator
        if isinstance(num, HadamardProduct):
            (k,) = [k for k, a in enumerate(num.args) if a.has(delta)]
            others = num.args[:k] + num.args[k + 1:]
            scale = HadamardQuotient(others[0] if len(others) == 1 else hadamard(*others), den)
            return _push(num.args[k], delta, _product(Diag(scale), t))
        return _push(num, delta, _product(Diag(HadamardQuotient(OneMatrix(*den.shape), den)), t))
    if isinstance(e, FeatureMean):
        return _push(e.arg, delta, _product(MeanMatrix(e.shape[0]), t))
    if isinstance(e, Unchunk):
        return _push(e.arg, delta, Chunk(t, e.index, e.count))
    raise JacobianError(f"cannot transpose the backward's {type(e).__name__} `{text(e)}`")


class _Differentiator:
    """Derivatives of one step's expressions with respect to one previous state."""

    def __init__(self, cell: Cell, wrt: str):
        self.wrt = quantity(wrt, "t-1")
        self.identity = Identity(rows(wrt))
        self.defs = {eq.lhs: eq.rhs for eq in cell.equations}
        self.memo: dict = {}

    def named(self, sym: MatrixSymbol):
        """∂q_t for a quantity computed in the step, through its definition."""
        if sym not in self.memo:
            rhs = self.defs[sym]
            self.memo[sym] = self(rhs) if isinstance(rhs, MatrixSymbol) else \
                self.node(rhs, top=split_name(sym.name)[0])
        return self.memo[sym]

    def __call__(self, expr) -> MatrixExpr | None:
        """∂expr/∂wrt, or ``None`` where it is zero."""
        if isinstance(expr, MatrixSymbol):
            if expr == self.wrt:
                return self.identity
            return self.named(expr) if expr in self.defs else None
        if not isinstance(expr, MatrixExpr):
            return None
        return self.node(expr)

    def node(self, expr, top: str | None = None):
        """Σ over the dependent children c of ``expr``: (∂expr/∂c) ∂c, the partial from the
        backward's rule for ``expr``."""
        inner = {}
        for a in expr.args:
            if isinstance(a, MatrixExpr) and a not in inner:
                d = self(a)
                if d is not None:
                    inner[a] = d
        if not inner:
            return None
        flows, delta = _flows(expr, list(inner), top, self.wrt.name)
        terms = []
        for child, d in inner.items():
            fs = flows.get(child, [])
            if not fs:
                continue
            local = madd(*[_push(f, delta, Identity(child.shape[0])) for f in fs])
            # one product: applied to ∂c directly; a sum: (Σ …) ∂c, so ∂c is written once
            terms.append(_product(local, d) if isinstance(local, MatAdd) else
                         _push(fs[0], delta, d))
        return madd(*terms) if terms else None


# --- one step -------------------------------------------------------------------------------
def _partial_latex(num: str, den: str) -> str:
    return rf"\frac{{\partial {num}}}{{\partial {den}}}"


@dataclass
class StepJacobian:
    """The blocks ``∂s_t/∂s'_{t-1}`` of one step, for every pair of states ``(s, s')``.

    ``blocks[(s, s2)]`` is a matrix expression in quantities at t and t-1 and the parameters;
    ``ZeroMatrix`` where ``s_t`` does not depend on ``s2_{t-1}``.
    """

    cell: Cell
    blocks: dict

    @property
    def states(self) -> tuple[str, ...]:
        return self.cell.states

    def latex(self) -> str:
        return aligned(_partial_latex(symbol_latex(f"{s}[t]"), symbol_latex(f"{p}[t-1]"))
                       + " &= " + latex(block) for (s, p), block in self.blocks.items())

    def text(self) -> str:
        return "\n".join(f"d{s}[t]/d{p}[t-1] = {text(block)}" for (s, p), block in self.blocks.items())


def step_jacobian(cell: Cell) -> StepJacobian:
    """``∂s_t/∂s'_{t-1}`` for every pair of states of ``cell``, in the order of ``cell.states``."""
    blocks = {}
    for p in cell.states:
        d = _Differentiator(cell, p)
        for s in cell.states:
            block = d(quantity(s, "t"))
            blocks[(s, p)] = block if block is not None else ZeroMatrix(rows(s), rows(p))
    return StepJacobian(cell, {(s, p): blocks[(s, p)] for s in cell.states for p in cell.states})


# --- N steps --------------------------------------------------------------------------------
@dataclass
class ChainJacobian:
    """``∂s_N/∂s_0 = J_N J_{N-1} ⋯ J_1`` with each ``J_t`` written out, and a bound on its norm."""

    step: StepJacobian
    steps: int

    def _factors(self, sym: str, sep: str) -> str:
        """``J_N J_{N-1} ⋯ J_1`` (every factor when N ≤ 3); ``sym`` formats one factor."""
        n = self.steps
        ts = [n, n - 1, 1] if n > 3 else list(range(n, 0, -1))
        out = [sym.format(t) for t in ts]
        if n > 3:
            out.insert(2, r"\cdots" if sep == " " else "...")
        return sep.join(out)

    def _single_bound(self):
        """``(diag(φ'_t), W)`` where the cell has one state and ``J_t = diag(φ'_t) W`` with W a
        parameter, else None."""
        if len(self.step.states) > 1:
            return None
        (block,) = self.step.blocks.values()
        if isinstance(block, MatMul) and len(block.args) == 2 and isinstance(block.args[0], Diag) \
                and isinstance(block.args[1], MatrixSymbol) and block.args[1].name in self.step.cell.params:
            return block.args
        return None

    def _activation_name(self) -> str | None:
        """The activation that the single state's equation applies last, if any."""
        (state,) = self.step.states
        rhs = self.step.cell.equation(state).rhs
        return rhs.name if isinstance(rhs, Activation) else None

    def _lhs(self, fmt, open_, close) -> tuple[str, str]:
        """Numerator and denominator of ``∂s_N/∂s_0`` (a tuple of states in ``open_ … close``)."""
        states, n = self.step.states, self.steps
        num = ", ".join(fmt(f"{s}[{n}]") for s in states)
        den = ", ".join(fmt(f"{s}[0]") for s in states)
        return (num, den) if len(states) == 1 else (open_ + num + close, open_ + den + close)

    def _blocks(self, printer, matrix) -> str:
        """One step's ``J`` printed with sentinel time indices; ``matrix`` lays out blocks."""
        rule = retime(self.step.cell, NOW, PREV)
        states = self.step.states
        printed = {key: printer(substitute(b, rule)) for key, b in self.step.blocks.items()}
        if len(states) == 1:
            return printed[(states[0], states[0])]
        return matrix([[printed[(s, p)] for p in states] for s in states])

    def latex(self) -> str:
        num, den = self._lhs(symbol_latex, r"\left(", r"\right)")
        lhs = _partial_latex(num, den)
        body = self._blocks(latex, lambda rows_: r"\begin{pmatrix} " + r" \\ ".join(
            " & ".join(row) for row in rows_) + r" \end{pmatrix}")
        lines = [f"{lhs} &= {self._factors('J_{{{}}}', ' ')}"]
        lines += [instantiate(f"J_{{{NOW}}} &= {body}", t) for t in range(self.steps, 0, -1)]
        lines.append(self._bound_latex(lhs))
        return aligned(lines)

    def _bound_latex(self, lhs: str) -> str:
        n = self.steps

        def norm(s):
            return rf"\left\| {s} \right\|"

        parts = self._single_bound()
        if parts is None:
            return rf"{norm(lhs)} &\le \prod_{{t=1}}^{{{n}}} {norm('J_{t}')}"
        diag, weight = (norm(latex(p)) for p in parts)
        bound = rf"{norm(lhs)} &\le \prod_{{t=1}}^{{{n}}} {diag} \, {weight}"
        act = self._activation_name()
        if act in DERIVATIVE_BOUNDS:
            gamma, inverse = DERIVATIVE_BOUNDS[act]
            power = weight if gamma == "1" else rf"\left({gamma} {weight}\right)"
            bound += (rf" \le {power}^{{{n}}} \quad \text{{vanishes if }} {weight} < {inverse}"
                      rf"\text{{, can explode only if }} {weight} > {inverse}")
        return bound

    def text(self) -> str:
        num, den = self._lhs(str, "(", ")")
        lhs = f"d{num}/d{den}"
        body = self._blocks(text, lambda rows_: "[" + ", ".join(
            "[" + ", ".join(row) + "]" for row in rows_) + "]")
        lines = [f"{lhs} = {self._factors('J[{}]', ' @ ')}"]
        lines += [instantiate(f"J[{NOW}] = {body}", t) for t in range(self.steps, 0, -1)]
        parts = self._single_bound()
        factors = "||J[t]||" if parts is None else " ".join(f"||{text(p)}||" for p in parts)
        lines.append(f"||{lhs}|| <= prod(t=1..{self.steps}) {factors}")
        return "\n".join(lines)


def chain_jacobian(cell: Cell, steps: int) -> ChainJacobian:
    """``∂s_N/∂s_0`` over ``steps`` steps (the block Jacobian of the state vector for cells with
    several states)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise JacobianError(f"steps must be a positive integer, got {steps!r}")
    return ChainJacobian(step_jacobian(cell), steps)
