"""The checker's harness for ONNX runtimes: build one-node RNN/GRU/LSTM models and run them.

    rnnsym check onnxruntime --cell lstm
    rnnsym check onnx-reference --cell gru --attributes layout=0,direction=forward
    rnnsym check onnx:my_backend.py:run --cell rnn        # run(model_bytes, inputs) -> outputs
    rnnsym check onnx2pytorch --cell lstm                  # an ONNX -> torch converter

Owns only what drives a runtime: :mod:`~.targets` (onnxruntime, onnx.reference, a user
backend: load, run, :class:`Unsupported`), :mod:`~.converters` (ONNX -> torch converters,
the torchvision stand-in), :mod:`~.model` (a drawn node as a model),
:mod:`~.space` (the attribute space, ``--attributes``, what a target rejects at load time),
:mod:`~.state_ops` (opset 27's LinearAttention and CausalConvWithState: models and their space)
and :mod:`~.convert` (torch/Keras weights <-> ONNX ``W/R/B``). The operators' semantics, the open
points of the spec and ``rnnsym.onnx.run`` are :mod:`rnnsym.onnx`'s; drawing nodes, the oracle,
tolerances, diagnosis and the report are the checker's (:mod:`rnnsym.conformance.onnx`).

May import: :mod:`rnnsym.onnx`, :mod:`rnnsym.frameworks` (errors, user-object loading) and the
layers below; onnx/onnxruntime lazily. Not check, testing or the CLI.
"""
from rnnsym.frameworks.onnx.model import (CELL, OP, OPSET, OnnxCase, build_model, layer_name,
                                          spec_name)
from rnnsym.frameworks.onnx.space import (ONLY, OPTIONAL_INPUTS, OUTPUT_NAMES, SPACE,
                                          parse_attribute_space, probe,
                                          survey_attributes)
from rnnsym.frameworks.onnx.resolve import onnx_target
from rnnsym.frameworks.onnx.targets import (NAMED_TARGETS, OnnxTarget, Unsupported, error_summary,
                                            first_line, is_onnx_target, run_target)

__all__ = ["CELL", "NAMED_TARGETS", "ONLY", "OP", "OPSET", "OPTIONAL_INPUTS", "OUTPUT_NAMES",
           "OnnxCase", "OnnxTarget", "SPACE", "Unsupported", "build_model", "error_summary",
           "first_line",
           "is_onnx_target", "layer_name", "onnx_target", "parse_attribute_space", "probe",
           "run_target", "spec_name", "survey_attributes"]
