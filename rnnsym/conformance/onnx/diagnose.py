"""Diagnosis of an ONNX counterexample: which known bug model (single, then pairs) reproduces the
target's outputs.

Each bug model is one entry of :data:`BUG_MODELS`: when it applies to a case, what it says, and
what the buggy target computes instead, as the attributes it uses (``attributes``), the inputs
it ignores (``drop``) or the reading of an open point of the spec it follows (``readings``).
Adding a bug class is adding one entry; the order is the order of the diagnoses.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Callable, Optional, Union

import numpy as np

from rnnsym.conformance.onnx.oracle import expectation, shape_error
from rnnsym.frameworks.onnx import OnnxCase, spec_name
from rnnsym.onnx import OnnxError, Readings
from rnnsym.onnx.attributes import ONNX_ACTIVATIONS, SLOTS
from rnnsym.onnx.convert import ONNX_ORDER
from rnnsym.onnx.readings import OPEN, READING_TEXT
from rnnsym.conformance.compare import compare_flat

#: onnxruntime's values of activation parameters that are not given (rnn_helpers.cc)
ORT_ACTIVATION_DEFAULTS = {"affine": (0.0, 0.0), "scaledtanh": (0.0, 0.0),
                           "thresholdedrelu": (0.0,), "leakyrelu": (0.01,),
                           "hardsigmoid": (0.2, 0.5), "elu": (1.0,)}
ALPHA_BETA = ("activation_alpha", "activation_beta")
#: torch.nn.LSTM/GRU's gate order, in the canonical letters of ONNX_ORDER
TORCH_ORDER = {"GRU": ("r", "z", "n"), "LSTM": ("i", "f", "g", "o")}


@dataclass(frozen=True)
class BugModel:
    """One known way of getting an ONNX node wrong.

    text        the diagnosis, or ``text(case)``
    applies     ``applies(case, fixed readings)``: whether the model can differ on this case
    attributes  ``attributes(case) -> dict``: the attributes the buggy target uses instead
    drop        inputs the buggy target ignores (zeros / no lengths)
    readings    the reading of an open point the buggy target follows
    feed        how a stack's node k+1 wrongly reads node k's Y (a key of oracle.FEEDS)
    inputs      ``inputs(case) -> dict``: input arrays the buggy target effectively uses
    """

    text: Union[str, Callable[[OnnxCase], str]]
    applies: Callable[[OnnxCase, dict], bool]
    attributes: Optional[Callable[[OnnxCase], dict]] = None
    drop: tuple = ()
    readings: dict = field(default_factory=dict)
    feed: Optional[str] = None
    inputs: Optional[Callable[[OnnxCase], dict]] = None

    def describe(self, case: OnnxCase) -> str:
        return self.text if isinstance(self.text, str) else self.text(case)


def _without(*names) -> Callable[[OnnxCase], dict]:
    return lambda case: {k: v for k, v in case.attributes.items() if k not in names}


def _has(*names) -> Callable[[OnnxCase, dict], bool]:
    """Applies when the node has any of these attributes or inputs."""
    return lambda case, fixed: any(n in case.attributes or n in case.inputs for n in names)


def _canonical_name(name) -> str:
    name = name.decode() if isinstance(name, bytes) else str(name)
    return {k.lower(): k for k in ONNX_ACTIVATIONS}[name.lower()]


def _zero_defaults(activations) -> dict:
    """activation_alpha/beta that spell out onnxruntime's defaults for ``activations``."""
    alphas, betas = [], []
    for name in activations:
        params = ORT_ACTIVATION_DEFAULTS.get(ONNX_ACTIVATIONS[_canonical_name(name)], ())
        alphas += list(params[:1])
        betas += list(params[1:2])
    if not any(ONNX_ACTIVATIONS[_canonical_name(n)] in ("affine", "scaledtanh", "thresholdedrelu")
               for n in activations):
        return {}
    out = {"activation_alpha": alphas}
    if betas:
        out["activation_beta"] = betas
    return out


def _reverse_uses_forward(case: OnnxCase) -> dict:
    attrs = _without(*ALPHA_BETA)(case)
    attrs["activations"] = case.attributes["activations"][:len(SLOTS[case.op])] * 2
    return attrs


