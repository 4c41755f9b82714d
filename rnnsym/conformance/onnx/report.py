"""The ONNX report: the node and its inputs as the counterexample, notes (open points of the
spec where the target follows another reading) and unsupported attribute values."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from rnnsym.conformance.compare import max_errors
from rnnsym.conformance.report import Counterexample, Report, short
from rnnsym.conformance.search import SearchStats
from rnnsym.frameworks.onnx import OnnxCase


@dataclass
class OnnxCounterexample(Counterexample):
    case: Optional[OnnxCase] = None

    def describe(self) -> str:
        case = self.case
        stack = f"{case.layers} stacked nodes " if case.layers > 1 else ""
        lines = [f"  {'nodes' if stack else 'node'}: {stack}{case.op}(" +
                 ", ".join(f"{k}={v!r}" for k, v in case.attributes.items()) + ")",
                 "  sizes: " + " ".join(f"{k}={v}" for k, v in case.sizes().items()) +
                 f"; outputs {', '.join(case.outputs)}"]
        for name, value in case.inputs.items():
            if name not in ("W", "R") or value.size <= 24:
                lines.append(f"  {name} {list(value.shape)} = {short(value)}")
            else:
                lines.append(f"  {name} {list(value.shape)} (|max| {np.abs(value).max():.3g})")
        if self.error:
            lines.append(f"  target failed: {self.error}")
        for m in self.mismatches:
            got, expected = _distinct(m.got, m.expected)
            lines.append(f"  {where(case, m.name, m.index)} differs: got {got}, expected "
                         f"{expected} (tolerance {m.tolerance:.2g}); {m.bad}/{m.size} "
                         f"elements differ, max abs error {m.max_abs_error:.3g}")
        if self.mismatches and self.got is not None:
            first = self.mismatches[0].name
            lines.append(f"  expected {first}: {short(self.expected[first])}")
            lines.append(f"  got      {first}: {short(self.got[first])}")
        return "\n".join(lines)


def _distinct(got: float, expected: float) -> tuple[str, str]:
    """Both numbers with 7 significant digits, or as many more as make them differ (a float64
    error of 1e-8 is invisible at 7)."""
    for digits in range(7, 18):
        a, b = f"{got:.{digits}g}", f"{expected:.{digits}g}"
        if a != b:
            break
    return a, b


def where(case: OnnxCase, name: str, index: tuple) -> str:
    """An element's location: ``Y_h[0, 1, 2]`` for one node; for a stack the axes named, the
    layer (from 0) first: ``Y_h[layer=1, direction=forward, b=1, k=2]`` (``Y``: the last
    layer's, ``Y[layer=2, t=0, direction=reverse, b=1, k=0]``)."""
    if hasattr(case, "where"):        # opset-27 ops (rnnsym.frameworks.onnx.state_ops)
        return case.where(name, index)
    if case.layers == 1:
        return f"{name}{list(index)}"
    layout = case.attributes.get("layout")
    if name == "Y":
        axes = ("b", "t", "direction", "k") if layout else ("t", "direction", "b", "k")
        index = (case.layers - 1,) + tuple(index)
    else:
        axes = ("b", "direction", "k") if layout else ("direction", "b", "k")
    direction = case.attributes.get("direction", "forward")
    names = ("forward", "reverse") if direction == "bidirectional" else (direction,)
    parts = [f"layer={index[0]}"] + [f"{a}={names[i] if a == 'direction' else i}"
                                     for a, i in zip(axes, index[1:])]
    return f"{name}[{', '.join(parts)}]"


@dataclass
class OnnxReport(Report):
    """A Report with the ONNX-specific sections: notes (open points of the spec where the
    target follows another reading) and unsupported attribute values or dtype (rejections,
    as text). Verdicts and exit codes are the Report's: nothing checked (every model
    rejected) is UNSUPPORTED, exit 3; with ``strict`` an unsupported value fails."""

    notes: list = field(default_factory=list)
    unsupported: list = field(default_factory=list)
    checked_nothing: bool = False
    stage: str = "loading"       # what rejecting a model is for this target (or "converting")
    reason: str = ""            # why nothing was checked

    def format(self) -> str:
        if self.checked_nothing:
            text = (f"rnnsym check {self.target} --cell {self.cell} ({self.dtype}): UNSUPPORTED: "
                    + (f"nothing could be checked: {self.reason} (see below)" if self.reason else
                       f"the target rejected every model of this attribute space when {self.stage} "
                       "it; nothing was checked")
                    + (" (--strict: a failure)" if self.strict else "") +
                    f"\n  replay: {self.command}")
        else:
            text = super().format()
        extra = []
        if self.notes:
            extra.append("notes (open points of the spec: the target follows another reading; "
                         "not failures):")
            extra += [f"  - {n}" for n in self.notes]
        if self.unsupported:
            extra.append(f"unsupported (rejected when {self.stage} or running the model; not "
                         "counted as passes):")
            extra += [f"  - {u}" for u in self.unsupported]
        return "\n".join([text] + extra)


def add_failure(report: OnnxReport, stats: SearchStats, config, diagnose) -> None:
    """Put the search's failing outcome (``stats.failure``, if any) into ``report``: the
    counterexample and its kind; ``diagnose(outcome) -> [texts]`` names the bug models of
    wrong numbers (a time-out, a raise and a wrong shape have their own lines)."""
    outcome = stats.failure
    if outcome is None:
        return
    ce = OnnxCounterexample(config=config, mismatches=outcome.mismatches, error=outcome.error,
                            got=outcome.got, expected=outcome.expected, case=outcome.case)
    if outcome.got is not None:
        ce.max_abs_error, ce.max_rel_error = max_errors(outcome.expected, outcome.got)
    report.counterexample = ce
    report.failure_kind = outcome.kind
    report.shrink_note = stats.shrink_note()
    if outcome.got is not None and not outcome.error:
        report.diagnoses = diagnose(outcome)
        report.diagnosis = report.diagnoses[0] if report.diagnoses else None
    elif outcome.timed_out:
        report.diagnosis = f"one load and run of the model {outcome.error}"
        report.diagnoses = [report.diagnosis]
    elif outcome.died:
        report.diagnosis = f"running the model {outcome.error}"
        report.diagnoses = [report.diagnosis]
    elif outcome.error and outcome.got is None:
        report.diagnosis = ("the target raised an error instead of returning outputs (see "
                            "'target failed' above): it cannot run this model")
        report.diagnoses = [report.diagnosis]
    # (a wrong shape has no diagnosis: the report says "diagnosis: wrong shape (see
    # 'target failed' above)", the shapes being on that line)
