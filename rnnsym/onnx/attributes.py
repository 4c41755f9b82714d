"""ONNX RNN/GRU/LSTM attributes (opset 7 to 22): parsed, validated, with the spec's defaults.

Every attribute of the three operators is modelled; anything else (an unknown attribute, an
unsupported value, ``output_sequence`` of opset 1) is a :class:`OnnxError` that names the
attribute and the expected and given values, never a silent default.

Activations
    ``activations`` lists ``f`` (RNN), ``f, g`` (GRU) or ``f, g, h`` (LSTM) for the forward
    direction, followed by the same slots for the reverse one when ``bidirectional``. Names are
    matched case-insensitively (as onnxruntime does) and map to rnnsym's activations
    (:data:`rnnsym.cells.nodes.ACTIVATIONS`).

``activation_alpha`` / ``activation_beta``: "consumed in the order of activation functions"
    The spec does not say whether an activation without an alpha consumes a slot.
    ``alpha_order="used"`` (the default; onnxruntime's reading): the values are a stream from
    which each activation *that takes the parameter* takes the next one, in slot order across
    both directions; activations left without a value use the standalone operator's default
    (HardSigmoid 0.2/0.5, LeakyRelu 0.01, ...). ``alpha_order="positional"``: value ``k``
    belongs to activation slot ``k`` whether or not it uses it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from rnnsym.cells.nodes import ACTIVATIONS
from rnnsym.errors import RnnsymError

OPS = ("RNN", "GRU", "LSTM")
#: ONNX activation names (the spec's spelling) -> rnnsym's
ONNX_ACTIVATIONS = {"Relu": "relu", "Tanh": "tanh", "Sigmoid": "sigmoid", "Affine": "affine",
                    "LeakyRelu": "leakyrelu", "ThresholdedRelu": "thresholdedrelu",
                    "ScaledTanh": "scaledtanh", "HardSigmoid": "hardsigmoid", "Elu": "elu",
                    "Softsign": "softsign", "Softplus": "softplus"}
RNNSYM_TO_ONNX = {v: k for k, v in ONNX_ACTIVATIONS.items()}
#: activation slots per direction and their defaults
SLOTS = {"RNN": ("f",), "GRU": ("f", "g"), "LSTM": ("f", "g", "h")}
DEFAULT_ACTIVATIONS = {"RNN": ("Tanh",), "GRU": ("Sigmoid", "Tanh"),
                       "LSTM": ("Sigmoid", "Tanh", "Tanh")}
GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
DIRECTIONS = ("forward", "reverse", "bidirectional")
COMMON = ("activation_alpha", "activation_beta", "activations", "clip", "direction",
          "hidden_size", "layout")
ATTRIBUTES = {"RNN": COMMON, "GRU": COMMON + ("linear_before_reset",),
              "LSTM": COMMON + ("input_forget",)}
ALPHA_ORDERS = ("used", "positional")


class OnnxError(RnnsymError, ValueError):
    """A model, attribute or input that rnnsym.onnx cannot evaluate (or that is invalid)."""


@dataclass(frozen=True)
class Attributes:
    """The attributes of one RNN/GRU/LSTM node, defaults filled in.

    activations  per direction, one spec per slot: ``"tanh"`` or ``("hardsigmoid", a, b)``
                 (rnnsym names, parameters resolved; the form ``rnnsym.builtin`` takes)
    clip         None or the threshold (> 0)
    """

    op: str
    hidden_size: int | None = None
    direction: str = "forward"
    activations: tuple = ()
    clip: float | None = None
    layout: int = 0
    linear_before_reset: int = 0
    input_forget: int = 0
    given: tuple = field(default=(), compare=False)   # names present on the node

    @property
    def num_directions(self) -> int:
        return 2 if self.direction == "bidirectional" else 1

    @property
    def gates(self) -> int:
        return GATES[self.op]


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _int(op, name, value, allowed=None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int,)) and not hasattr(value, "__index__"):
        raise OnnxError(f"{op} attribute {name}: expected an int, got {value!r}")
    value = int(value)
    if allowed is not None and value not in allowed:
        raise OnnxError(f"{op} attribute {name}: expected one of {allowed}, got {value}")
    return value


def resolve_activation(op: str, slot: str, name, alpha=None, beta=None):
    """ONNX activation name and optional alpha/beta -> rnnsym spec (name or tuple)."""
    key = {k.lower(): v for k, v in ONNX_ACTIVATIONS.items()}.get(_text(name).lower())
    if key is None:
        raise OnnxError(f"{op} attribute activations: slot {slot}: expected one of "
                        f"{', '.join(ONNX_ACTIVATIONS)}, got {_text(name)!r}")
    spec = ACTIVATIONS[key]
    if not spec.params:
        return key
    values = list(spec.defaults)
    if alpha is not None:
        values[0] = float(alpha)
    if beta is not None and len(values) > 1:
        values[1] = float(beta)
    return (key, *values)


def _distribute(op, names, values, which: str, order: str) -> list:
    """Give each activation its alpha (which=0) or beta (which=1) value, or None."""
    out = [None] * len(names)
    if values is None:
        return out
    values = [float(v) for v in values]
    if order == "positional":
        if len(values) > len(names):
            raise OnnxError(f"{op} attribute activation_{('alpha', 'beta')[which]}: expected at "
                            f"most {len(names)} values (one per activation), got {len(values)}")
        return values + [None] * (len(names) - len(values))
    stream = iter(values)
    used = 0
    for k, name in enumerate(names):
        key = {a.lower(): v for a, v in ONNX_ACTIVATIONS.items()}[name.lower()]
        if len(ACTIVATIONS[key].params) > which:
            value = next(stream, None)
            if value is not None:
                out[k] = value
                used += 1
    if used < len(values):
        takers = [n for n in names if len(ACTIVATIONS[ONNX_ACTIVATIONS[_canon(n)]].params) > which]
        raise OnnxError(f"{op} attribute activation_{('alpha', 'beta')[which]}: {len(values)} "
                        f"values given but only {len(takers)} of the activations {list(names)} "
                        f"take one (alpha_order='used': values are consumed by the activations "
                        f"that take them)")
    return out


def _canon(name: str) -> str:
    return {k.lower(): k for k in ONNX_ACTIVATIONS}[name.lower()]


def parse_attributes(op: str, attrs: dict, *, alpha_order: str = "used") -> Attributes:
    """Node attributes ``{name: value}`` (as ``onnx.helper.get_attribute_value`` returns them;
    strings may be bytes) -> :class:`Attributes`. Raises OnnxError."""
    if op not in OPS:
        raise OnnxError(f"op type: expected one of {', '.join(OPS)}, got {op!r}")
    if alpha_order not in ALPHA_ORDERS:
        raise OnnxError(f"alpha_order: expected one of {ALPHA_ORDERS}, got {alpha_order!r}")
    unknown = sorted(set(attrs) - set(ATTRIBUTES[op]))
    if unknown:
        why = " (opset 1 only; removed in opset 7)" if unknown[0] == "output_sequence" else ""
        raise OnnxError(f"{op}: unsupported attribute {unknown[0]!r}{why}; {op} attributes: "
                        f"{', '.join(ATTRIBUTES[op])}")
    direction = _text(attrs.get("direction", "forward"))
    if direction not in DIRECTIONS:
        raise OnnxError(f"{op} attribute direction: expected one of {', '.join(DIRECTIONS)}, "
                        f"got {direction!r}")
    D = 2 if direction == "bidirectional" else 1
    slots = SLOTS[op]
    names = [_text(a) for a in attrs.get("activations", DEFAULT_ACTIVATIONS[op] * D)]
    if len(names) != len(slots) * D:
        raise OnnxError(f"{op} attribute activations: expected {len(slots) * D} names "
                        f"({', '.join(slots)} per direction, {D} direction(s)), got {len(names)}: "
                        f"{names}")
    for k, n in enumerate(names):
        resolve_activation(op, slots[k % len(slots)], n)     # validates the name
    alphas = _distribute(op, names, attrs.get("activation_alpha"), 0, alpha_order)
    betas = _distribute(op, names, attrs.get("activation_beta"), 1, alpha_order)
    specs = [resolve_activation(op, slots[k % len(slots)], n, alphas[k], betas[k])
             for k, n in enumerate(names)]
    per_direction = tuple(tuple(specs[d * len(slots):(d + 1) * len(slots)]) for d in range(D))

    clip = attrs.get("clip")
    if clip is not None:
        clip = float(clip)
        if not clip > 0:
            raise OnnxError(f"{op} attribute clip: expected a threshold > 0, got {clip}")
    hidden = attrs.get("hidden_size")
    if hidden is not None:
        hidden = _int(op, "hidden_size", hidden)
        if hidden < 1:
            raise OnnxError(f"{op} attribute hidden_size: expected a positive int, got {hidden}")
    return Attributes(
        op=op, hidden_size=hidden, direction=direction, activations=per_direction, clip=clip,
        layout=_int(op, "layout", attrs.get("layout", 0), (0, 1)),
        # the spec: "linear_before_reset != 0" / "input_forget" are flags: any nonzero int is on
        linear_before_reset=int(bool(_int(op, "linear_before_reset",
                                          attrs.get("linear_before_reset", 0)))),
        input_forget=int(bool(_int(op, "input_forget", attrs.get("input_forget", 0)))),
        given=tuple(sorted(attrs)))


def activation_attributes(op: str, per_direction) -> dict:
    """rnnsym activation specs per direction -> ONNX ``activations``/``activation_alpha``/
    ``activation_beta`` in the 'used' order (every parameter written out)."""
    names, alphas, betas = [], [], []
    for specs in per_direction:
        for spec in specs:
            name, *params = (spec,) if isinstance(spec, str) else tuple(spec)
            key = name.lower()
            if key not in RNNSYM_TO_ONNX:
                raise OnnxError(f"{op}: activation {name!r} has no ONNX equivalent")
            defaults = ACTIVATIONS[key].defaults
            params = list(params) + list(defaults[len(params):])
            names.append(RNNSYM_TO_ONNX[key])
            if params:
                alphas.append(float(params[0]))
            if len(params) > 1:
                betas.append(float(params[1]))
    out = {"activations": names}
    if alphas:
        out["activation_alpha"] = alphas
    if betas:
        out["activation_beta"] = betas
    return out
