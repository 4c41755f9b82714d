"""A drawn model: :class:`OnnxCase` (one RNN/GRU/LSTM node, or a stack of them) and
:func:`build_model`.

A *stack* of ``layers`` nodes (``--layers``) is what ``torch.onnx.export`` emits for a
multi-layer ``torch.nn.LSTM``: node k > 0 reads node k-1's ``Y`` ``[seq, num_dir, batch,
hidden]`` as ``[seq, batch, num_dir * hidden]`` (``Transpose(perm=[0, 2, 1, 3])`` then
``Reshape([0, 0, -1])``; with ``layout=1`` ``Y`` is ``[batch, seq, num_dir, hidden]`` and the
``Reshape`` alone does it). Every node has the same attributes and its own ``W/R/B/P`` and
initial states; ``sequence_lens`` is shared. Inputs of node 0 keep the spec's names (``W``),
node k's get a suffix (``W_l1``); the graph outputs are the last node's ``Y`` and every node's
``Y_h``/``Y_c`` (``Y_h_l0``, ``Y_h_l1``, ...), which :meth:`OnnxCase.collect` stacks into
``[layers, ...]`` arrays.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

import numpy as np

from rnnsym.onnx import INPUTS, OUTPUTS

OPSET = 22
IR_VERSION = 10
#: rnnsym's cell name -> ONNX op type, and back
OP = {"elman": "RNN", "gru": "GRU", "lstm": "LSTM"}
CELL = {op: cell for cell, op in OP.items()}
#: inputs every node of a stack shares
SHARED = ("X", "sequence_lens")


def spec_name(name: str) -> str:
    """A graph input's name in the spec: ``W_l1`` -> ``W``."""
    return re.sub(r"_l\d+$", "", name)


def layer_name(name: str, layer: int) -> str:
    """The graph name of node ``layer``'s input ``name``: ``W``, ``W_l1``, ``W_l2``, ..."""
    return name if layer == 0 or name in SHARED else f"{name}_l{layer}"


@dataclass
class OnnxCase:
    """One drawn model: op, ONNX attribute values (every node's), present inputs by graph name,
    requested outputs, the number of stacked nodes; ``choices`` records the drawn point of the
    attribute space (coverage, unsupported lists)."""

    op: str
    attributes: dict
    inputs: dict
    outputs: tuple
    choices: dict = field(default_factory=dict)
    layers: int = 1

    def key(self) -> str:
        """The same for the same drawn model and input values."""
        h = hashlib.sha1(repr((self.op, self.attributes, self.outputs, self.layers)).encode())
        for name, value in self.inputs.items():
            h.update(name.encode())
            h.update(np.ascontiguousarray(value).tobytes())
        return h.hexdigest()

    def model_bytes(self, constants=()) -> bytes:
        return build_model(self.op, self.attributes, self.inputs, self.outputs, self.layers,
                           constants)

    def input_names(self) -> list:
        """Graph input names in order: node 0's in the spec's order, then each next node's."""
        names = [n for n in INPUTS[self.op] if n in self.inputs]
        for k in range(1, self.layers):
            names += [layer_name(n, k) for n in INPUTS[self.op] if n not in SHARED
                      and layer_name(n, k) in self.inputs]
        return names

    @property
    def graph_inputs(self) -> list:
        return [self.inputs[n] for n in self.input_names()]

    def runtime_inputs(self, constants=()) -> list:
        """The graph inputs but those that ``constants`` (spec names) makes initializers."""
        return [self.inputs[n] for n in self.input_names() if spec_name(n) not in constants]

    def layer_inputs(self, layer: int) -> dict:
        """Node ``layer``'s inputs by the spec's names (X: node 0's only)."""
        out = {}
        for n in INPUTS[self.op]:
            if (n != "X" or layer == 0) and layer_name(n, layer) in self.inputs:
                out[n] = self.inputs[layer_name(n, layer)]
        return out

    def output_names(self) -> list:
        """Graph output names in order (``Y``; ``Y_h_l0``, ``Y_h_l1``, ... for a stack)."""
        if self.layers == 1:
            return list(self.outputs)
        return [n if n == "Y" else f"{n}_l{k}" for n in self.outputs
                for k in ((0,) if n == "Y" else range(self.layers))]

    def collect(self, results) -> dict:
        """Graph outputs (in order) -> ``{output: array}``; a stack's states stacked on a new
        first axis (layer)."""
        by_name = dict(zip(self.output_names(), (np.asarray(r) for r in results)))
        if self.layers == 1:
            return by_name
        return {n: by_name[n] if n == "Y" else
                np.stack([by_name[f"{n}_l{k}"] for k in range(self.layers)])
                for n in self.outputs}

    def sizes(self) -> dict:
        X = self.inputs["X"]
        T, N = (X.shape[1], X.shape[0]) if self.attributes.get("layout") else X.shape[:2]
        return {"T": T, "N": N, "I": X.shape[2], "H": self.attributes["hidden_size"]}

    def describe(self) -> str:
        attrs = ", ".join(f"{k}={v!r}" for k, v in self.attributes.items())
        ins = ", ".join(f"{k}{list(v.shape)}" for k, v in self.inputs.items())
        stack = f"{self.layers} x " if self.layers > 1 else ""
        return f"{stack}{self.op}({attrs}) inputs {ins} -> {', '.join(self.outputs)}"


