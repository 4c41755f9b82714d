"""PyTorch ``nn.RNN/LSTM/GRU`` (and ``RNNCell/LSTMCell/GRUCell``) parameter and state layout
<-> canonical: shapes and converters, no torch import (the harness is ``torch.py``).

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
