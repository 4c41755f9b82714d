"""PyTorch ``nn.RNN/LSTM/GRU`` (and ``RNNCell/LSTMCell/GRUCell``) <-> canonical.

Parameter layout (``torch/nn/modules/rnn.py``), per layer ``k`` with a ``_reverse``
suffix for the backward direction::

    weight_ih_l{k}  (G*d_h, in_k)      G gate blocks stacked on axis 0
    weight_hh_l{k}  (G*d_h, d_out)     d_out = proj_size or d_h
    bias_ih_l{k}    (G*d_h,)           only with bias=True
    bias_hh_l{k}    (G*d_h,)
    weight_hr_l{k}  (proj_size, d_h)   LSTM with proj_size > 0

Gate blocks: elman 1 block, LSTM ``i|f|g|o``, GRU ``r|z|n`` -- the same order as the
canonical gate letters, so no reordering is needed; the orientation is the same too
(``x @ W.T``). The converters only split/stack blocks and map biases:

- elman: ``b_h = bias_ih + bias_hh`` (canonical has one bias); the inverse puts
  ``b_h`` into ``bias_ih`` and zeros into ``bias_hh``.
- LSTM/GRU: ``b_x{g} = bias_ih[g]``, ``b_h{g} = bias_hh[g]`` (lossless).
- ``bias=False``: canonical biases are zeros.

States: ``h_n (D*L, B, d_out)`` with index ``layer*D + direction``;
``c_n (D*L, B, d_h)``. ``batch_first`` applies to input/output only.

Variable lengths: ``forward(pack_padded_sequence(x, lengths, batch_first=,
enforce_sorted=), hx)`` returns a ``PackedSequence``; ``pad_packed_sequence`` pads it
with zeros. ``hx``/``h_n`` stay in the caller's batch order (torch permutes them by
``sorted_indices`` itself); lengths must be >= 1.
The ``*Cell`` classes use the same blocks without the ``_l{k}`` suffix.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from rnnsym.frameworks import (Capabilities, Config, ContractError, Harness, OutputError,
                               check_shape, flat_outputs, nest_state, torch_single_thread)
from rnnsym.frameworks.layers import layer_input_sizes

GATES = {"elman": ("h",), "lstm": tuple("ifgo"), "gru": tuple("rzn")}
MODULE_NAMES = {"elman": "RNN", "lstm": "LSTM", "gru": "GRU"}
CELL_NAMES = {"elman": "RNNCell", "lstm": "LSTMCell", "gru": "GRUCell"}


def _suffix(layer: int, direction: int, cell_api: bool) -> str:
    if cell_api:
        return ""
    return f"_l{layer}" + ("_reverse" if direction else "")


def torch_param_shapes(cell: str, *, input_size: int, hidden_size: int, num_layers: int = 1,
                       bias: bool = True, bidirectional: bool = False, proj_size: int = 0,
                       cell_api: bool = False) -> dict[str, tuple]:
    """Every parameter name of the torch module (or ``*Cell``) -> its shape, in the
    order ``named_parameters()`` yields them."""
    G = len(GATES[cell])
    D = 2 if bidirectional else 1
    d_out = proj_size or hidden_size
    shapes = {}
    for layer, in_k in enumerate(layer_input_sizes(input_size, d_out, num_layers, D)):
        for direction in range(D):
            s = _suffix(layer, direction, cell_api)
            shapes[f"weight_ih{s}"] = (G * hidden_size, in_k)
            shapes[f"weight_hh{s}"] = (G * hidden_size, d_out)
            if bias:
                shapes[f"bias_ih{s}"] = (G * hidden_size,)
                shapes[f"bias_hh{s}"] = (G * hidden_size,)
            if proj_size:
                shapes[f"weight_hr{s}"] = (proj_size, hidden_size)
    return shapes


def symbolic_shape(name: str, cell: str) -> str:
    """The shape of a torch parameter in symbols, for error messages."""
    G = len(GATES[cell])
    rows = f"{G}*d_h" if G > 1 else "d_h"
    if name.startswith("weight_ih"):
        return f"({rows}, in_k)"
    if name.startswith("weight_hh"):
        return f"({rows}, d_out)"
    if name.startswith("weight_hr"):
        return "(proj_size, d_h)"
    return f"({rows},)"


def _blocks(value: np.ndarray, n: int) -> list[np.ndarray]:
    return np.split(np.asarray(value, dtype=np.float64), n, axis=0)


def torch_to_canonical(cell: str, values: Mapping[str, np.ndarray], *, num_layers: int = 1,
                       bidirectional: bool = False, bias: bool = True, proj_size: int = 0,
                       cell_api: bool = False) -> list[list[dict]]:
    """Torch-named arrays -> canonical ``params[layer][direction]`` (float64)."""
    gates = GATES[cell]
    D = 2 if bidirectional else 1
    layers = []
    for layer in range(num_layers):
        dirs = []
        for direction in range(D):
            s = _suffix(layer, direction, cell_api)
            W_x = _blocks(values[f"weight_ih{s}"], len(gates))
            W_h = _blocks(values[f"weight_hh{s}"], len(gates))
            rows = W_x[0].shape[0]
            if bias:
                b_x = _blocks(values[f"bias_ih{s}"], len(gates))
                b_h = _blocks(values[f"bias_hh{s}"], len(gates))
            else:
                b_x = b_h = [np.zeros(rows)] * len(gates)
            if cell == "elman":
                p = {"W_xh": W_x[0], "W_hh": W_h[0], "b_h": b_x[0] + b_h[0]}
            else:
                p = {}
                for g, wx, wh, bx, bh in zip(gates, W_x, W_h, b_x, b_h):
                    p.update({f"W_x{g}": wx, f"W_h{g}": wh, f"b_x{g}": bx, f"b_h{g}": bh})
                if proj_size:
                    p["W_hr"] = np.asarray(values[f"weight_hr{s}"], dtype=np.float64)
            dirs.append(p)
        layers.append(dirs)
    return layers


def canonical_to_torch(cell: str, params, *, bias: bool = True,
                       cell_api: bool = False) -> dict[str, np.ndarray]:
    """Canonical ``params[layer][direction]`` -> torch-named arrays. Inverse of
    :func:`torch_to_canonical` (for elman, ``b_h`` goes into ``bias_ih`` and
    ``bias_hh`` is zero)."""
    gates = GATES[cell]
    out = {}
    for layer, dirs in enumerate(params):
        for direction, p in enumerate(dirs):
            s = _suffix(layer, direction, cell_api)
            if cell == "elman":
                out[f"weight_ih{s}"] = p["W_xh"]
                out[f"weight_hh{s}"] = p["W_hh"]
                if bias:
                    out[f"bias_ih{s}"] = p["b_h"]
                    out[f"bias_hh{s}"] = np.zeros_like(p["b_h"])
                continue
            out[f"weight_ih{s}"] = np.concatenate([p[f"W_x{g}"] for g in gates])
            out[f"weight_hh{s}"] = np.concatenate([p[f"W_h{g}"] for g in gates])
            if bias:
                out[f"bias_ih{s}"] = np.concatenate([p[f"b_x{g}"] for g in gates])
                out[f"bias_hh{s}"] = np.concatenate([p[f"b_h{g}"] for g in gates])
            if cell == "lstm" and "W_hr" in p:
                out[f"weight_hr{s}"] = p["W_hr"]
    return out


def state_to_torch(flat: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Flat {"h": (L, D, B, d)} -> torch {"h": (L*D, B, d)} (index layer*D + direction)."""
    return {k: v.reshape((-1,) + v.shape[2:]) for k, v in flat.items()}


