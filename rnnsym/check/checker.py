"""``check(target, cell, ...)``: validate the options, resolve the target, survey what it
supports, search, diagnose, report."""
from __future__ import annotations

import random
import time
import warnings
from dataclasses import replace
from typing import Optional

import numpy as np

from rnnsym.check.probe import Probe
from rnnsym.check.report import Report, counterexample_of
from rnnsym.check.search import HarnessSubject, Progress, new_stats, search, shrink_note
from rnnsym.check.space import CheckOptions, config_space, parse_bidirectional
from rnnsym.check.isolation import TargetDied
from rnnsym.check.target import Outcome, TargetTimeout, limited_call
from rnnsym.frameworks import Config, ContractError, Harness, UsageError, canonical_cell


def _check_sequence(target, cell, *, examples, seed, dtype, path, properties, progress,
                    gradients, rtol, atol):
    """A sequence target (``rnnsym.check.sequence``): its cell must be ``cell`` when given."""
    from rnnsym.check.sequence import check_sequence
    from rnnsym.frameworks.registry import sequence_target

    if gradients:
        raise UsageError("--gradients: not for sequence targets (their outputs are checked)")
    if rtol is not None or atol is not None:
        raise UsageError("--rtol/--atol: sequence targets use their algorithm's tolerance "
                         "(docs/sequence-targets.md)")
    seq = sequence_target(target, cell)
    if cell is not None and str(cell).lower() != seq.cell:
        raise UsageError(f"--cell {cell}: target {seq.name} computes {seq.cell}; "
                         f"use --cell {seq.cell}")
    _check_numbers(examples=1 if examples is None else examples, seed=seed, rtol=None,
                   atol=None)
    return check_sequence(seq, paths=path, dtype=dtype or "float32", examples=examples,
                          seed=seed, properties=properties, progress=progress,
                          spec=target if isinstance(target, str) else seq.name)


class OptionTypeError(UsageError, TypeError):
    """An option of the wrong type (``examples="ten"``): a UsageError (CLI exit 2) that is also
    a TypeError for Python callers."""


def _check_numbers(*, examples, seed, rtol, atol):
    """The numeric options' types and ranges, as one-line UsageErrors naming the option."""
    def integer(v):
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool)
    if not integer(examples):
        raise OptionTypeError(f"examples: expected an integer >= 1, got {examples!r} "
                              f"({type(examples).__name__})")
    if seed is not None and not integer(seed):
        raise OptionTypeError(f"seed: expected an integer or None, got {seed!r}")
    for name, v in (("rtol", rtol), ("atol", atol)):
        ok = v is None or (isinstance(v, (int, float, np.floating, np.integer))
                           and not isinstance(v, bool) and np.isfinite(v) and v >= 0)
        if not ok:
            raise UsageError(f"--{name}: expected a finite number >= 0, got {v!r}")


