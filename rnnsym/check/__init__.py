"""``rnnsym.check``: property-test an RNN/LSTM/GRU implementation against rnnsym.

    report = rnnsym.check("torch", cell="gru")                 # torch.nn.GRU
    report = rnnsym.check("keras", cell="gru", variant="reset_after=false")
    report = rnnsym.check("mypkg.rnn:MyGRU", cell="gru")       # drop-in for torch.nn.GRU
    report = rnnsym.check("path/to/impl.py:gru", cell="gru")   # canonical NumPy function
    print(report); assert report.passed

How it works, layer by layer:

1. ``rnnsym.frameworks.*`` turns the target into a *harness*: what it supports,
   the names/shapes of its own parameters, explicit converters to the canonical
   convention, and one run on canonical inputs returning flat outputs.
2. Hypothesis draws a configuration (distinct sizes, layers, directions, bias,
   batch_first, initial state, unbatched, magnitudes), random values for the
   target's *own* parameters, an input and an initial state
   (``rnnsym.testing.strategies``), and -- in some of the cases (LENGTHS_TENTHS), where
   the harness takes variable-length batches -- per-sample lengths (torch
   ``pack_padded_sequence``, Keras masks).
3. The oracle (``rnnsym.check.oracle``) computes the expected outputs in float64
   from the converted parameters; ``rnnsym.check.tolerance`` gives per-element
   tolerances from a backward-error estimate; ``rnnsym.testing.assertions``
   compares.
4. On a mismatch Hypothesis shrinks to the smallest failing example and
   ``rnnsym.check.diagnose`` tries the known bug variants (gate permutations,
   GRU reset placement, bias placement, direction/state layouts, ...) and names
   the ones that reproduce the target's output.
"""
from __future__ import annotations

import hashlib
import random
import sys
import time
import types
import warnings
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis import target as hypothesis_target
from hypothesis.errors import HypothesisException

from rnnsym.check.oracle import oracle_flat
from rnnsym.check.report import Counterexample, Report
from rnnsym.check.tolerance import backward_error_tolerance, explicit_tolerance
from rnnsym.frameworks import (Config, ContractError, Harness, OutputError, UsageError,
                               canonical_cell)
from rnnsym.testing import strategies as rst
from rnnsym.testing.assertions import compare_flat, error_ratio, max_errors

__all__ = ["check", "Report", "Counterexample", "CheckOptions", "UsageError", "ContractError",
           "cases", "run_case"]

#: Seconds of shrinking after which the best counterexample so far is reported.
SHRINK_BUDGET_S = 40.0
#: Tenths of the drawn cases with per-sample lengths (where the harness supports them):
#: fixed-length cases stay the common ones and the shrink target.
LENGTHS_TENTHS = 4
BIDIRECTIONAL = {"yes": (True,), "no": (False,), "both": (False, True),
                 True: (True,), False: (False,), None: (False, True)}


@dataclass
class CheckOptions:
    """Options of one check run (the CLI flags, validated by ``check``)."""

    examples: int = 500
    seed: Optional[int] = None
    dtype: Optional[str] = None
    rtol: Optional[float] = None
    atol: Optional[float] = None
    layers: Optional[tuple] = None
    bidirectional: tuple = (False, True)
    variant: dict = field(default_factory=dict)
    cell_api: bool = False
    max_size: int = 6


# ------------------------------------------------------------------------------------------
# drawing cases


@dataclass
class Case:
    """One drawn example: config, target-layout parameter values, input, state, and
    for a variable-length batch the per-sample ``lengths`` (in [1, T]; ``x`` is zero
    past them) and ``length_mode``, how the harness feeds them (one of its
    ``length_modes``, e.g. "packed, enforce_sorted")."""

    config: Config
    values: dict
    x: np.ndarray
    state0: Optional[dict]
    lengths: Optional[tuple] = None
    length_mode: Optional[str] = None

    def key(self) -> str:
        h = hashlib.sha1(repr((self.config, self.lengths, self.length_mode)).encode())
        for v in list(self.values.values()) + [self.x] + list((self.state0 or {}).values()):
            h.update(np.ascontiguousarray(v).tobytes())
        return h.hexdigest()


