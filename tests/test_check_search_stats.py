"""The search's statistics are a dataclass whose fields all exist from the start (issue 16: not a
dict that gains keys as it goes), filled by the one loop for any subject."""
import dataclasses
from types import SimpleNamespace

import numpy as np
from hypothesis import strategies as st

from rnnsym.conformance.search import Progress, SearchStats, search


class Case(SimpleNamespace):
    def key(self):
        return self.n


class Numbers:
    """A subject over the integers 0..100: ``n >= limit`` fails with error n / limit."""

    nothing_left = False

    def __init__(self, limit, reject_all=False):
        self.limit, self.reject_all = limit, reject_all

    def cases(self):
        return st.integers(0, 100).map(lambda n: Case(n=n))

    def excluded(self, case):
        return self.reject_all

    def run(self, case):
        got = {"y": np.array([float(case.n)])}
        return SimpleNamespace(case=case, failed=case.n >= self.limit, kind="wrong numbers",
                               ratio=case.n / self.limit, expected={"y": np.zeros(1)}, got=got,
                               unsupported=None)

    def unsupported(self, outcome):
        return False

    def cover(self, stats, case, outcome):
        stats.configs.add(case.n)
        stats.coverage.setdefault("parity", set()).add(case.n % 2)


def run(subject, examples=200):
    stats = SearchStats()
    search(subject, examples=examples, seed=3, stats=stats, bar=Progress(False, "", examples))
    assert set(vars(stats)) == {f.name for f in dataclasses.fields(SearchStats)}, \
        "the search added an attribute"
    return stats


def test_a_failure_is_shrunk_and_counted():
    stats = run(Numbers(limit=10))
    assert stats.failure is not None and stats.failure.case.n == 10      # shrunk to the edge
    assert stats.shrink_calls > 0 and stats.first_failure_at is not None
    assert stats.examples_run == stats.examples + 1 and not stats.checked_nothing
    assert stats.max_ratio < 1 and stats.max_abs < 10       # the passes only
    assert stats.shrink_note() == "" and stats.flaky == "" and stats.gave_up == ""


def test_passes_fill_the_largest_errors_and_the_coverage():
    stats = run(Numbers(limit=1000), examples=50)
    assert stats.failure is None and stats.examples == stats.examples_run > 0
    assert 0 < stats.max_ratio < 0.101 and stats.max_abs == stats.max_ratio * 1000
    assert stats.max_rel > 0
    assert stats.coverage_lists() == {"parity": [0, 1]}
    assert len(stats.configs) > 1


def test_every_draw_rejected_checks_nothing():
    stats = run(Numbers(limit=10, reject_all=True), examples=20)
    assert stats.checked_nothing and stats.examples_run == 0
    assert stats.gave_up.startswith("Unable to satisfy assumptions")