def check(target, cell: str = None, *, examples: Optional[int] = None,
          seed: Optional[int] = None,
          dtype: Optional[str] = None, rtol: Optional[float] = None,
          atol: Optional[float] = None, layers=None, bidirectional="both", variant=None,
          cell_api: bool = False, progress: bool = False, max_size: int = 6,
          attributes=None, features=None, without=None, strict: bool = False,
          timeout: Optional[float] = 30.0, gradients: bool = False,
          backward: Optional[str] = None, in_process: bool = False, define=None,
          define_file=None, inputs="x", readouts="", dims="", param_map=None, path=None,
          properties=None) -> Report:
    """Property-test ``target`` against rnnsym's ``cell`` and return a Report.

    target         "torch", "keras", "flax", "flax-linen", "flax-nnx", "torch-onnx",
                   "MODULE:NAME", "path/to/file.py:NAME", or the class/function itself;
                   ONNX runtimes: "onnxruntime", "onnx-reference", "onnx:MODULE:NAME";
                   ONNX -> torch converters: "onnx2pytorch", "onnx2torch",
                   "onnx-converter:MODULE:NAME" (``rnnsym.check.onnx``, where ``attributes``
                   restricts the attribute space and ``variant`` fixes readings)
    cell           "elman" (alias "rnn"), "lstm" or "gru"; ONNX targets also
                   "linear_attention" and "causal_conv" (opset 27, ``check.onnx.state_ops``)
    examples       number of Hypothesis examples (default 500; sequence targets: 50 per
                   property and path)
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
    features       explore only these optional features (names or "a,b"), see
                   ``rnnsym.check.space.FEATURES``: lengths, unbatched, batch_first,
                   bidirectional, layers, projection, initial_state, no_bias, NAME=VALUE
    without        never explore these optional features (e.g. "lengths,unbatched")
    strict         an unsupported feature is a failure (verdict STRICT, exit 1)
    timeout        seconds one call of the target may take (None: no limit; see
                   ``rnnsym.check.target`` for where it cannot be enforced)
    gradients      compare the target's gradients (parameters, input, initial state) with
                   the generated backward under a random upstream gradient; stacks, both
                   directions and packed sequences for torch modules and drop-ins, both
                   directions and lengths for Keras and Flax, one layer, one direction
                   and fixed lengths for the others (``rnnsym.check.gradients``)
    backward       a function target's backward, by name in the target's file (default:
                   ``backward`` there, else the function's attribute ``fn.backward``)
    in_process     run the target in this process (faster; by default it runs in a worker
                   process, so that it cannot end, hang or fake the check:
                   ``rnnsym.check.isolation``)
    define, define_file, inputs, readouts, dims, param_map
                   any other cell (a built-in beyond elman/lstm/gru's framework options, or a
                   cell's text): ``rnnsym.check.anycell`` (``cell=None`` with ``define``)
    path, properties
                   sequence targets (``rnnsym.check.sequence``: "transformers:...",
                   "sequence:FILE.py:NAME", a SequenceTarget): the paths and properties
                   checked (names or "a,b"; default all); they return a SequenceReport
    Raises UsageError (CLI exit 2) when the target or options cannot be checked.
    """
    from rnnsym.frameworks.registry import is_sequence_target
    if is_sequence_target(target):
        return _check_sequence(target, cell, examples=examples, seed=seed, dtype=dtype,
                               path=path, properties=properties, progress=progress,
                               gradients=gradients, rtol=rtol, atol=atol)
    if path is not None or properties is not None:
        raise UsageError("--path/--property: only for sequence targets "
                         "(docs/sequence-targets.md)")
    examples = 500 if examples is None else examples
    from rnnsym.check.anycell import check_cell, request, wants_cell_check
    from rnnsym.check.onnx import is_onnx_target

    _check_numbers(examples=examples, seed=seed, rtol=rtol, atol=atol)
    if str(cell).lower() in ("linear_attention", "causal_conv") and not is_onnx_target(target):
        raise UsageError(f"--cell {cell}: checked on ONNX targets only (onnxruntime, "
                         "onnx-reference, onnx:MODULE:NAME)")
    if define_file is not None or (not is_onnx_target(target) and
                                   wants_cell_check(cell, variant, define, param_map)):
        req = request(cell, variant, define, define_file, inputs, readouts, dims)
        return check_cell(target, req, examples=examples, seed=seed, dtype=dtype, rtol=rtol,
                          atol=atol, param_map=param_map, gradients=gradients,
                          without=_names(without) or (), features=_names(features),
                          strict=strict, timeout=timeout, progress=progress, max_size=max_size,
                          in_process=in_process)
    from rnnsym.check.onnx import check_onnx
    from rnnsym.frameworks.registry import resolve_harness
    from rnnsym.frameworks.user import parse_variant

    if gradients and is_onnx_target(target):
        raise UsageError("--gradients: ONNX targets compute no gradients")
    if gradients:       # batched (stacks and lengths: see below, per harness)
        without = tuple(_names(without) or ()) + ("unbatched",)
    if is_onnx_target(target):
        if cell_api:
            raise UsageError("--cell-api: checks torch's RNNCell/LSTMCell/GRUCell, not an "
                             "ONNX target")
        if features is not None or without:
            raise UsageError("--without/--features: an ONNX target's space is narrowed with "
                             "--attributes, e.g. sequence_lens=absent,direction=forward")
        report = check_onnx(target, cell, examples=examples, seed=seed, dtype=dtype, rtol=rtol,
                            atol=atol, attributes=attributes, variant=variant,
                            bidirectional=bidirectional, max_size=max_size, progress=progress,
                            timeout=timeout, layers=layers, in_process=in_process)
        if strict:
            report.strict, report.command = True, report.command + " --strict"
            report.passed = report.passed and not report.unsupported
        return report
    if attributes:
        raise UsageError("--attributes is only defined for ONNX targets")

    cell = canonical_cell(cell)
    if dtype not in (None, "float32", "float64"):
        raise UsageError(f"--dtype: expected float32 or float64, got {dtype!r}")
    if examples < 1:
        raise UsageError(f"--examples: expected a positive number, got {examples}")
    if timeout is not None and not timeout > 0:
        raise UsageError(f"--timeout: expected a positive number of seconds, got {timeout}")
    options = CheckOptions(
        examples=examples, seed=random.randrange(2**32) if seed is None else int(seed),
        dtype=dtype, rtol=rtol, atol=atol,
        layers=None if layers is None else tuple(int(n) for n in np.atleast_1d(layers)),
        bidirectional=parse_bidirectional(bidirectional), variant=parse_variant(variant),
        cell_api=cell_api, max_size=max_size, features=_names(features),
        without=_names(without) or (), strict=strict, timeout=timeout, gradients=gradients,
        backward=backward)
    if backward is not None and not gradients:
        raise UsageError("--backward NAME names the backward --gradients uses: add --gradients")
    harness, default_dtype = resolve_harness(target, cell, cell_api=cell_api, backward=backward)
    if options.gradients and not harness.supports_gradients:
        raise UsageError(f"--gradients is not supported for {harness.name} (torch modules, "
                         "cells and drop-ins, Keras, Flax, functions with a backward)")
    if options.gradients:
        options = _gradient_space(harness, options)
    dtype = options.dtype or default_dtype
    space = config_space(harness, options)
    isolated_note = None
    if not in_process:
        from rnnsym.check.isolation import isolate_harness
        harness, isolated_note = isolate_harness(harness, target, cell, cell_api, backward)
    try:
        report = _run(target, cell, dtype, default_dtype, options, harness, space, progress)
    finally:
        getattr(harness, "close", lambda: None)()
    if isolated_note:
        report.target += f" ({isolated_note})"
    if in_process:
        report.command += " --in-process"
    return report


