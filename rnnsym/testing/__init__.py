"""Testing helpers for users of rnnsym: conformance assertion and Hypothesis strategies.

    from rnnsym.testing import assert_conforms
    assert_conforms("mypkg.rnn:MyGRU", cell="gru")           # raises AssertionError

    from rnnsym.testing import strategies as rst             # distinct_sizes, params_for, ...

For users' test suites; above the checker (:mod:`rnnsym.conformance`), which it wraps and whose
strategies it re-exports. Nothing in rnnsym imports it but the CLI layer.
"""
from __future__ import annotations

from rnnsym.testing import strategies
from rnnsym.testing.assertions import assert_allclose, assert_flat_close, compare_flat

__all__ = ["assert_conforms", "strategies", "assert_allclose", "assert_flat_close",
           "compare_flat"]


def assert_conforms(target, cell: str, **options):
    """Run ``rnnsym.check(target, cell, **options)``; raise AssertionError carrying the
    report (counterexample, diagnosis and the --seed to replay it) if it fails.
    Returns the Report when it passes."""
    __tracebackhide__ = True
    from rnnsym.conformance import check

    report = check(target, cell, **options)
    if not report.passed:
        raise AssertionError(report.format())
    return report
