"""Matrix-expression nodes rnnsym adds to SymPy, and helpers that build sums in written order.

SymPy's ``M.applyfunc(tanh)`` returns an ``ElementwiseApplyFunction`` that ``cse`` rejects and
that the code printers print as invalid ``Lambda(...)`` text, so elementwise activations are their
own node here: :class:`Activation` carries the function's *name* and its numeric parameters
(ONNX ``activation_alpha``/``beta``, the ``clip`` threshold). Everything about one activation (its
LaTeX, its NumPy code, its scalar form, its derivative) lives in :data:`ACTIVATIONS`.

Matrix states (linear attention, Mamba, mLSTM) add :class:`Outer` (``a bᵀ``), :class:`RowScale`
(a column or one number broadcast over a matrix: a decay), :class:`L2Norm` and :class:`Maximum`;
``Sᵀ q`` is SymPy's ``Transpose`` in a product (:func:`matrix_valued` tells matrices from vectors).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import sympy as sp
from sympy import Basic, MatAdd, MatMul, MatrixExpr, OneMatrix, sympify
from sympy.core.containers import Tuple
from sympy.core.symbol import Str


@dataclass(frozen=True)
class ActivationSpec:
    """How one elementwise function reads, runs and differentiates.

    Attributes:
        latex: LaTeX of the function name (``\\tanh``, ``\\sigma``).
        params: names of its numeric parameters, in ONNX's ``activation_alpha/beta`` order.
        defaults: default values of those parameters (ONNX's standalone operators' defaults).
        scalar: builds the scalar SymPy expression ``f(u)`` (used for elementwise unrolls).
        numpy: NumPy source for ``f(u)``; ``{u}`` is the argument, ``{a}``/``{b}`` the parameters.
            ``{pu}`` is the argument parenthesized when it is a sum (``W_x x + p * c``): use it
            next to ``*`` and ``/``.
            Helpers (``_sigmoid``) are defined once in each generated module's preamble.
    """

    latex: str
    params: tuple[str, ...]
    defaults: tuple[float, ...]
    scalar: Callable[..., sp.Expr]
    numpy: str


class sigmoid(sp.Function):
    """The logistic function σ(u) = 1 / (1 + e^{-u}), kept unevaluated for printing."""

    def fdiff(self, argindex=1):
        s = sigmoid(self.args[0])
        return s * (1 - s)

    def _latex(self, printer, exp=None):
        arg = printer._print(self.args[0])
        return rf"\sigma\left({arg}\right)" if exp is None else rf"\sigma^{{{exp}}}\left({arg}\right)"


def _relu(u):
    return sp.Max(0, u, evaluate=False)


ACTIVATIONS: dict[str, ActivationSpec] = {
    "tanh": ActivationSpec(r"\tanh", (), (), lambda u: sp.tanh(u, evaluate=False), "np.tanh({u})"),
    "sigmoid": ActivationSpec(r"\sigma", (), (), lambda u: sigmoid(u, evaluate=False), "_sigmoid({u})"),
    "relu": ActivationSpec(r"\operatorname{relu}", (), (), _relu, "np.maximum({u}, 0)"),
    "identity": ActivationSpec("", (), (), lambda u: u, "{u}"),
    # ONNX's extra activations (operator defaults from the ONNX operator docs)
    "affine": ActivationSpec(r"\operatorname{affine}", ("alpha", "beta"), (1.0, 0.0),
                             lambda u, a, b: a * u + b, "({a} * {pu} + {b})"),
    "leakyrelu": ActivationSpec(r"\operatorname{leakyrelu}", ("alpha",), (0.01,),
                                lambda u, a: sp.Piecewise((u, u >= 0), (a * u, True)),
                                "np.where({u} >= 0, {u}, {a} * {pu})"),
    "thresholdedrelu": ActivationSpec(r"\operatorname{thresholdedrelu}", ("alpha",), (1.0,),
                                      lambda u, a: sp.Piecewise((u, u > a), (0, True)),
                                      "np.where({u} > {a}, {u}, 0)"),
    "scaledtanh": ActivationSpec(r"\operatorname{scaledtanh}", ("alpha", "beta"), (1.0, 1.0),
                                 lambda u, a, b: a * sp.tanh(b * u, evaluate=False),
                                 "({a} * np.tanh({b} * {pu}))"),
    "hardsigmoid": ActivationSpec(r"\operatorname{hardsigmoid}", ("alpha", "beta"), (0.2, 0.5),
                                  lambda u, a, b: sp.Max(0, sp.Min(1, a * u + b, evaluate=False), evaluate=False),
                                  "np.clip({a} * {pu} + {b}, 0, 1)"),
    "elu": ActivationSpec(r"\operatorname{elu}", ("alpha",), (1.0,),
                          lambda u, a: sp.Piecewise((u, u >= 0), (a * (sp.exp(u) - 1), True)),
                          "np.where({u} >= 0, {u}, {a} * np.expm1(np.minimum({u}, 0)))"),
    "softsign": ActivationSpec(r"\operatorname{softsign}", (), (),
                               lambda u: u / (1 + sp.Abs(u)), "({pu} / (1 + np.abs({u})))"),
    "softplus": ActivationSpec(r"\operatorname{softplus}", (), (),
                               lambda u: sp.log(1 + sp.exp(u)), "np.logaddexp(0, {u})"),
    # the gates and decays of linear recurrences with a matrix state (GLA, Mamba, mLSTM)
    "exp": ActivationSpec(r"\exp", (), (), lambda u: sp.exp(u, evaluate=False), "np.exp({u})"),
    "log": ActivationSpec(r"\log", (), (), lambda u: sp.log(u, evaluate=False), "np.log({u})"),
    "logsigmoid": ActivationSpec(r"\log\sigma", (), (),
                                 lambda u: -sp.log(1 + sp.exp(-u)), "(-np.logaddexp(0, -{pu}))"),
    "abs": ActivationSpec(r"\operatorname{abs}", (), (), lambda u: sp.Abs(u, evaluate=False),
                          "np.abs({u})"),
    # not an activation but the same kind of node: ONNX `clip`, bounds u to [-a, a]
    "clip": ActivationSpec(r"\operatorname{clip}", ("threshold",), (),
                           lambda u, a: sp.Max(-a, sp.Min(a, u, evaluate=False), evaluate=False),
                           "np.clip({u}, -{a}, {a})"),
}


class Activation(MatrixExpr):
    """``f(u)`` applied elementwise to the matrix expression ``u``; ``f`` is named in ACTIVATIONS.

    >>> from sympy import MatrixSymbol, symbols
    >>> u = MatrixSymbol("u", 3, 1)
    >>> Activation("tanh", u).shape
    (3, 1)
    """

    def __new__(cls, name, arg, *params):
        name = str(name)
        if name not in ACTIVATIONS:
            raise ValueError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}")
        spec = ACTIVATIONS[name]
        if len(params) == 1 and isinstance(params[0], Tuple):   # rebuilt from .args
            params = tuple(params[0])
        params = tuple(sympify(p) for p in params)
        if len(params) > len(spec.params):
            raise ValueError(f"activation {name!r} takes {len(spec.params)} parameter(s) "
                             f"{spec.params}, got {len(params)}")
        params = params + tuple(sympify(d) for d in spec.defaults[len(params):])
        if len(params) != len(spec.params):
            raise ValueError(f"activation {name!r} needs parameter(s) {spec.params}")
        return Basic.__new__(cls, Str(name), arg, Tuple(*params))

    @property
    def name(self) -> str:
        return self.args[0].name

    @property
    def arg(self) -> MatrixExpr:
        return self.args[1]

    @property
    def params(self) -> tuple:
        return tuple(self.args[2])

    @property
    def spec(self) -> ActivationSpec:
        return ACTIVATIONS[self.name]

    @property
    def shape(self):
        return self.arg.shape

    def _entry(self, i, j, **kwargs):
        return self.spec.scalar(self.arg._entry(i, j, **kwargs), *self.params)


class Diag(MatrixExpr):
    """``diag(v)``: the square matrix with the column vector ``v`` on its diagonal (Jacobians)."""

    def __new__(cls, arg):
        return Basic.__new__(cls, arg)

    @property
    def arg(self):
        return self.args[0]

    @property
    def shape(self):
        return (self.arg.shape[0], self.arg.shape[0])


def madd(*terms) -> MatAdd:
    """A matrix sum that keeps its terms in the order written (SymPy would sort them)."""
    flat = []
    for t in terms:
        flat.extend(t.args if isinstance(t, MatAdd) else (t,))
    return flat[0] if len(flat) == 1 else MatAdd(*flat, evaluate=False)


def mmul(*factors) -> MatMul:
    """A matrix product, unevaluated."""
    return MatMul(*factors, evaluate=False)


def hadamard(*factors):
    """The elementwise (Hadamard) product ``a ⊙ b``."""
    return sp.HadamardProduct(*factors, evaluate=False)


def one_minus(v: MatrixExpr) -> MatAdd:
    """``1 − v`` for a matrix expression, written in that order."""
    return MatAdd(OneMatrix(*v.shape), MatMul(sp.S.NegativeOne, v, evaluate=False), evaluate=False)


def tanh(u) -> Activation:
    """``tanh(u)`` elementwise, for cells written in Python."""
    return Activation("tanh", u)


def sigmoid_(u) -> Activation:
    """``σ(u)`` elementwise, for cells written in Python (``sigmoid`` is the scalar function)."""
    return Activation("sigmoid", u)


def relu(u) -> Activation:
    """``max(u, 0)`` elementwise, for cells written in Python."""
    return Activation("relu", u)


# --- normalisation, division and block nodes (layer-norm LSTM, minLSTM, stacked gates) -------
#: torch.nn.LayerNorm's default eps
LAYERNORM_EPS = sp.Rational(1, 100000)


class LayerNorm(MatrixExpr):
    """``layernorm(u, g, b, eps)``: ``(u − mean(u)) / sqrt(var(u) + eps) ⊙ g + b``.

    The mean and the (biased, population) variance are taken over the feature axis (the rows of
    the column vector ``u``), per sample, as ``torch.nn.LayerNorm(d)`` does (Ba et al. 2016,
    "Layer Normalization", eq. 4; eps defaults to torch's 1e-5). The gain ``g`` and bias ``b``
    are optional: absent, they are stored as the scalars 1 and 0.

    >>> from sympy import MatrixSymbol, symbols
    >>> LayerNorm(MatrixSymbol("u", 3, 1)).shape
    (3, 1)
    """

    def __new__(cls, arg, gain=None, bias=None, eps=None):
        gain = sp.S.One if gain is None else sympify(gain)
        bias = sp.S.Zero if bias is None else sympify(bias)
        eps = LAYERNORM_EPS if eps is None else sympify(eps)
        if not isinstance(arg, MatrixExpr):
            raise ValueError(f"layernorm needs a vector argument, got the scalar {arg}")
        if gain != 1 and not isinstance(gain, MatrixExpr):
            raise ValueError(f"layernorm gain must be a vector (or absent), got {gain}")
        if bias != 0 and not isinstance(bias, MatrixExpr):
            raise ValueError(f"layernorm bias must be a vector (or absent), got {bias}")
        if bias != 0 and gain == 1:
            raise ValueError("layernorm with a bias needs a gain too (layernorm(u, g, b))")
        if not (eps.is_number and eps.is_nonnegative):
            raise ValueError(f"layernorm eps must be a number >= 0, got {eps}")
        return Basic.__new__(cls, arg, gain, bias, eps)

    @property
    def arg(self) -> MatrixExpr:
        return self.args[0]

    @property
    def gain(self):
        """The gain vector, or None."""
        return None if self.args[1] == 1 else self.args[1]

    @property
    def bias(self):
        """The bias vector, or None."""
        return None if self.args[2] == 0 else self.args[2]

    @property
    def eps(self):
        return self.args[3]

    @property
    def shape(self):
        return self.arg.shape


def layernorm_scalars(column: list, gain=None, bias=None, eps=LAYERNORM_EPS) -> list:
    """The entries of ``layernorm`` of one column, given as scalar SymPy expressions (unevaluated
    enough to read): used by element-wise unrolls."""
    n = len(column)
    mean = sp.Add(*column, evaluate=False) / n
    var = sp.Add(*[(u - mean) ** 2 for u in column], evaluate=False) / n
    out = []
    for i, u in enumerate(column):
        v = (u - mean) / sp.sqrt(var + eps)
        if gain is not None:
            v = v * gain[i]
        if bias is not None:
            v = v + bias[i]
        out.append(v)
    return out


class HadamardQuotient(MatrixExpr):
    """``a ⊘ b``: the elementwise quotient of two vectors (or ``1 ⊘ b``, numerator all ones).

    minLSTM's normalised gates ``f_t ⊘ (f_t + i_t)`` need it (Feng et al. 2024).
    """

    def __new__(cls, numerator, denominator):
        for what, v in (("numerator", numerator), ("denominator", denominator)):
            if not isinstance(v, MatrixExpr):
                raise ValueError(f"elementwise division: the {what} must be a vector, got {v}")
        return Basic.__new__(cls, numerator, denominator)

    @property
    def numerator(self):
        return self.args[0]

    @property
    def denominator(self):
        return self.args[1]

    @property
    def shape(self):
        return self.args[1].shape

    def _entry(self, i, j, **kwargs):
        return self.args[0]._entry(i, j, **kwargs) / self.args[1]._entry(i, j, **kwargs)


class Chunk(MatrixExpr):
    """``chunk(u, k, n)``: the k-th (from 0) of n equal blocks of rows of ``u``, as
    ``torch.chunk(u, n)[k]`` over the feature axis: stacked gate pre-activations
    (``gates.chunk(4, 1)`` in PyTorch's LSTM cells). ``u`` has ``n`` times the rows of a block."""

    def __new__(cls, arg, index, count):
        index, count = sympify(index), sympify(count)
        if not (count.is_Integer and count >= 1 and index.is_Integer and 0 <= index < count):
            raise ValueError(f"chunk(u, k, n) needs integers 0 <= k < n, got k={index}, n={count}")
        if not isinstance(arg, MatrixExpr):
            raise ValueError(f"chunk needs a vector argument, got the scalar {arg}")
        return Basic.__new__(cls, arg, index, count)

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
        return (rows / self.count, cols)


def layernorm(u, gain=None, bias=None, eps=None) -> LayerNorm:
    """``layernorm(u, g, b)`` for cells written in Python."""
    return LayerNorm(u, gain, bias, eps)


def divide(a, b) -> HadamardQuotient:
    """``a ⊘ b`` elementwise, for cells written in Python."""
    return HadamardQuotient(a, b)


def chunk(u, index: int, count: int) -> Chunk:
    """The ``index``-th of ``count`` equal row blocks of ``u``, for cells written in Python."""
    return Chunk(u, index, count)


# --- matrix-valued states (linear attention, DeltaNet, Mamba, mLSTM) --------------------------
class Outer(MatrixExpr):
    """``outer(a, b)`` = ``a bᵀ``: the outer product of two column vectors, a matrix
    ``rows(a) × rows(b)`` (the ``k_t ⊗ v_t`` of linear attention)."""

    def __new__(cls, left, right):
        for what, v in (("first", left), ("second", right)):
            if not isinstance(v, MatrixExpr):
                raise ValueError(f"outer(a, b): the {what} argument must be a vector, got {v}")
        return Basic.__new__(cls, left, right)

    @property
    def left(self):
        return self.args[0]

    @property
    def right(self):
        return self.args[1]

    @property
    def shape(self):
        return (self.left.shape[0], self.right.shape[0])


class RowScale(MatrixExpr):
    """``a * M`` with a matrix ``M`` and a column ``a`` broadcast over its columns: row ``i`` of
    ``M`` times ``a_i`` (a per-key decay, GLA's ``diag(α_t) S``), or, when ``a`` is one number
    per step (shape 1 × 1), every entry times it (RetNet's γ, Mamba-2's ``exp(Δ a)``)."""

    def __new__(cls, scale, matrix):
        for what, v in (("scale", scale), ("matrix", matrix)):
            if not isinstance(v, MatrixExpr):
                raise ValueError(f"broadcast product: the {what} must be a matrix expression, got {v}")
        return Basic.__new__(cls, scale, matrix)

    @property
    def scale(self):
        return self.args[0]

    @property
    def matrix(self):
        return self.args[1]

    @property
    def shape(self):
        return self.matrix.shape


#: fla's l2norm eps (flash-linear-attention fla/modules/l2norm.py: x * rsqrt(sum(x²) + eps))
L2NORM_EPS = sp.Rational(1, 1000000)


class L2Norm(MatrixExpr):
    """``l2norm(u)`` = ``u / sqrt(Σ u² + eps)`` over the feature axis (DeltaNet's normalised q
    and k; eps 1e-6 as flash-linear-attention's ``l2norm``)."""

    def __new__(cls, arg, eps=None):
        eps = L2NORM_EPS if eps is None else sympify(eps)
        if not isinstance(arg, MatrixExpr):
            raise ValueError(f"l2norm needs a vector argument, got the scalar {arg}")
        if not (eps.is_number and eps.is_nonnegative):
            raise ValueError(f"l2norm eps must be a number >= 0, got {eps}")
        return Basic.__new__(cls, arg, eps)

    @property
    def arg(self):
        return self.args[0]

    @property
    def eps(self):
        return self.args[1]

    @property
    def shape(self):
        return self.arg.shape


class Maximum(MatrixExpr):
    """``max(a, b)`` elementwise (the mLSTM stabiliser ``m_t = max(log f_t + m_{t-1}, log i_t)``);
    either side may be one number per step, broadcast over the other."""

    def __new__(cls, left, right):
        for what, v in (("first", left), ("second", right)):
            if not isinstance(v, MatrixExpr):
                raise ValueError(f"max(a, b): the {what} argument must be a matrix expression, got {v}")
        return Basic.__new__(cls, left, right)

    @property
    def shape(self):
        return self.args[0].shape


def matrix_valued(expr, matrices=frozenset()) -> bool:
    """Whether ``expr`` is a matrix per sample (not a column vector or a number), read off its
    structure: an outer product or a broadcast product is; a quantity is when named in
    ``matrices`` (labels such as ``S[t-1]`` or parameter names); ``M @ v`` is a vector."""
    from sympy import MatrixSymbol, Transpose
    if isinstance(expr, (Outer, RowScale)):
        return True
    if isinstance(expr, MatrixSymbol):
        return expr.name in matrices
    if isinstance(expr, Transpose):
        return matrix_valued(expr.arg, matrices)
    if isinstance(expr, MatMul):
        mats = [a for a in expr.args if isinstance(a, MatrixExpr)]
        return matrix_valued(mats[-1], matrices)
    if isinstance(expr, (Activation, L2Norm)):
        return matrix_valued(expr.args[1] if isinstance(expr, Activation) else expr.arg, matrices)
    if isinstance(expr, (MatAdd, sp.HadamardProduct, HadamardQuotient, Maximum)):
        return any(matrix_valued(a, matrices) for a in expr.args if isinstance(a, MatrixExpr))
    return False


def outer(a, b) -> Outer:
    """``a bᵀ`` for cells written in Python."""
    return Outer(a, b)


def row_scale(a, m) -> RowScale:
    """``a`` (a column, or one number per step) broadcast over the columns of the matrix ``m``."""
    return RowScale(a, m)


def transpose(m):
    """``Mᵀ``, for ``transpose(S) @ q``."""
    return sp.Transpose(m)


def l2norm(u, eps=None) -> L2Norm:
    return L2Norm(u, eps)


def maximum(a, b) -> Maximum:
    return Maximum(a, b)


def act(name: str, u) -> Activation:
    """``name(u)`` elementwise (``act("exp", g)``), for cells written in Python."""
    return Activation(name, u)