def _trimmed(names: list) -> list:
    while names and not names[-1]:
        names.pop()
    return names


def build_model(op: str, attributes: dict, inputs: dict, outputs, layers: int = 1,
                constants=()) -> bytes:
    """An opset-22 model of ``layers`` stacked nodes (module docstring): graph inputs = the
    present inputs (node 0's named as in the spec), graph outputs = the requested outputs
    (:meth:`OnnxCase.output_names`); omitted optional ones are ``""`` in the nodes. Inputs
    whose spec name is in ``constants`` (e.g. ``W``, ``R``, ``B``) are initializers instead,
    as in an exported model (converters bake them into the module).

    The model is validated by onnx itself (strict shape inference, then the full checker), so
    that a target rejecting it is the target's doing: ValueError if rnnsym built a bad one."""
    from onnx import TensorProto, checker, helper, numpy_helper, shape_inference

    case = OnnxCase(op, attributes, inputs, tuple(outputs), layers=layers)
    nodes, initializers = [], []
    x = "X"
    for k in range(layers):
        last = k == layers - 1
        node_inputs = [x if n == "X" else layer_name(n, k) if layer_name(n, k) in inputs
                       else "" for n in INPUTS[op]]
        names = {"Y": "Y" if layers == 1 or last else f"Y_l{k}",
                 **{n: n if layers == 1 else f"{n}_l{k}" for n in OUTPUTS[op][1:]}}
        node_outputs = [names[n] if n in outputs or (n == "Y" and not last) else ""
                        for n in OUTPUTS[op]]
        nodes.append(helper.make_node(op, _trimmed(node_inputs), _trimmed(node_outputs),
                                      name=f"{op.lower()}_{k}" if layers > 1 else None,
                                      **attributes))
        if not last:          # node k's Y -> node k+1's X, [seq, batch, num_dir * hidden]
            y, x = names["Y"], f"X_l{k + 1}"
            if not attributes.get("layout"):
                nodes.append(helper.make_node("Transpose", [y], [f"{y}_t"], perm=[0, 2, 1, 3]))
                y = f"{y}_t"
            nodes.append(helper.make_node("Reshape", [y, "flat_shape"], [x]))
    if layers > 1:
        initializers.append(numpy_helper.from_array(np.array([0, 0, -1], np.int64),
                                                    "flat_shape"))
    elem = helper.np_dtype_to_tensor_dtype(inputs["X"].dtype)
    graph = helper.make_graph(
        nodes, f"rnnsym_{op.lower()}",
        [helper.make_tensor_value_info(n, TensorProto.INT32 if n == "sequence_lens" else elem,
                                       inputs[n].shape) for n in case.input_names()
         if spec_name(n) not in constants],
        [helper.make_tensor_value_info(n, elem, None) for n in case.output_names()],
        initializer=initializers + [numpy_helper.from_array(inputs[n], n)
                                    for n in case.input_names() if spec_name(n) in constants])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="rnnsym", ir_version=IR_VERSION)
    try:
        checker.check_model(shape_inference.infer_shapes(model, check_type=True,
                                                         strict_mode=True), full_check=True)
    except (checker.ValidationError, shape_inference.InferenceError) as exc:
        raise ValueError(f"rnnsym built an invalid {op} model (attributes {attributes}, inputs "
                         f"{ {k: v.shape for k, v in inputs.items()} }): {exc}") from exc
    return model.SerializeToString()