def _bidirectional_mixed(case: OnnxCase, fixed) -> bool:
    a, k = case.attributes, len(SLOTS[case.op])
    return "activations" in a and a.get("direction") == "bidirectional" and \
        a["activations"][:k] != a["activations"][k:]


def _bidirectional(case: OnnxCase) -> bool:
    return case.attributes.get("direction") == "bidirectional"


def _lbr_text(case: OnnxCase) -> str:
    where = "before" if case.attributes.get("linear_before_reset") else "after"
    return f"linear_before_reset read the other way (reset applied {where} the matmul)"


def _torch_gate_order(case: OnnxCase) -> dict:
    """W, R, B (of every node) with their gate blocks moved so that ONNX's semantics computes
    what a target reading the blocks in PyTorch's order (LSTM i,f,g,o; GRU r,z,n) computes."""
    onnx, torch = ONNX_ORDER[case.op], TORCH_ORDER[case.op]
    perm = [torch.index(g) for g in onnx]     # ONNX slot j uses the block at torch's index

    def blocks(a, axis, halves=1):
        parts = np.split(a, halves * len(perm), axis=axis)
        return np.concatenate([parts[h * len(perm) + k] for h in range(halves) for k in perm],
                              axis=axis)
    halves = {"W": 1, "R": 1, "B": 2}      # B holds Wb and Rb, each in gate blocks
    return {name: blocks(a, 1, halves[spec_name(name)]) for name, a in case.inputs.items()
            if spec_name(name) in halves}


def _other_readings(point: str) -> list[BugModel]:
    """A target following another reading of an open point that ``--variant`` fixed."""
    return [BugModel(READING_TEXT[(point, r)],
                     lambda case, fixed, point=point, r=r: "sequence_lens" in case.inputs
                     and point in fixed and fixed[point] != r,
                     readings={point: r})
            for r in OPEN[point][0]]


BUG_MODELS: list[BugModel] = [
    BugModel("sequence_lens ignored (every sequence run to seq_length)", _has("sequence_lens"),
             drop=("sequence_lens",)),
    BugModel("clip ignored (activation inputs not clipped)", _has("clip"),
             attributes=_without("clip")),
    BugModel("clip not applied before h(C_t) (microsoft/onnxruntime#27224)",
             lambda case, fixed: case.op == "LSTM" and "clip" in case.attributes
             and fixed.get("clip_before_h", True),
             readings={"clip_before_h": False}),
    BugModel("activations ignored (the defaults used)", _has("activations"),
             attributes=_without("activations", *ALPHA_BETA)),
    BugModel("the reverse direction uses the forward direction's activations",
             _bidirectional_mixed, attributes=_reverse_uses_forward),
    BugModel("activation_alpha/beta ignored (the operators' defaults used)", _has(*ALPHA_BETA),
             attributes=_without(*ALPHA_BETA)),
    BugModel("activation_alpha/beta read positionally",
             lambda case, fixed: _has(*ALPHA_BETA)(case, fixed) and "alpha_order" not in fixed,
             readings={"alpha_order": "positional"}),
    BugModel("activation parameters left out default to 0 for Affine, ScaledTanh and "
             "ThresholdedRelu (onnxruntime), not to the operators' defaults "
             "(Affine 1/0, ScaledTanh 1/1, ThresholdedRelu 1)",
             lambda case, fixed: "activations" in case.attributes
             and not _has(*ALPHA_BETA)(case, fixed)
             and bool(_zero_defaults(case.attributes["activations"])),
             attributes=lambda case: {**case.attributes,
                                      **_zero_defaults(case.attributes["activations"])}),
    BugModel("input_forget ignored (f computed from its own weights)",
             lambda case, fixed: bool(case.attributes.get("input_forget")),
             attributes=_without("input_forget")),
    BugModel(_lbr_text, lambda case, fixed: case.op == "GRU",
             attributes=lambda case: {**case.attributes, "linear_before_reset":
                                      0 if case.attributes.get("linear_before_reset") else 1}),
    BugModel(lambda case: "gate blocks of W, R, B read in PyTorch's order"
             + {"LSTM": " (i,f,g,o), not ONNX's (i,o,f,c)",
                "GRU": " (r,z,n), not ONNX's (z,r,h)"}.get(case.op, ""),
             lambda case, fixed: case.op in TORCH_ORDER, inputs=_torch_gate_order),
    *[BugModel(f"input {name} ignored (zeros used)", _has(name), drop=(name,))
      for name in ("B", "P", "initial_h", "initial_c")],
    BugModel("direction=reverse run forwards",
             lambda case, fixed: case.attributes.get("direction") == "reverse",
             attributes=_without("direction")),
    BugModel("the next layer reads Y with direction and hidden interleaved (h0 forward, h0 "
             "reverse, h1 forward, ...), not the directions side by side",
             lambda case, fixed: case.layers > 1 and _bidirectional(case), feed="interleaved"),
    BugModel("the next layer reads Y reshaped without the Transpose (batch and direction "
             "axes mixed)", lambda case, fixed: case.layers > 1 and _bidirectional(case)
             and not case.attributes.get("layout"), feed="untransposed"),
    *_other_readings("y_past_length"),
    *_other_readings("empty_state"),
]