def _choices(supported: tuple, wanted, label: str, harness: Harness) -> tuple:
    if wanted is None:
        return tuple(supported)
    wanted = tuple(wanted)
    unsupported = [w for w in wanted if w not in supported]
    if unsupported:
        raise UsageError(f"{label}={unsupported[0]!r} is not supported by {harness.name} "
                         f"(supported: {', '.join(map(str, supported))})")
    return wanted


def config_space(harness: Harness, options: CheckOptions) -> dict:
    """Validated choices for every option: name -> tuple of values (first = simplest)."""
    caps = harness.capabilities
    bidirectional = options.bidirectional
    if set(bidirectional) == {False, True}:      # "both" means: whatever the target has
        bidirectional = None
    space = {
        "num_layers": _choices(caps.num_layers, options.layers, "--layers", harness),
        "bidirectional": _choices(caps.bidirectional, bidirectional, "--bidirectional", harness),
        "bias": tuple(caps.bias),
        "batch_first": tuple(caps.batch_first),
        "initial_state": tuple(caps.initial_state),
        "unbatched": tuple(caps.unbatched),
        "projection": tuple(caps.projection),
    }
    variants = {}
    for name, values in caps.variants.items():
        if name in options.variant:
            variants[name] = _choices(caps.allowed.get(name, values), (options.variant[name],),
                                      f"--variant {name}", harness)
        else:
            variants[name] = tuple(values)
    unknown = sorted(set(options.variant) - set(caps.variants))
    if unknown:
        raise UsageError(f"--variant {unknown[0]}: not an option of {harness.name} "
                         f"(options: {', '.join(caps.variants) or 'none'})")
    if "projection" in variants:       # LSTM functions: projection is a claimed variant
        space["projection"] = variants.pop("projection")
    space["variants"] = variants
    # variable-length input: harness.length_modes maps each way of feeding lengths to
    # whether it needs them sorted (longest first); none: fixed length only
    space["lengths"] = dict(getattr(harness, "length_modes", {}) or {})
    return space


@st.composite
def cases(draw, harness: Harness, space: dict, dtype: str, max_size: int = 6):
    """Strategy for Case objects of ``harness`` within ``space`` (see config_space)."""
    projection = draw(st.sampled_from(space["projection"]), label="projection")
    names = ["T", "B", "d_in", "d_h"] + (["d_proj"] if projection else [])
    dims = draw(rst.distinct_sizes(names, max_value=max(max_size, len(names) + 1)), label="sizes")
    unbatched = draw(st.sampled_from(space["unbatched"]), label="unbatched")
    if unbatched:
        dims["B"] = 1
    config = Config(
        cell=harness.cell, T=dims["T"], B=dims["B"], d_in=dims["d_in"], d_h=dims["d_h"],
        d_proj=dims.get("d_proj", 0),
        num_layers=draw(st.sampled_from(space["num_layers"]), label="num_layers"),
        bidirectional=draw(st.sampled_from(space["bidirectional"]), label="bidirectional"),
        bias=draw(st.sampled_from(space["bias"]), label="bias"),
        batch_first=False if unbatched else draw(st.sampled_from(space["batch_first"]),
                                                 label="batch_first"),
        initial_state=draw(st.sampled_from(space["initial_state"]), label="initial_state"),
        unbatched=unbatched, dtype=dtype,
        variant=tuple(sorted((k, draw(st.sampled_from(v), label=k))
                             for k, v in space["variants"].items())))
    np_dtype = np.dtype(dtype)
    values = draw(rst.target_values(harness.param_shapes(config), np_dtype), label="values")
    x = draw(rst.inputs(dims, np_dtype), label="x")
    state0 = None
    if config.initial_state:
        state0 = draw(rst.stacked_states(harness.cell, dims, config.num_layers, config.D,
                                         np_dtype, projection=projection), label="state0")
    lengths = mode = None
    modes = space.get("lengths") or {}
    # a wide integer's last digit: Hypothesis favours small and repeated choices in
    # booleans, sampled_from and narrow ranges, which made lengths rare; shrinks to 0 =
    # fixed length
    coin = draw(st.integers(0, 2**32 - 1), label="variable lengths?") \
        if modes and not unbatched else 0
    if coin % 10 >= 10 - LENGTHS_TENTHS:
        mode = draw(st.sampled_from(sorted(modes)), label="length mode")
        # drawn as steps short of T: shrinks towards full-length samples
        short = draw(st.lists(st.integers(0, 2**32 - 1), min_size=config.B,
                              max_size=config.B), label="steps short of T (mod T)")
        lengths = [config.T - n % config.T for n in short]
        if modes[mode]:
            lengths.sort(reverse=True)
        lengths = tuple(lengths)
        x = x.copy()
        x[np.arange(config.T)[:, None] >= np.array(lengths)[None, :]] = 0
    return Case(config, values, x, state0, lengths, mode)


