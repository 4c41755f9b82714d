"""The search loop: Hypothesis draws cases, each is run (``rnnsym.conformance.target``), the first
failure is shrunk to the smallest one it can find.

One property, run once per drawn case:

- a case containing a combination found unsupported is skipped (``reject``);
- a case where the target raised "unsupported" goes to ``FeatureSurvey.identify``: a feature
  (now left out of the space) or, when none is needed, a failure;
- any other failure is raised to Hypothesis, which shrinks it; after ``SHRINK_BUDGET_CALLS``
  shrinking tries (or at once after a time-out, whose calls are slow by definition) only the
  best counterexample so far fails. The budget counts tries, not seconds, so that a replay
  (same seed, deterministic target) ends on the same counterexample on a loaded machine as on
  an idle one; ``SHRINK_BUDGET_S`` is a safety net for slow targets, and when it is what
  stopped the shrinking the report says that a replay may end elsewhere;
- a pass feeds the statistics and ``hypothesis.target`` (error / tolerance), which steers the
  search towards examples near the tolerance.

What is searched is a :class:`Subject`: its strategy, how one case runs, what "unsupported"
means for it and what a pass covers. :class:`HarnessSubject` is the one for framework and user
targets (``rnnsym.conformance.cases``, ``rnnsym.conformance.target``, ``rnnsym.conformance.survey``); ONNX targets
have theirs in ``rnnsym.conformance.onnx``. Both run through this one loop.

To add a dimension to the search: a value in the space (``rnnsym.conformance.space``), drawn in
``rnnsym.conformance.cases.cases``; to add a kind of check per case: ``rnnsym.conformance.target``.
"""
from __future__ import annotations

import contextlib
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, Optional, Protocol

import numpy as np

from hypothesis import HealthCheck, Phase, Verbosity, given, reject, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import target as hypothesis_target
from hypothesis.errors import HypothesisException
from hypothesis.strategies import SearchStrategy

from rnnsym.conformance.cases import cases
from rnnsym.conformance.compare import max_errors
from rnnsym.conformance.survey import FeatureSurvey
from rnnsym.conformance.target import run_case
from rnnsym.check_options import DEFAULT_EXAMPLES, CheckOptions
from rnnsym.frameworks import Config, Harness

#: Shrinking tries after which the best counterexample so far is reported (deterministic).
SHRINK_BUDGET_CALLS = 300
#: Seconds of shrinking after which it stops anyway (slow targets; the report says so).
SHRINK_BUDGET_S = 60.0


class _Failure(Exception):
    pass


def _fail():
    """Every failure is raised here: Hypothesis tells failures apart by the line that raised
    them, and a replay raising from another line would be "inconsistent" and stop shrinking."""
    raise _Failure()


class _NothingLeft(Exception):
    pass


class Progress:
    """The progress line on stderr: examples tried, configurations, largest error, elapsed
    time (the CLI turns it on only when stderr is a terminal)."""

    def __init__(self, enabled: bool, label: str, total: int):
        self.enabled, self.label, self.total = enabled, label, total
        self.last = 0.0
        self.start = time.monotonic()

    def update(self, stats, force=False):
        now = time.monotonic()
        if not self.enabled or (now - self.last < 0.25 and not force):
            return
        self.last = now
        state = (f"shrinking counterexample ({stats.shrink_calls} tries)"
                 if stats.failure else
                 f"{stats.examples}/{self.total} examples, {len(stats.configs)} configs, "
                 f"max error {stats.max_ratio:.2g} x tol")
        sys.stderr.write(f"\r{self.label}: {state}, {now - self.start:.0f} s\033[K")
        sys.stderr.flush()

    def done(self):
        if self.enabled:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


