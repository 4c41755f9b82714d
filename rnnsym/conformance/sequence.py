"""``check_sequence(target)``: property-test a sequence target (:mod:`rnnsym.frameworks.sequence`:
a model's chunked / recurrent / decode paths of one matrix-state recurrence) against rnnsym.

For each path and each property (:mod:`rnnsym.conformance.sequence_properties`: ``oracle``,
``chunk_size``, ``split_carry``, ``initial_state``, ``decode``, ``varlen``, ``groups``) one
Hypothesis search (the loop of :mod:`rnnsym.conformance.search`: seeded, shrinking with a budget of
tries) draws examples (:mod:`rnnsym.conformance.sequence_strategies`) and compares with per-element
tolerances (:mod:`rnnsym.conformance.sequence_tolerance`); the report
(:mod:`rnnsym.conformance.sequence_report`) has one verdict per (property, path) and, for a failure,
the shrunk counterexample, the bug class, a diagnosis and the command that replays it.

    from rnnsym.conformance.sequence import check_sequence
    report = check_sequence(my_target, dtype="float32", examples=50, seed=0)
    print(report); report.exit_code          # 0 pass, 1 mismatch, 3 nothing checked
"""
from __future__ import annotations

import random
import time
from typing import Optional

from rnnsym.conformance.search import Progress, new_stats, search
from rnnsym.conformance.sequence_properties import (PROPERTIES, PROPERTY_NAMES, Context,
                                              OracleUndefined, Outcome, PathUnsupported)
from rnnsym.conformance.sequence_report import PropertyResult, SequenceReport
from rnnsym.conformance.sequence_tolerance import U
from rnnsym.frameworks import UsageError
from rnnsym.frameworks.sequence import SequenceTarget

DTYPES = tuple(U)
#: examples per (property, path) when none are asked for
DEFAULT_EXAMPLES = 50
#: unsupported examples in a row, none passing, after which a search stops as UNSUPPORTED
GIVE_UP_AFTER = 3


class _Subject:
    """One (property, path) for ``rnnsym.conformance.search.search``."""

    def __init__(self, ctx: Context, prop):
        self.ctx, self.prop = ctx, prop
        self.nothing_left = False
        self.passes = 0
        self.unsupported_reasons: dict = {}

    def cases(self):
        return self.prop.strategy(self.ctx.target, self.ctx.path)

    def excluded(self, case) -> bool:
        return False

    def run(self, draw):
        try:
            return self.prop.run(self.ctx, draw)
        except PathUnsupported as exc:
            return Outcome(case=draw, unsupported=str(exc))
        except OracleUndefined:
            return None                     # rnnsym.conformance.search rejects the example
        except _PathRaised as exc:
            return Outcome(case=draw, failed=True, ratio=float("inf"), kind="raised",
                           message=str(exc))

    def unsupported(self, outcome) -> bool:
        n = self.unsupported_reasons.get(outcome.unsupported, 0)
        self.unsupported_reasons[outcome.unsupported] = n + 1
        if self.passes == 0 and sum(self.unsupported_reasons.values()) >= GIVE_UP_AFTER:
            self.nothing_left = True
        return True

    def cover(self, stats: dict, case, outcome) -> None:
        self.passes += 1


class _PathRaised(Exception):
    pass


def _guard(path):
    """The path with its exceptions (other than "unsupported") turned into failures."""
    from dataclasses import replace

    def run(case, chunk):
        try:
            return path.run(case, chunk)
        except NotImplementedError:
            raise
        except Exception as exc:  # noqa: BLE001 - a target raising is a failure, named
            first = str(exc).splitlines()[0] if str(exc) else ""
            raise _PathRaised(f"path {path.name} raised {type(exc).__name__}: {first} "
                              f"[T={case.T}, B={case.B}, heads={case.heads}, "
                              f"chunk_size={chunk}]") from exc
    return replace(path, run=run)


def _names(value, allowed, what) -> tuple:
    if value is None:
        return tuple(allowed)
    names = tuple(v.strip() for v in (value.split(",") if isinstance(value, str) else value)
                  if v and v.strip())
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        raise UsageError(f"--{what}: unknown {', '.join(map(repr, unknown)) or 'empty'}; "
                         f"expected some of {', '.join(allowed)}")
    return names


