"""``rnnsym.onnx``: ONNX's RNN, GRU and LSTM operators (opset 7 to 22), every attribute, evaluated
by rnnsym's symbolic cells; and opset 27's ``LinearAttention`` and ``CausalConvWithState``
(:mod:`~rnnsym.onnx.linear_attention`, :mod:`~rnnsym.onnx.causal_conv`: sequential float64).

    outputs = rnnsym.onnx.run(model, [X, W, R, B])      # [Y, Y_h] (None where omitted)
    outputs = rnnsym.onnx.run(model, [query, key, value, decay, beta])   # [output, present_state]

Owns the operators' semantics: :mod:`~rnnsym.onnx.attributes` (parse and validate the node's
attributes), :mod:`~rnnsym.onnx.convert` (``W/R/B/P`` <-> canonical parameters),
:mod:`~rnnsym.onnx.readings` (the points the spec leaves open and their readings),
:mod:`~rnnsym.onnx.driver` (directions, ``sequence_lens``, ``layout``) and :func:`run`.

May import: ``rnnsym.cells``, ``rnnsym.codegen`` (and what they import), numpy, onnx (lazily).
Not frameworks, check or testing: the harness that drives ONNX runtimes is
:mod:`rnnsym.frameworks.onnx` (with the torch/Keras <-> ONNX converters), the checker's ONNX
search :mod:`rnnsym.conformance.onnx`.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from rnnsym.onnx.attributes import (OPS, Attributes, OnnxError,
                                    activation_attributes, parse_attributes)
from rnnsym.onnx.convert import canonical_to_onnx, onnx_to_canonical
from rnnsym.onnx.driver import evaluate
from rnnsym.onnx.readings import ORT_READINGS, Readings
from rnnsym.onnx import causal_conv, linear_attention

__all__ = ["run", "evaluate_node", "load_model", "Readings", "ORT_READINGS", "OnnxError",
           "Attributes", "parse_attributes", "activation_attributes", "onnx_to_canonical",
           "canonical_to_onnx", "INPUTS", "OUTPUTS"]

#: input and output names by position, per op
INPUTS = {"RNN": ("X", "W", "R", "B", "sequence_lens", "initial_h"),
          "GRU": ("X", "W", "R", "B", "sequence_lens", "initial_h"),
          "LSTM": ("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P")}
OUTPUTS = {"RNN": ("Y", "Y_h"), "GRU": ("Y", "Y_h"), "LSTM": ("Y", "Y_h", "Y_c")}
MIN_OPSET = 7
#: opset-27 ops with a carried state (not RNN/GRU/LSTM): their inputs and outputs
STATE_OPS = {"LinearAttention": (linear_attention.INPUTS, linear_attention.OUTPUTS),
             "CausalConvWithState": (causal_conv.INPUTS, causal_conv.OUTPUTS)}


def load_model(model):
    """A ``ModelProto``, its serialized bytes, or a path -> ``ModelProto``."""
    import onnx

    if isinstance(model, onnx.ModelProto):
        return model
    from google.protobuf.message import DecodeError

    if isinstance(model, (bytes, bytearray)):
        try:
            return onnx.load_model_from_string(bytes(model))
        except DecodeError:
            raise OnnxError(f"model: these {len(model)} bytes are not a serialized ONNX "
                            "model (protobuf could not decode them)") from None
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if not os.path.isfile(path):
            raise OnnxError(f"model: no such file {path}")
        try:
            return onnx.load(path)
        except DecodeError:
            raise OnnxError(f"model: {path} is not an ONNX model (protobuf could not decode "
                            "it; corrupted or another format?)") from None
    raise OnnxError(f"model: expected an onnx.ModelProto, bytes or a path, "
                    f"got {type(model).__name__}")


def _opset(model) -> int:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return imp.version
    raise OnnxError("model: no opset_import for the default ONNX domain")


def run(model, inputs: Sequence, *, readings: Readings = Readings(), **reading) -> list:
    """Evaluate a one-node ONNX model of op type RNN, GRU or LSTM (or, opset 27,
    LinearAttention or CausalConvWithState; ``kv_heads="tiled"`` selects the other reading of
    LinearAttention's grouped-query sharing, :mod:`rnnsym.onnx.linear_attention`).

    model     ``ModelProto``, bytes or a path
    inputs    arrays in graph-input order (omitted optional inputs absent); initializers of
              the graph supply the node inputs that are not graph inputs
    readings  the readings of what the spec leaves open (:class:`Readings`); single ones may
              be given as keywords: ``clip_before_h=False``, ``y_past_length="hold"``,
              ``empty_state="zero"``, ``alpha_order="positional"``
    Returns the node's outputs in order, ``None`` for omitted ones, in X's dtype.
    Raises OnnxError for unsupported op types, attributes or values, and bad inputs.
    """
    from onnx import helper

    model = load_model(model)
    graph = model.graph
    if len(graph.node) != 1:
        raise OnnxError(f"model: expected a graph with one node, got {len(graph.node)}")
    node = graph.node[0]
    if node.domain not in ("", "ai.onnx") or node.op_type not in OPS + tuple(STATE_OPS):
        raise OnnxError(f"node op type: expected one of {', '.join(OPS + tuple(STATE_OPS))} "
                        f"(default domain), got "
                        f"{node.domain + '.' if node.domain else ''}{node.op_type}")
    opset = _opset(model)
    if node.op_type in STATE_OPS:
        unknown = sorted(set(reading) - ({"kv_heads"} if node.op_type == "LinearAttention"
                                         else set()))
        if unknown:
            raise OnnxError(f"reading {unknown[0]}: not an open point of {node.op_type} "
                            "(LinearAttention: kv_heads)")
        return _run_state_op(model, node, inputs, opset, **reading)
    if opset < MIN_OPSET:
        raise OnnxError(f"model opset {opset}: rnnsym.onnx supports opset {MIN_OPSET} to 22")
    readings = readings.replace(**reading) if reading else readings
    attrs_raw = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if "layout" in attrs_raw and opset < 14:
        raise OnnxError(f"{node.op_type} attribute layout: exists from opset 14, model opset "
                        f"{opset}")
    attrs = parse_attributes(node.op_type, attrs_raw, alpha_order=readings.alpha_order)
    kwargs = _node_inputs(graph, node, inputs, INPUTS[node.op_type])
    for required in ("X", "W", "R"):
        if required not in kwargs:
            raise OnnxError(f"input {required}: required, but absent")
    outs_names = OUTPUTS[node.op_type]
    if len(node.output) > len(outs_names):
        raise OnnxError(f"{node.op_type}: expected at most {len(outs_names)} outputs "
                        f"({', '.join(outs_names)}), got {len(node.output)}")
    X = np.asarray(kwargs.pop("X"))
    result = evaluate(attrs, X, readings=readings, **kwargs)
    dtype = X.dtype if np.issubdtype(X.dtype, np.floating) else np.float64
    return [result[slot].astype(dtype) if name else None
            for slot, name in zip(outs_names, node.output)]


def _node_inputs(graph, node, inputs: Sequence, slots) -> dict:
    """The node's present inputs by slot name, from the graph inputs and initializers."""
    from onnx import numpy_helper

    names = [i.name for i in graph.input]
    if len(inputs) != len(names):
        raise OnnxError(f"inputs: expected {len(names)} arrays (graph inputs {names}), "
                        f"got {len(inputs)}")
    values = dict(zip(names, inputs))
    for init in graph.initializer:
        values.setdefault(init.name, numpy_helper.to_array(init))
    if len(node.input) > len(slots):
        raise OnnxError(f"{node.op_type}: expected at most {len(slots)} inputs "
                        f"({', '.join(slots)}), got {len(node.input)}")
    kwargs = {}
    for slot, name in zip(slots, node.input):
        if not name:
            continue
        if name not in values:
            raise OnnxError(f"input {slot}: node input {name!r} is neither a graph input nor "
                            f"an initializer")
        kwargs[slot] = values[name]
    return kwargs


def _run_state_op(model, node, inputs, opset: int, kv_heads: str = "grouped") -> list:
    """``LinearAttention`` / ``CausalConvWithState`` (opset 27): outputs in the first input's
    dtype (float64 when it is not a float)."""
    from onnx import helper

    if opset < 27:
        raise OnnxError(f"model opset {opset}: {node.op_type} exists from opset 27")
    attrs_raw = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    slots, outs_names = STATE_OPS[node.op_type]
    kwargs = _node_inputs(model.graph, node, inputs, slots)
    for required in slots[:3 if node.op_type == "LinearAttention" else 2]:
        if required not in kwargs:
            raise OnnxError(f"input {required}: required, but absent")
    if len(node.output) > len(outs_names):
        raise OnnxError(f"{node.op_type}: expected at most {len(outs_names)} outputs "
                        f"({', '.join(outs_names)}), got {len(node.output)}")
    if node.op_type == "LinearAttention":
        result = linear_attention.evaluate(linear_attention.parse_attributes(attrs_raw),
                                           kv_heads=kv_heads, **kwargs)
    else:
        result = causal_conv.evaluate(causal_conv.parse_attributes(attrs_raw), **kwargs)
    first = np.asarray(kwargs[slots[0]])
    dtype = first.dtype if np.issubdtype(first.dtype, np.floating) else np.float64
    return [result[slot].astype(dtype) if name else None
            for slot, name in zip(outs_names, node.output)]


def evaluate_node(op: str, attributes: dict, inputs: dict, *,
                  readings: Readings = Readings()) -> dict:
    """Without a model: ``attributes`` as ONNX values, ``inputs`` by name (``X``, ``W``, ...);
    returns ``{"Y", "Y_h"[, "Y_c"]}`` in float64."""
    attrs = parse_attributes(op, attributes, alpha_order=readings.alpha_order)
    unknown = sorted(set(inputs) - set(INPUTS[op]))
    if unknown:
        raise OnnxError(f"input {unknown[0]}: not an input of {op} ({', '.join(INPUTS[op])})")
    kwargs = {k: v for k, v in inputs.items() if v is not None}
    X = kwargs.pop("X")
    return evaluate(attrs, X, readings=readings, **kwargs)
