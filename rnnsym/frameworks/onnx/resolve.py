"""Which ONNX target a name means: the runtimes (:mod:`~.targets`) and the ONNX -> torch
converters (:mod:`~.converters`, which build on the targets) by their registry names
(:mod:`rnnsym.frameworks.registry`)."""
from __future__ import annotations

from rnnsym.frameworks import UsageError
from rnnsym.frameworks.onnx import converters
from rnnsym.frameworks.onnx.targets import (OnnxTarget, _function_target, _ort_target,
                                            _reference_target)


def onnx_target(target: str) -> OnnxTarget:
    """``onnxruntime``, ``onnx-reference``, ``onnx:MODULE:NAME``, ``onnx2pytorch``,
    ``onnx2torch`` or ``onnx-converter:MODULE:NAME`` -> OnnxTarget."""
    key = target.lower()
    try:
        if key == "onnxruntime":
            return _ort_target()
        if key == "onnx-reference":
            return _reference_target()
    except ImportError as exc:
        raise UsageError(f"target {target}: {exc}") from exc
    if key in converters.CONVERTERS:
        return converters.named_converter_target(key)
    if key.startswith("onnx-converter:"):
        return converters.function_converter_target(target[len("onnx-converter:"):])
    if key.startswith("onnx:"):
        return _function_target(target[len("onnx:"):])
    raise UsageError(f"target {target!r}: expected onnxruntime, onnx-reference, "
                     "onnx:MODULE:NAME, onnx2pytorch, onnx2torch or onnx-converter:MODULE:NAME")
