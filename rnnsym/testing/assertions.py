"""Assertion helpers with the checker's message shape (after array-api-tests)::

    output[t=2, b=0, direction=reverse, k=1]=0.4377, but should be -0.1212 [gru(T=3, ...)]

The comparison itself is :mod:`rnnsym.conformance.compare` (re-exported here).
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from rnnsym.conformance.compare import (AXES, DIRECTIONS, Mismatch, abs_rel_errors,  # noqa: F401
                                  compare_flat, error_ratio, fmt_index, fmt_kw, max_errors)


def assert_flat_close(expected, got, tolerance, *, call: str = "") -> None:
    """Raise AssertionError with the fixed message shape if any output differs."""
    __tracebackhide__ = True
    for name in expected:
        if name not in got:
            raise AssertionError(f"{name} is missing, but should be present [{call}]")
        if np.shape(got[name]) != np.shape(expected[name]):
            raise AssertionError(f"{name}.shape={np.shape(got[name])}, but should be "
                                 f"{np.shape(expected[name])} [{call}]")
    mismatches = compare_flat(expected, got, tolerance)
    if mismatches:
        raise AssertionError("\n".join(m.message(call) for m in mismatches))


def assert_allclose(name: str, got, expected, *, rtol: float, atol: float,
                    call: str = "", kw: Mapping | None = None) -> None:
    """Elementwise ``|got - expected| <= atol + rtol*|expected|`` for one array, with
    the message ``name[i, j]=…, but should be … [call(kw)]`` naming the first bad
    element. Also checks shapes."""
    __tracebackhide__ = True
    where = f"{call}({fmt_kw(kw or {})})" if call else fmt_kw(kw or {})
    got, expected = np.asarray(got), np.asarray(expected)
    if got.shape != expected.shape:
        raise AssertionError(f"{name}.shape={got.shape}, but should be {expected.shape} [{where}]")
    abs_err, rel_err = abs_rel_errors(got, expected.astype(np.float64))
    bad = ~(abs_err <= atol + rtol * np.abs(expected))
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        idx = ", ".join(map(str, first))
        raise AssertionError(
            f"{name}[{idx}]={got[first].item()!r}, but should be {expected[first].item()!r} "
            f"({int(bad.sum())}/{bad.size} elements differ, max abs error {abs_err.max():.3g}, "
            f"max rel error {rel_err.max():.3g}; rtol={rtol}, atol={atol}) [{where}]")
