"""Hand-written ONNX -> torch converters for ``rnnsym check onnx-converter:FILE:NAME``.

``convert`` is correct but unusual: it handles LSTM only, puts the ONNX weights into a
batch-first ``torch.nn.LSTM`` (gate blocks reordered by an index, ONNX i,o,f,c -> torch
i,f,g,o), runs the reverse direction of a bidirectional node through the same module, and
refuses with ``NotImplementedError`` what it does not convert: other ops, ``direction=reverse``,
``layout``, ``clip``, ``activations``, ``input_forget``, ``P`` and ``sequence_lens``; a missing
initial state is zeros. The checker must pass it, listing those as unsupported.

The broken ones differ in one line each: ``convert_torch_gate_order`` copies the blocks in
ONNX order into torch's slots, ``convert_bias_dropped`` leaves out ``B``.
"""
import torch
from onnx import helper, numpy_helper

ONNX_TO_TORCH = [0, 2, 3, 1]     # torch's i,f,g,o are ONNX's blocks i(0), f(2), c(3), o(1)
REFUSED = ("layout", "clip", "activations", "activation_alpha", "activation_beta",
           "input_forget")


class OnnxLSTM(torch.nn.Module):
    """forward(X, [initial_h, initial_c]) -> the node's outputs (Y, Y_h, Y_c present ones)."""

    def __init__(self, lstm, outputs, states):
        super().__init__()
        self.lstm, self.outputs, self.states = lstm, outputs, states

    def forward(self, X, *given):
        T, N, _ = X.shape
        D, H = 1 + self.lstm.bidirectional, self.lstm.hidden_size
        given = dict(zip(self.states, given))     # the initial states the graph takes
        hc = tuple(given.get(n, X.new_zeros(D, N, H)).contiguous()
                   for n in ("initial_h", "initial_c"))
        out, (h, c) = self.lstm(X.transpose(0, 1), hc)          # batch-first inside
        Y = out.reshape(N, T, D, H).permute(1, 2, 0, 3)           # (T, D, N, H)
        values = {"Y": Y, "Y_h": h, "Y_c": c}
        return tuple(values[n] for n in self.outputs)


def _converter(order=ONNX_TO_TORCH, bias=True):
    def convert(model):
        (node,) = model.graph.node
        if node.op_type != "LSTM":
            raise NotImplementedError(f"{node.op_type} is not converted, only LSTM")
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        for name in REFUSED:
            if attrs.get(name):
                raise NotImplementedError(f"LSTM attribute {name}")
        direction = attrs.get("direction", b"forward").decode()
        if direction == "reverse":
            raise NotImplementedError("LSTM direction=reverse")
        names = dict(zip(("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"),
                         node.input))
        for name in ("sequence_lens", "P"):
            if names.get(name):
                raise NotImplementedError(f"LSTM input {name}")
        consts = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy())
                  for t in model.graph.initializer}
        W, R = consts[names["W"]], consts[names["R"]]
        D, H = W.shape[0], attrs["hidden_size"]
        index = torch.cat([torch.arange(k * H, (k + 1) * H) for k in order])
        lstm = torch.nn.LSTM(W.shape[2], H, batch_first=True, bidirectional=D == 2,
                             bias=bias and bool(names.get("B")), dtype=W.dtype)
        with torch.no_grad():
            for d, suffix in enumerate(["", "_reverse"][:D]):
                getattr(lstm, f"weight_ih_l0{suffix}").copy_(W[d][index])
                getattr(lstm, f"weight_hh_l0{suffix}").copy_(R[d][index])
                if lstm.bias:
                    Wb, Rb = consts[names["B"]][d].split(4 * H)
                    getattr(lstm, f"bias_ih_l0{suffix}").copy_(Wb[index])
                    getattr(lstm, f"bias_hh_l0{suffix}").copy_(Rb[index])
        outputs = [n for n in node.output if n]
        return OnnxLSTM(lstm, outputs, [n for n in ("initial_h", "initial_c") if names.get(n)])
    return convert


convert = _converter()
convert_torch_gate_order = _converter(order=[0, 1, 2, 3])
convert_bias_dropped = _converter(bias=False)