def replay_command(spec: str, cell: str, dtype: str, examples: int, seed: int,
                   path: Optional[str] = None, prop: Optional[str] = None) -> str:
    parts = [f"rnnsym check {spec} --cell {cell}"]
    if path:
        parts.append(f"--path {path}")
    if prop:
        parts.append(f"--property {prop}")
    parts.append(f"--dtype {dtype} --examples {examples} --seed {seed}")
    return " ".join(parts)


def check_sequence(target: SequenceTarget, *, paths=None, dtype: str = "float32",
                   examples: Optional[int] = None, seed: Optional[int] = None,
                   properties=None, spec: Optional[str] = None,
                   progress: bool = False) -> SequenceReport:
    """Check every (property, path) of ``target`` and return a :class:`SequenceReport`.

    paths       path names (list or "a,b"; default all)
    dtype       float32 (default), float64, bfloat16, float16: the case's dtype; a path not
                listing it in ``Path.dtypes`` is UNSUPPORTED
    examples    Hypothesis examples per (property, path) (default 50)
    seed        replays a run (default random, printed)
    properties  property names (default all: ``sequence_properties.PROPERTY_NAMES``)
    spec        how the target was named (for the replay command; default ``target.name``)
    """
    if not isinstance(target, SequenceTarget):
        raise UsageError(f"expected a SequenceTarget, got {type(target).__name__}")
    if dtype not in DTYPES:
        raise UsageError(f"--dtype: expected one of {', '.join(DTYPES)}, got {dtype!r}")
    examples = DEFAULT_EXAMPLES if examples is None else examples
    if not isinstance(examples, int) or isinstance(examples, bool) or examples < 1:
        raise UsageError(f"examples: expected an integer >= 1, got {examples!r}")
    path_names = _names(paths, [p.name for p in target.paths], "path")
    prop_names = _names(properties, PROPERTY_NAMES, "property")
    seed = random.randrange(2 ** 32) if seed is None else seed
    spec = spec or target.name
    start = time.monotonic()
    report = SequenceReport(target=spec, cell=target.cell, paths=path_names, dtype=dtype,
                            seed=seed, examples=examples,
                            command=replay_command(spec, target.cell, dtype, examples, seed,
                                                   ",".join(path_names) if paths else None,
                                                   ",".join(prop_names) if properties
                                                   else None))
    for pname in path_names:
        path = target.path(pname)
        for prop in PROPERTIES:
            if prop.name not in prop_names:
                continue
            row = PropertyResult(prop.name, pname, "N/A", prop.meaning, prop.bug_class)
            report.results.append(row)
            why = prop.applies(target, path)
            if why:
                row.note = why
                continue
            if dtype not in path.dtypes:
                row.verdict = "UNSUPPORTED"
                row.note = f"the path takes {', '.join(path.dtypes)}, not {dtype}"
                continue
            _search_one(row, Context(target, _guard(path), dtype, spec), prop, examples,
                        seed, progress)
            row.replay = replay_command(spec, target.cell, dtype, examples, seed, pname,
                                        prop.name)
    report.elapsed = time.monotonic() - start
    return report


def _search_one(row: PropertyResult, ctx: Context, prop, examples: int, seed: int,
                progress: bool) -> None:
    subject = _Subject(ctx, prop)
    stats = new_stats()
    t0 = time.monotonic()
    bar = Progress(progress, f"{prop.name} on {ctx.path.name}", examples)
    search(subject, examples=examples, seed=seed, stats=stats, bar=bar)
    bar.done()
    row.elapsed = time.monotonic() - t0
    row.examples = stats.examples
    row.ratio = stats.max_ratio
    failure = stats.failure
    skipped = sum(subject.unsupported_reasons.values())
    reasons = "; ".join(sorted(subject.unsupported_reasons))
    if failure is not None:
        row.verdict = "MISMATCH"
        row.ratio = max(row.ratio, failure.ratio)
        row.message = failure.message
        row.diagnosis = failure.diagnosis
        row.case = failure.case.describe(ctx.target.cell)
    elif row.examples:
        row.verdict = "PASS"
        if skipped:
            row.note = f"{skipped} examples unsupported ({reasons})"
    else:
        row.verdict = "UNSUPPORTED"
        row.note = reasons or stats.get("gave_up", "no example could be run")
