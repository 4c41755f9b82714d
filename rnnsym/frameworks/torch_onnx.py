"""``torch-onnx``: ``torch.nn.RNN/LSTM/GRU`` exported with ``torch.onnx.export`` and run in
onnxruntime, checked as a whole pipeline.

    rnnsym check torch-onnx --cell lstm

The module is built and filled exactly as for ``rnnsym check torch`` (every option torch has:
layers, bidirectional, batch_first, bias, proj_size, an initial state, unbatched input); the
forward call then goes through ``torch.onnx.export`` (the TorchScript exporter,
``dynamo=False``: the default dynamo exporter needs onnxscript) with the call's own inputs and
the model runs in ``onnxruntime.InferenceSession`` (CPU). Outputs are read back in torch's
structure, so the oracle, tolerances and diagnosis are those of the torch target.

What the pipeline refuses is *unsupported*, not wrong (the checker lists the feature that
causes it): an exception from the exporter, a model onnxruntime will not load, or an
onnxruntime ``NOT_IMPLEMENTED`` at run time (also a kernel's "GRU operator does not support
double yet": ``--dtype float64`` is then the unsupported feature, nothing can be checked). Anything else it raises, and every wrong number,
is a failure. Variable-length batches (``PackedSequence``) are left out.
"""
from __future__ import annotations

import contextlib
import io
import os
import sys
import warnings

import numpy as np

from rnnsym.frameworks import Config, Unsupported
from rnnsym.frameworks.onnx.targets import ort_refusal
from rnnsym.frameworks.torch import MODULE_NAMES, TorchHarness, _torch

#: opset the exporter targets (its RNN/GRU/LSTM symbolics exist from opset 7 on)
OPSET = 17


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


@contextlib.contextmanager
def _stdout_silenced():
    """File descriptor 1 to /dev/null for the duration (C++ prints bypass sys.stdout)."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def export_bytes(module, args: list, names: list[str], opset: int = OPSET) -> bytes:
    """``torch.onnx.export`` of ``module(*args)`` to bytes; raises Unsupported when the exporter
    refuses."""
    torch = _torch()
    buf = io.BytesIO()
    try:
        # the exporter prints the graph it failed on (from C++): not the report
        with warnings.catch_warnings(), torch.no_grad(), _stdout_silenced():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, tuple(args), buf, input_names=names, dynamo=False,
                              opset_version=opset, verbose=False)
    except Exception as exc:  # noqa: BLE001 - whatever the exporter raises is a refusal
        raise Unsupported(f"torch.onnx.export refused: {_first_line(exc)}") from exc
    return buf.getvalue()


def run_onnxruntime(model: bytes, feeds: dict) -> list:
    """Load ``model`` in onnxruntime (CPU) and run it; a load failure or NOT_IMPLEMENTED is
    Unsupported, any other error propagates (a failure of the pipeline)."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.log_severity_level = 4        # its refusals are reported, not logged to stderr
    try:
        session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - a model it will not load is a refusal
        raise Unsupported(f"onnxruntime refused the exported model: {_first_line(exc)}") from exc
    wanted = {i.name for i in session.get_inputs()}
    try:
        return session.run(None, {k: v for k, v in feeds.items() if k in wanted})
    except Exception as exc:
        refusal = ort_refusal(exc)
        if refusal is None:
            raise
        raise Unsupported(refusal if refusal.startswith("onnxruntime") else
                          f"onnxruntime: {refusal}") from exc


class TorchOnnxHarness(TorchHarness):
    """``torch.nn.<RNN|LSTM|GRU>`` -> ``torch.onnx.export`` -> onnxruntime (module docstring)."""

    length_modes: dict = {}
    #: an exported model computes no gradients (``--gradients`` is a usage error)
    supports_gradients = False

    def __init__(self, cell: str):
        torch = _torch()
        super().__init__(getattr(torch.nn, MODULE_NAMES[cell]), cell,
                         f"torch.nn.{MODULE_NAMES[cell]} via torch.onnx.export (opset {OPSET}) "
                         "in onnxruntime")

    def call(self, config: Config, module, args: list):
        names = ["input", "h0", "c0"][:1 + (len(args) > 1) * (2 if self.cell == "lstm" else 1)]
        flat = [args[0]] + ([] if len(args) == 1 else
                            list(args[1]) if self.cell == "lstm" else [args[1]])
        model = export_bytes(module, args, names)
        feeds = {n: np.ascontiguousarray(t.numpy()) for n, t in zip(names, flat)}
        out = run_onnxruntime(model, feeds)
        if len(out) != (3 if self.cell == "lstm" else 2):
            return tuple(out)   # read_result reports the wrong structure
        torch = _torch()
        out = [torch.from_numpy(np.asarray(o)) for o in out]
        return (out[0], (out[1], out[2])) if self.cell == "lstm" else (out[0], out[1])


def torch_onnx_harness(cell: str) -> TorchOnnxHarness:
    return TorchOnnxHarness(cell)


def make_harness(spec: str, cell: str, options) -> TorchOnnxHarness:
    """The torch-onnx target's factory (rnnsym.frameworks.registry)."""
    return torch_onnx_harness(cell)


__all__ = ["OPSET", "TorchOnnxHarness", "export_bytes", "run_onnxruntime", "torch_onnx_harness"]