# ------------------------------------------------------------------------------------------
# running one case


@dataclass
class Outcome:
    """Result of one case: got (None if the target failed), expected, tolerance."""

    case: Case
    expected: dict
    tolerance: object
    got: Optional[dict] = None
    error: Optional[str] = None
    mismatches: list = field(default_factory=list)
    ratio: float = 0.0

    @property
    def failed(self) -> bool:
        return bool(self.error or self.mismatches)


def representable(expected: dict, dtype: str) -> bool:
    """False if the exact result does not fit the target dtype (an exploding relu
    stack): no implementation in that dtype could produce it."""
    limit = np.finfo(np.dtype(dtype)).max * 1e-6
    return all(np.all(np.abs(v) < limit) for v in expected.values())


def run_case(harness: Harness, case: Case, *, rtol=None, atol=None) -> Optional[Outcome]:
    """Run target and oracle on one case; None if the case is not representable."""
    config = case.config
    params = harness.to_canonical(config, case.values)

    def run_oracle(p, x, s, wrap=None):
        return oracle_flat(config, p, x, s, wrap=wrap)

    run_kwargs = {}
    if case.lengths is not None:
        from rnnsym.check.diagnose import lengths_oracle
        run_oracle = lengths_oracle(harness, case)
        run_kwargs = {"lengths": case.lengths, "length_mode": case.length_mode}

    expected = run_oracle(params, case.x, case.state0)
    if not representable(expected, config.dtype):
        return None
    if rtol is None and atol is None:
        tol = backward_error_tolerance(config, run_oracle, params, case.x, case.state0, expected)
    else:
        tol = explicit_tolerance(expected, rtol or 0.0, atol or 0.0)
    outcome = Outcome(case, expected, tol)
    try:
        got = harness.run(config, case.values, case.x, case.state0, **run_kwargs)
    except (OutputError, ContractError) as exc:
        outcome.error = str(exc)
        return outcome
    except Exception as exc:  # noqa: BLE001 - the target's own failure is a finding
        outcome.error = f"raised {type(exc).__name__}: {exc}"
        return outcome
    outcome.got = got
    outcome.mismatches = compare_flat(expected, got, tol.arrays)
    outcome.ratio = error_ratio(expected, got, tol.arrays)
    return outcome


# ------------------------------------------------------------------------------------------
# the run


class _Failure(Exception):
    pass


class _Progress:
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


def _parse_bidirectional(value) -> tuple:
    key = value.lower() if isinstance(value, str) else value
    if isinstance(value, tuple):
        return value
    if key not in BIDIRECTIONAL:
        raise UsageError(f"--bidirectional: expected yes, no or both, got {value!r}")
    return BIDIRECTIONAL[key]


