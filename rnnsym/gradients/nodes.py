"""The nodes a backward step adds to a cell's node set: adjoints and activation derivatives.

* :class:`AdjointSymbol` is ``δq``, the gradient of the loss with respect to a quantity ``q``. It is a
  ``MatrixSymbol`` (so that substitution, CSE and the code printers' name maps work on it) whose
  name says which quantity and which kind: ``d:h[t]`` (``δh_t``, everything that flows into
  ``h_t``), ``dL:h[t]`` (``∂L/∂h_t``, the upstream gradient given by the caller), ``dn:h[t]``
  (``δ_{t+1} h_t``, what step ``t+1`` sends back to ``h_t``).
* :class:`ActGrad` is ``f'(u)`` of an activation written in terms of its *output* ``y = f(u)``
  (``1 - y ⊙ y`` for tanh, as min-char-rnn writes it), so that the backward pass needs the values
  the forward pass already has, never the pre-activations. tanh, sigmoid and affine are written
  with ordinary nodes (:func:`derivative`); the piecewise ones are this node, with their LaTeX,
  text and NumPy forms in :data:`DERIVATIVES`.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp
from sympy import Basic, MatrixExpr, MatrixSymbol, OneMatrix
from sympy.core.containers import Tuple
from sympy.core.symbol import Str

from rnnsym.cells.nodes import hadamard, one_minus

KINDS = {"d": "δq: the whole gradient of q", "dL": "∂L/∂q: the upstream gradient",
         "dn": "δ_{t+1} q_t: what the next step sends back"}


class AdjointSymbol(MatrixSymbol):
    """``δq``: the gradient of the loss with respect to quantity ``q`` (same shape as ``q``)."""

    @classmethod
    def of(cls, sym: MatrixSymbol, kind: str = "d") -> "AdjointSymbol":
        if kind not in KINDS:
            raise ValueError(f"adjoint kind must be one of {', '.join(KINDS)}, got {kind!r}")
        return cls(f"{kind}:{sym.name}", *sym.shape)

    @property
    def kind(self) -> str:
        return self.name.partition(":")[0]

    @property
    def target(self) -> str:
        """The label of the quantity: ``h[t]``, ``a_h[t]``."""
        return self.name.partition(":")[2]


@dataclass(frozen=True)
class DerivativeForm:
    """``f'`` in terms of ``y = f(u)``: LaTeX and text with ``{y}``, ``{a}``, ``{b}``; NumPy with
    ``{y}`` (parenthesised where needed), ``{a}``, ``{b}``. The NumPy form keeps ``y``'s dtype."""

    latex: str
    text: str
    numpy: str


#: activations whose derivative is not an ordinary expression of y (indicators, |y|, exp)
DERIVATIVES = {
    "relu": DerivativeForm(r"\mathbb{{1}}\left[{y} > 0\right]", "({y} > 0)", "({y} > 0)"),
    "leakyrelu": DerivativeForm(r"\mathbb{{1}}\left[{y} \ge 0\right] + {a}\, \mathbb{{1}}\left[{y} < 0\right]",
                                "where({y} >= 0, 1, {a})",
                                "np.where({y} >= 0, 1, {a}).astype({y}.dtype)"),
    # 1 where u > alpha; from the output that is y > alpha (exact for alpha >= 0, ONNX's default 1)
    "thresholdedrelu": DerivativeForm(r"\mathbb{{1}}\left[{y} > {a}\right]", "({y} > {a})",
                                      "({y} > {a})"),
    "hardsigmoid": DerivativeForm(r"{a}\, \mathbb{{1}}\left[0 < {y} < 1\right]",
                                  "{a} * (0 < {y} < 1)",
                                  "np.where(({y} > 0) & ({y} < 1), {a}, 0).astype({y}.dtype)"),
    "elu": DerivativeForm(r"\mathbb{{1}}\left[{y} \ge 0\right] + \left({y} + {a}\right) \mathbb{{1}}\left[{y} < 0\right]",
                          "where({y} >= 0, 1, {y} + {a})",
                          "np.where({y} >= 0, 1, {y} + {a}).astype({y}.dtype)"),
    "softsign": DerivativeForm(r"\left(1 - \left|{y}\right|\right)^{{2}}", "(1 - abs({y}))**2",
                               "np.square(1 - np.abs({y}))"),
    "softplus": DerivativeForm(r"1 - e^{{-{y}}}", "(1 - exp(-{y}))", "(-np.expm1(-{y}))"),
    # scaled tanh a*tanh(b*u): a*b*(1 - tanh^2) = (b/a) (a^2 - y^2)
    "scaledtanh": DerivativeForm(r"\frac{{{b}}}{{{a}}} \left({a}^{{2}} - {y} \odot {y}\right)",
                                 "({b} / {a}) * ({a}**2 - {y} * {y})",
                                 "(({b} / {a}) * ({a} * {a} - {y} * {y}))"),
    # the gates of linear recurrences (rnnsym.cells.linear): exp' = exp, log' = 1/u = e^{-y},
    # logsigmoid' = 1 - sigmoid(u) = 1 - e^y
    "exp": DerivativeForm("{y}", "{y}", "{y}"),
    "log": DerivativeForm(r"e^{{-{y}}}", "exp(-{y})", "np.exp(-{y})"),
    "logsigmoid": DerivativeForm(r"1 - e^{{{y}}}", "(1 - exp({y}))", "(-np.expm1({y}))"),
    # clip to [-a, a]: gradient 1 inside, 0 outside (and on the bounds)
    "clip": DerivativeForm(r"\mathbb{{1}}\left[\left|{y}\right| < {a}\right]", "(abs({y}) < {a})",
                           "(np.abs({y}) < {a})"),
}


