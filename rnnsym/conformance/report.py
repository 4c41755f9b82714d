"""What ``rnnsym.check`` returns and prints: a Report, with a Counterexample on failure.

Verdicts and exit codes (``Report.verdict``, ``Report.exit_code``)::

    OK           0  conforms on everything it supports (unsupported features listed)
    MISMATCH     1  a counterexample: wrong numbers, shape or dtype, raised, timed out
    UNSUPPORTED  3  nothing could be checked (e.g. the requested dtype is unsupported)
    STRICT       1  with ``strict``: an unsupported feature is a failure

(2 is a usage error, raised before any report exists.)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from rnnsym.conformance.compare import max_errors

from rnnsym.frameworks import Config


@dataclass(frozen=True)
class UnsupportedFeature:
    """An optional feature the target declared unsupported, once, with its error."""

    feature: str        # "lengths", "layers (3)", "bidirectional + lengths", "dtype=float64"
    what: str           # what the feature is, e.g. "variable-length batches (PackedSequence, masks)"
    error: str          # "NotImplementedError: packed sequences"

    def __str__(self) -> str:
        return f"{self.feature} ({self.what}): {self.error}"


@dataclass
class Counterexample:
    """The shrunk failing example.

    config      sizes and options
    mismatches  one Mismatch per differing output (empty if the target raised)
    error       "ValueError: ..." when the target raised or returned a bad shape
    values      the target's parameters as written into it (target layout)
    x, state0   canonical input (T, B, d_in) and flat initial state (or None)
    got, expected  flat outputs (got is None if the target raised)
    """

    config: Config
    mismatches: list = field(default_factory=list)
    error: Optional[str] = None
    values: dict = field(default_factory=dict)
    x: Optional[np.ndarray] = None
    state0: Optional[dict] = None
    got: Optional[dict] = None
    expected: Optional[dict] = None
    max_abs_error: float = float("nan")
    max_rel_error: float = float("nan")

    def describe(self) -> str:
        lines = [f"  configuration: {self.config.describe()}"]
        if self.error:
            lines.append(f"  target failed: {self.error}")
        for m in self.mismatches:
            lines.append(f"  {m.where} differs: got {m.got:.7g}, expected {m.expected:.7g} "
                         f"(tolerance {m.tolerance:.2g})")
            lines.append(f"      {m.bad}/{m.size} elements of {m.name} differ; "
                         f"max abs error {m.max_abs_error:.3g}, max rel error {m.max_rel_error:.3g}")
        if self.mismatches and self.got is not None:
            first = self.mismatches[0]
            lines.append(f"  expected {first.name}: {short(self.expected[first.name])}")
            lines.append(f"  got      {first.name}: {short(self.got[first.name])}")
        return "\n".join(lines)


def short(arr, limit: int = 12) -> str:
    """The first ``limit`` entries of an array, flattened, for a report: 4 digits, ``...`` when
    cut; integer arrays (ONNX ``sequence_lens``) whole, as a list."""
    if np.issubdtype(np.asarray(arr).dtype, np.integer):
        return str(np.asarray(arr).ravel().tolist())
    flat = np.asarray(arr, np.float64).ravel()
    text = np.array2string(flat[:limit], precision=4, separator=", ", max_line_width=10**6)
    return text[:-1] + ", ...]" if flat.size > limit else text


@dataclass
class Report:
    """Result of one ``rnnsym.check`` run. ``bool(report)`` is ``report.passed``."""

    target: str
    cell: str
    dtype: str
    seed: int
    passed: bool
    examples: int
    configurations: int
    elapsed: float
    max_abs_error: float
    max_rel_error: float
    max_error_ratio: float          # largest error / tolerance seen (< 1 when passed)
    tolerance: str
    command: str                    # CLI command that replays this run
    coverage: dict = field(default_factory=dict)
    counterexample: Optional[Counterexample] = None
    diagnosis: Optional[str] = None
    diagnoses: list = field(default_factory=list)
    unsupported: list = field(default_factory=list)   # UnsupportedFeature (ONNX: str)
    strict: bool = False            # unsupported features count as failures
    checked_nothing: bool = False   # no example could be run at all
    failure_kind: Optional[str] = None   # rnnsym.conformance.target.KINDS
    shrink_note: str = ""           # set when shrinking was cut by time (rnnsym.conformance.search)
    gradients: bool = False         # the gradients were checked (--gradients), not the outputs
    reason: str = ""                # why nothing was checked ("the target refuses --dtype ...")
    backward: str = ""              # --gradients of a function: the backward that was used

    @property
    def ok(self) -> bool:
        return self.passed

    @property
    def verdict(self) -> str:
        """OK, MISMATCH, UNSUPPORTED (nothing checked) or STRICT (see the module docstring)."""
        if self.counterexample is not None:
            return "MISMATCH"
        if self.strict and self.unsupported:
            return "STRICT"
        if self.checked_nothing:
            return "UNSUPPORTED"
        return "OK" if self.passed else "MISMATCH"

    @property
    def exit_code(self) -> int:
        return {"OK": 0, "UNSUPPORTED": 3}.get(self.verdict, 1)

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        return self.format()

    def format(self) -> str:
        head = (f"rnnsym check {self.target} --cell {self.cell}"
                + (" --gradients" if self.gradients else "") + f" ({self.dtype})")
        verdict = self.verdict
        if verdict == "MISMATCH":
            lines = self._failure_lines(head)
        elif verdict == "OK" or (verdict == "STRICT" and not self.checked_nothing):
            # values may hold commas ("packed, enforce_sorted"): " | " between them
            cov = "; ".join(f"{k}: {' | '.join(map(str, v))}" for k, v in self.coverage.items())
            status = "OK" if verdict == "OK" else \
                "UNSUPPORTED FEATURES (--strict: each is a failure)"
            lines = [
                f"{head}: {status}",
                f"  {self.examples} examples, {self.configurations} configurations in "
                f"{self.elapsed:.1f} s",
                f"  covered {cov}",
                f"  largest {'gradient ' if self.gradients else ''}error: "
                f"abs {self.max_abs_error:.3g}, rel {self.max_rel_error:.3g}, "
                f"{self.max_error_ratio:.3g} x tolerance ({self.tolerance})"]
            lines += self._backward_lines() + [f"  replay: {self.command}"]
        else:
            lines = [f"{head}: UNSUPPORTED: nothing could be checked"
                     + (f": {self.reason} (see below)" if self.reason else "")
                     + (" (--strict: a failure)" if self.strict else ""),
                     f"  replay: {self.command}"]
        features = [u for u in self.unsupported if isinstance(u, UnsupportedFeature)]
        if features:   # (the ONNX report lists its own, as text)
            lines.append("unsupported (the target raised NotImplementedError: left out of the "
                         "search, " + ("failures with --strict):" if self.strict else
                                       "not failures; --strict makes them failures):"))
            lines += [f"  - {u}" for u in features]
        return "\n".join(lines)

    def _backward_lines(self) -> list[str]:
        return [f"  gradients of the target by: {self.backward}"] if self.backward else []

    def _failure_lines(self, head: str) -> list[str]:
        lines = [f"{head}: MISMATCH after {self.examples} examples ({self.elapsed:.1f} s)",
                 "smallest counterexample found:"]
        if self.counterexample is not None:
            lines.append(self.counterexample.describe())
        kind = f"{self.failure_kind}: " if self.failure_kind else ""
        if self.diagnosis:
            lines.append(f"diagnosis: {kind}{self.diagnosis}")
            for other in self.diagnoses[1:]:
                lines.append(f"  also fits: {other}")
        elif self.failure_kind in (None, "wrong numbers"):
            lines.append(f"diagnosis: {kind}none of the known variants reproduces this output")
        else:
            lines.append(f"diagnosis: {self.failure_kind} (see 'target failed' above)")
        lines += [line.strip() for line in self._backward_lines()]
        lines.append(f"replay: {self.command}")
        if self.shrink_note:
            lines.append(f"  ({self.shrink_note})")
        return lines


@dataclass
class LengthsCounterexample(Counterexample):
    """A Counterexample on a variable-length batch: also shows the lengths."""

    lengths: Optional[tuple] = None
    length_mode: Optional[str] = None

    def describe(self) -> str:
        first, *rest = super().describe().split("\n")
        line = (f"  lengths: {list(self.lengths)} ({self.length_mode}); x is zero and outputs "
                "are padding past each length")
        return "\n".join([first, line] + rest)


def counterexample_of(outcome) -> Counterexample:
    """The Counterexample of a failing ``rnnsym.conformance.target.Outcome``."""
    case = outcome.case
    kind, extra = Counterexample, {}
    if case.lengths is not None:
        kind, extra = LengthsCounterexample, {"lengths": case.lengths,
                                              "length_mode": case.length_mode}
    ce = kind(config=case.config, mismatches=outcome.mismatches, error=outcome.error,
              values=case.values, x=case.x, state0=case.state0, got=outcome.got,
              expected=outcome.expected, **extra)
    if outcome.got is not None:
        ce.max_abs_error, ce.max_rel_error = max_errors(outcome.expected, outcome.got)
    return ce
