"""Loading a user's target, ``MODULE:NAME`` or ``path/to/file.py:NAME``, with importlib only
(``import_module`` or ``spec_from_file_location``): its text is never evaluated. ``NAME`` may
be dotted (``module:Outer.Inner``). A file's folder goes on ``sys.path`` so that it can
import its siblings.

Used by every kind of target that names user code (harness targets, ``onnx:``,
``onnx-converter:``); imports nothing of rnnsym but the shared errors.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path

from rnnsym.frameworks import UsageError


def load_object(spec: str):
    """'pkg.mod:Name' or 'path/to/file.py:Name' -> the object. Raises UsageError."""
    return load_target(spec)[0]


def load_target(spec: str):
    """'pkg.mod:Name' or 'path/to/file.py:Name' -> (the object, the module the user pointed
    at: where other names the target needs, e.g. its ``backward``, are looked up first).
    Raises UsageError."""
    if ":" not in spec:
        raise UsageError(f"target {spec!r}: expected MODULE:NAME or FILE.py:NAME")
    where, name = spec.rsplit(":", 1)
    if not where or not name:
        raise UsageError(f"target {spec!r}: expected MODULE:NAME or FILE.py:NAME")
    if where.endswith(".py") or "/" in where or "\\" in where:
        module = _load_file(Path(where))
    else:
        try:
            module = importlib.import_module(where)
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - any import failure is a usage error
            raise UsageError(f"cannot import {where}: {_failure(exc)}") from exc
    obj = module
    for part in name.split("."):
        if not hasattr(obj, part):
            raise UsageError(f"{where} has no attribute {name!r}")
        obj = getattr(obj, part)
    return obj, module


def _load_file(path: Path):
    if not path.is_file():
        raise UsageError(f"cannot import {path}: no such file")
    path = path.resolve()
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    mod_name = f"_rnnsym_user_{path.stem}_{digest}"
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    # the file's folder goes on sys.path so that it can import its siblings
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(mod_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:  # noqa: BLE001
        del sys.modules[mod_name]
        raise UsageError(f"cannot import {path}: {_failure(exc)}") from exc
    return module


def _failure(exc: BaseException) -> str:
    """What importing the target did: an exception, or a ``sys.exit`` (which must not end the
    check, let alone with its exit code: exit 0 means an OK report was printed)."""
    if isinstance(exc, SystemExit):
        return f"it called sys.exit({exc.code!r}) when imported"
    return f"{type(exc).__name__}: {exc}"