@dataclass
class SearchStats:
    """What a search saw, filled in by :func:`search` (and a subject's ``cover``): every field
    exists from the start, none is added on the way."""

    examples: int = 0               # passing examples
    configs: set = field(default_factory=set)       # distinct configurations among them
    coverage: dict = field(default_factory=dict)    # option -> the values the passes covered
    max_ratio: float = 0.0          # largest error / tolerance of a pass
    max_abs: float = 0.0            # largest absolute error of a pass
    max_rel: float = 0.0            # largest relative error of a pass
    failure: Optional[object] = None    # the smallest failing outcome found, if any
    first_failure_at: Optional[float] = None    # time.monotonic() of the first failure
    shrink_calls: int = 0           # examples run while shrinking
    shrink_cut_at: int = 0          # shrinking tries when the time net (not the budget) cut it
    flaky: str = ""                 # Hypothesis' complaint when a failure did not replay
    gave_up: str = ""               # Hypothesis' complaint when every draw was rejected
    elapsed: float = 0.0            # seconds of survey and search (:func:`run_checks`)

    @property
    def examples_run(self) -> int:
        """Examples the report counts: the passes, and the failing one."""
        return self.examples + (self.failure is not None)

    @property
    def checked_nothing(self) -> bool:
        """No example could be run at all."""
        return self.failure is None and self.examples == 0

    def coverage_lists(self) -> dict:
        """``coverage`` with each set of values as a sorted list (for a report)."""
        return {k: sorted(v, key=str) for k, v in self.coverage.items()}

    def report_fields(self, options: CheckOptions, unsupported=()) -> dict:
        """The fields of a Report every kind of check fills alike, from these statistics and
        the options it ran with (seed and dtype resolved); ``unsupported``: what the target
        lacks (with ``options.strict`` any of it fails the check)."""
        return dict(seed=options.seed, examples=self.examples_run,
                    passed=self.failure is None and not self.checked_nothing
                    and not (options.strict and unsupported),
                    configurations=len(self.configs), elapsed=self.elapsed,
                    max_abs_error=self.max_abs, max_rel_error=self.max_rel,
                    max_error_ratio=self.max_ratio, tolerance=options.tolerance_text,
                    coverage=self.coverage_lists(), checked_nothing=self.checked_nothing,
                    strict=options.strict, unsupported=list(unsupported))

    def shrink_note(self) -> str:
        """A line for the report when the time net, not the tries budget, stopped shrinking."""
        if not self.shrink_cut_at:
            return ""
        return (f"shrinking stopped after {SHRINK_BUDGET_S:g} s ({self.shrink_cut_at} tries): "
                "a replay on a faster or slower machine may end on another counterexample")


def new_stats() -> SearchStats:
    """Empty statistics for :func:`search`."""
    return SearchStats()


def shrink_note(stats: SearchStats) -> str:
    """``stats.shrink_note()`` (the older spelling)."""
    return stats.shrink_note()


def cover(coverage: dict, c: Config, length_mode) -> None:
    for key, value in [("layers", c.num_layers), ("bidirectional", c.bidirectional),
                       ("bias", c.bias), ("batch_first", c.batch_first),
                       ("initial_state", c.initial_state), ("unbatched", c.unbatched),
                       ("projection", bool(c.d_proj))] + list(c.variant):
        coverage.setdefault(key, set()).add(value)
    coverage.setdefault("lengths", set()).add(length_mode or "fixed")


class Subject(Protocol):
    """What the loop searches. A case has ``key()`` (the same for the same drawn example); an
    outcome has ``failed``, ``kind``, ``ratio``, ``expected``, ``got`` and ``unsupported``."""

    nothing_left: bool           # set by ``unsupported`` when no value of an option is left

    def cases(self) -> SearchStrategy:
        """The Hypothesis strategy of the cases."""

    def excluded(self, case) -> bool:
        """Skip this case (it holds a combination found unsupported)."""

    def run(self, case) -> Optional[object]:
        """Run the target on one case: an outcome, or None to skip the case."""

    def unsupported(self, outcome) -> bool:
        """The target declared the case unsupported: True to skip it (recorded), False when
        it is a failure after all."""

    def cover(self, stats: SearchStats, case, outcome) -> None:
        """Record what a passing case covered in ``stats.configs`` and ``stats.coverage``."""


class HarnessSubject:
    """Framework and user targets: cases from the configuration space, run through their
    harness, unsupported features identified by the :class:`FeatureSurvey`."""

    def __init__(self, harness: Harness, survey: FeatureSurvey, dtype: str,
                 options: CheckOptions):
        self.harness, self.survey, self.dtype, self.options = harness, survey, dtype, options

    @property
    def nothing_left(self) -> bool:
        return self.survey.nothing_left

    def cases(self) -> SearchStrategy:
        return cases(self.harness, self.survey.space, self.dtype, self.options.max_size)

    def excluded(self, case) -> bool:
        return self.survey.excluded(case)

    def run(self, case):
        return run_case(self.harness, case, rtol=self.options.rtol, atol=self.options.atol,
                        timeout=self.options.timeout)

    def unsupported(self, outcome) -> bool:
        return self.survey.identify(outcome)

    def cover(self, stats: SearchStats, case, outcome) -> None:
        stats.configs.add(case.config.coverage_key())
        cover(stats.coverage, case.config, case.length_mode)