def state_from_torch(value, num_layers: int, num_dirs: int) -> np.ndarray:
    """torch (L*D, B, d) -> flat (L, D, B, d)."""
    value = np.asarray(value)
    return value.reshape((num_layers, num_dirs) + value.shape[1:])


# ----------------------------------------------------------------------------------------
# harnesses


def _torch():
    import torch
    return torch


def _to_numpy(value) -> np.ndarray:
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _own_parameters(module, expected_names) -> dict:
    """The module's parameters by name: ``named_parameters()`` for torch modules,
    else the attributes with the expected names."""
    torch = _torch()
    if isinstance(module, torch.nn.Module):
        return dict(module.named_parameters())
    return {name: getattr(module, name) for name in expected_names if hasattr(module, name)}


def _write(target, value: np.ndarray):
    torch = _torch()
    if isinstance(target, torch.Tensor):
        with torch.no_grad():
            target.copy_(torch.from_numpy(np.ascontiguousarray(value)).to(target.dtype))
    else:
        target[...] = value


class TorchHarness(Harness):
    """A ``torch.nn.RNN/LSTM/GRU`` or a drop-in class with the same contract.

    ``factory(input_size, hidden_size, num_layers=, bias=, batch_first=,
    bidirectional=, [nonlinearity= for elman], [proj_size= for lstm])`` builds the
    module; its parameters carry torch's names (module docstring) and
    ``forward(input, hx=None)`` returns ``(output, h_n)`` / ``(output, (h_n, c_n))``.
    ``nonlinearity`` and ``proj_size`` are only passed when not the default.

    Variable-length batches (``run(..., lengths=)``) go in as a ``PackedSequence``
    (``length_modes``: sorted with ``enforce_sorted=True``, or in any order with
    ``False``) and must come back as one; it is unpacked with ``total_length=T``, so
    outputs past each length read as zeros.
    """

    #: how variable lengths are fed -> whether they must be sorted (longest first)
    length_modes = {"packed, enforce_sorted": True, "packed, unsorted": False}

    def __init__(self, factory, cell: str, name: str | None = None):
        self.factory = factory
        self.cell = cell
        self.name = name or getattr(factory, "__qualname__", repr(factory))
        self.capabilities = Capabilities(
            num_layers=(1, 2, 3), bidirectional=(False, True), bias=(True, False),
            batch_first=(False, True), initial_state=(False, True), unbatched=(False, True),
            projection=(False, True) if cell == "lstm" else (False,),
            variants={"activation": ("tanh", "relu")} if cell == "elman" else {})

    # -- contract ---------------------------------------------------------------------------
    def constructor_kwargs(self, config: Config) -> dict:
        kwargs = dict(input_size=config.d_in, hidden_size=config.d_h,
                      num_layers=config.num_layers, bias=config.bias,
                      batch_first=config.batch_first, bidirectional=config.bidirectional)
        if self.cell == "elman" and config.options.get("activation", "tanh") != "tanh":
            kwargs["nonlinearity"] = config.options["activation"]
        if config.d_proj:
            kwargs["proj_size"] = config.d_proj
        return kwargs

    def session(self):
        return torch_single_thread()

    def unsupported(self, exc: BaseException) -> bool:
        """NotImplementedError, and torch's own "... not implemented for 'Half'" (a kernel
        missing for a dtype)."""
        return super().unsupported(exc) or (isinstance(exc, RuntimeError)
                                            and "not implemented for" in str(exc))

    def param_shapes(self, config: Config) -> dict[str, tuple]:
        return torch_param_shapes(self.cell, input_size=config.d_in, hidden_size=config.d_h,
                                  num_layers=config.num_layers, bias=config.bias,
                                  bidirectional=config.bidirectional, proj_size=config.d_proj)

    def to_canonical(self, config: Config, values) -> list:
        return torch_to_canonical(self.cell, values, num_layers=config.num_layers,
                                  bidirectional=config.bidirectional, bias=config.bias,
                                  proj_size=config.d_proj)

    def build(self, config: Config):
        """Construct the module and check its parameters; raise ContractError."""
        kwargs = self.constructor_kwargs(config)
        call = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        try:
            module = self.factory(**kwargs)
        except NotImplementedError:
            raise       # an optional feature the target declares unsupported
        except Exception as exc:  # noqa: BLE001 - any other failure is a contract failure
            raise ContractError(f"{self.name}({call}) raised "
                                f"{type(exc).__name__}: {exc}") from exc
        torch = _torch()
        if isinstance(module, torch.nn.Module):
            module = module.to(getattr(torch, config.dtype))
        expected = self.param_shapes(config)
        own = _own_parameters(module, expected)
        missing = [n for n in expected if n not in own]
        unexpected = [n for n in own if n not in expected]
        if missing or unexpected:
            raise ContractError(f"{self.name}({call}): parameters missing {missing}, "
                                f"unexpected {unexpected}; expected exactly {list(expected)}")
        for n, shape in expected.items():
            got = tuple(own[n].shape)
            if got != shape:
                raise ContractError(f"{self.name}({call}): parameter {n}: expected shape "
                                    f"{symbolic_shape(n, self.cell)} = {shape}, got {got}")
        return module, own

    def probe(self, config: Config) -> None:
        self.build(config)

    def padded_length(self, lengths, T: int) -> int:
        """Steps a target that ignores the packing sees: pad_packed_sequence of its
        input gives max(lengths)."""
        return max(lengths)

    def length_padding(self, config: Config) -> str:
        """Outputs past a length: pad_packed_sequence's zeros."""
        return "zero"

    # -- running ----------------------------------------------------------------------------
    def run(self, config: Config, values, x, state0, lengths=None, length_mode=None):
        torch = _torch()
        module, own = self.build(config)
        for n, v in values.items():
            _write(own[n], v)
        dtype = getattr(torch, config.dtype)
        inp = np.asarray(x)
        if config.unbatched:
            inp = inp[:, 0]
        elif config.batch_first:
            inp = inp.transpose(1, 0, 2)
        args = [torch.from_numpy(np.ascontiguousarray(inp)).to(dtype)]
        if lengths is not None:
            args[0] = torch.nn.utils.rnn.pack_padded_sequence(
                args[0], torch.tensor(lengths, dtype=torch.int64),
                batch_first=config.batch_first,
                enforce_sorted=self.length_modes.get(length_mode, False))
        if state0 is not None:
            hx = {k: torch.from_numpy(np.ascontiguousarray(v)).to(dtype)
                  for k, v in state_to_torch(state0).items()}
            if config.unbatched:
                hx = {k: v[:, 0] for k, v in hx.items()}
            args.append((hx["h"], hx["c"]) if self.cell == "lstm" else hx["h"])
        result = self.call(config, module, args)
        return self.read_result(config, result, lengths)

    def call(self, config: Config, module, args: list):
        """One forward call on prepared torch arguments (a subclass may route it elsewhere,
        e.g. through an exported ONNX model)."""
        torch = _torch()
        with torch.no_grad():
            return module(*args)

    def gradients(self, config: Config, values, x, state0, upstream):
        """``(flat outputs, gradients)`` of ``L = Σ upstream ⊙ outputs`` by autograd: the
        parameters' by their names (``param:NAME``), the input's ``x`` (T, B, d_in), the
        initial state's ``h0``/``c0`` (B, d); one layer, one direction (``--gradients``)."""
        torch = _torch()
        module, own = self.build(config)
        for n, v in values.items():
            _write(own[n], v)
        if not all(isinstance(p, torch.Tensor) for p in own.values()):
            raise ContractError(f"{self.name}: --gradients needs torch tensors as parameters")
        dtype = getattr(torch, config.dtype)
        inp = np.asarray(x).transpose(1, 0, 2) if config.batch_first else np.asarray(x)
        xt = torch.from_numpy(np.ascontiguousarray(inp)).to(dtype).requires_grad_(True)
        hx = {k: torch.from_numpy(np.ascontiguousarray(v)).to(dtype).requires_grad_(True)
              for k, v in state_to_torch(state0).items()}
        for p in own.values():
            p.grad = None
        with torch.enable_grad():
            result = module(xt, (hx["h"], hx["c"]) if self.cell == "lstm" else hx["h"])
            flat = self.read_result(config, result)
            output, states = result
            h_n, c_n = states if self.cell == "lstm" else (states, None)
            up_out = upstream["output"][:, :, 0]
            if config.batch_first:
                up_out = up_out.transpose(1, 0, 2)
            loss = (output * torch.from_numpy(np.ascontiguousarray(up_out)).to(dtype)).sum()
            loss = loss + (h_n * torch.from_numpy(upstream["h_n"][0]).to(dtype)).sum()
            if c_n is not None:
                loss = loss + (c_n * torch.from_numpy(upstream["c_n"][0]).to(dtype)).sum()
            loss.backward()
        grads = {f"param:{n}": (np.zeros(tuple(p.shape)) if p.grad is None else _to_numpy(p.grad))
                 for n, p in own.items()}
        gx = np.zeros(np.shape(inp)) if xt.grad is None else _to_numpy(xt.grad)
        grads["x"] = gx.transpose(1, 0, 2) if config.batch_first else gx
        for k, v in hx.items():
            grads[f"{k}0"] = np.zeros(tuple(v.shape[1:])) if v.grad is None else _to_numpy(v.grad)[0]
        return flat, grads

    def read_result(self, config: Config, result, lengths=None) -> dict[str, np.ndarray]:
        """Check the structure and shapes of forward's result and convert it to flat
        (a PackedSequence output, for packed input, is unpacked to T steps first)."""
        what = "(output, (h_n, c_n))" if self.cell == "lstm" else "(output, h_n)"
        if not (isinstance(result, (tuple, list)) and len(result) == 2):
            raise OutputError(f"forward returned {type(result).__name__}, expected {what}")
        output, states = result
        if lengths is not None:
            output = self._unpack(config, output, lengths)
        if self.cell == "lstm":
            if not (isinstance(states, (tuple, list)) and len(states) == 2):
                raise OutputError(f"forward returned (output, {type(states).__name__}), "
                                  f"expected {what}")
            h_n, c_n = states
        else:
            h_n, c_n = states, None
        T, B, DL, c = config.T, config.B, config.D * config.num_layers, config
        if config.unbatched:
            out = check_shape("output", _to_numpy(output), (T, c.D * c.d_out),
                              "(T, D*d_out)", c)[:, None]
            h = check_shape("h_n", _to_numpy(h_n), (DL, c.d_out), "(D*L, d_out)", c)[:, None]
            cc = None if c_n is None else check_shape(
                "c_n", _to_numpy(c_n), (DL, c.d_h), "(D*L, d_h)", c)[:, None]
        else:
            out_shape, out_sym = ((B, T, c.D * c.d_out), "(B, T, D*d_out)") if c.batch_first \
                else ((T, B, c.D * c.d_out), "(T, B, D*d_out)")
            out = check_shape("output", _to_numpy(output), out_shape, out_sym, c)
            if c.batch_first:
                out = out.transpose(1, 0, 2)
            h = check_shape("h_n", _to_numpy(h_n), (DL, B, c.d_out), "(D*L, B, d_out)", c)
            cc = None if c_n is None else check_shape(
                "c_n", _to_numpy(c_n), (DL, B, c.d_h), "(D*L, B, d_h)", c)
        flat = {"output": out.reshape(T, B, c.D, c.d_out),
                "h_n": state_from_torch(h, c.num_layers, c.D)}
        if cc is not None:
            flat["c_n"] = state_from_torch(cc, c.num_layers, c.D)
        return flat


    def _unpack(self, config: Config, output, lengths):
        torch = _torch()
        rnn_utils = torch.nn.utils.rnn
        if not isinstance(output, rnn_utils.PackedSequence):
            raise OutputError(f"forward(PackedSequence) returned output of type "
                              f"{type(output).__name__}, expected a PackedSequence")
        try:
            padded, got = rnn_utils.pad_packed_sequence(output, batch_first=config.batch_first,
                                                        total_length=config.T)
        except Exception as exc:  # noqa: BLE001 - a malformed PackedSequence is a finding
            raise OutputError(f"pad_packed_sequence(output) raised {type(exc).__name__}: "
                              f"{exc}") from exc
        if tuple(int(n) for n in got) != tuple(lengths):
            raise OutputError(f"output: a PackedSequence with lengths {list(map(int, got))}, "
                              f"expected the input's {list(lengths)}")
        return padded


def torch_harness(cell: str, *, cell_api: bool = False) -> TorchHarness:
    """Harness for ``torch.nn.<RNN|LSTM|GRU>`` or, with ``cell_api``, ``<...>Cell``."""
    torch = _torch()
    if cell_api:
        from rnnsym.frameworks.torch_cell import TorchCellHarness
        cls = getattr(torch.nn, CELL_NAMES[cell])
        return TorchCellHarness(cls, cell, f"torch.nn.{CELL_NAMES[cell]}")
    cls = getattr(torch.nn, MODULE_NAMES[cell])
    return TorchHarness(cls, cell, f"torch.nn.{MODULE_NAMES[cell]}")


def __getattr__(name):   # TorchCellHarness lives in torch_cell.py (it builds on TorchHarness)
    if name == "TorchCellHarness":
        from rnnsym.frameworks.torch_cell import TorchCellHarness
        return TorchCellHarness
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["torch_param_shapes", "torch_to_canonical", "canonical_to_torch", "state_to_torch",
           "state_from_torch", "TorchHarness", "TorchCellHarness", "torch_harness",
           "nest_state", "flat_outputs"]
