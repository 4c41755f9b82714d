"""Calling the target on one case, and what came of it (an Outcome with a failure kind).

Failure kinds, the first word of a diagnosis:

``wrong numbers``  outputs of the right shape and dtype outside the tolerance
``wrong shape``    an output (or a parameter) of the wrong shape or structure
``wrong dtype``    an output not in the dtype the target was run in
``raised``         the target raised (``NotImplementedError`` too, on core input)
``timed out``      one call took longer than the time limit (``--timeout``), twice
``exited``         the target ended its process: ``sys.exit``, ``os._exit``
``crashed``        the target's process died of a signal: a segfault, ``abort``, a kill

An exception the harness classes as "not supported" (``Harness.unsupported``:
``NotImplementedError`` and ``rnnsym.conformance.Unsupported``) is not a failure by itself: the
Outcome carries it in ``unsupported`` and ``rnnsym.conformance.survey`` decides which feature it
belongs to (on core input it is a failure after all).

The time limit uses ``signal.setitimer`` / ``SIGALRM`` in the main thread: the target is
interrupted where Python code runs next (a single long C call, e.g. one huge matmul, ends
first). A call that runs past the limit is made once more before it counts as "timed out"
(:func:`call_twice_if_slow`): a first call that compiles (jax, Keras on jax, TorchScript) or
meets a burst of load on a shared machine finishes the second time; a hang does not. Where
that is not available (Windows, or ``check`` called outside the main thread)
calls are not limited: a target that never returns hangs the check.

By default the target runs in a worker process (``rnnsym.conformance.isolation``): there the worker
applies the limit as above, and the checker kills it when no reply comes (a hang inside a C
call, or no ``SIGALRM``). :func:`limited_call` is the one way the checker calls the target.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from rnnsym.conformance.cases import Case
from rnnsym.conformance.compare import compare_flat, error_ratio
from rnnsym.conformance.isolation import TargetDied, copied, exit_text
from rnnsym.conformance.limits import (TargetTimeout, call_twice_if_slow, call_with_limit,  # noqa: F401
                                 can_limit_time, timeout_text)
from rnnsym.conformance.oracle import oracle_flat
from rnnsym.conformance.tolerance import backward_error_tolerance, explicit_tolerance
from rnnsym.frameworks import ContractError, Harness, OutputError

KINDS = ("wrong numbers", "wrong shape", "wrong dtype", "raised", "timed out", "exited",
         "crashed")


def limited_call(harness, method: str, args, kwargs=None, timeout: Optional[float] = None):
    """``harness.method(*args, **kwargs)`` limited to ``timeout`` seconds (twice, see the module
    docstring): in the harness's worker where it has one (``rnnsym.conformance.isolation``), else
    here, on copies of the arguments and of the result. ``sys.exit`` inside the target raises
    TargetDied (kind "exited") in both."""
    remote = getattr(harness, "call_limited", None)
    if remote is not None:
        return remote(method, args, kwargs or {}, timeout)
    fn, args, kwargs = getattr(harness, method), copied(args), copied(kwargs or {})
    try:
        return copied(call_twice_if_slow(lambda: fn(*args, **kwargs), timeout))
    except SystemExit as exc:
        raise TargetDied("exited", exit_text(exc.code)) from None


@dataclass
class Outcome:
    """Result of one case: got (None if the target failed), expected, tolerance, and the
    failure ``kind`` (None when it agrees). ``unsupported`` is the error text when the target
    declared something unsupported (then ``kind`` is "raised" until the probe says which
    feature it was, see ``rnnsym.conformance.survey``)."""

    case: Case
    expected: dict
    tolerance: object
    got: Optional[dict] = None
    error: Optional[str] = None
    mismatches: list = field(default_factory=list)
    ratio: float = 0.0
    kind: Optional[str] = None
    unsupported: Optional[str] = None

    @property
    def failed(self) -> bool:
        return bool(self.error or self.mismatches)


def representable(expected: dict, dtype: str) -> bool:
    """False if the exact result does not fit the target dtype (an exploding relu
    stack): no implementation in that dtype could produce it."""
    limit = np.finfo(np.dtype(dtype)).max * 1e-6
    return all(np.all(np.abs(v) < limit) for v in expected.values())


def call_target(harness: Harness, case: Case, timeout: Optional[float] = None):
    """Run the target on ``case``: ``(flat outputs, None)`` or ``(None, (kind, error text,
    unsupported text or None))``."""
    kwargs = {}
    if case.lengths is not None:
        kwargs = {"lengths": case.lengths, "length_mode": case.length_mode}
    try:
        got = limited_call(harness, "run", (case.config, case.values, case.x, case.state0),
                           kwargs, timeout)
    except TargetTimeout as exc:
        return None, ("timed out", timeout_text(timeout, exc), None)
    except TargetDied as exc:
        return None, (exc.kind, str(exc), None)
    except OutputError as exc:
        return None, (exc.kind, str(exc), None)
    except ContractError as exc:
        return None, ("wrong shape", str(exc), None)
    except Exception as exc:  # noqa: BLE001 - the target's own failure is a finding
        text = f"{type(exc).__name__}: {exc}"
        return None, ("raised", f"raised {text}", text if harness.unsupported(exc) else None)
    return got, None


def expected_outputs(harness: Harness, case: Case, *, rtol=None, atol=None):
    """``(expected flat outputs, Tolerance)``, or None if not representable in the dtype."""
    config = case.config
    params = harness.to_canonical(config, case.values)

    def run_oracle(p, x, s, wrap=None):
        return oracle_flat(config, p, x, s, wrap=wrap)

    if case.lengths is not None:
        from rnnsym.conformance.bug_models import lengths_oracle
        run_oracle = lengths_oracle(harness, case)
    expected = run_oracle(params, case.x, case.state0)
    if not representable(expected, config.dtype):
        return None
    if rtol is None and atol is None:
        tol = backward_error_tolerance(config, run_oracle, params, case.x, case.state0, expected)
    else:
        tol = explicit_tolerance(expected, rtol or 0.0, atol or 0.0)
    return expected, tol


def run_case(harness: Harness, case: Case, *, rtol=None, atol=None,
             timeout: Optional[float] = None) -> Optional[Outcome]:
    """Run target and oracle on one case; None if the case is not representable."""
    oracle = expected_outputs(harness, case, rtol=rtol, atol=atol)
    if oracle is None:
        return None
    outcome = Outcome(case, *oracle)
    got, failure = call_target(harness, case, timeout)
    if failure is not None:
        outcome.kind, outcome.error, outcome.unsupported = failure
        return outcome
    outcome.got = got
    outcome.mismatches = compare_flat(outcome.expected, got, outcome.tolerance.arrays)
    outcome.ratio = error_ratio(outcome.expected, got, outcome.tolerance.arrays)
    if outcome.mismatches:
        outcome.kind = "wrong numbers"
    return outcome
