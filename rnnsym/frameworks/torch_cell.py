"""PyTorch ``nn.RNNCell/LSTMCell/GRUCell`` (``--cell-api``) and drop-ins for them: one time
step per call, run over T steps by the harness. The parameter layout is torch's
(``rnnsym.frameworks.torch``) without the ``_l{k}`` suffix."""
from __future__ import annotations

import numpy as np

from rnnsym.frameworks import Capabilities, Config, ContractError, OutputError, check_shape
from rnnsym.frameworks.torch import (CELL_NAMES, TorchHarness, _to_numpy, _torch, _write,
                                     torch_harness, torch_param_shapes, torch_to_canonical)


class TorchCellHarness(TorchHarness):
    """A ``torch.nn.RNNCell/LSTMCell/GRUCell`` or a drop-in with the same contract:
    ``factory(input_size, hidden_size, bias=, [nonlinearity=])``, parameters
    ``weight_ih, weight_hh, bias_ih, bias_hh`` and ``forward(input, hx=None)`` on one
    time step, ``(B, d_in)`` or unbatched ``(d_in,)``. The harness runs it over T
    steps, feeding each step's state to the next."""

    #: one cell: one layer, one direction, fixed lengths (--gradients)
    gradient_stacks = gradient_bidirectional = gradient_lengths = False

    def __init__(self, factory, cell: str, name: str | None = None):
        super().__init__(factory, cell, name)
        self.length_modes = {}
        self.capabilities = Capabilities(
            bias=(True, False), initial_state=(False, True), unbatched=(False, True),
            variants={"activation": ("tanh", "relu")} if cell == "elman" else {})

    def constructor_kwargs(self, config: Config) -> dict:
        kwargs = dict(input_size=config.d_in, hidden_size=config.d_h, bias=config.bias)
        if self.cell == "elman" and config.options.get("activation", "tanh") != "tanh":
            kwargs["nonlinearity"] = config.options["activation"]
        return kwargs

    def param_shapes(self, config: Config) -> dict[str, tuple]:
        return torch_param_shapes(self.cell, input_size=config.d_in, hidden_size=config.d_h,
                                  bias=config.bias, cell_api=True)

    def to_canonical(self, config: Config, values) -> list:
        return torch_to_canonical(self.cell, values, bias=config.bias, cell_api=True)

    def run(self, config: Config, values, x, state0):
        torch = _torch()
        with torch.no_grad():
            return self._steps(config, values, x, state0)[0]

    def gradients(self, config: Config, values, x, state0, upstream):
        """``(flat outputs, gradients)`` of ``L = Σ upstream ⊙ outputs`` by autograd through
        the T calls of the cell (each step's state fed to the next, as in ``run``): the
        parameters' (``param:NAME``), the input's ``x`` (T, B, d_in) and the initial
        state's ``h0``/``c0`` (1, 1, B, d_h), as ``TorchHarness.gradients``."""
        torch = _torch()
        dtype = getattr(torch, config.dtype)
        with torch.enable_grad():
            flat, xs, hx, own, hs, cs = self._steps(config, values, x, state0, grad=True)
            if not all(isinstance(p, torch.Tensor) for p in own.values()):
                raise ContractError(f"{self.name}: --gradients needs torch tensors as parameters")
            up = {k: torch.from_numpy(np.ascontiguousarray(v)).to(dtype)
                  for k, v in upstream.items()}
            loss = (torch.stack(hs) * up["output"][:, :, 0]).sum() + (hs[-1] * up["h_n"][0, 0]).sum()
            if self.cell == "lstm":
                loss = loss + (cs[-1] * up["c_n"][0, 0]).sum()
            loss.backward()
        grads = {f"param:{n}": (np.zeros(tuple(p.shape)) if p.grad is None else _to_numpy(p.grad))
                 for n, p in own.items()}
        grads["x"] = np.zeros(np.shape(x)) if xs.grad is None else _to_numpy(xs.grad)
        for k, v in hx.items():     # one layer, one direction: (1, 1, B, d)
            grads[f"{k}0"] = (np.zeros(tuple(v.shape)) if v.grad is None
                              else _to_numpy(v.grad))[None, None]
        return flat, grads

    def _steps(self, config: Config, values, x, state0, grad=False):
        """Run the cell over T steps: ``(flat, x, initial state, own parameters, h's, c's)``,
        the tensors requiring gradients with ``grad`` (and the h's, c's kept as tensors)."""
        torch = _torch()
        module, own = self.build(config)
        for n, v in values.items():
            _write(own[n], v)
        if grad:
            for p in own.values():
                p.grad = None
        dtype = getattr(torch, config.dtype)
        xs = torch.from_numpy(np.ascontiguousarray(x)).to(dtype).requires_grad_(grad)
        hx, state = {}, None
        if state0 is not None:
            hx = {k: torch.from_numpy(np.ascontiguousarray(v[0, 0])).to(dtype).requires_grad_(grad)
                  for k, v in state0.items()}
            state = {k: v[0] for k, v in hx.items()} if config.unbatched else hx
            state = (state["h"], state["c"]) if self.cell == "lstm" else state["h"]
        hs, cs, h_t, c_t = [], [], [], []
        c = config
        want = (c.d_h,) if c.unbatched else (c.B, c.d_h)
        sym = "(d_h,)" if c.unbatched else "(B, d_h)"
        for t in range(c.T):
            step = module(xs[t, 0] if c.unbatched else xs[t], *([] if state is None else [state]))
            if self.cell == "lstm":
                if not (isinstance(step, (tuple, list)) and len(step) == 2):
                    raise OutputError(f"forward returned {type(step).__name__}, "
                                      "expected (h', c')")
                h, cc = (check_shape(f"{n}' at t={t}", _to_numpy(v), want, sym, c)
                         for n, v in zip("hc", step))
                state = tuple(step) if grad else (torch.from_numpy(np.ascontiguousarray(h)),
                                                  torch.from_numpy(np.ascontiguousarray(cc)))
                cs.append(cc)
                c_t.append(step[1])
            else:
                h = check_shape(f"h' at t={t}", _to_numpy(step), want, sym, c)
                state = step if grad else torch.from_numpy(np.ascontiguousarray(h))
            hs.append(h)
            h_t.append(step[0] if self.cell == "lstm" else step)
        if c.T == 0:
            raise OutputError("T=0 is not supported by the cell harness")
        hs = np.stack(hs).reshape(c.T, c.B, c.d_h)
        flat = {"output": hs[:, :, None], "h_n": hs[-1][None, None]}
        if self.cell == "lstm":
            flat["c_n"] = np.stack(cs).reshape(c.T, c.B, c.d_h)[-1][None, None]
        return flat, xs, hx, own, h_t, c_t


def torch_cell_harness(cell: str) -> TorchCellHarness:
    """Harness for ``torch.nn.<RNNCell|LSTMCell|GRUCell>``."""
    cls = getattr(_torch().nn, CELL_NAMES[cell])
    return TorchCellHarness(cls, cell, f"torch.nn.{CELL_NAMES[cell]}")


def make_harness(spec: str, cell: str, options) -> TorchHarness:
    """The ``torch`` target (rnnsym.frameworks.registry): the module, or with ``--cell-api``
    the cell."""
    return torch_cell_harness(cell) if options.cell_api else torch_harness(cell)
