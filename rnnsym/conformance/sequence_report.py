"""What ``check_sequence`` returns and prints: a :class:`SequenceReport`, one
:class:`PropertyResult` per (property, path).

Verdicts of a row: ``PASS`` (every drawn example agreed), ``MISMATCH`` (a shrunk
counterexample), ``UNSUPPORTED`` (the path declined every example: its dtype or a feature),
``N/A`` (the property does not apply to the path: never a pass). Exit codes as the other checks
(docs/checking.md): 1 when a row is MISMATCH, 0 when at least one row passed and none failed,
3 when nothing could be checked.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass
class PropertyResult:
    property: str
    path: str
    verdict: str                    # PASS, MISMATCH, UNSUPPORTED, N/A
    meaning: str = ""
    bug_class: str = ""
    examples: int = 0
    ratio: float = 0.0              # largest error / tolerance over passing examples
    note: str = ""                  # why N/A or UNSUPPORTED; unsupported examples skipped
    message: str = ""               # the counterexample's line
    diagnosis: str = ""
    case: str = ""                  # the shrunk Draw, described
    replay: str = ""
    elapsed: float = 0.0


@dataclass
class SequenceReport:
    target: str
    cell: str
    paths: tuple
    dtype: str
    seed: int
    examples: int
    results: list = field(default_factory=list)
    elapsed: float = 0.0
    command: str = ""

    @property
    def failures(self) -> list:
        return [r for r in self.results if r.verdict == "MISMATCH"]

    @property
    def verdict(self) -> str:
        if self.failures:
            return "MISMATCH"
        if any(r.verdict == "PASS" for r in self.results):
            return "OK"
        return "UNSUPPORTED"

    @property
    def passed(self) -> bool:
        return self.verdict == "OK"

    @property
    def exit_code(self) -> int:
        return {"OK": 0, "UNSUPPORTED": 3}.get(self.verdict, 1)

    def __bool__(self) -> bool:
        return self.passed

    def result(self, prop: str, path: Optional[str] = None) -> PropertyResult:
        return next(r for r in self.results
                    if r.property == prop and (path is None or r.path == path))

    def __str__(self) -> str:
        return self.format()

    def format(self) -> str:
        lines = [f"rnnsym check {self.target} --cell {self.cell} ({self.dtype}): {self.verdict}",
                 f"  paths: {', '.join(self.paths)}; dtype {self.dtype}; {self.examples} "
                 f"examples per property and path; seed {self.seed}; {self.elapsed:.1f} s",
                 f"  {'property':<14} {'path':<12} {'verdict':<12} {'examples':>8}  "
                 f"{'max err/tol':>11}  note"]
        for r in self.results:
            ratio = "-" if r.verdict not in ("PASS", "MISMATCH") else \
                "inf" if r.ratio >= 1e300 else f"{r.ratio:.3g}"
            lines.append(f"  {r.property:<14} {r.path:<12} {r.verdict:<12} {r.examples:>8}  "
                         f"{ratio:>11}  {r.note}")
        for r in self.failures:
            lines += ["", f"property {r.property} FAILED on path {r.path}: {r.meaning}",
                      f"  bug class: {r.bug_class}",
                      f"  {r.message}"]
            if r.diagnosis:
                lines.append(f"  diagnosis: {r.diagnosis}")
            lines += [f"  case: {r.case}", f"  replay: {r.replay}"]
        if not self.failures:
            lines.append(f"  replay: {self.command}")
        return "\n".join(lines)
