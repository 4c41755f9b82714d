"""One RNN/GRU/LSTM node as a model: :class:`OnnxCase` (what was drawn) and :func:`build_model`."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from rnnsym.onnx import INPUTS, OUTPUTS

OPSET = 22
IR_VERSION = 10
#: rnnsym's cell name -> ONNX op type, and back
OP = {"elman": "RNN", "gru": "GRU", "lstm": "LSTM"}
CELL = {op: cell for cell, op in OP.items()}


@dataclass
class OnnxCase:
    """One drawn node: op, ONNX attribute values, present inputs by name, requested outputs;
    ``choices`` records the drawn point of the attribute space (coverage, unsupported lists)."""

    op: str
    attributes: dict
    inputs: dict
    outputs: tuple
    choices: dict = field(default_factory=dict)

    def key(self) -> str:
        """The same for the same drawn node and input values."""
        h = hashlib.sha1(repr((self.op, self.attributes, self.outputs)).encode())
        for name, value in self.inputs.items():
            h.update(name.encode())
            h.update(np.ascontiguousarray(value).tobytes())
        return h.hexdigest()

    def model_bytes(self) -> bytes:
        return build_model(self.op, self.attributes, self.inputs, self.outputs)

    @property
    def graph_inputs(self) -> list:
        return [self.inputs[n] for n in INPUTS[self.op] if n in self.inputs]

    def sizes(self) -> dict:
        X = self.inputs["X"]
        T, N = (X.shape[1], X.shape[0]) if self.attributes.get("layout") else X.shape[:2]
        return {"T": T, "N": N, "I": X.shape[2], "H": self.attributes["hidden_size"]}

    def describe(self) -> str:
        attrs = ", ".join(f"{k}={v!r}" for k, v in self.attributes.items())
        ins = ", ".join(f"{k}{list(v.shape)}" for k, v in self.inputs.items())
        return f"{self.op}({attrs}) inputs {ins} -> {', '.join(self.outputs)}"


def build_model(op: str, attributes: dict, inputs: dict, outputs) -> bytes:
    """A one-node opset-22 model: graph inputs = the present inputs (names as in the spec),
    graph outputs = the requested outputs; omitted optional ones are ``""`` in the node.

    The model is validated by onnx itself (strict shape inference, then the full checker), so
    that a target rejecting it is the target's doing: ValueError if rnnsym built a bad one."""
    from onnx import TensorProto, checker, helper, shape_inference

    node_inputs = [n if n in inputs else "" for n in INPUTS[op]]
    while node_inputs and not node_inputs[-1]:
        node_inputs.pop()
    node_outputs = [n if n in outputs else "" for n in OUTPUTS[op]]
    while node_outputs and not node_outputs[-1]:
        node_outputs.pop()
    node = helper.make_node(op, node_inputs, node_outputs, **attributes)
    elem = helper.np_dtype_to_tensor_dtype(inputs["X"].dtype)
    graph = helper.make_graph(
        [node], f"rnnsym_{op.lower()}",
        [helper.make_tensor_value_info(n, TensorProto.INT32 if n == "sequence_lens" else elem,
                                       inputs[n].shape) for n in INPUTS[op] if n in inputs],
        [helper.make_tensor_value_info(n, elem, None) for n in OUTPUTS[op] if n in outputs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="rnnsym", ir_version=IR_VERSION)
    try:
        checker.check_model(shape_inference.infer_shapes(model, check_type=True,
                                                         strict_mode=True), full_check=True)
    except (checker.ValidationError, shape_inference.InferenceError) as exc:
        raise ValueError(f"rnnsym built an invalid {op} model (attributes {attributes}, inputs "
                         f"{ {k: v.shape for k, v in inputs.items()} }): {exc}") from exc
    return model.SerializeToString()
