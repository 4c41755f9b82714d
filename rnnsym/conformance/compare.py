"""Comparison of flat RNN outputs with per-element tolerances (the checker's verdict on numbers).

Every failure message has one shape (after array-api-tests' ``pytest_helpers``)::

    output[t=2, b=0, direction=reverse, k=1]=0.4377, but should be -0.1212 [gru(T=3, ...)]

The vectorised comparison runs first; only on failure are indices searched for the
first offending element (earliest time step, then layer, direction, batch, unit).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

AXES = {"output": ("t", "b", "direction", "k"),
        "h_n": ("layer", "direction", "b", "k"),
        "c_n": ("layer", "direction", "b", "k"),
        # gradients (rnnsym.conformance.gradients): the input's and the initial state's
        "x": ("t", "b", "i"),
        "h0": ("layer", "direction", "b", "k"),
        "c0": ("layer", "direction", "b", "k")}
DIRECTIONS = ("forward", "reverse")


def fmt_kw(kw: Mapping) -> str:
    """{"T": 3, "bias": False} -> 'T=3, bias=False'."""
    return ", ".join(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in kw.items())


def fmt_index(name: str, index: tuple) -> str:
    """('output', (2, 0, 1, 3)) -> 'output[t=2, b=0, direction=reverse, k=3]'."""
    axes = AXES.get(name, tuple(f"i{j}" for j in range(len(index))))
    parts = []
    for axis, i in zip(axes, index):
        parts.append(f"{axis}={DIRECTIONS[i]}" if axis == "direction" else f"{axis}={i}")
    return f"{name}[{', '.join(parts)}]"


@dataclass(frozen=True)
class Mismatch:
    """The first element of one output that is out of tolerance, plus summaries."""

    name: str            # "output", "h_n" or "c_n"
    index: tuple         # index of the first bad element in the flat layout
    got: float
    expected: float
    tolerance: float
    max_abs_error: float  # over the whole output
    max_rel_error: float
    bad: int             # number of elements out of tolerance
    size: int

    @property
    def where(self) -> str:
        return fmt_index(self.name, self.index)

    def message(self, call: str = "") -> str:
        text = (f"{self.where}={self.got:.7g}, but should be {self.expected:.7g} "
                f"(tolerance {self.tolerance:.2g}; {self.bad}/{self.size} elements differ, "
                f"max abs error {self.max_abs_error:.3g}, max rel error {self.max_rel_error:.3g})")
        return f"{text} [{call}]" if call else text


#: a relative error is taken against |expected|, but never against less than this fraction of the
#: array's largest |expected|: next to an element that is zero up to rounding (1e-30 where the
#: array holds values near 1) any error, even a correct one, would be "relative error 1" or more
REL_FLOOR = 1e-3


def abs_rel_errors(got, expected):
    """Elementwise absolute error, and relative error against ``max(|expected|, REL_FLOOR ·
    max|expected| of the array)``; NaN where a number is expected counts as an infinite error."""
    expected = np.asarray(expected, np.float64)
    with np.errstate(all="ignore"):
        abs_err = np.abs(np.asarray(got, np.float64) - expected)
        abs_err = np.where(np.isnan(abs_err), np.inf, abs_err)
        magnitude = np.abs(expected)
        finite = magnitude[np.isfinite(magnitude)]
        floor = REL_FLOOR * float(finite.max()) if finite.size else 0.0
        rel_err = abs_err / np.maximum(magnitude, max(floor, np.finfo(np.float64).tiny))
    return abs_err, rel_err


def compare_flat(expected: Mapping[str, np.ndarray], got: Mapping[str, np.ndarray],
                 tolerance: Mapping[str, np.ndarray]) -> list[Mismatch]:
    """Mismatches (one per differing output, in order output, h_n, c_n); [] if all agree.

    Shapes must already agree (the harnesses check them). NaN or inf where the
    expected value is finite is always a mismatch.
    """
    mismatches = []
    for name in expected:
        exp = np.asarray(expected[name], np.float64)
        abs_err, rel_err = abs_rel_errors(got[name], exp)
        bad = ~(abs_err <= tolerance[name])
        if not bad.any():
            continue
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        mismatches.append(Mismatch(
            name=name, index=first, got=float(np.asarray(got[name])[first]),
            expected=float(exp[first]), tolerance=float(tolerance[name][first]),
            max_abs_error=float(abs_err.max()), max_rel_error=float(rel_err.max()),
            bad=int(bad.sum()), size=int(bad.size)))
    return mismatches


def error_ratio(expected, got, tolerance) -> float:
    """Largest |got - expected| / tolerance over all outputs (< 1 means all agree)."""
    ratios = [0.0]
    for name in expected:
        abs_err, _ = abs_rel_errors(got[name], np.asarray(expected[name], np.float64))
        if abs_err.size:
            with np.errstate(all="ignore"):
                ratio = np.where(abs_err == 0, 0.0, abs_err / tolerance[name])
            ratios.append(float(np.max(ratio)))
    return max(ratios)


def max_errors(expected, got) -> tuple[float, float]:
    """(max abs error, max rel error) over all outputs."""
    worst_abs = worst_rel = 0.0
    for name in expected:
        abs_err, rel_err = abs_rel_errors(got[name], np.asarray(expected[name], np.float64))
        if abs_err.size:
            worst_abs = max(worst_abs, float(abs_err.max()))
            worst_rel = max(worst_rel, float(rel_err.max()))
    return worst_abs, worst_rel