def check(target, cell: str, *, examples: int = 500, seed: Optional[int] = None,
          dtype: Optional[str] = None, rtol: Optional[float] = None,
          atol: Optional[float] = None, layers=None, bidirectional="both", variant=None,
          cell_api: bool = False, progress: bool = False, max_size: int = 6,
          attributes=None) -> Report:
    """Property-test ``target`` against rnnsym's ``cell`` and return a Report.

    target         "torch", "keras", "MODULE:NAME", "path/to/file.py:NAME", or the
                   class/function itself; ONNX runtimes: "onnxruntime", "onnx-reference",
                   "onnx:MODULE:NAME" (``rnnsym.check.onnx``, where ``attributes``
                   restricts the attribute space and ``variant`` fixes readings)
    cell           "elman" (alias "rnn"), "lstm" or "gru"
    examples       number of Hypothesis examples (default 500)
    seed           replays a run exactly (default: a random seed, shown in the report)
    dtype          "float32" (default for classes/frameworks) or "float64" (default for
                   canonical NumPy functions)
    rtol, atol     replace the principled tolerance (rnnsym.check.tolerance)
    layers         num_layers values to explore, e.g. (1, 3); default all supported
    bidirectional  "yes", "no" or "both" (default)
    variant        math variant: "reset=before" / "reset_after=false" (GRU),
                   "activation=relu" (elman), "projection=true" (LSTM functions);
                   a dict or a comma-separated string
    cell_api       torch target only: check RNNCell/LSTMCell/GRUCell instead
    progress       write a progress line to stderr
    Raises UsageError (CLI exit 2) when the target or options cannot be checked.
    """
    from rnnsym.check.diagnose import diagnose
    from rnnsym.check.onnx import check_onnx, is_onnx_target
    from rnnsym.frameworks.user import parse_variant, resolve_harness

    if is_onnx_target(target):
        return check_onnx(target, cell, examples=examples, seed=seed, dtype=dtype, rtol=rtol,
                          atol=atol, attributes=attributes, variant=variant,
                          bidirectional=bidirectional, max_size=max_size)
    if attributes:
        raise UsageError("--attributes is only defined for ONNX targets")

    cell = canonical_cell(cell)
    if dtype not in (None, "float32", "float64"):
        raise UsageError(f"--dtype: expected float32 or float64, got {dtype!r}")
    if examples < 1:
        raise UsageError(f"--examples: expected a positive number, got {examples}")
    options = CheckOptions(
        examples=examples, seed=random.randrange(2**32) if seed is None else int(seed),
        dtype=dtype, rtol=rtol, atol=atol,
        layers=None if layers is None else tuple(int(n) for n in np.atleast_1d(layers)),
        bidirectional=_parse_bidirectional(bidirectional), variant=parse_variant(variant),
        cell_api=cell_api, max_size=max_size)
    harness, default_dtype = resolve_harness(target, cell, cell_api=cell_api)
    dtype = options.dtype or default_dtype
    space = config_space(harness, options)
    _probe(harness, space, dtype)

    stats = {"examples": 0, "configs": set(), "ratio": 0.0, "abs": 0.0, "rel": 0.0,
             "failure": None, "first_failure_at": None, "shrink_calls": 0, "coverage": {}}
    label = f"rnnsym check {_target_label(target)} --cell {cell}"
    bar = _Progress(progress, label, options.examples)

    @settings(max_examples=options.examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), report_multiple_bugs=False,
              phases=[Phase.explicit, Phase.generate, Phase.target, Phase.shrink],
              verbosity=Verbosity.quiet, print_blob=False)
    @hypothesis_seed(options.seed)
    @given(case=cases(harness, space, dtype, options.max_size))
    def property_(case):
        failure = stats["failure"]
        if failure is not None:
            stats["shrink_calls"] += 1
            over_budget = time.monotonic() - stats["first_failure_at"] > SHRINK_BUDGET_S
            if over_budget and case.key() != failure.case.key():
                return  # stop shrinking: only the best counterexample so far fails
        outcome = run_case(harness, case, rtol=options.rtol, atol=options.atol)
        if outcome is None:
            from hypothesis import reject
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
            _cover(stats["coverage"], case.config)
            stats["coverage"].setdefault("lengths", set()).add(case.length_mode or "fixed")
            stats["ratio"] = max(stats["ratio"], outcome.ratio)
            a, r = max_errors(outcome.expected, outcome.got)
            stats["abs"], stats["rel"] = max(stats["abs"], a), max(stats["rel"], r)
            hypothesis_target(outcome.ratio, label="error / tolerance")
        bar.update(stats)

    start = time.monotonic()
    try:
        # the target's own warnings (overflow in a naive sigmoid, deprecations) are not
        # the report: its outputs are
        with warnings.catch_warnings(), np.errstate(all="ignore"), harness.session():
            warnings.simplefilter("ignore")
            property_()
    except _Failure:
        pass
    except HypothesisException as exc:
        if stats["failure"] is None:
            raise
        stats["flaky"] = str(exc).splitlines()[0]
    finally:
        bar.done()
    elapsed = time.monotonic() - start

    command = _replay_command(target, cell, options, dtype)
    tol_desc = ("explicit rtol/atol" if options.rtol is not None or options.atol is not None
                else "backward-error estimate, see rnnsym.check.tolerance")
    report = Report(target=_target_label(target), cell=cell, dtype=dtype, seed=options.seed,
                    passed=stats["failure"] is None,
                    examples=stats["examples"] + (stats["failure"] is not None),
                    configurations=len(stats["configs"]), elapsed=elapsed,
                    max_abs_error=stats["abs"], max_rel_error=stats["rel"],
                    max_error_ratio=stats["ratio"], tolerance=tol_desc, command=command,
                    coverage={k: sorted(v, key=str) for k, v in stats["coverage"].items()})
    outcome = stats["failure"]
    if outcome is not None:
        report.counterexample = _counterexample(outcome)
        with warnings.catch_warnings(), np.errstate(all="ignore"), harness.session():
            warnings.simplefilter("ignore")
            report.diagnoses = diagnose(harness, outcome)
        report.diagnosis = report.diagnoses[0] if report.diagnoses else None
    return report


