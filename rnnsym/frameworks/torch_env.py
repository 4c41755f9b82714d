"""Importing torch-side libraries that import ``torchvision`` when it is installed.

``transformers`` imports ``torchvision`` whenever ``importlib.util.find_spec("torchvision")``
finds it. The torchvision that pip resolves next to the CPU build of ``torch==2.13.0`` fails to
import ("operator torchvision::nms does not exist": it was built against another torch), and
that failure would make ``import transformers`` (and every model module) fail, although the
linear-recurrence functions rnnsym checks never use torchvision.

:func:`hide_broken_torchvision` tries ``import torchvision`` once; if it raises, it removes the
half-imported ``torchvision*`` modules and sets ``sys.modules["torchvision"] = None``, which makes
``find_spec`` answer ``None`` and ``import torchvision`` raise ``ModuleNotFoundError``: libraries
treat torchvision as absent. A torchvision that imports is never touched.

It coexists with the stand-in of :mod:`rnnsym.frameworks.onnx.converters` (which onnx2torch and
onnx2pytorch need because they import torchvision unconditionally):

- stand-in first: ``sys.modules["torchvision"]`` is the stand-in, which has no
  ``torchvision.transforms``: transformers, seeing a torchvision, would fail on ``from
  torchvision.transforms import InterpolationMode``. :func:`import_transformers_module` therefore
  sets the ``torchvision*`` entries to ``None`` while it imports, and puts the stand-in back after.
- this first: the converters' import of torchvision raises ``ModuleNotFoundError`` naming
  torchvision, which :func:`~rnnsym.frameworks.onnx.converters.import_converter` recognises as a
  torchvision failure; it then replaces the ``None`` by its stand-in.

``import transformers`` before any of this caches ``is_torchvision_available() == True``;
:func:`import_transformers_module` clears that cache where torchvision is hidden.

Both orders are tested in tests/test_transformers_targets.py.
"""
from __future__ import annotations

import contextlib
import importlib
import sys
from typing import Optional

#: the attribute that marks rnnsym.frameworks.onnx.converters' torchvision stand-in
#: (its ``STAND_IN``; a test checks that they agree)
STAND_IN = "__rnnsym_stand_in__"

#: why torchvision was hidden (the first line of its import error), once it has been
_HIDDEN: dict = {}


def hide_broken_torchvision() -> Optional[str]:
    """Make a torchvision that fails to import look absent; return why (None when it imports,
    is absent, or another stand-in already answers for it)."""
    if "torchvision" in sys.modules:
        if sys.modules["torchvision"] is None:
            return _HIDDEN.get("why", "hidden before")
        return None                                    # imported, or the converters' stand-in
    try:
        importlib.import_module("torchvision")
        return None
    except ImportError as exc:
        if (exc.name or "").split(".")[0] == "torchvision" and "torchvision" not in sys.modules:
            return None                                # simply not installed
        why = _first_line(exc)
    except Exception as exc:  # noqa: BLE001 - any failure inside torchvision's import
        why = _first_line(exc)
    for name in list(sys.modules):
        if name.split(".")[0] == "torchvision":
            del sys.modules[name]
    sys.modules["torchvision"] = None
    _HIDDEN["why"] = why
    return why


def import_transformers_module(name: str):
    """``importlib.import_module(name)`` (a ``transformers`` module) after
    :func:`hide_broken_torchvision`."""
    hide_broken_torchvision()
    with _stand_in_hidden():
        _forget_torchvision_answers()
        return importlib.import_module(name)


def _forget_torchvision_answers() -> None:
    """transformers caches ``is_torchvision_available()`` (``lru_cache``) when first asked, which
    ``import transformers`` may do before torchvision was hidden: where torchvision is hidden
    now, clear those caches so that they are asked again (and answer False)."""
    utils = sys.modules.get("transformers.utils.import_utils")
    if utils is None or sys.modules.get("torchvision", 0) is not None:
        return
    for attr in dir(utils):
        fn = getattr(utils, attr)
        if "torchvision" in attr and hasattr(fn, "cache_clear"):
            fn.cache_clear()


@contextlib.contextmanager
def _stand_in_hidden():
    """While importing: the converters' stand-in (if installed) replaced by ``None``."""
    saved = {n: m for n, m in sys.modules.items()
             if n.split(".")[0] == "torchvision" and m is not None}
    if not getattr(sys.modules.get("torchvision"), STAND_IN, None):
        yield
        return
    for n in saved:
        sys.modules[n] = None
    try:
        yield
    finally:
        for n in [n for n in sys.modules if n.split(".")[0] == "torchvision"]:
            del sys.modules[n]
        sys.modules.update(saved)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"