def _run(target, cell, dtype, default_dtype, options, harness, space, progress) -> Report:
    """Contract, survey, search and report (the target in a worker unless in-process)."""
    _contract(harness, space, dtype, options.timeout)

    stats = new_stats()
    label = f"rnnsym check {_target_label(target, harness)} --cell {cell}"
    bar = Progress(progress, label, options.examples)
    start = time.monotonic()
    # the target's own warnings (overflow in a naive sigmoid, deprecations) are not the
    # report: its outputs are
    with warnings.catch_warnings(), np.errstate(all="ignore"), harness.session():
        warnings.simplefilter("ignore")
        probe = Probe(harness, space, dtype, default_dtype, options.timeout)
        try:
            stats["failure"] = probe.survey()
            if stats["failure"] is None and not probe.nothing_left:
                subject = HarnessSubject(harness, probe, dtype, options)
                if options.gradients:
                    from rnnsym.check.gradients import GradientSubject
                    subject = GradientSubject(subject)
                search(subject, examples=options.examples, seed=options.seed, stats=stats,
                       bar=bar)
        finally:
            bar.done()
    return _report(target, cell, dtype, options, harness, probe, stats,
                   time.monotonic() - start)


def _report(target, cell, dtype, options, harness, probe, stats, elapsed) -> Report:
    from rnnsym.check.diagnose import diagnose

    outcome: Optional[Outcome] = stats["failure"]
    unsupported = probe.report_entries()
    nothing = outcome is None and stats["examples"] == 0
    tol_desc = ("explicit rtol/atol" if options.rtol is not None or options.atol is not None
                else "backward-error estimate, see rnnsym.check.tolerance")
    report = Report(target=_target_label(target, harness), cell=cell, dtype=dtype,
                    seed=options.seed,
                    passed=outcome is None and not nothing and not (options.strict
                                                                     and unsupported),
                    examples=stats["examples"] + (outcome is not None),
                    configurations=len(stats["configs"]), elapsed=elapsed,
                    max_abs_error=stats["abs"], max_rel_error=stats["rel"],
                    max_error_ratio=stats["ratio"], tolerance=tol_desc,
                    command=_environment(harness) + _replay_command(target, cell, options,
                                                                    dtype),
                    coverage={k: sorted(v, key=str) for k, v in stats["coverage"].items()},
                    unsupported=unsupported, strict=options.strict, checked_nothing=nothing,
                    gradients=options.gradients,
                    reason=f"the target refuses --dtype {dtype}" if probe.refused_dtype else "",
                    backward=harness.gradient_source() if options.gradients else "")
    if outcome is not None:
        report.counterexample = counterexample_of(outcome)
        report.failure_kind = outcome.kind
        report.shrink_note = shrink_note(stats)
        with warnings.catch_warnings(), np.errstate(all="ignore"), harness.session():
            warnings.simplefilter("ignore")
            if options.gradients and outcome.kind == "wrong gradients":
                from rnnsym.check.gradient_bugs import diagnose_gradients
                report.diagnoses = diagnose_gradients(harness, outcome)
            else:
                report.diagnoses = diagnose(harness, outcome, probe.core)
        report.diagnosis = report.diagnoses[0] if report.diagnoses else None
    return report


