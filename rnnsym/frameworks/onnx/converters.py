"""ONNX -> torch converters as ONNX targets: the one-node model is converted to a torch module,
which is run on the graph inputs and compared with rnnsym's ONNX semantics.

    rnnsym check onnx2pytorch --cell lstm          # onnx2pytorch.ConvertModel(model)
    rnnsym check onnx2torch --cell gru             # onnx2torch.convert(model)
    rnnsym check onnx-converter:my_conv.py:convert --cell lstm

A converter is ``convert(onnx.ModelProto) -> module``; ``module(*tensors)`` takes the graph
inputs as torch tensors (``X``, then ``initial_h``/``initial_c`` where present) and returns the
graph outputs (a tensor, or a sequence in graph order). The weights ``W``, ``R``, ``B``, ``P``
and ``sequence_lens`` are initializers, as in an exported model: a converter bakes them into
the module. ``NotImplementedError`` (what both onnx2pytorch and onnx2torch raise for an op or
attribute value they do not convert) while converting or running is *unsupported*; any other
exception is the converter failing.

**torchvision.** Both packages import ``torchvision`` when imported, for their NMS / RoIAlign /
DeformConv / image-decoding ops only. When that import fails (the torchvision that pip resolves
for ``torch==2.13.0`` is a CUDA build: "operator torchvision::nms does not exist" next to the CPU
torch), :func:`import_converter` removes the half-imported modules and installs a stand-in
``torchvision`` (``torchvision.ops``, ``torchvision.io``) whose functions raise
``NotImplementedError`` when called, then imports the converter again; the report names the
stand-in. A torchvision that imports is never replaced.
"""
from __future__ import annotations

import importlib
import importlib.machinery
import sys
import traceback
import types
from importlib import metadata
from pathlib import Path
from typing import Optional

import numpy as np

from rnnsym.frameworks import UsageError
from rnnsym.frameworks.onnx.targets import OnnxTarget, Unsupported, error_summary

#: target name -> (module to import, its conversion function)
CONVERTERS = {"onnx2pytorch": ("onnx2pytorch", "ConvertModel"),
              "onnx2torch": ("onnx2torch", "convert")}
#: the inputs a converted model holds as initializers
CONSTANTS = ("W", "R", "B", "P", "sequence_lens")
STAND_IN = "__rnnsym_stand_in__"


class _Missing:
    """A torchvision function or class of the stand-in: raises NotImplementedError when used."""

    def __init__(self, name: str, why: str):
        self._name, self._why = name, why

    def _refuse(self):
        raise NotImplementedError(f"{self._name}: torchvision could not be imported ({self._why})"
                                  "; this is rnnsym's stand-in: only the converters' NMS/RoIAlign/"
                                  "DeformConv/image-decoding ops use it")

    def __call__(self, *args, **kwargs):
        self._refuse()

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        self._refuse()


class _StandInModule(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return _Missing(f"{self.__name__}.{name}", getattr(self, STAND_IN))


def _install_stand_in(why: str) -> None:
    root = None
    for name in ("torchvision", "torchvision.ops", "torchvision.io"):
        module = _StandInModule(name)
        module.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
        module.__path__ = []
        setattr(module, STAND_IN, why)
        sys.modules[name] = module
        if root is None:
            root = module
        else:
            setattr(root, name.rsplit(".", 1)[1], module)


def _torchvision_failed(exc: BaseException) -> bool:
    """Whether ``exc`` comes from importing torchvision (missing, or raising inside it)."""
    if isinstance(exc, ImportError) and (exc.name or "").split(".")[0] == "torchvision":
        return True
    return any("torchvision" in Path(frame.f_code.co_filename).parts
               for frame, _ in traceback.walk_tb(exc.__traceback__))


def import_converter(package: str) -> tuple[types.ModuleType, Optional[str]]:
    """Import ``package``; (module, None), or (module, why) when the torchvision stand-in had
    to be installed (why: the first line of torchvision's import error)."""
    stand_in = getattr(sys.modules.get("torchvision"), STAND_IN, None)
    try:
        return importlib.import_module(package), stand_in
    except Exception as exc:  # noqa: BLE001 - torchvision's failure is handled, others reported
        if stand_in is not None or not _torchvision_failed(exc):
            raise UsageError(f"target {package}: cannot import it: {error_summary(exc)}") from exc
        why = f"import torchvision: {error_summary(exc)}"
    for name in list(sys.modules):
        if name.split(".")[0] in ("torchvision", package):
            del sys.modules[name]
    _install_stand_in(why)
    try:
        return importlib.import_module(package), why
    except Exception as exc:  # noqa: BLE001
        raise UsageError(f"target {package}: cannot import it even with a torchvision "
                         f"stand-in: {error_summary(exc)}") from exc


def converter_target(name: str, convert, label: Optional[str] = None) -> OnnxTarget:
    """An OnnxTarget from ``convert(onnx.ModelProto) -> module``: converting is loading."""
    import onnx
    import torch

    def load(model_bytes):
        try:
            return convert(onnx.load_model_from_string(model_bytes))
        except NotImplementedError as exc:
            raise Unsupported(error_summary(exc)) from exc

    def run(module, inputs):
        try:
            with torch.no_grad():
                out = module(*(torch.from_numpy(np.ascontiguousarray(a)) for a in inputs))
        except NotImplementedError as exc:
            raise Unsupported(error_summary(exc)) from exc
        out = list(out) if isinstance(out, (list, tuple)) else [out]
        return [o.detach().numpy() if isinstance(o, torch.Tensor) else o for o in out]
    return OnnxTarget(name, load, run, constants=CONSTANTS, label=label, stage="converting")


def named_converter_target(key: str) -> OnnxTarget:
    """``onnx2pytorch`` or ``onnx2torch`` (their package imported, version in the label)."""
    package, function = CONVERTERS[key]
    module, stand_in = import_converter(package)
    label = f"{package} {metadata.version(package)}"
    if stand_in:
        label += f"; torchvision stand-in ({stand_in})"
    return converter_target(key, getattr(module, function), label)


def function_converter_target(spec: str) -> OnnxTarget:
    """``onnx-converter:MODULE:NAME``: the user's ``convert(onnx.ModelProto) -> module``."""
    from rnnsym.frameworks.loading import load_object

    convert = load_object(spec)
    if not callable(convert):
        raise UsageError(f"target onnx-converter:{spec}: expected a function "
                         "convert(onnx.ModelProto) -> torch module")
    return converter_target(f"onnx-converter:{spec}", convert)
