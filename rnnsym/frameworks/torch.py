"""The PyTorch harness: builds ``nn.RNN/LSTM/GRU`` modules (and drop-ins with the same
constructor, parameter names and forward), loads the drawn parameters, runs them and reads
the outputs back; ``torch_layout.py`` holds the parameter/state layout and converters
(re-exported here), ``torch_cell.py`` the ``*Cell`` harness (it builds on this one, and has
the ``torch`` target's factory: modules, or cells with ``--cell-api``).
"""
from __future__ import annotations

import numpy as np

from rnnsym.frameworks import (Capabilities, Config, ContractError, Harness, OutputError,
                               check_shape, flat_outputs, nest_state, torch_single_thread)
# the layout and converters, re-exported: rnnsym.frameworks.torch is where users import them from
from rnnsym.frameworks.torch_layout import (  # noqa: F401
    CELL_NAMES, GATES, MODULE_NAMES, _blocks, _suffix, canonical_to_torch, state_from_torch,
    state_to_torch, symbolic_shape, torch_param_shapes, torch_to_canonical)


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

    #: gradients() (--gradients) covers stacks, both directions and packed sequences
    supports_gradients = gradient_stacks = gradient_bidirectional = gradient_lengths = True

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

    def check_contract(self, config: Config) -> None:
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
        args = [self._pack(config, torch.from_numpy(np.ascontiguousarray(inp)).to(dtype),
                           lengths, length_mode)]
        if state0 is not None:
            hx = {k: torch.from_numpy(np.ascontiguousarray(v)).to(dtype)
                  for k, v in state_to_torch(state0).items()}
            if config.unbatched:
                hx = {k: v[:, 0] for k, v in hx.items()}
            args.append((hx["h"], hx["c"]) if self.cell == "lstm" else hx["h"])
        result = self.call(config, module, args)
        return self.read_result(config, result, lengths)

    def _pack(self, config: Config, inp, lengths, length_mode):
        """The input tensor, packed (``pack_padded_sequence``) when there are lengths."""
        if lengths is None:
            return inp
        torch = _torch()
        return torch.nn.utils.rnn.pack_padded_sequence(
            inp, torch.tensor(lengths, dtype=torch.int64), batch_first=config.batch_first,
            enforce_sorted=self.length_modes.get(length_mode, False))

    def call(self, config: Config, module, args: list):
        """One forward call on prepared torch arguments (a subclass may route it elsewhere,
        e.g. through an exported ONNX model)."""
        torch = _torch()
        with torch.no_grad():
            return module(*args)

    def gradients(self, config: Config, values, x, state0, upstream, lengths=None,
                  length_mode=None):
        """``(flat outputs, gradients)`` of ``L = Σ upstream ⊙ outputs`` by autograd: the
        parameters' by their names (``param:NAME``), the input's ``x`` (T, B, d_in), the
        initial state's ``h0``/``c0`` (layers, directions, B, d) (``--gradients``). With
        ``lengths`` the input goes in packed, as in :meth:`run`, and the output is unpacked
        before the loss (its padding, zeros, carries no gradient)."""
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
            result = module(self._pack(config, xt, lengths, length_mode),
                            (hx["h"], hx["c"]) if self.cell == "lstm" else hx["h"])
            flat = self.read_result(config, result, lengths)
            output, states = result
            if lengths is not None:
                output = self._unpack(config, output, lengths)
            h_n, c_n = states if self.cell == "lstm" else (states, None)
            T, B, D, d = np.shape(upstream["output"])     # torch: directions side by side
            up_out = np.reshape(upstream["output"], (T, B, D * d))
            if config.batch_first:
                up_out = up_out.transpose(1, 0, 2)

            def up(name):           # (layers, D, B, d) -> torch's (layers * D, B, d)
                v = np.asarray(upstream[name])
                return torch.from_numpy(np.ascontiguousarray(
                    v.reshape((-1,) + v.shape[2:]))).to(dtype)
            loss = (output * torch.from_numpy(np.ascontiguousarray(up_out)).to(dtype)).sum()
            loss = loss + (h_n * up("h_n")).sum()
            if c_n is not None:
                loss = loss + (c_n * up("c_n")).sum()
            loss.backward()
        grads = {f"param:{n}": (np.zeros(tuple(p.shape)) if p.grad is None else _to_numpy(p.grad))
                 for n, p in own.items()}
        gx = np.zeros(np.shape(inp)) if xt.grad is None else _to_numpy(xt.grad)
        grads["x"] = gx.transpose(1, 0, 2) if config.batch_first else gx
        for k, v in hx.items():
            g = np.zeros(tuple(v.shape)) if v.grad is None else _to_numpy(v.grad)
            grads[f"{k}0"] = g.reshape((config.num_layers, config.D) + g.shape[1:])
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
    """Harness for ``torch.nn.<RNN|LSTM|GRU>``. Deprecated: ``cell_api=True`` (the
    ``<...>Cell`` harness) moved to ``rnnsym.frameworks.torch_cell.torch_cell_harness(cell)``,
    which builds on this module (importing it here would be a cycle)."""
    if cell_api:
        raise TypeError("torch_harness(cell, cell_api=True) moved: use "
                        "rnnsym.frameworks.torch_cell.torch_cell_harness(cell)")
    cls = getattr(_torch().nn, MODULE_NAMES[cell])
    return TorchHarness(cls, cell, f"torch.nn.{MODULE_NAMES[cell]}")


__all__ = ["torch_param_shapes", "torch_to_canonical", "canonical_to_torch", "state_to_torch",
           "state_from_torch", "TorchHarness", "torch_harness", "nest_state", "flat_outputs"]
