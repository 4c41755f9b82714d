"""ONNX targets: how a model is loaded and run by onnxruntime, onnx.reference or a user backend.

``onnxruntime``     ``onnxruntime.InferenceSession`` on the CPU execution provider
``onnx-reference``  ``onnx.reference.ReferenceEvaluator``
``onnx:MODULE:NAME`` / ``onnx:path/to/file.py:NAME``
                    a function ``run(model_bytes, inputs) -> outputs``: ``inputs`` are the
                    arrays in graph-input order, ``outputs`` the graph outputs in order (the
                    node's present outputs; with ``--layers`` the graph is a stack of nodes,
                    :mod:`~.model`). Raising :class:`Unsupported` (or
                    ``NotImplementedError``) declares the model unsupported.
``onnx2pytorch``, ``onnx2torch``, ``onnx-converter:MODULE:NAME``
                    ONNX -> torch converters (:mod:`~.converters`): the model, with the
                    weights as initializers, converted to a torch module and run on the
                    graph inputs.

A new kind of target (another runtime, an exporter) is an :class:`OnnxTarget`: ``load`` raises
:class:`Unsupported` for a model it rejects, ``run`` returns the outputs in graph order (and
raises :class:`Unsupported` for what it declines to run: onnxruntime's :func:`ort_refusal`); any
other exception of ``load`` is the target failing on that model.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Callable, Optional


from rnnsym.errors import Unsupported, UsageError
from rnnsym.frameworks.onnx.model import OnnxCase

NAMED_TARGETS = ("onnxruntime", "onnx-reference", "onnx2pytorch", "onnx2torch")
PREFIXES = ("onnx:", "onnx-converter:")


# ``Unsupported``: raised by a target that rejects a model when loading it (or declares it
# unsupported): rnnsym.errors.Unsupported, the one class the framework harnesses raise too.


@dataclass
class OnnxTarget:
    """``load(model_bytes) -> session`` (raise Unsupported) and
    ``run(session, inputs list) -> outputs list`` (graph-output order). ``constants``: the
    inputs the model holds as initializers (not fed to ``run``); ``label``: what the report
    names besides the target (a version, a stand-in); ``stage``: what rejecting a model is
    ("loading", "converting")."""

    name: str
    load: Callable
    run: Callable
    constants: tuple = ()
    label: Optional[str] = None
    stage: str = "loading"


def error_summary(exc) -> str:
    """``"ValueError: <last line of the message>"``, at most 500 characters: the last line, as
    a runtime's or converter's message ends in its reason after lines of context."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}"[:500]


#: Deprecated alias of :func:`error_summary` (it returns the *last* line of the message).
first_line = error_summary


#: an onnxruntime kernel refusing a type when run (``ORT_NOT_IMPLEMENTED("GRU operator does not
#: support double yet")`` in ``deep_cpu_gru.cc``/``deep_cpu_lstm.cc``): the executor turns it
#: into a RUNTIME_EXCEPTION, "... Status Message: GRU operator does not support double yet"
_KERNEL_REFUSAL = re.compile(r"Status Message: (\w+ operator does not support \w+ yet)")


def ort_refusal(exc: BaseException) -> Optional[str]:
    """What onnxruntime declines to do in ``exc``, in words, or None when ``exc`` is another
    error (a failure): a NOT_IMPLEMENTED error, or a kernel's "operator does not support
    <type> yet" (only that message of the RUNTIME_EXCEPTIONs)."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    if isinstance(exc, state.NotImplemented):
        return error_summary(exc)
    match = _KERNEL_REFUSAL.search(str(exc))
    if isinstance(exc, state.RuntimeException) and match:
        return f"onnxruntime: {match.group(1)}"
    return None


def _ort_target() -> OnnxTarget:
    import onnxruntime as ort

    def load(model_bytes):
        options = ort.SessionOptions()
        options.log_severity_level = 4
        options.intra_op_num_threads = 1
        try:
            return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - any load failure is "unsupported"
            raise Unsupported(error_summary(exc)) from exc

    def run(session, inputs):
        feed = {i.name: v for i, v in zip(session.get_inputs(), inputs)}
        try:
            return session.run(None, feed)
        except Exception as exc:
            refusal = ort_refusal(exc)
            if refusal is None:
                raise
            raise Unsupported(refusal) from exc
    return OnnxTarget("onnxruntime", load, run)


def _reference_target() -> OnnxTarget:
    import onnx
    from onnx.reference import ReferenceEvaluator

    def load(model_bytes):
        try:
            return ReferenceEvaluator(onnx.load_model_from_string(model_bytes))
        except Exception as exc:  # noqa: BLE001
            raise Unsupported(error_summary(exc)) from exc

    def run(session, inputs):
        return session.run(None, {n: v for n, v in zip(session.input_names, inputs)})
    return OnnxTarget("onnx-reference", load, run)


def _function_target(spec: str) -> OnnxTarget:
    from rnnsym.frameworks.loading import load_object

    fn = load_object(spec)
    if not callable(fn):
        raise UsageError(f"target onnx:{spec}: expected a function run(model_bytes, inputs)")

    def run(model_bytes, inputs):
        try:
            return fn(model_bytes, list(inputs))
        except (Unsupported, NotImplementedError) as exc:
            raise Unsupported(error_summary(exc)) from exc
    return OnnxTarget(f"onnx:{spec}", lambda model_bytes: model_bytes, run)


def is_onnx_target(target) -> bool:
    return isinstance(target, str) and (target.lower() in NAMED_TARGETS or
                                        target.lower().startswith(PREFIXES))


def run_target(target: OnnxTarget, case: OnnxCase) -> dict:
    """Load (Unsupported propagates) and run; the outputs by name (a stack's states stacked,
    :meth:`OnnxCase.collect`), their number checked."""
    session = target.load(case.model_bytes(target.constants))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = target.run(session, case.runtime_inputs(target.constants))
    result = list(result) if isinstance(result, (list, tuple)) else [result]
    names = case.output_names()
    if len(result) != len(names):
        raise AssertionError(f"returned {len(result)} outputs, expected {len(names)} "
                             f"({', '.join(names)})")
    return case.collect(result)