@contextlib.contextmanager
def without_local_constants():
    """Hypothesis (6.13x on) draws 5 % of its choices from the literals of the *local* modules
    loaded in the process (``hypothesis.internal.conjecture.providers``), so one seed drew other
    cases in a process that had imported one more module (the same check passed alone and
    failed after another test file). The search draws without them: a replay depends on the
    seed and the target only. Internal API: where it is missing, nothing is changed."""
    try:
        from hypothesis.internal.conjecture import providers
        saved, empty = providers._get_local_constants, providers.Constants()
        cache = providers.CONSTANTS_CACHE.cache
    except (ImportError, AttributeError):
        yield
        return
    providers._get_local_constants = lambda: empty
    cache.clear()
    try:
        yield
    finally:
        providers._get_local_constants = saved
        cache.clear()


def search(subject: Subject, *, examples: int, seed: int, stats: SearchStats,
           bar: Progress) -> None:
    """Run the Hypothesis search over ``subject``'s cases, filling ``stats`` (the failing
    outcome, if any, in ``stats.failure``)."""

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), report_multiple_bugs=False,
              phases=[Phase.explicit, Phase.generate, Phase.target, Phase.shrink],
              verbosity=Verbosity.quiet, print_blob=False)
    @hypothesis_seed(seed)
    @given(case=subject.cases())
    def property_(case):
        failure = stats.failure
        if failure is not None:
            stats.shrink_calls += 1
            if case.key() == failure.case.key():
                _fail()                 # the final replay: known to fail, don't run it again
            if stats.shrink_calls > SHRINK_BUDGET_CALLS or failure.kind == "timed out":
                return                  # stop shrinking: only the best counterexample fails
            if stats.shrink_cut_at or \
                    time.monotonic() - stats.first_failure_at > SHRINK_BUDGET_S:
                stats.shrink_cut_at = stats.shrink_cut_at or stats.shrink_calls
                return
        if subject.excluded(case):
            reject()
        outcome = subject.run(case)
        if outcome is None:
            reject()
        if outcome.unsupported and subject.unsupported(outcome):
            if subject.nothing_left:
                raise _NothingLeft()
            reject()
        if outcome.failed:
            if stats.failure is None:
                stats.first_failure_at = time.monotonic()
            stats.failure = outcome
            bar.update(stats)
            _fail()
        if failure is None:
            stats.examples += 1
            subject.cover(stats, case, outcome)
            stats.max_ratio = max(stats.max_ratio, outcome.ratio)
            a, r = max_errors(outcome.expected, outcome.got)
            stats.max_abs, stats.max_rel = max(stats.max_abs, a), max(stats.max_rel, r)
            hypothesis_target(outcome.ratio, label="error / tolerance")
        bar.update(stats)

    try:
        with without_local_constants():
            property_()
    except (_Failure, _NothingLeft):
        pass
    except HypothesisException as exc:   # flaky, or every draw rejected
        if stats.failure:
            stats.flaky = str(exc).splitlines()[0]
        else:
            stats.gave_up = str(exc).splitlines()[0]


@contextlib.contextmanager
def quiet(session=None):
    """The target's warnings silenced and floating-point errors ignored (its outputs are the
    report, not its warnings: an overflow in a naive sigmoid, a deprecation), inside its
    ``session`` (thread settings) when given: how the survey, the search and the diagnosis
    run the target."""
    with warnings.catch_warnings(), np.errstate(all="ignore"), \
            (session if session is not None else contextlib.nullcontext()):
        warnings.simplefilter("ignore")
        yield


def run_checks(options: CheckOptions, label: str,
               prepare: Callable[[SearchStats], Optional[Subject]], *,
               session=None) -> SearchStats:
    """The one run loop of every check (framework and user targets, any cell, ONNX nodes and
    opset-27 ops, their gradients): ``prepare(stats)`` surveys the target and returns the
    subject to search (None: nothing left to search; a survey that found a failure puts it in
    ``stats.failure``), then :func:`search` runs ``options.examples`` examples from
    ``options.seed`` behind the progress line, all of it :func:`quiet` (in the target's
    ``session``). Returns the statistics, ``elapsed`` set."""
    if options.examples is None:
        options = options.replace(examples=DEFAULT_EXAMPLES)
    stats = SearchStats()
    bar = Progress(options.progress, label, options.examples)
    start = time.monotonic()
    with quiet(session):
        try:
            subject = prepare(stats)
            if subject is not None and stats.failure is None:
                search(subject, examples=options.examples, seed=options.seed, stats=stats,
                       bar=bar)
        finally:
            bar.done()
    stats.elapsed = time.monotonic() - start
    return stats
