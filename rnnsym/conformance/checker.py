"""``check(target, cell, ...)``: validate the options, resolve the target, survey what it
supports, search, diagnose, report."""
from __future__ import annotations

from typing import Optional

from rnnsym.conformance.survey import FeatureSurvey
from rnnsym.conformance.report import Report, counterexample_of
from rnnsym.conformance.search import HarnessSubject, quiet, run_checks
from rnnsym.conformance.space import config_space
from rnnsym.conformance.isolation import TargetDied
from rnnsym.conformance.target import Outcome, TargetTimeout, limited_call
from rnnsym.check_options import (DEFAULT_EXAMPLES, CheckOptions,
                                  OptionTypeError,  # noqa: F401 - its old home
                                  check_doc, keyword_signature)
from rnnsym.frameworks import Config, ContractError, Harness, UsageError, canonical_cell


def check(target, cell=None, *, options: Optional[CheckOptions] = None, **kwargs) -> Report:
    from rnnsym.conformance.anycell import check_cell, wants_cell_check
    from rnnsym.conformance.onnx import is_onnx_target
    from rnnsym.frameworks.registry import is_sequence_target

    o = CheckOptions.of(options, **({} if cell is None else {"cell": cell}), **kwargs)
    if is_sequence_target(target):
        return _check_sequence(target, o)
    if o.path is not None or o.properties is not None:
        raise UsageError("--path/--property: only for sequence targets "
                         "(docs/sequence-targets.md)")
    if o.dtype == "bfloat16":
        raise UsageError("--dtype bfloat16: sequence targets only (docs/sequence-targets.md)")
    if o.examples is None:
        o = o.replace(examples=DEFAULT_EXAMPLES)
    onnx = is_onnx_target(target)
    if str(o.cell).lower() in ("linear_attention", "causal_conv") and not onnx:
        raise UsageError(f"--cell {o.cell}: checked on ONNX targets only (onnxruntime, "
                         "onnx-reference, onnx:MODULE:NAME)")
    if o.define_file is not None or (not onnx and
                                     wants_cell_check(o.cell, o.variant, o.define, o.param_map)):
        return check_cell(target, options=o)
    if onnx:
        from rnnsym.conformance.onnx import check_onnx
        if o.gradients:
            raise UsageError("--gradients: ONNX targets compute no gradients")
        if o.cell_api:
            raise UsageError("--cell-api: checks torch's RNNCell/LSTMCell/GRUCell, not an "
                             "ONNX target")
        if o.features is not None or o.without:
            raise UsageError("--without/--features: an ONNX target's space is narrowed with "
                             "--attributes, e.g. sequence_lens=absent,direction=forward")
        return check_onnx(target, options=o)
    if o.attributes:
        raise UsageError("--attributes is only defined for ONNX targets")
    return _check_harness(target, o)


def _check_sequence(target, o: CheckOptions):
    """A sequence target (``rnnsym.conformance.sequence``; a SequenceReport): its cell must be
    ``--cell`` when given; only the options a sequence check takes."""
    from rnnsym.conformance.sequence import check_sequence
    from rnnsym.frameworks.registry import sequence_target

    if o.gradients:
        raise UsageError("--gradients: not for sequence targets (their outputs are checked)")
    if o.rtol is not None or o.atol is not None:
        raise UsageError("--rtol/--atol: sequence targets use their algorithm's tolerance "
                         "(docs/sequence-targets.md)")
    seq = sequence_target(target, o.cell)
    if o.cell is not None and str(o.cell).lower() != seq.cell:
        raise UsageError(f"--cell {o.cell}: target {seq.name} computes {seq.cell}; "
                         f"use --cell {seq.cell}")
    return check_sequence(seq, paths=o.path, dtype=o.dtype or "float32", examples=o.examples,
                          seed=o.seed, properties=o.properties, progress=o.progress,
                          spec=target if isinstance(target, str) else seq.name)


check.__signature__ = keyword_signature(check)
check.__doc__ = check_doc()     # the text is rnnsym.check's: rnnsym/check_options.py


