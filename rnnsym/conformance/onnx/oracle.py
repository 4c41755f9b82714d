"""The checker's oracle for one ONNX case: rnnsym.onnx's outputs under given readings, their
tolerance, and one comparison with the target under every admissible reading of the open points
of the spec."""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from rnnsym.conformance.tolerance import (FUNCTION_ULPS, SAFETY, Tolerance, backward_error_tolerance,
                                    explicit_tolerance, unit_roundoff)
from rnnsym.frameworks import Config
from rnnsym.frameworks.onnx import (CELL, OnnxCase, OnnxTarget, Unsupported, first_line,
                                    layer_name, run_target)
from rnnsym.onnx import Readings, parse_attributes
from rnnsym.onnx.driver import evaluate, next_layer_input
from rnnsym.onnx.readings import OPEN, open_points
from rnnsym.conformance.compare import compare_flat, error_ratio
from rnnsym.conformance.isolation import TargetDied, exit_text
from rnnsym.conformance.target import TargetTimeout, call_twice_if_slow, timeout_text


def _interleaved(Y, layout):
    """[T, D, N, H] -> [T, N, H*D], hidden-major: h0 forward, h0 reverse, h1 forward, ..."""
    Y = Y.transpose(0, 1, 3, 2) if layout else Y.transpose(0, 2, 3, 1)
    return Y.reshape(Y.shape[0], Y.shape[1], -1)


def _untransposed(Y, layout):
    """[T, D, N, H] reshaped to [T, N, D*H] without the Transpose: batch and direction mixed."""
    return Y.reshape(Y.shape[0], Y.shape[2], -1)


#: wrong ways of feeding node k's Y to node k+1 (bug models of stacks)
FEEDS = {"interleaved": _interleaved, "untransposed": _untransposed}


def oracle(case: OnnxCase, readings: Readings, *, attributes=None, drop=(), feed=None,
           only=None, replace=None):
    """``run(params, x, state0, wrap=None) -> outputs`` for the tolerance estimate, and its
    arguments (per node of the stack: ``params[k]``, ``state0[k]``). Node k > 0 reads node
    k-1's ``Y`` reshaped as the model does (:func:`rnnsym.onnx.driver.next_layer_input`);
    padded steps of that ``Y`` (zeros) are past ``sequence_lens`` for node k too, so a node that
    honours the lengths never reads them. Bug models: ``attributes``/``drop`` (input names)
    model a target that ignores them, ``replace`` ({graph input name: array}) one that reads
    inputs otherwise, ``feed`` (a key of :data:`FEEDS`) one that feeds node k wrongly, in the
    nodes ``only`` lists (0-based; None: every node)."""
    def changed(k):
        return only is None or k in only

    attrs = [parse_attributes(case.op, attributes if attributes is not None and changed(k)
                              else case.attributes, alpha_order=readings.alpha_order)
             for k in range(case.layers)]
    swap = replace or {}
    inputs = [{n: swap.get(layer_name(n, k), v) if changed(k) else v
               for n, v in case.layer_inputs(k).items() if not (changed(k) and n in drop)}
              for k in range(case.layers)]
    params = [{n: ins[n] for n in ("W", "R", "B", "P") if n in ins} for ins in inputs]
    state0 = [{n: ins[n] for n in ("initial_h", "initial_c") if n in ins} for ins in inputs]
    lens = [ins.get("sequence_lens") for ins in inputs]

    def run(params, x, state0, wrap=None):
        outs = []
        for k in range(case.layers):
            if k:
                reshape = FEEDS[feed] if feed and changed(k) else next_layer_input
                x = reshape(outs[-1]["Y"], attrs[k - 1].layout)
            outs.append(evaluate(attrs[k], x, sequence_lens=lens[k], readings=readings,
                                 wrap=wrap, **params[k], **(state0[k] if state0 else {})))
        if case.layers == 1:
            return {n: outs[0][n] for n in case.outputs}
        return {n: outs[-1][n] if n == "Y" else np.stack([o[n] for o in outs])
                for n in case.outputs}
    return run, params, case.inputs["X"], state0 if any(state0) else None


def config_for(case: OnnxCase, dtype: str) -> Config:
    s = case.sizes()
    return Config(cell=CELL[case.op], T=s["T"], B=s["N"], d_in=s["I"], d_h=s["H"],
                  bidirectional=case.attributes.get("direction") == "bidirectional",
                  num_layers=case.layers, dtype=dtype)


def expectation(case: OnnxCase, readings: Readings, dtype: str, rtol=None, atol=None, **kw):
    """(expected flat outputs, Tolerance) under ``readings``."""
    run, params, x, state0 = oracle(case, readings, **kw)
    with np.errstate(all="ignore"):
        expected = run(params, x, state0)
        if rtol is None and atol is None:
            tol = backward_error_tolerance(config_for(case, dtype), run, params, x, state0,
                                           expected)
            tol = _gate_rounding(tol, expected, state0, dtype)
        else:
            tol = explicit_tolerance(expected, rtol or 0.0, atol or 0.0)
    return expected, tol


