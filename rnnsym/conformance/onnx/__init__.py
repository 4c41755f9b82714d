"""``rnnsym check`` for ONNX runtimes: random one-node RNN/GRU/LSTM models (stacks of nodes with
``--layers``) against :mod:`rnnsym.onnx`.

    rnnsym check onnxruntime --cell lstm
    rnnsym check onnxruntime --cell gru --layers 1,2,3      # stacks of 1 to 3 nodes
    rnnsym check onnx-reference --cell gru --attributes layout=0,direction=forward
    rnnsym check onnx:my_backend.py:run --cell rnn        # run(model_bytes, inputs) -> outputs
    rnnsym check onnxruntime --cell linear_attention      # opset 27: LinearAttention
    rnnsym check onnxruntime --cell causal_conv           # opset 27: CausalConvWithState

The targets, the attribute space (``--attributes``) and the load-time probe are the harness's
(:mod:`rnnsym.frameworks.onnx`). A *load-time* rejection is reported as **unsupported**, never
as a pass: before the run every attribute value of the space is tried alone on the simplest
model and the rejected ones are taken out of the space and listed; a rejected combination met
later is listed too and the example does not count.

**Open points of the spec** (:mod:`rnnsym.onnx.readings`): ``clip_before_h``,
``y_past_length``, ``empty_state``, ``alpha_order``. By default the target may follow any
documented reading of each; when it does not follow rnnsym's default one, the report carries a
*note* (not a failure). ``--variant clip_before_h=false`` (etc.) fixes a reading: then only that
one is compared.

Here: :func:`check_onnx` and :class:`OnnxSubject`, what the checker's common search loop
(:mod:`rnnsym.conformance.search`) runs for ONNX; :mod:`~.strategy` draws the nodes, :mod:`~.oracle`
compares one case, :mod:`~.diagnose` names the bug model, :mod:`~.report` formats the result.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from rnnsym.conformance.onnx.diagnose import diagnose
from rnnsym.conformance.onnx.oracle import config_for, run_case
from rnnsym.conformance.onnx.report import OnnxReport, add_failure
from rnnsym.conformance.onnx.state_ops import STATE_OP, check_state_op
from rnnsym.conformance.onnx.strategy import onnx_cases
from rnnsym.conformance.isolation import onnx_target_in_worker
from rnnsym.conformance.search import SearchStats, quiet, run_checks
from rnnsym.check_options import CheckOptions
from rnnsym.frameworks import CELL_ALIASES, UsageError, canonical_cell
from rnnsym.frameworks.onnx import (OP, SPACE, OnnxTarget, is_onnx_target,
                                    parse_attribute_space, probe)
from rnnsym.onnx.readings import OPEN, READING_TEXT

__all__ = ["check_onnx", "is_onnx_target", "parse_readings"]


def parse_readings(variant) -> dict:
    """``--variant clip_before_h=false,empty_state=zero`` -> {open point: reading}."""
    if not variant:
        return {}
    items = variant.items() if isinstance(variant, dict) else \
        [w.split("=", 1) for w in filter(None, (w.strip() for w in str(variant).split(",")))]
    fixed = {}
    for item in items:
        if len(item) != 2:
            raise UsageError(f"--variant {item[0]}: expected NAME=VALUE, e.g. clip_before_h=false")
        name, value = item[0].strip(), str(item[1]).strip().lower()
        if name not in OPEN:
            raise UsageError(f"--variant {name}: not an open point of the ONNX spec (known: "
                             f"{', '.join(OPEN)})")
        readings = OPEN[name][0]
        if name == "clip_before_h":
            value = {"true": True, "1": True, "false": False, "0": False}.get(value, value)
        if value not in readings:
            raise UsageError(f"--variant {name}={item[1]}: expected one of "
                             f"{', '.join(str(r).lower() for r in readings)}")
        fixed[name] = value
    return fixed


class OnnxSubject:
    """What the common search loop (:func:`rnnsym.conformance.search.search`) needs of an ONNX
    target: one-node models drawn from the attribute space, run against rnnsym.onnx under every
    admissible reading; a load-time rejection met during the search is listed (by the drawn
    choices that are not defaults) and the case skipped."""

    nothing_left = False     # the probe before the search empties options, never the search

    def __init__(self, target: OnnxTarget, op: str, space: dict, dtype: str, fixed: dict, *,
                 rtol=None, atol=None, max_size: int = 6, timeout=None):
        self.target, self.op, self.space, self.dtype, self.fixed = target, op, space, dtype, fixed
        self.rtol, self.atol, self.max_size, self.timeout = rtol, atol, max_size, timeout
        self.rejected: dict = {}      # load-time error -> the choices of the first case
        self.notes: dict = {}         # (open point, reading) -> (size, smallest case)

    def cases(self):
        return onnx_cases(self.op, self.space, self.dtype, self.max_size)

    def excluded(self, case) -> bool:
        return False

    def run(self, case):
        return run_case(self.target, case, self.dtype, self.fixed, rtol=self.rtol,
                        atol=self.atol, timeout=self.timeout)

    def unsupported(self, outcome) -> bool:
        where = ", ".join(f"{k}={v}" for k, v in outcome.case.choices.items()
                          if v != SPACE.get(k, (1,))[0])      # the non-default choices
        self.rejected.setdefault(outcome.unsupported, where)
        return True

    def cover(self, stats: SearchStats, case, outcome) -> None:
        stats.configs.add(tuple(sorted(case.choices.items(), key=str)))
        for k, v in case.choices.items():
            stats.coverage.setdefault(k, set()).add(v)
        for point, reading in outcome.readings.items():
            size = int(np.prod(list(case.sizes().values())))
            known = self.notes.get((point, reading))
            if known is None or size < known[0]:
                self.notes[(point, reading)] = (size, case)


def check_onnx(target: str, cell=None, *, options: Optional[CheckOptions] = None,
               **kwargs) -> OnnxReport:
    """Property-test an ONNX runtime's RNN/GRU/LSTM (see the module docstring); ``options``
    (:class:`rnnsym.CheckOptions`, keywords change single options): ``layers`` the numbers of
    stacked nodes to draw (first = the shrink target; default one node), ``attributes`` the
    attribute space, ``variant`` the readings of the spec's open points. ``cell``
    linear_attention / causal_conv: opset 27's ops (:mod:`~.state_ops`). The target runs in a
    worker process unless ``in_process`` (``rnnsym.conformance.isolation``)."""
    o = CheckOptions.of(options, **({} if cell is None else {"cell": cell}), **kwargs)
    if str(o.cell).lower() in STATE_OP:
        return check_state_op(target, options=o)
    if str(o.cell).lower() not in CELL_ALIASES:
        raise UsageError(f"--cell: ONNX targets check elman|rnn, lstm, gru (RNN, LSTM, GRU "
                         f"nodes), linear_attention and causal_conv (opset 27), got {o.cell!r}")
    o = o.replace(cell=canonical_cell(o.cell), dtype=o.dtype or "float32").with_seed()
    op = OP[o.cell]
    if o.dtype not in ("float32", "float64"):
        raise UsageError(f"--dtype: expected float32 or float64, got {o.dtype!r}")
    fixed = parse_readings(o.variant)
    space = parse_attribute_space(o.attributes, op)
    space["layers"] = o.layers or (1,)
    bidir = {"yes": ("bidirectional",), "no": ("forward", "reverse")}.get(o.bidirectional)
    if bidir:
        space["direction"] = tuple(d for d in space["direction"] if d in bidir) or bidir
    with onnx_target_in_worker(target, o.in_process) as tgt:
        return _check(tgt, target, o, op, fixed, space)


def _check(tgt, target, o: CheckOptions, op, fixed, space) -> OnnxReport:
    """Probe, search and report (the target ``tgt`` in a worker unless in-process)."""
    dtype = o.dtype
    survey = {}

    def prepare(stats):       # every attribute value alone on the simplest model
        survey["space"], survey["unsupported"], survey["empty"] = probe(tgt, op, space, dtype)
        survey["subject"] = OnnxSubject(tgt, op, survey["space"], dtype, fixed, rtol=o.rtol,
                                        atol=o.atol, max_size=o.max_size, timeout=o.timeout)
        return None if survey["empty"] else survey["subject"]
    stats = run_checks(o, f"rnnsym check {target} --cell {o.cell}", prepare)
    subject, empty = survey["subject"], survey["empty"]

    notes = []
    for (point, reading), (_, case) in subject.notes.items():
        default = fixed.get(point, OPEN[point][0][0])
        notes.append(f"{OPEN[point][1]}: the target follows '{READING_TEXT[(point, reading)]}',"
                     f" not rnnsym's default '{READING_TEXT[(point, default)]}' (select it "
                     f"with --variant {point}={str(reading).lower()}); e.g. {case.describe()}")
    unsupported = survey["unsupported"] + [f"{where or 'a combination of defaults'}: {why}"
                                           for why, where in subject.rejected.items()]
    unsupported += [f"every value of {n} (nothing left to draw)" for n in empty
                    if n in survey["space"]]
    report = OnnxReport(
        target=f"{target} [{tgt.label}]" if tgt.label else target, cell=o.cell, stage=tgt.stage,
        dtype=dtype, command=o.replay(target), notes=notes,
        reason=f"the target refuses --dtype {dtype}" if "dtype" in empty else "",
        **stats.report_fields(o, unsupported))

    def diagnosis(outcome):
        with quiet():
            return diagnose(outcome.case, outcome.got, dtype, fixed)
    if stats.failure is not None:
        add_failure(report, stats, config_for(stats.failure.case, dtype), diagnosis)
    return report
