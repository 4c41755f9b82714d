"""Jacobians of one step, ``∂s_t/∂s'_{t-1}``, and their product over N steps.

The derivative is taken at the matrix level with the chain rule, in terms of rnnsym's nodes:
a sum differentiates term by term, ``A u`` (A a parameter) to ``A ∂u``, ``a ⊙ b`` to
``diag(b) ∂a + diag(a) ∂b``, and ``f(u)`` to ``diag(f'(u)) ∂u``. The derivative of an activation
is written in terms of its output where the activated expression is a named quantity
(``h_t = tanh(u)`` gives ``1 − h_t ⊙ h_t``, a sigmoid gate ``z_t`` gives ``z_t ⊙ (1 − z_t)``,
a relu ``step(h_t)``), else in terms of its argument (``1 − tanh(c_t) ⊙ tanh(c_t)``).
Quantities computed earlier in the step (gates, LSTM's ``c_t``) are differentiated through their
definitions. Elman-tanh gives ``∂h_t/∂h_{t-1} = diag(1 − h_t ⊙ h_t) W_hh``.

``∂h_N/∂h_0 = J_N J_{N-1} … J_1``: a product of N Jacobians, whose norm is at most the product of
their norms: the seed's explanation of vanishing and exploding gradients.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp
from sympy import Identity, MatAdd, MatMul, MatrixExpr, MatrixSymbol, OneMatrix, ZeroMatrix
from sympy.matrices.expressions import HadamardProduct

from rnnsym.cells.cell import Cell, quantity, rows
from rnnsym.cells.nodes import Activation, Diag, hadamard, madd, mmul, one_minus
from rnnsym.printing.latex import aligned, latex, symbol_latex
from rnnsym.printing.text import text
from rnnsym.unroll import NOW, PREV, instantiate, retime, substitute

# sup |f'| of activations, and its inverse, in LaTeX: the bound in the chain's note
DERIVATIVE_BOUNDS = {"tanh": ("1", "1"), "sigmoid": (r"\tfrac{1}{4}", "4"), "relu": ("1", "1")}


class JacobianError(ValueError):
    """A cell whose step rnnsym cannot differentiate (e.g. a product of two state-dependent
    matrices)."""


# --- nodes for derivatives ------------------------------------------------------------------
class Step(MatrixExpr):
    """``step(u)``: 1 where ``u > 0``, else 0, elementwise (the derivative of relu)."""

    def __new__(cls, arg):
        return sp.Basic.__new__(cls, arg)

    @property
    def arg(self):
        return self.args[0]

    @property
    def shape(self):
        return self.arg.shape

    def _latex(self, printer):
        return rf"\operatorname{{step}}\left({printer._print(self.arg)}\right)"

    def _sympystr(self, printer):
        return f"step({printer._print(self.arg)})"


class ActivationDerivative(MatrixExpr):
    """``f'(u)`` elementwise, for an activation without a closed form here (``elu'``)."""

    def __new__(cls, activation: Activation):
        return sp.Basic.__new__(cls, activation)

    @property
    def activation(self) -> Activation:
        return self.args[0]

    @property
    def shape(self):
        return self.activation.shape

    def _latex(self, printer):
        a = self.activation
        head = a.spec.latex or rf"\operatorname{{{a.name}}}"
        params = "_{" + ", ".join(printer._print(p) for p in a.params) + "}" if a.params else ""
        return rf"{head}{params}'\left({printer._print(a.arg)}\right)"

    def _sympystr(self, printer):
        a = self.activation
        return f"{a.name}'({', '.join(printer._print(x) for x in (a.arg, *a.params))})"


def activation_derivative(act: Activation, output: MatrixExpr | None = None) -> MatrixExpr:
    """``f'(u)`` for ``act = f(u)``; in terms of ``output`` (the named quantity ``f(u)``) if given."""
    y = act if output is None else output
    if act.name == "tanh":
        return one_minus(hadamard(y, y))
    if act.name == "sigmoid":
        return hadamard(y, one_minus(y))
    if act.name == "relu":
        return Step(act.arg if output is None else output)     # relu(u) > 0 ⟺ u > 0
    return ActivationDerivative(act)


def _product(*factors) -> MatrixExpr:
    """A matrix product with nested products spliced in, the numeric coefficient in front and
    identities dropped."""
    coeff, mats = sp.S.One, []
    for f in factors:
        for a in (f.args if isinstance(f, MatMul) else (f,)):
            if a.is_number:
                coeff *= a
            elif not isinstance(a, Identity):
                mats.append(a)
    if coeff != 1:
        return mmul(coeff, *mats)
    return mats[0] if len(mats) == 1 else mmul(*mats)


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
            if isinstance(rhs, Activation):
                inner = self(rhs.arg)
                self.memo[sym] = None if inner is None else \
                    _product(Diag(activation_derivative(rhs, sym)), inner)
            else:
                self.memo[sym] = self(rhs)
        return self.memo[sym]

    def __call__(self, expr) -> MatrixExpr | None:
        """∂expr/∂wrt, or ``None`` where it is zero."""
        if isinstance(expr, MatrixSymbol):
            if expr == self.wrt:
                return self.identity
            return self.named(expr) if expr in self.defs else None
        if isinstance(expr, OneMatrix):
            return None
        if isinstance(expr, Activation):
            inner = self(expr.arg)
            return None if inner is None else _product(Diag(activation_derivative(expr)), inner)
        if isinstance(expr, MatAdd):
            terms = [d for d in map(self, expr.args) if d is not None]
            return madd(*terms) if terms else None
        if isinstance(expr, HadamardProduct):
            terms = []
            for i, a in enumerate(expr.args):
                d = self(a)
                if d is not None:
                    others = expr.args[:i] + expr.args[i + 1:]
                    terms.append(_product(Diag(others[0] if len(others) == 1 else hadamard(*others)), d))
            return madd(*terms) if terms else None
        if isinstance(expr, MatMul):
            coeff, mats = expr.as_coeff_matrices()
            if any(self(m) is not None for m in mats[:-1]):
                raise JacobianError(f"cannot differentiate the product {text(expr)}: only its last "
                                    f"factor may depend on {self.wrt.name}")
            d = self(mats[-1])
            return None if d is None else _product(coeff, *mats[:-1], d)
        raise JacobianError(f"cannot differentiate {type(expr).__name__} `{text(expr)}`")


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
