"""The search loop: Hypothesis draws cases, each is run (``rnnsym.check.target``), the first
failure is shrunk to the smallest one it can find.

One property, run once per drawn case:

- a case containing a combination found unsupported is skipped (``reject``);
- a case where the target raised "unsupported" goes to ``Probe.identify``: a feature (now left
  out of the space) or, when none is needed, a failure;
- any other failure is raised to Hypothesis, which shrinks it; after ``SHRINK_BUDGET_S``
  seconds of shrinking (or at once after a time-out, whose calls are slow by definition) only
  the best counterexample so far fails;
- a pass feeds the statistics and ``hypothesis.target`` (error / tolerance), which steers the
  search towards examples near the tolerance.

To add a dimension to the search: a value in the space (``rnnsym.check.space``), drawn in
``rnnsym.check.cases.cases``; to add a kind of check per case: ``rnnsym.check.target``.
"""
from __future__ import annotations

import sys
import time

from hypothesis import HealthCheck, Phase, Verbosity, given, reject, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import target as hypothesis_target
from hypothesis.errors import HypothesisException

from rnnsym.check.cases import cases
from rnnsym.check.compare import max_errors
from rnnsym.check.probe import Probe
from rnnsym.check.space import CheckOptions
from rnnsym.check.target import run_case
from rnnsym.frameworks import Config, Harness

#: Seconds of shrinking after which the best counterexample so far is reported.
SHRINK_BUDGET_S = 40.0


class _Failure(Exception):
    pass


class _NothingLeft(Exception):
    pass


class Progress:
    """The progress line on stderr."""

    def __init__(self, enabled: bool, label: str, total: int):
        self.enabled, self.label, self.total = enabled, label, total
        self.last = 0.0

    def update(self, stats, force=False):
        now = time.monotonic()
        if not self.enabled or (now - self.last < 0.25 and not force):
            return
        self.last = now
        state = (f"shrinking counterexample ({stats['shrink_calls']} tries)"
                 if stats["failure"] else
                 f"{stats['examples']}/{self.total} examples, {len(stats['configs'])} configs, "
                 f"max error {stats['ratio']:.2g} x tol")
        sys.stderr.write(f"\r{self.label}: {state}\033[K")
        sys.stderr.flush()

    def done(self):
        if self.enabled:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


def new_stats() -> dict:
    return {"examples": 0, "configs": set(), "ratio": 0.0, "abs": 0.0, "rel": 0.0,
            "failure": None, "first_failure_at": None, "shrink_calls": 0, "coverage": {}}


def cover(coverage: dict, c: Config, length_mode) -> None:
    for key, value in [("layers", c.num_layers), ("bidirectional", c.bidirectional),
                       ("bias", c.bias), ("batch_first", c.batch_first),
                       ("initial_state", c.initial_state), ("unbatched", c.unbatched),
                       ("projection", bool(c.d_proj))] + list(c.variant):
        coverage.setdefault(key, set()).add(value)
    coverage.setdefault("lengths", set()).add(length_mode or "fixed")


def search(harness: Harness, probe: Probe, dtype: str, options: CheckOptions, stats: dict,
           bar: Progress) -> None:
    """Run the Hypothesis search over ``probe.space``, filling ``stats`` (the failing
    Outcome, if any, in ``stats["failure"]``)."""

    @settings(max_examples=options.examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), report_multiple_bugs=False,
              phases=[Phase.explicit, Phase.generate, Phase.target, Phase.shrink],
              verbosity=Verbosity.quiet, print_blob=False)
    @hypothesis_seed(options.seed)
    @given(case=cases(harness, probe.space, dtype, options.max_size))
    def property_(case):
        failure = stats["failure"]
        if failure is not None:
            stats["shrink_calls"] += 1
            if case.key() == failure.case.key():
                raise _Failure()        # the final replay: known to fail, don't run it again
            over_budget = time.monotonic() - stats["first_failure_at"] > SHRINK_BUDGET_S
            if over_budget or failure.kind == "timed out":
                return                  # stop shrinking: only the best counterexample fails
        if probe.excluded(case):
            reject()
        outcome = run_case(harness, case, rtol=options.rtol, atol=options.atol,
                           timeout=options.timeout)
        if outcome is None:
            reject()
        if outcome.unsupported and probe.identify(outcome):
            if probe.nothing_left:
                raise _NothingLeft()
            reject()
        if outcome.failed:
            if stats["failure"] is None:
                stats["first_failure_at"] = time.monotonic()
            stats["failure"] = outcome
            bar.update(stats)
            raise _Failure()
        if failure is None:
            stats["examples"] += 1
            stats["configs"].add(case.config.coverage_key())
            cover(stats["coverage"], case.config, case.length_mode)
            stats["ratio"] = max(stats["ratio"], outcome.ratio)
            a, r = max_errors(outcome.expected, outcome.got)
            stats["abs"], stats["rel"] = max(stats["abs"], a), max(stats["rel"], r)
            hypothesis_target(outcome.ratio, label="error / tolerance")
        bar.update(stats)

    try:
        property_()
    except (_Failure, _NothingLeft):
        pass
    except HypothesisException as exc:   # flaky, or every draw rejected
        stats["flaky" if stats["failure"] else "gave_up"] = str(exc).splitlines()[0]