class ActGrad(MatrixExpr):
    """``f'(u)`` for the activation named ``name``, written in terms of its output ``y = f(u)``."""

    def __new__(cls, name, y, *params):
        if str(name) not in DERIVATIVES:
            raise ValueError(f"no output-form derivative for activation {name!r}")
        if len(params) == 1 and isinstance(params[0], Tuple):     # rebuilt from .args
            params = tuple(params[0])
        return Basic.__new__(cls, Str(str(name)), y, Tuple(*[sp.sympify(p) for p in params]))

    @property
    def name(self) -> str:
        return self.args[0].name

    @property
    def y(self):
        return self.args[1]

    @property
    def params(self) -> tuple:
        return tuple(self.args[2])

    @property
    def form(self) -> DerivativeForm:
        return DERIVATIVES[self.name]

    @property
    def shape(self):
        return self.y.shape


def derivative(name: str, y, params=()):
    """``f'`` of activation ``name`` in terms of its output ``y``: a matrix expression, a number
    (affine), or ``None`` where the derivative is 1 (identity)."""
    if name == "identity":
        return None
    if name == "tanh":
        return one_minus(hadamard(y, y))
    if name == "sigmoid":
        return hadamard(y, one_minus(y))
    if name == "affine":
        return sp.sympify(params[0])
    if name == "scaledtanh" and sp.sympify(params[0]) == 0:
        return sp.S.Zero
    return ActGrad(name, y, *params)


def ones_like(v: MatrixExpr) -> OneMatrix:
    return OneMatrix(*v.shape)


class FeatureMean(MatrixExpr):
    """``mean(v)``: the mean of ``v`` over its feature axis (its rows), per sample, broadcast back
    to ``v``'s shape (layer normalisation's backward)."""

    def __new__(cls, arg):
        return Basic.__new__(cls, arg)

    @property
    def arg(self):
        return self.args[0]

    @property
    def shape(self):
        return self.arg.shape


class InvStd(MatrixExpr):
    """``1 / sqrt(var(u) + eps)``: the inverse standard deviation of ``u`` over its feature axis,
    per sample, broadcast to ``u``'s shape (layer normalisation's backward)."""

    def __new__(cls, arg, eps):
        return Basic.__new__(cls, arg, sp.sympify(eps))

    @property
    def arg(self):
        return self.args[0]

    @property
    def eps(self):
        return self.args[1]

    @property
    def shape(self):
        return self.arg.shape


class Unchunk(MatrixExpr):
    """The adjoint of ``chunk(u, k, n)``: ``δ`` in block ``k`` of ``n`` of a vector of ``u``'s size,
    zeros elsewhere."""

    def __new__(cls, arg, index, count):
        return Basic.__new__(cls, arg, sp.sympify(index), sp.sympify(count))

    @property
    def arg(self):
        return self.args[0]

    @property
    def index(self) -> int:
        return int(self.args[1])

    @property
    def count(self) -> int:
        return int(self.args[2])

    @property
    def shape(self):
        rows, cols = self.arg.shape
        return (rows * self.count, cols)
