"""Which optional features the target lacks: "unsupported" is not "wrong".

A target that raises ``NotImplementedError`` (``Harness.unsupported``) for an optional feature
(``rnnsym.conformance.space.FEATURES``) has that feature recorded as unsupported and left out of
the rest of the search. Which feature it was is found by running fresh, deterministic cases:

- before the search (:meth:`FeatureSurvey.survey`): core input alone, then core input with each
  feature value alone (``layers=2``, ``lengths=packed, unsorted``, ``activation=relu``, ...);
- during the search (:meth:`FeatureSurvey.identify`), for a case that raised although each of its
  features passed alone: the case's features are taken away one at a time, keeping each
  that is not needed to make the target raise; what remains is the smallest combination
  that raises (e.g. ``bidirectional + lengths``). Drawn cases containing it are skipped.

An unsupported error on core input (a plain batched float sequence, one layer, one direction,
no initial state), or one that remains when every feature is taken away, is a failure. The
requested dtype comes first: when core input declares itself unsupported in it and runs in
another float dtype (the harness's default tried first), the dtype is the unsupported
feature ``dtype=...`` (the report suggests the one that runs) and nothing can be checked;
the same rule for every kind of target (functions, drop-ins, cells, frameworks; ONNX targets:
``rnnsym.frameworks.onnx.space``).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Optional

from rnnsym.conformance.cases import Case, build_case
from rnnsym.conformance.report import UnsupportedFeature
from rnnsym.conformance.space import (BY_NAME, core_config, core_variant, drop,
                                pairs_of, pairs_on, values_on)
from rnnsym.conformance.target import Outcome, call_target, expected_outputs
from rnnsym.frameworks import Harness

#: The dtypes a target may be checked in (``--dtype``).
FLOAT_DTYPES = ("float32", "float64")

#: Sizes of the survey's cases: distinct, d_proj < d_h.
PROBE_SIZES = {"T": 3, "B": 4, "d_in": 2, "d_h": 6, "d_proj": 5}


@dataclass
class Lacking:
    """An unsupported feature value, or the smallest combination of them, and its error."""

    pairs: tuple
    error: str


class FeatureSurvey:
    """Finds and records what the target lacks; ``space`` (shared with the search's
    strategy) loses each unsupported value as soon as it is found."""

    def __init__(self, harness: Harness, space: dict, dtype: str, default_dtype: str,
                 timeout: Optional[float]):
        self.harness, self.space, self.dtype = harness, space, dtype
        self.default_dtype, self.timeout = default_dtype, timeout
        self.space0 = copy.deepcopy(space)
        self.core = core_variant(space)
        self.found: list[Lacking] = []
        self.combinations: list[frozenset] = []
        self.nothing_left = False          # an option lost its last value
        self.runs_in: Optional[str] = None  # the dtype core input runs in, if not self.dtype

    # -- running fresh cases --------------------------------------------------------------
    def _case(self, pairs, sizes, dtype=None, lengths=None) -> Case:
        config = core_config(self.harness.cell, sizes, dtype or self.dtype, self.core, pairs)
        mode = dict(pairs).get("lengths")
        return build_case(self.harness, config, length_mode=mode,
                          lengths=lengths if mode is not None else None)

    def _try(self, case: Case):
        return call_target(self.harness, case, self.timeout)[1]

    def _failure(self, case: Case, failure) -> Outcome:
        oracle = expected_outputs(self.harness, case) or ({}, None)
        outcome = Outcome(case, *oracle)
        outcome.kind, outcome.error, outcome.unsupported = failure
        return outcome

    # -- before the search ----------------------------------------------------------------
    def survey(self) -> Optional[Outcome]:
        """Core input, then each feature value alone. Returns a failing Outcome when core
        input raises "unsupported" or a call times out (no search needed to know it fails);
        None otherwise (``nothing_left`` when the dtype itself is unsupported)."""
        core = self._case((), PROBE_SIZES)
        failure = self._try(core)
        if failure is not None and failure[2] is not None:
            self.runs_in = self._other_dtype()
            if self.runs_in is not None:
                self.found.append(Lacking((("dtype", self.dtype),), failure[2]))
                self.nothing_left = True
                return None
            return self._failure(core, failure)
        if failure is not None and failure[0] == "timed out":
            return self._failure(core, failure)
        for pair in pairs_on(self.space):
            case = self._case((pair,), PROBE_SIZES)
            failure = self._try(case)
            if failure is not None and failure[2] is not None:
                self._record((pair,), failure[2])
            elif failure is not None and failure[0] == "timed out":
                return self._failure(case, failure)
        return None

    def _other_dtype(self) -> Optional[str]:
        """The first other float dtype (the target's default first) in which core input runs
        without declaring anything unsupported, or None: then the requested dtype is not what
        the target refuses."""
        others = [self.default_dtype] + [d for d in FLOAT_DTYPES if d != self.default_dtype]
        for other in others:
            if other != self.dtype:
                if self._try(self._case((), PROBE_SIZES, other)) is None:
                    return other
        return None

    @property
    def refused_dtype(self) -> bool:
        """Whether the requested dtype itself is unsupported (then nothing was checked)."""
        return self.runs_in is not None

    # -- during the search ----------------------------------------------------------------
    def excluded(self, case: Case) -> bool:
        """Whether a drawn case contains a combination found unsupported."""
        pairs = set(pairs_of(case.config, case.length_mode, self.core))
        return any(combo <= pairs for combo in self.combinations) or \
            any(not self._allowed(p) for p in pairs)

    def _allowed(self, pair) -> bool:
        name, value = pair
        return value in values_on(self.space, name)

    def identify(self, outcome: Outcome) -> bool:
        """For a case whose target raised "unsupported": record the smallest set of its
        features that makes it raise and return True; False when none is needed (core input
        raises: a failure)."""
        case = outcome.case
        pairs = pairs_of(case.config, case.length_mode, self.core)
        sizes = {**PROBE_SIZES, **case.config.sizes()}
        error, needed = outcome.unsupported, list(pairs)
        for pair in pairs:
            trial = [p for p in needed if p != pair]
            failure = self._try(self._case(trial, sizes, lengths=case.lengths))
            if failure is not None and failure[2] is not None:
                needed, error = trial, failure[2]
        if not needed:
            return False
        self._record(tuple(needed), error)
        return True

    def _record(self, pairs: tuple, error: str) -> None:
        self.found.append(Lacking(pairs, error))
        if len(pairs) > 1:
            self.combinations.append(frozenset(pairs))
            return
        (name, value), = pairs
        drop(self.space, name, value)
        options = [v for k, v in self.space.items() if k not in ("variants", "lengths")]
        if not all(options) or not all(self.space["variants"].values()):
            self.nothing_left = True

    # -- for the report -------------------------------------------------------------------
    def report_entries(self) -> list[UnsupportedFeature]:
        """One entry per feature (its values grouped, the first error), in report order."""
        groups: dict = {}
        for lack in self.found:
            names = tuple(name for name, _ in lack.pairs)
            groups.setdefault(names, []).append(lack)
        entries = []
        for names, lacks in groups.items():
            if len(names) == 1 and names[0] in BY_NAME:
                every = values_on(self.space0, names[0])
                values = [lack.pairs[0][1] for lack in lacks]
                label = names[0] if set(map(str, every)) <= set(map(str, values)) else \
                    f"{names[0]} ({', '.join(map(str, values))})"
                what = BY_NAME[names[0]].text
            elif names == ("dtype",):
                label = f"dtype={self.dtype}"
                what = (f"the requested dtype; the simplest case runs in {self.runs_in}: "
                        f"check it with --dtype {self.runs_in}")
            else:
                label = " + ".join(names)
                what = "together; each alone is supported" if len(names) > 1 else "a variant"
            entries.append(UnsupportedFeature(label, what, lacks[0].error))
        return entries
