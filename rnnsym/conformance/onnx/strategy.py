"""Hypothesis strategy for ONNX models (one node, or a stack of ``space["layers"]`` nodes) within
an attribute space (:mod:`rnnsym.frameworks.onnx.space`): sizes distinct from one another,
every choice shrinking to its default (one node)."""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from rnnsym.cells.nodes import ACTIVATIONS
from rnnsym.frameworks.onnx import OPTIONAL_INPUTS, OnnxCase, layer_name
from rnnsym.onnx import OUTPUTS
from rnnsym.onnx.attributes import DEFAULT_ACTIVATIONS, GATES, ONNX_ACTIVATIONS, SLOTS
from rnnsym.conformance import strategies as rst


def _float32(x: float) -> float:
    return float(np.float32(x))


@st.composite
def onnx_cases(draw, op: str, space: dict, dtype: str, max_size: int = 6):
    """Strategy for OnnxCase within ``space`` (parse_attribute_space)."""
    def pick(name):
        return draw(st.sampled_from(space[name]), label=name)

    choices = {name: pick(name) for name in ("direction", "layout", "clip", "activation_params")
               + tuple(n for n in ("linear_before_reset", "input_forget") if n in space)}
    D = 2 if choices["direction"] == "bidirectional" else 1
    dims = draw(rst.distinct_sizes(["T", "N", "I", "H"], max_value=max(max_size, 5)),
                label="sizes")
    T, N, I, H = dims["T"], dims["N"], dims["I"], dims["H"]
    attrs = {"hidden_size": H}
    if choices["direction"] != "forward":
        attrs["direction"] = choices["direction"]
    if choices["layout"]:
        attrs["layout"] = 1
    names = [n for n in space["activations"]]
    if names != ["default"]:
        slots = []
        for d in range(D):
            for slot in SLOTS[op]:
                slots.append(draw(st.sampled_from(names), label=f"activation {slot}{d}"))
        if any(s != "default" for s in slots):
            defaults = DEFAULT_ACTIVATIONS[op]
            attrs["activations"] = [defaults[k % len(SLOTS[op])] if s == "default" else s
                                    for k, s in enumerate(slots)]
            choices["activations"] = "given"
    if choices["activation_params"] == "given":
        acts = attrs.get("activations", [])
        keys = [ONNX_ACTIVATIONS[a] for a in acts]
        alphas = [_float32(draw(st.floats(0.1, 1.5), label="alpha"))
                  for k in keys if ACTIVATIONS[k].params]
        betas = [_float32(draw(st.floats(-0.5, 1.0), label="beta"))
                 for k in keys if len(ACTIVATIONS[k].params) > 1]
        if alphas:
            attrs["activation_alpha"] = alphas
        if betas:
            attrs["activation_beta"] = betas
    if choices["clip"] == "given":
        attrs["clip"] = _float32(draw(st.floats(0.1, 3.0), label="clip"))
    for name in ("linear_before_reset", "input_forget"):
        if choices.get(name):
            attrs[name] = 1
    G = GATES[op]
    np_dtype = np.dtype(dtype)
    layers = space.get("layers", (1,))
    L = pick("layers") if len(layers) > 1 else layers[0]
    if L > 1:
        choices["layers"] = L
    present = {n: pick(n) == "present" for n in OPTIONAL_INPUTS if n in space}
    choices.update({n: "present" if p else "absent" for n, p in present.items()})
    shapes = {}
    for k in range(L):          # node k > 0 reads [seq, batch, D * H]
        shapes[layer_name("W", k)] = (D, G * H, I if k == 0 else D * H)
        shapes[layer_name("R", k)] = (D, G * H, H)
        if present.get("B"):
            shapes[layer_name("B", k)] = (D, 2 * G * H)
        if present.get("P"):
            shapes[layer_name("P", k)] = (D, 3 * H)
    values = draw(rst.float_arrays(shapes, np_dtype), label="weights")
    X = draw(rst.inputs({"T": T, "B": N, "d_in": I}, np_dtype), label="X")
    inputs = {"X": X.transpose(1, 0, 2).copy() if choices["layout"] else X}
    inputs.update(values)
    state_names = [layer_name(n, k) for n in ("initial_h", "initial_c") if present.get(n)
                   for k in range(L)]
    if state_names:
        shape = (N, D, H) if choices["layout"] else (D, N, H)
        inputs.update(draw(rst.float_arrays({n: shape for n in state_names}, np_dtype,
                                            magnitudes=(1.0, 0.1, 10.0)), label="states"))
    if present.get("sequence_lens"):
        inputs["sequence_lens"] = np.array(
            draw(st.lists(st.integers(0, T).map(lambda v, T=T: T - v), min_size=N, max_size=N),
                 label="sequence_lens"), dtype=np.int32)
    outputs = [n for n in OUTPUTS[op] if pick(n) == "present"]
    if not outputs:
        outputs = [OUTPUTS[op][1]]
    choices.update({n: "present" if n in outputs else "absent" for n in OUTPUTS[op]})
    case = OnnxCase(op, attrs, inputs, tuple(outputs), choices, layers=L)
    case.inputs = {n: inputs[n] for n in case.input_names()}
    return case
