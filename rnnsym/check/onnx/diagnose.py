"""Diagnosis of an ONNX counterexample: which way of ignoring or misreading an attribute (single
bug models, then pairs) reproduces the target's outputs."""
from __future__ import annotations

import itertools

from rnnsym.check.onnx.oracle import expectation, shape_error
from rnnsym.frameworks.onnx import OnnxCase
from rnnsym.onnx import OnnxError, Readings
from rnnsym.onnx.attributes import ONNX_ACTIVATIONS, SLOTS
from rnnsym.onnx.readings import OPEN, READING_TEXT
from rnnsym.testing.assertions import compare_flat


def _without(attrs: dict, *names) -> dict:
    return {k: v for k, v in attrs.items() if k not in names}


#: onnxruntime's values of activation parameters that are not given (rnn_helpers.cc)
ORT_ACTIVATION_DEFAULTS = {"affine": (0.0, 0.0), "scaledtanh": (0.0, 0.0),
                           "thresholdedrelu": (0.0,), "leakyrelu": (0.01,),
                           "hardsigmoid": (0.2, 0.5), "elu": (1.0,)}


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


def _canonical_name(name) -> str:
    name = name.decode() if isinstance(name, bytes) else str(name)
    return {k.lower(): k for k in ONNX_ACTIVATIONS}[name.lower()]


def variants(case: OnnxCase, fixed: dict) -> list[tuple[str, dict, dict]]:
    """(text, oracle keywords, reading changes) of the bug models that apply to ``case``."""
    a, out = case.attributes, []
    if "sequence_lens" in case.inputs:
        out.append(("sequence_lens ignored (every sequence run to seq_length)",
                    {"drop": ("sequence_lens",)}, {}))
    if "clip" in a:
        out.append(("clip ignored (activation inputs not clipped)",
                    {"attributes": _without(a, "clip")}, {}))
        if case.op == "LSTM" and fixed.get("clip_before_h", True):
            out.append(("clip not applied before h(C_t) (microsoft/onnxruntime#27224)", {},
                        {"clip_before_h": False}))
    if "activations" in a:
        out.append(("activations ignored (the defaults used)",
                    {"attributes": _without(a, "activations", "activation_alpha",
                                            "activation_beta")}, {}))
        k = len(SLOTS[case.op])
        if a.get("direction") == "bidirectional" and a["activations"][:k] != a["activations"][k:]:
            out.append(("the reverse direction uses the forward direction's activations",
                        {"attributes": _without({**a, "activations": a["activations"][:k] * 2},
                                                "activation_alpha", "activation_beta")}, {}))
    if {"activation_alpha", "activation_beta"} & set(a):
        out.append(("activation_alpha/beta ignored (the operators' defaults used)",
                    {"attributes": _without(a, "activation_alpha", "activation_beta")}, {}))
        if "alpha_order" not in fixed:
            out.append(("activation_alpha/beta read positionally", {},
                        {"alpha_order": "positional"}))
    if "activations" in a and not {"activation_alpha", "activation_beta"} & set(a):
        zeros = _zero_defaults(a["activations"])
        if zeros:
            out.append(("activation parameters left out default to 0 for Affine, ScaledTanh and "
                        "ThresholdedRelu (onnxruntime), not to the operators' defaults "
                        "(Affine 1/0, ScaledTanh 1/1, ThresholdedRelu 1)",
                        {"attributes": {**a, **zeros}}, {}))
    if a.get("input_forget"):
        out.append(("input_forget ignored (f computed from its own weights)",
                    {"attributes": _without(a, "input_forget")}, {}))
    if case.op == "GRU":
        flipped = {**a, "linear_before_reset": 0 if a.get("linear_before_reset") else 1}
        out.append(("linear_before_reset read the other way (reset applied "
                    f"{'before' if a.get('linear_before_reset') else 'after'} the matmul)",
                    {"attributes": flipped}, {}))
    for name in ("B", "P", "initial_h", "initial_c"):
        if name in case.inputs:
            out.append((f"input {name} ignored (zeros used)", {"drop": (name,)}, {}))
    if a.get("direction") == "reverse":
        out.append(("direction=reverse run forwards", {"attributes": _without(a, "direction")},
                    {}))
    if "sequence_lens" in case.inputs:
        for point in ("y_past_length", "empty_state"):
            if point in fixed:
                for r in OPEN[point][0]:
                    if r != fixed[point]:
                        out.append((READING_TEXT[(point, r)], {}, {point: r}))
    return out


def diagnose(case: OnnxCase, got: dict, dtype: str, fixed: dict) -> list[str]:
    """The texts of the bug models (single, then pairs) that reproduce ``got``."""
    base = Readings(**fixed)
    singles = variants(case, fixed)

    def fits(parts) -> bool:
        kw, changes = {}, {}
        for _, k, c in parts:
            for key, value in k.items():
                if key == "drop":
                    kw["drop"] = kw.get("drop", ()) + value
                elif key == "attributes":
                    merged = dict(kw.get("attributes", case.attributes))
                    for name in set(case.attributes) | set(value):
                        if value.get(name) != case.attributes.get(name):
                            if name in value:
                                merged[name] = value[name]
                            else:
                                merged.pop(name, None)
                    kw["attributes"] = merged
            changes.update(c)
        try:
            exp, tol = expectation(case, base.replace(**changes), dtype, **kw)
        except (OnnxError, ValueError):
            return False
        return shape_error(exp, got) is None and not compare_flat(exp, got, tol.arrays)

    found = [text for text, k, c in singles if fits([(text, k, c)])]
    if not found:
        for one, two in itertools.combinations(singles, 2):
            if fits([one, two]):
                found.append(f"{one[0]}, and {two[0]}")
    return found