def _gate_rounding(tol, expected: dict, state0, dtype: str):
    """Add the rounding of the gates themselves: a gate near 1 carries an absolute error of a
    few u, which ``(1 - z) * n`` / ``f * c`` multiply by the size of the states they gate
    (onnxruntime computes ``1 - z`` from a float32 ``z``, so ``(1 - z) * 44`` is off by
    ``44 u``). The probes of the backward-error estimate perturb inputs and states, not gate
    outputs, so this term is added: ``SAFETY * FUNCTION_ULPS * u * max |state|``."""
    arrays = list(expected.values()) + [v for s in state0 or () for v in s.values()]
    scale = max((float(np.max(np.abs(a))) for a in arrays if np.size(a)), default=0.0)
    extra = SAFETY * FUNCTION_ULPS * unit_roundoff(dtype) * scale
    return Tolerance({k: v + extra for k, v in tol.arrays.items()}, tol.method, tol.u, tol.gamma)


def representable(expected: dict, dtype: str) -> bool:
    """Whether the exact outputs are far enough from the dtype's overflow to be compared."""
    limit = np.finfo(np.dtype(dtype)).max * 1e-6
    return all(np.all(np.abs(v) < limit) for v in expected.values())


@dataclass
class OnnxOutcome:
    """One case run on the target: its outputs or error, the mismatches under the readings
    tried, and the non-default readings it matched (a note, not a failure)."""

    case: OnnxCase
    expected: dict
    tolerance: object
    got: Optional[dict] = None
    error: Optional[str] = None
    unsupported: Optional[str] = None
    mismatches: list = field(default_factory=list)
    ratio: float = 0.0
    readings: dict = field(default_factory=dict)   # non-default readings it matched
    timed_out: bool = False
    died: Optional[str] = None        # "exited" / "crashed" (rnnsym.conformance.isolation)

    @property
    def failed(self) -> bool:
        return bool(self.error or self.mismatches)

    @property
    def kind(self) -> Optional[str]:
        """The failure kind (``rnnsym.conformance.target.KINDS``), None when it agrees."""
        if self.timed_out:
            return "timed out"
        if self.died:
            return self.died
        if self.error:
            return "wrong shape" if self.got is not None else "raised"
        return "wrong numbers" if self.mismatches else None


def shape_error(expected: dict, got: dict) -> Optional[str]:
    """The first output whose shape differs from the oracle's, in words; None if all agree."""
    for n, e in expected.items():
        if np.shape(got[n]) != np.shape(e):
            return f"output {n}: expected shape {np.shape(e)}, got {np.shape(got[n])}"
    return None


def run_case(target: OnnxTarget, case: OnnxCase, dtype: str, fixed: dict, *, rtol=None,
             atol=None, timeout=None) -> Optional[OnnxOutcome]:
    """Compare the target with rnnsym on one case, under every admissible reading of the open
    points (``fixed`` ones only as given). None if the exact result is not representable.
    ``timeout``: seconds one load + run of the target may take (``rnnsym.conformance.target``)."""
    points = open_points(case.op, case.attributes, case.inputs, case.outputs)
    base = Readings(**fixed)
    alternatives = [p for p in points if p not in fixed]
    expected, tol = expectation(case, base, dtype, rtol, atol)
    if not representable(expected, dtype):
        return None
    outcome = OnnxOutcome(case, expected, tol)
    remote = getattr(target, "call_limited", None)      # in a worker: rnnsym.conformance.isolation
    try:
        got = remote("run_target", (case,), {}, timeout) if remote is not None else \
            call_twice_if_slow(lambda: run_target(target, case), timeout)
    except TargetTimeout as exc:
        outcome.error, outcome.timed_out = timeout_text(timeout, exc), True
        return outcome
    except TargetDied as exc:
        outcome.error, outcome.died = str(exc), exc.kind
        return outcome
    except SystemExit as exc:                           # in-process
        outcome.error, outcome.died = exit_text(exc.code), "exited"
        return outcome
    except Unsupported as exc:
        outcome.unsupported = str(exc)
        return outcome
    except Exception as exc:  # noqa: BLE001 - the target's failure is a finding
        outcome.error = first_line(exc)
        return outcome
    outcome.got = got
    outcome.error = shape_error(expected, got)
    if outcome.error:
        return outcome
    outcome.mismatches = compare_flat(expected, got, tol.arrays)
    outcome.ratio = error_ratio(expected, got, tol.arrays)
    if not outcome.mismatches or not alternatives:
        return outcome
    options = [OPEN[p][0] for p in alternatives]
    for combo in itertools.product(*options):
        choice = dict(zip(alternatives, combo))
        if all(choice[p] == getattr(base, p) for p in alternatives):
            continue
        exp2, tol2 = expectation(case, base.replace(**choice), dtype, rtol, atol)
        if shape_error(exp2, got) is None and not compare_flat(exp2, got, tol2.arrays):
            outcome.mismatches = []
            outcome.ratio = error_ratio(exp2, got, tol2.arrays)
            outcome.readings = {p: v for p, v in choice.items() if v != getattr(base, p)}
            break
    return outcome