def _probe(harness: Harness, space: dict, dtype: str) -> None:
    """Build the target in its simplest configuration; a failure is a usage error."""
    simplest = Config(cell=harness.cell, T=2, B=3, d_in=4, d_h=5, dtype=dtype,
                      num_layers=space["num_layers"][0],
                      bidirectional=space["bidirectional"][0],
                      variant=tuple(sorted((k, v[0]) for k, v in space["variants"].items())))
    harness.probe(simplest)


def _cover(coverage: dict, c: Config) -> None:
    for key, value in [("layers", c.num_layers), ("bidirectional", c.bidirectional),
                       ("bias", c.bias), ("batch_first", c.batch_first),
                       ("initial_state", c.initial_state), ("unbatched", c.unbatched),
                       ("projection", bool(c.d_proj))] + list(c.variant):
        coverage.setdefault(key, set()).add(value)


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


def _counterexample(outcome: Outcome) -> Counterexample:
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


def _target_label(target) -> str:
    if isinstance(target, str):
        return target
    return f"{getattr(target, '__module__', '?')}:{getattr(target, '__qualname__', target)}"


def _replay_command(target, cell, options: CheckOptions, dtype: str) -> str:
    parts = ["rnnsym", "check", _target_label(target), "--cell", cell,
             "--examples", str(options.examples), "--seed", str(options.seed), "--dtype", dtype]
    if options.cell_api:
        parts.append("--cell-api")
    if options.rtol is not None:
        parts += ["--rtol", repr(options.rtol)]
    if options.atol is not None:
        parts += ["--atol", repr(options.atol)]
    if options.layers is not None:
        parts += ["--layers", ",".join(map(str, options.layers))]
    bidir = {(True,): "yes", (False,): "no"}.get(tuple(options.bidirectional), "both")
    if bidir != "both":
        parts += ["--bidirectional", bidir]
    if options.variant:
        parts += ["--variant", ",".join(f"{k}={v}" for k, v in options.variant.items())]
    return " ".join(parts)


class _CallablePackage(types.ModuleType):
    """``rnnsym.check`` is this package and its main function at once: the package is imported
    lazily (it needs hypothesis), and Python binds a subpackage to its parent's attribute, so
    calling the package calls :func:`check`."""

    def __call__(self, *args, **kwargs):
        return check(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