def _gradient_space(harness, options: CheckOptions) -> CheckOptions:
    """The space its ``gradients()`` covers: stacks (``gradient_stacks``), both directions
    (``gradient_bidirectional``), per-sample lengths (``gradient_lengths``); a harness
    without one gets that feature left out, and a usage error if it was asked for."""
    reason = harness.no_gradients_reason(options.variant)
    if reason:
        raise UsageError(reason)
    if not harness.gradient_stacks:
        if options.layers not in (None, (1,)):
            raise UsageError(f"--gradients on {harness.name} checks one layer (stacks: torch "
                             "modules and drop-ins): leave out --layers")
        options = replace(options, layers=(1,))
    if not harness.gradient_bidirectional:
        if options.bidirectional == parse_bidirectional("yes"):
            raise UsageError(f"--gradients on {harness.name} checks one direction: leave out "
                             "--bidirectional yes")
        options = replace(options, bidirectional=parse_bidirectional("no"))
    if not harness.gradient_lengths:
        options = replace(options, without=tuple(options.without) + ("lengths",))
    return options


def _names(value) -> Optional[tuple]:
    if value is None:
        return None
    if isinstance(value, str):
        value = value.split(",")
    return tuple(v.strip() for v in value if v.strip())


def _contract(harness: Harness, space: dict, dtype: str, timeout) -> None:
    """Build the target in the simplest configuration of the space; a contract failure is a
    usage error. "Unsupported" here is left to the survey (it may be the dtype, or a
    feature the user asked for: nothing to check, or core input: a failure)."""
    simplest = Config(cell=harness.cell, T=2, B=3, d_in=4, d_h=5, dtype=dtype,
                      num_layers=space["num_layers"][0],
                      bidirectional=space["bidirectional"][0],
                      variant=tuple(sorted((k, v[0]) for k, v in space["variants"].items())))
    try:
        limited_call(harness, "probe", (simplest,), timeout=timeout)
    except (NotImplementedError, TargetDied):
        pass        # an unsupported dtype, or a target that ends its process: the survey's
    except TargetTimeout:
        raise ContractError(f"{harness.name}: building it timed out after {timeout:g} s "
                            "(--timeout)") from None


def _target_label(target, harness: Optional[Harness] = None) -> str:
    """The target as given, with the settings it ran under: "keras [KERAS_BACKEND=jax]"."""
    label = target if isinstance(target, str) else \
        f"{getattr(target, '__module__', '?')}:{getattr(target, '__qualname__', target)}"
    env = _environment(harness).strip()
    return f"{label} [{env}]" if env else label


def _environment(harness: Optional[Harness]) -> str:
    """'KERAS_BACKEND=jax ' (the harness's environment as a command prefix) or ''."""
    env = harness.environment if harness is not None else {}
    return "".join(f"{k}={v} " for k, v in env.items())


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
    if options.features is not None:
        parts += ["--features", ",".join(options.features) or "none"]
    if options.without:
        parts += ["--without", ",".join(options.without)]
    if options.strict:
        parts.append("--strict")
    if options.gradients:
        parts.append("--gradients")
    if options.backward:
        parts += ["--backward", options.backward]
    if options.timeout != 30.0:
        parts += ["--timeout", "none" if options.timeout is None else f"{options.timeout:g}"]
    return " ".join(parts)