def applicable(case: OnnxCase, fixed: dict) -> list[BugModel]:
    """The bug models that apply to ``case``, in order."""
    return [m for m in BUG_MODELS if m.applies(case, fixed)]


def _combined(case: OnnxCase, models) -> tuple[dict, dict]:
    """Oracle keywords and reading changes of several bug models at once: attribute changes
    relative to the case's own attributes are merged, dropped inputs and readings joined."""
    kw, changes = {}, {}
    for model in models:
        if model.drop:
            kw["drop"] = kw.get("drop", ()) + model.drop
        if model.attributes is not None:
            value = model.attributes(case)
            merged = dict(kw.get("attributes", case.attributes))
            for name in set(case.attributes) | set(value):
                if value.get(name) != case.attributes.get(name):
                    if name in value:
                        merged[name] = value[name]
                    else:
                        merged.pop(name, None)
            kw["attributes"] = merged
        if model.inputs is not None:
            kw["replace"] = {**kw.get("replace", {}), **model.inputs(case)}
        changes.update(model.readings)
        if model.feed:
            kw["feed"] = model.feed
    return kw, changes


def diagnose(case: OnnxCase, got: dict, dtype: str, fixed: dict) -> list[str]:
    """The texts of the bug models that reproduce ``got``: single ones (in every node of a
    stack, then in one node only), then pairs."""
    base = Readings(**fixed)
    singles = applicable(case, fixed)

    def fits(models, only=None) -> bool:
        kw, changes = _combined(case, models)
        if only is not None and (changes or not kw or (kw.get("feed") and 0 in only)):
            return False        # in one node: attributes, drop, feed (not into node 0)
        try:
            exp, tol = expectation(case, base.replace(**changes), dtype, only=only, **kw)
        except (OnnxError, ValueError):
            return False
        return shape_error(exp, got) is None and not compare_flat(exp, got, tol.arrays)

    found = [m.describe(case) for m in singles if fits([m])]
    if not found and case.layers > 1:
        found = [f"{m.describe(case)}, in layer {k} only (layers counted from 0)"
                 for m in singles for k in range(case.layers) if fits([m], only=(k,))]
    if not found:
        for one, two in itertools.combinations(singles, 2):
            if fits([one, two]):
                found.append(f"{one.describe(case)}, and {two.describe(case)}")
    if not found:
        found = _overflow(case, got, dtype, base)
    return found


def _overflow(case: OnnxCase, got: dict, dtype: str, base: Readings) -> list[str]:
    """No bug model fits, but the target returns inf/nan where the exact result is finite:
    an overflow inside the target (Softplus as log(1 + exp(u)) is the one seen)."""
    try:
        exp, _ = expectation(case, base, dtype)
    except (OnnxError, ValueError):
        return []
    bad = [n for n in exp if n in got and np.shape(got[n]) == np.shape(exp[n])
           and np.any(~np.isfinite(np.asarray(got[n], np.float64)) & np.isfinite(exp[n]))]
    if not bad:
        return []
    acts = [_canonical_name(a) for a in case.attributes.get("activations", [])]
    hint = (" (Softplus is in the node: a log(1 + exp(u)) overflows for u above ~88 in "
            "float32, where the exact value is about u)" if "Softplus" in acts else "")
    return [f"{', '.join(bad)} not finite where the exact result is: an overflow inside the "
            f"target{hint}"]