def _check_harness(target, o: CheckOptions) -> Report:
    """A framework or user target (``rnnsym.frameworks.registry``): its harness, the space it
    supports, contract, survey, search, diagnosis, report."""
    from rnnsym.frameworks.registry import resolve_harness
    from rnnsym.frameworks.user import parse_variant

    o = o.replace(cell=canonical_cell(o.cell)).with_seed()
    if o.dtype not in (None, "float32", "float64"):
        raise UsageError(f"--dtype: expected float32 or float64, got {o.dtype!r}")
    if o.backward is not None and not o.gradients:
        raise UsageError("--backward NAME names the backward --gradients uses: add --gradients")
    variant = parse_variant(o.variant)
    harness, default_dtype = resolve_harness(target, o.cell, cell_api=o.cell_api,
                                             backward=o.backward)
    if o.gradients and not harness.supports_gradients:
        raise UsageError(f"--gradients is not supported for {harness.name} (torch modules, "
                         "cells and drop-ins, Keras, Flax, functions with a backward)")
    searched = _gradient_space(harness, o, variant) if o.gradients else o
    dtype = o.dtype or default_dtype
    space = config_space(harness, searched, variant)
    isolated_note = None
    if not o.in_process:
        from rnnsym.conformance.isolation import isolate_harness
        harness, isolated_note = isolate_harness(harness, target, o.cell, o.cell_api,
                                                 o.backward)
    try:
        report = _run(target, dtype, default_dtype, o.replace(dtype=dtype), searched, harness,
                      space)
    finally:
        getattr(harness, "close", lambda: None)()
    if isolated_note:
        report.target += f" ({isolated_note})"
    return report


def _run(target, dtype, default_dtype, o: CheckOptions, searched: CheckOptions, harness,
         space) -> Report:
    """Contract, survey, search and report (the target in a worker unless in-process). ``o``:
    the options as given (they make the replay line), ``searched``: as the search runs them
    (``--gradients`` narrows them to what the harness's gradients cover)."""
    _contract(harness, space, dtype, o.timeout)
    survey = FeatureSurvey(harness, space, dtype, default_dtype, o.timeout)

    def prepare(stats):
        stats.failure = survey.survey()
        if survey.nothing_left:
            return None
        subject = HarnessSubject(harness, survey, dtype, searched)
        if o.gradients:
            from rnnsym.conformance.gradients import GradientSubject
            subject = GradientSubject(subject)
        return subject
    label = f"rnnsym check {_target_label(target, harness)} --cell {o.cell}"
    stats = run_checks(o, label, prepare, session=harness.session())
    return _report(target, o, harness, survey, stats)


def _report(target, o: CheckOptions, harness, survey, stats) -> Report:
    from rnnsym.conformance.diagnose import diagnose

    outcome: Optional[Outcome] = stats.failure
    report = Report(target=_target_label(target, harness), cell=o.cell, dtype=o.dtype,
                    command=o.replay(_target_label(target), _environment(harness)),
                    gradients=o.gradients,
                    reason=f"the target refuses --dtype {o.dtype}" if survey.refused_dtype else "",
                    backward=harness.gradient_source() if o.gradients else "",
                    **stats.report_fields(o, survey.report_entries()))
    if outcome is not None:
        report.counterexample = counterexample_of(outcome)
        report.failure_kind = outcome.kind
        report.shrink_note = stats.shrink_note()
        with quiet(harness.session()):
            if o.gradients and outcome.kind == "wrong gradients":
                from rnnsym.conformance.gradient_bugs import diagnose_gradients
                report.diagnoses = diagnose_gradients(harness, outcome)
            else:
                report.diagnoses = diagnose(harness, outcome, survey.core)
        report.diagnosis = report.diagnoses[0] if report.diagnoses else None
    return report


def _gradient_space(harness, o: CheckOptions, variant: dict) -> CheckOptions:
    """The options its ``gradients()`` covers: batched; stacks (``gradient_stacks``), both
    directions (``gradient_bidirectional``), per-sample lengths (``gradient_lengths``); a
    harness without one gets that feature left out, and a usage error if it was asked for."""
    reason = harness.no_gradients_reason(variant)
    if reason:
        raise UsageError(reason)
    o = o.replace(without=o.without + ("unbatched",))
    if not harness.gradient_stacks:
        if o.layers not in (None, (1,)):
            raise UsageError(f"--gradients on {harness.name} checks one layer (stacks: torch "
                             "modules and drop-ins): leave out --layers")
        o = o.replace(layers=(1,))
    if not harness.gradient_bidirectional:
        if o.bidirectional == "yes":
            raise UsageError(f"--gradients on {harness.name} checks one direction: leave out "
                             "--bidirectional yes")
        o = o.replace(bidirectional="no")
    if not harness.gradient_lengths:
        o = o.replace(without=o.without + ("lengths",))
    return o


def _contract(harness: Harness, space: dict, dtype: str, timeout) -> None:
    """Build the target in the simplest configuration of the space; a contract failure is a
    usage error. "Unsupported" here is left to the survey (it may be the dtype, or a
    feature the user asked for: nothing to check, or core input: a failure)."""
    simplest = Config(cell=harness.cell, T=2, B=3, d_in=4, d_h=5, dtype=dtype,
                      num_layers=space["num_layers"][0],
                      bidirectional=space["bidirectional"][0],
                      variant=tuple(sorted((k, v[0]) for k, v in space["variants"].items())))
    try:
        limited_call(harness, "check_contract", (simplest,), timeout=timeout)
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
