"""PyTorch ``nn.RNNCell/LSTMCell/GRUCell`` (``--cell-api``) and drop-ins for them: one time
step per call, run over T steps by the harness. The parameter layout is torch's
(``rnnsym.frameworks.torch``) without the ``_l{k}`` suffix."""
from __future__ import annotations

import numpy as np

from rnnsym.frameworks import Capabilities, Config, OutputError, check_shape
from rnnsym.frameworks.torch import (TorchHarness, _to_numpy, _torch, _write, torch_param_shapes,
                                     torch_to_canonical)


class TorchCellHarness(TorchHarness):
    """A ``torch.nn.RNNCell/LSTMCell/GRUCell`` or a drop-in with the same contract:
    ``factory(input_size, hidden_size, bias=, [nonlinearity=])``, parameters
    ``weight_ih, weight_hh, bias_ih, bias_hh`` and ``forward(input, hx=None)`` on one
    time step, ``(B, d_in)`` or unbatched ``(d_in,)``. The harness runs it over T
    steps, feeding each step's state to the next."""

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
        module, own = self.build(config)
        for n, v in values.items():
            _write(own[n], v)
        dtype = getattr(torch, config.dtype)
        xs = torch.from_numpy(np.ascontiguousarray(x)).to(dtype)
        hx = None
        if state0 is not None:
            hx = {k: torch.from_numpy(np.ascontiguousarray(v[0, 0])).to(dtype)
                  for k, v in state0.items()}
            if config.unbatched:
                hx = {k: v[0] for k, v in hx.items()}
            hx = (hx["h"], hx["c"]) if self.cell == "lstm" else hx["h"]
        hs, cs = [], []
        c = config
        want = (c.d_h,) if c.unbatched else (c.B, c.d_h)
        sym = "(d_h,)" if c.unbatched else "(B, d_h)"
        with torch.no_grad():
            for t in range(c.T):
                step = module(xs[t, 0] if c.unbatched else xs[t], *([] if hx is None else [hx]))
                if self.cell == "lstm":
                    if not (isinstance(step, (tuple, list)) and len(step) == 2):
                        raise OutputError(f"forward returned {type(step).__name__}, "
                                          "expected (h', c')")
                    h, cc = (check_shape(f"{n}' at t={t}", _to_numpy(v), want, sym, c)
                             for n, v in zip("hc", step))
                    hx = (torch.from_numpy(np.ascontiguousarray(h)),
                          torch.from_numpy(np.ascontiguousarray(cc)))
                    cs.append(cc)
                else:
                    h = check_shape(f"h' at t={t}", _to_numpy(step), want, sym, c)
                    hx = torch.from_numpy(np.ascontiguousarray(h))
                hs.append(h)
        if c.T == 0:
            raise OutputError("T=0 is not supported by the cell harness")
        hs = np.stack(hs).reshape(c.T, c.B, c.d_h)
        flat = {"output": hs[:, :, None], "h_n": hs[-1][None, None]}
        if self.cell == "lstm":
            flat["c_n"] = np.stack(cs).reshape(c.T, c.B, c.d_h)[-1][None, None]
        return flat
