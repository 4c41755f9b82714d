"""Opset-27 ops with a carried state, ``LinearAttention`` and ``CausalConvWithState``: a drawn
model (:class:`StateOpCase`, run by the same targets as RNN/GRU/LSTM nodes) and the choices
of their space.

LinearAttention (``--cell linear_attention``), the first value of each the default (the shrink
target)::

    update_rule  linear | gated | delta | gated_delta | default (attribute absent: gated_delta)
    heads        equal (H_q = H_kv) | grouped (H_q = G * H_kv, G >= 2)
    scale        default (absent) | zero (0.0 given) | given
    decay        per_head (B, T, H_kv) | per_key (B, T, H_kv*d_k)     (gated rules)
    beta         per_head (B, T, H_kv) | shared (B, T, 1)               (delta rules)
    chunk_size   default (absent) | given (1 to T + 1: T not a multiple of it is drawn)
    past_state   absent | present
    output, present_state   present | absent (at least one present)

CausalConvWithState (``--cell causal_conv``)::

    activation   none | silu | swish | default (attribute absent)
    bias, past_state   absent | present
    output, present_state   present | absent

``--attributes NAME=V1|V2`` restricts a choice (:func:`parse_state_space`).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from rnnsym.frameworks import UsageError
from rnnsym.onnx import causal_conv, linear_attention

OPSET = 27
IR_VERSION = 11
#: ``--cell`` name -> op type
STATE_OP = {"linear_attention": "LinearAttention", "causal_conv": "CausalConvWithState"}
SLOTS = {"LinearAttention": (linear_attention.INPUTS, linear_attention.OUTPUTS),
         "CausalConvWithState": (causal_conv.INPUTS, causal_conv.OUTPUTS)}
STATE_SPACE = {
    "LinearAttention": {
        "update_rule": ("linear", "gated", "delta", "gated_delta", "default"),
        "heads": ("equal", "grouped"),
        "scale": ("default", "zero", "given"),
        "decay": ("per_head", "per_key"),
        "beta": ("per_head", "shared"),
        "chunk_size": ("default", "given"),
        "past_state": ("absent", "present"),
        "output": ("present", "absent"),
        "present_state": ("present", "absent"),
    },
    "CausalConvWithState": {
        "activation": ("none", "silu", "swish", "default"),
        "bias": ("absent", "present"),
        "past_state": ("absent", "present"),
        "output": ("present", "absent"),
        "present_state": ("present", "absent"),
    },
}


def parse_state_space(text, op: str) -> dict:
    """``"update_rule=delta|gated_delta,past_state=present"`` (or a dict) -> the space."""
    space = dict(STATE_SPACE[op])
    if not text:
        return space
    items = text.items() if isinstance(text, dict) else \
        [w.split("=", 1) if "=" in w else (w, None)
         for w in filter(None, (w.strip() for w in str(text).split(",")))]
    for name, values in items:
        name = name.strip()
        if name not in space:
            raise UsageError(f"--attributes {name}: not a choice of {op} (known: "
                             f"{', '.join(space)})")
        if values is None:
            raise UsageError(f"--attributes {name}: expected {name}=VALUE[|VALUE...]")
        chosen = []
        for w in str(values).split("|"):
            w = w.strip().lower()
            if w not in STATE_SPACE[op][name]:
                raise UsageError(f"--attributes {name}={w}: expected one of "
                                 f"{'|'.join(STATE_SPACE[op][name])}")
            chosen.append(w)
        space[name] = tuple(dict.fromkeys(chosen))
    return space


@dataclass
class StateOpCase:
    """One drawn one-node model: op type, ONNX attribute values, the present inputs by the
    spec's names (graph inputs named alike), the requested outputs; ``choices`` records the
    drawn point of the space. The interface of :class:`~.model.OnnxCase` that targets use."""

    op: str
    attributes: dict
    inputs: dict
    outputs: tuple
    choices: dict = field(default_factory=dict)
    layers: int = 1

    def key(self) -> str:
        h = hashlib.sha1(repr((self.op, self.attributes, self.outputs)).encode())
        for name, value in self.inputs.items():
            h.update(name.encode())
            h.update(np.ascontiguousarray(value).tobytes())
        return h.hexdigest()

    def input_names(self) -> list:
        return [n for n in SLOTS[self.op][0] if n in self.inputs]

    def runtime_inputs(self, constants=()) -> list:
        return [self.inputs[n] for n in self.input_names() if n not in constants]

    def output_names(self) -> list:
        return list(self.outputs)

    def collect(self, results) -> dict:
        return dict(zip(self.outputs, (np.asarray(r) for r in results)))

    def model_bytes(self, constants=()) -> bytes:
        return build_state_model(self.op, self.attributes, self.inputs, self.outputs,
                                 constants)

    def sizes(self) -> dict:
        if self.op == "CausalConvWithState":
            B, C, L = self.inputs["input"].shape
            return {"B": B, "C": C, "L": L, "k": self.inputs["weight"].shape[2]}
        B, T, _ = self.inputs["query"].shape
        a = self.attributes
        d_k = self.inputs["query"].shape[2] // a["q_num_heads"]
        d_v = self.inputs["value"].shape[2] // a["kv_num_heads"]
        return {"B": B, "T": T, "H_q": a["q_num_heads"], "H_kv": a["kv_num_heads"],
                "d_k": d_k, "d_v": d_v}

    def where(self, name: str, index: tuple) -> str:
        """An element named by its axes: ``output[b=0, t=2, head=1, m=0]`` (m: the value
        unit of the head), ``present_state[b=0, head=1, i=2, m=0]`` (i: key unit),
        ``output[b=0, c=1, t=3]`` (the convolution)."""
        index = tuple(int(i) for i in index)
        if self.op == "CausalConvWithState":
            axes = ("b", "c", "t") if name == "output" else ("b", "c", "j")
        elif name == "output":
            d_v = self.sizes()["d_v"]
            index = index[:2] + divmod(index[2], d_v)
            axes = ("b", "t", "head", "m")
        else:
            axes = ("b", "head", "i", "m")
        return f"{name}[{', '.join(f'{a}={i}' for a, i in zip(axes, index))}]"

    def describe(self) -> str:
        attrs = ", ".join(f"{k}={v!r}" for k, v in self.attributes.items())
        ins = ", ".join(f"{k}{list(v.shape)}" for k, v in self.inputs.items())
        return f"{self.op}({attrs}) inputs {ins} -> {', '.join(self.outputs)}"


def build_state_model(op: str, attributes: dict, inputs: dict, outputs, constants=()) -> bytes:
    """An opset-27 one-node model: graph inputs the present inputs (initializers those named
    in ``constants``), graph outputs the requested outputs (the node has both: the schema
    requires them). Validated by onnx (strict shape
    inference and the full checker: ValueError if rnnsym built a bad one), except in float64,
    which the op's type constraints (float16, bfloat16, float) do not allow: such a model is
    built all the same, for the targets to run or reject."""
    from onnx import checker, helper, numpy_helper, shape_inference

    slots, out_slots = SLOTS[op]
    names = [n if n in inputs else "" for n in slots]
    while names and not names[-1]:
        names.pop()
    node = helper.make_node(op, names, list(out_slots), **attributes)   # both required
    elem = helper.np_dtype_to_tensor_dtype(next(iter(inputs.values())).dtype)
    graph = helper.make_graph(
        [node], f"rnnsym_{op.lower()}",
        [helper.make_tensor_value_info(n, elem, inputs[n].shape) for n in slots
         if n in inputs and n not in constants],
        [helper.make_tensor_value_info(n, elem, None) for n in out_slots if n in outputs],
        initializer=[numpy_helper.from_array(inputs[n], n) for n in slots
                     if n in inputs and n in constants])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="rnnsym", ir_version=IR_VERSION)
    if elem != helper.np_dtype_to_tensor_dtype(np.dtype(np.float64)):
        try:
            checker.check_model(shape_inference.infer_shapes(model, check_type=True,
                                                             strict_mode=True), full_check=True)
        except (checker.ValidationError, shape_inference.InferenceError) as exc:
            raise ValueError(f"rnnsym built an invalid {op} model (attributes {attributes}, "
                             f"inputs { {k: v.shape for k, v in inputs.items()} }): "
                             f"{exc}") from exc
    return model.SerializeToString()
