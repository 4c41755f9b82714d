"""Weights for the picture: recurrent matrices, spectral-radius scaling, PyTorch's default
initialization, and weights loaded from a .npz (validated)."""
from __future__ import annotations

import os
import zipfile

import numpy as np
import sympy as sp
from sympy import MatMul, MatrixSymbol

from rnnsym.cells.cell import Cell
from rnnsym.shapes import derive
from rnnsym.vanishing.chain import GradientsError


# --- weights ---------------------------------------------------------------------------------
def recurrent_params(cell: Cell) -> tuple[str, ...]:
    """Parameters that multiply a previous state: ``A`` in a product ``A … u`` where ``u``
    contains some ``s[t-1]`` (``W_hh``; LSTM ``W_h*``; GRU ``W_h*``, also ``W_hn (r ⊙ h)``)."""
    prevs = {f"{s}[t-1]" for s in cell.states}
    found = []
    for eq in cell.equations:
        for node in sp.preorder_traversal(eq.rhs):
            if isinstance(node, MatMul):
                _, mats = node.as_coeff_matrices()
                if any(a.name in prevs for a in mats[-1].atoms(MatrixSymbol)):
                    for a in mats[:-1]:
                        if isinstance(a, MatrixSymbol) and a.name in cell.params and a.name not in found:
                            found.append(a.name)
    return tuple(p for p in cell.params if p in found)


def spectral_radius(m) -> float:
    """Largest ``|eigenvalue|`` of a square matrix, largest singular value otherwise."""
    m = np.asarray(m, dtype=np.float64)
    if m.shape[0] == m.shape[1]:
        return float(np.max(np.abs(np.linalg.eigvals(m))))
    return float(np.linalg.norm(m, 2))


def scale_recurrent(cell: Cell, params: dict, radius: float) -> dict:
    """A copy of ``params`` with every recurrent matrix rescaled to spectral radius ``radius``."""
    if not np.isfinite(radius) or radius < 0:
        raise GradientsError(f"radius must be a finite number ≥ 0, got {radius}")
    out = dict(params)
    for p in recurrent_params(cell):
        rho = spectral_radius(params[p])
        if rho == 0:
            raise GradientsError(f"{p} has spectral radius 0: it cannot be rescaled to {radius}")
        out[p] = np.asarray(params[p], dtype=np.float64) * (radius / rho)
    return out


def default_sizes(cell: Cell, sizes: dict | None = None) -> dict:
    """Every free dimension: ``sizes`` where given, else 32 for ``d_h`` and 16 for the rest."""
    table = derive(cell)
    table.check_determined()
    sizes = dict(sizes or {})
    names = [str(d) for d in table.dims]
    unknown = [k for k in sizes if k not in names]
    if unknown:
        raise GradientsError(f"unknown dimension(s) {', '.join(unknown)} for {cell.name} "
                             f"(free dimensions: {', '.join(names)})")
    bad = {k: v for k, v in sizes.items() if isinstance(v, bool) or not isinstance(v, int) or v < 1}
    if bad:
        raise GradientsError(f"sizes must be positive integers, got {bad}")
    return {d: sizes.get(d, 32 if d == "d_h" else 16) for d in names}


def random_params(cell: Cell, sizes: dict, rng: np.random.Generator, radius: float | None = None,
                  fill: dict | None = None) -> dict:
    """PyTorch's default initialization, every entry ``U(-1/√d_h, 1/√d_h)`` (d = the first
    state's size), the parameters in ``fill`` set to a constant (``{"b_xf": 1.0}``), then the
    recurrent matrices rescaled to ``radius`` (if given)."""
    shapes = derive(cell).concrete(**sizes)
    k = 1.0 / np.sqrt(shapes[cell.states[0]][0])
    params = {p: rng.uniform(-k, k, size=shapes[p]) for p in cell.params}
    for p, v in (fill or {}).items():
        if p not in params:
            raise GradientsError(f"{p!r} is not a parameter of {cell.name} (parameters: "
                                 f"{', '.join(cell.params)})")
        params[p] = np.full(shapes[p], float(v))
    return params if radius is None else scale_recurrent(cell, params, radius)


def load_params(cell: Cell, source) -> dict:
    """Parameters from a ``.npz`` file (or a mapping) in the canonical names, validated: every
    missing, unknown or wrongly shaped one is named with its expected shape."""
    if isinstance(source, dict):
        arrays = dict(source)
    else:
        if not os.path.isfile(source):
            raise GradientsError(f"cannot read weights from {source}: no such file")
        if not zipfile.is_zipfile(source):
            raise GradientsError(f"cannot read weights from {source}: not an npz archive (write "
                                 "one with numpy.savez(path, W_xh=..., ...))")
        try:
            with np.load(source, allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files}
        except (OSError, ValueError) as e:
            raise GradientsError(f"cannot read weights from {source}: {e}") from None
    table = derive(cell)
    table.validate(arrays)
    bad = [k for k, v in arrays.items() if not np.issubdtype(np.asarray(v).dtype, np.number)]
    if bad:
        raise GradientsError(f"{', '.join(bad)}: expected numbers, got "
                             + ", ".join(str(np.asarray(arrays[k]).dtype) for k in bad))
    return {k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()}
