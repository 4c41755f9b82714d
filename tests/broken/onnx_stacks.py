"""Hand-written ONNX backends for stacks of RNN/GRU/LSTM nodes (``rnnsym check
onnx:tests/broken/onnx_stacks.py:NAME --layers 2,3``): a small graph interpreter, each
recurrent node evaluated alone by ``rnnsym.onnx.evaluate_node``, so that only the way the nodes
are chained differs.

run             interprets the graph's own Transpose and Reshape nodes: PASSES
run_concat      ignores them and puts the directions side by side itself: PASSES
run_interleaved feeds node k+1 with direction and hidden interleaved ([..., H, D] flattened,
                h0_fwd, h0_rev, h1_fwd, ...): FAILS for two directions
run_lengths_after_first
                drops sequence_lens from every node but the first: FAILS when lengths differ
"""
import numpy as np
import onnx
from onnx import numpy_helper

from rnnsym.onnx import INPUTS, OUTPUTS, evaluate_node

RECURRENT = ("RNN", "GRU", "LSTM")


def _reshape(x, shape):
    """ONNX Reshape: 0 copies the input's dimension, -1 is inferred."""
    shape = [x.shape[i] if s == 0 else int(s) for i, s in enumerate(shape)]
    return x.reshape(shape)


def _interpret(model_bytes, inputs, *, feed=None, lengths_after_first=True):
    """Run the graph node by node. ``feed(Y, layout)``, if given, replaces the graph's own
    Transpose/Reshape between two recurrent nodes."""
    model = onnx.load_model_from_string(model_bytes)
    graph = model.graph
    values = {i.name: v for i, v in zip(graph.input, inputs)}
    values.update({t.name: numpy_helper.to_array(t) for t in graph.initializer})
    done, previous_y, attrs_layout = 0, None, 0
    for node in graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Transpose":
            if feed is None:
                values[node.output[0]] = np.transpose(values[node.input[0]], attrs["perm"])
            continue
        if node.op_type == "Reshape":
            if feed is None:
                values[node.output[0]] = _reshape(values[node.input[0]], values[node.input[1]])
            else:
                values[node.output[0]] = feed(values[previous_y], attrs_layout)
            continue
        assert node.op_type in RECURRENT, node.op_type
        ins = {slot: values[name] for slot, name in zip(INPUTS[node.op_type], node.input)
               if name}
        if done and not lengths_after_first:
            ins.pop("sequence_lens", None)
        attrs = {k: v.decode() if isinstance(v, bytes) else
                 [w.decode() if isinstance(w, bytes) else w for w in v] if isinstance(v, list)
                 else v for k, v in attrs.items()}
        outs = evaluate_node(node.op_type, attrs, ins)
        dtype = ins["X"].dtype
        for slot, name in zip(OUTPUTS[node.op_type], node.output):
            if name:
                values[name] = outs[slot].astype(dtype)
        previous_y, attrs_layout = node.output[0], attrs.get("layout", 0)
        done += 1
    return [values[o.name] for o in graph.output]


def run(model_bytes, inputs):
    return _interpret(model_bytes, inputs)


def _side_by_side(Y, layout):
    """[T, D, N, H] -> [T, N, D*H] by concatenating the directions (batch-major alike)."""
    axis = 2 if layout else 1
    parts = [np.take(Y, d, axis=axis) for d in range(Y.shape[axis])]
    return np.concatenate(parts, axis=-1)


def run_concat(model_bytes, inputs):
    return _interpret(model_bytes, inputs, feed=_side_by_side)


def _interleaved(Y, layout):
    """Wrong: hidden-major, h0_fwd, h0_rev, h1_fwd, h1_rev, ..."""
    Y = Y.transpose(0, 1, 3, 2) if layout else Y.transpose(0, 2, 3, 1)
    return Y.reshape(Y.shape[0], Y.shape[1], -1)


def run_interleaved(model_bytes, inputs):
    return _interpret(model_bytes, inputs, feed=_interleaved)


def run_lengths_after_first(model_bytes, inputs):
    return _interpret(model_bytes, inputs, lengths_after_first=False)
