"""Flax parameter layout <-> canonical: where each canonical block lives in one Flax
cell's parameters, and the converters both ways (the harness is ``flax.py``, which
re-exports these names).

Kernels are ``(in, out)``, applied as ``x @ kernel`` (= canonical ``W.T``). One layer's
parameters, by path (``u`` = features)::

    linen SimpleCell       i/kernel (d_in, u)  i/bias (u,)  h/kernel (u, u)
    nnx   SimpleCell       dense_i/kernel      dense_i/bias dense_h/kernel
    linen LSTMCell,        i{i,f,g,o}/kernel (d_in, u)      h{i,f,g,o}/kernel (u, u)
      OptimizedLSTMCell                                     h{i,f,g,o}/bias (u,)
    nnx   LSTMCell         the same with ``if_`` for ``if``
    nnx   OptimizedLSTMCell dense_i/kernel (d_in, 4u)  dense_h/kernel (u, 4u)  dense_h/bias (4u,)
                           blocks i|f|g|o (not loadable from nnx.LSTMCell's names)
    linen GRUCell          i{r,z,n}/kernel  i{r,z,n}/bias  h{r,z,n}/kernel  hn/bias
    nnx   GRUCell          dense_i/kernel (d_in, 3u)  dense_i/bias (3u,)  dense_h/kernel (u, 3u)
                           blocks r|z|n

The math is PyTorch's (LSTM gates i, f, g, o; GRU with the reset applied after the
recurrent matmul) with fewer bias vectors. LSTM: one bias per gate, ``b_x{g} = 0``,
``b_h{g} = h{g}/bias``; the inverse puts ``b_x + b_h`` there (exact in effect).
GRU: ``b_x{g} = i{g}/bias``; linen has the recurrent bias of the candidate only
(rnnsym ``gru(hidden_bias="n")``: ``b_hr``, ``b_hz`` would only add to ``b_xr``,
``b_xz``), nnx has none at all (``gru(hidden_bias="none")``: ``n = tanh(W_xn x + b_xn
+ r ⊙ (W_hn h))``, although its docstring says ``+ b_hn``; google/flax#5594). So a
PyTorch GRU converts into linen exactly and into nnx only when ``b_hn = 0``.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from rnnsym.frameworks import UsageError

GATES = {"elman": ("h",), "lstm": tuple("ifgo"), "gru": tuple("rzn")}
#: the class each cell is checked with by default
DEFAULT_CLASSES = {"elman": "SimpleCell", "lstm": "LSTMCell", "gru": "GRUCell"}
CLASS_CELLS = {"SimpleCell": "elman", "LSTMCell": "lstm", "OptimizedLSTMCell": "lstm",
               "GRUCell": "gru"}
#: GRUCell's recurrent biases (rnnsym's gru(hidden_bias=...)) per API
NATIVE_HIDDEN_BIAS = {"linen": "n", "nnx": "none"}


# ------------------------------------------------------------------------------------------
# layout: where each canonical block lives


def layout(api: str, cls_name: str) -> dict:
    """Canonical name -> (flax path, block index or None, transpose) for one cell, plus
    ``"_blocks"``: flax path -> number of gate blocks stacked on its last axis.

    Canonical names are those of rnnsym's cell with Flax's own biases (GRU:
    ``hidden_bias`` "n" for linen, "none" for nnx; LSTM: ``b_h{g}`` only).
    """
    if api not in ("linen", "nnx") or cls_name not in CLASS_CELLS:
        raise UsageError(f"flax: no layout for {api}.{cls_name} (known: "
                         f"{', '.join(CLASS_CELLS)} in flax.linen and flax.nnx)")
    cell = CLASS_CELLS[cls_name]
    gates = GATES[cell]
    out: dict = {}
    fused = api == "nnx" and cls_name in ("OptimizedLSTMCell", "GRUCell")
    if cell == "elman":
        i, h = ("dense_i", "dense_h") if api == "nnx" else ("i", "h")
        out = {"W_xh": (f"{i}/kernel", None), "W_hh": (f"{h}/kernel", None),
               "b_h": (f"{i}/bias", None)}
    elif fused:
        for k, g in enumerate(gates):
            out[f"W_x{g}"] = ("dense_i/kernel", k)
            out[f"W_h{g}"] = ("dense_h/kernel", k)
            if cell == "lstm":
                out[f"b_h{g}"] = ("dense_h/bias", k)
            else:
                out[f"b_x{g}"] = ("dense_i/bias", k)
    else:
        for g in gates:
            xname = "if_" if (api == "nnx" and g == "f") else f"i{g}"
            out[f"W_x{g}"] = (f"{xname}/kernel", None)
            out[f"W_h{g}"] = (f"h{g}/kernel", None)
            if cell == "lstm":
                out[f"b_h{g}"] = (f"h{g}/bias", None)
            else:
                out[f"b_x{g}"] = (f"i{g}/bias", None)
        if cell == "gru":
            out["b_hn"] = ("hn/bias", None)
    blocks = {}
    for path, k in out.values():
        blocks[path] = len(gates) if k is not None else 1
    out["_blocks"] = blocks
    return out


def flax_param_shapes(api: str, cls_name: str, *, input_size: int, features: int) -> dict:
    """Flax parameter paths of one cell -> shapes (sorted by path, as Flax stores them)."""
    lay = layout(api, cls_name)
    shapes = {}
    for name, (path, _k) in _entries(lay):
        n = lay["_blocks"][path]
        if "/bias" in path:
            shapes[path] = (n * features,)
        else:
            rows = input_size if name.startswith("W_x") else features
            shapes[path] = (rows, n * features)
    return dict(sorted(shapes.items()))


def _entries(lay: dict):
    return [(name, where) for name, where in lay.items() if name != "_blocks"]


def _block(arr: np.ndarray, k, n: int) -> np.ndarray:
    if k is None:
        return arr
    width = arr.shape[-1] // n
    return arr[..., k * width:(k + 1) * width]


def flax_to_canonical(api: str, cls_name: str, values: Mapping[str, np.ndarray],
                      *, hidden_bias: str | None = None) -> dict[str, np.ndarray]:
    """One cell's Flax parameters -> canonical dict (float64).

    GRU: the parameters of ``gru(hidden_bias=...)``: by default the class's own ("n"
    linen, "none" nnx); ``hidden_bias="rzn"`` gives PyTorch's set with zeros where
    Flax has no bias. LSTM: ``b_x{g}`` are zeros.
    """
    lay = layout(api, cls_name)
    cell = CLASS_CELLS[cls_name]
    out = {}
    for name, (path, k) in _entries(lay):
        arr = _block(np.asarray(values[path], np.float64), k, lay["_blocks"][path])
        out[name] = arr if arr.ndim == 1 else arr.T
    if cell == "lstm":
        for g in GATES["lstm"]:
            out[f"b_x{g}"] = np.zeros_like(out[f"b_h{g}"])
    if cell == "gru":
        want = hidden_bias or NATIVE_HIDDEN_BIAS[api]
        zeros = np.zeros_like(out["b_xr"])
        for g in GATES["gru"]:
            if g in want.replace("none", ""):
                out.setdefault(f"b_h{g}", zeros)
            else:
                bias = out.pop(f"b_h{g}", None)
                if bias is not None and np.any(bias):
                    raise ValueError(f"flax_to_canonical: b_h{g} is not zero and has no place "
                                     f"in gru(hidden_bias={want!r})")
    return out


def canonical_to_flax(api: str, cls_name: str, params: Mapping[str, np.ndarray], *,
                      strict: bool = True) -> dict[str, np.ndarray]:
    """Canonical dict -> one cell's Flax parameters (inverse of flax_to_canonical).

    Biases that only add are summed into Flax's one bias (LSTM ``b_x + b_h``; GRU
    ``b_xr + b_hr``, ``b_xz + b_hz``). A non-zero ``b_hn`` has no place in nnx's
    GRUCell: ``strict`` raises ValueError, ``strict=False`` drops it (what a port
    that maps names one to one does; the checker shows what that costs).
    """
    lay = layout(api, cls_name)
    cell = CLASS_CELLS[cls_name]
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    if cell == "lstm":
        p = {**p, **{f"b_h{g}": p.get(f"b_x{g}", 0) + p.get(f"b_h{g}", 0) for g in "ifgo"}}
    if cell == "gru":
        for g in "rz":
            if f"b_h{g}" in p:
                p[f"b_x{g}"] = p[f"b_x{g}"] + p.pop(f"b_h{g}")
        if "b_hn" in p and "b_hn" not in lay:
            b_hn = p.pop("b_hn")
            if strict and np.any(b_hn):
                raise ValueError(f"canonical_to_flax: {api}.{cls_name} has no recurrent bias "
                                 "b_hn (n = tanh(W_xn x + b_xn + r*(W_hn h)), "
                                 "google/flax#5594); b_hn must be zero, got "
                                 f"{np.array2string(b_hn, precision=4)}")
        if "b_hn" in lay and "b_hn" not in p:
            p["b_hn"] = np.zeros_like(p["b_xn"])
    parts: dict[str, list] = {}
    for name, (path, k) in _entries(lay):
        value = p[name] if p[name].ndim == 1 else p[name].T
        parts.setdefault(path, [None] * lay["_blocks"][path])[k or 0] = value
    return {path: np.concatenate(blocks, axis=-1) for path, blocks in sorted(parts.items())}


__all__ = ["GATES", "DEFAULT_CLASSES", "CLASS_CELLS", "NATIVE_HIDDEN_BIAS", "layout",
           "flax_param_shapes", "flax_to_canonical", "canonical_to_flax"]
