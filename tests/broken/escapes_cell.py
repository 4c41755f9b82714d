"""Targets of the any-cell check (``--cell mingru``, ``--define``) that try to end or hang it.

Each wraps a correct canonical function (the generated minGRU, ``generated/mingru.py``, and a
hand-written Elman cell for ``--define "h = tanh(W @ x + U @ h + b)"``) and escapes only when
the batch has ESCAPE_B = 3 samples or more, so that the search has something to shrink:
``sys.exit(0)``, ``os._exit(0)``, ``os.abort()``, a segfault in C (``ctypes.string_at(0)``),
a hang inside one C call. The minGRU ones carry the generated ``backward`` (``--gradients``).
"""
import ctypes
import importlib.util
import os
import signal
import sys
from pathlib import Path

import numpy as np

ESCAPE_B = 3
DEFINE = "h = tanh(W @ x + U @ h + b)"

_spec = importlib.util.spec_from_file_location(
    "generated_mingru_for_escapes", Path(__file__).resolve().parents[2] / "generated" / "mingru.py")
_mingru = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mingru)


def mingru(params, x, state0=None, return_cache=False):
    """The generated minGRU forward (correct)."""
    return _mingru.forward(params, x, state0, return_cache=return_cache)


mingru.backward = _mingru.backward


def elman(params, x, state0=None):
    """h = tanh(W x + U h + b), correct, in the canonical convention."""
    h = np.zeros((x.shape[1], params["U"].shape[0]), x.dtype) if state0 is None else state0["h"]
    out = []
    for x_t in x:
        h = np.tanh(x_t @ params["W"].T + h @ params["U"].T + params["b"])
        out.append(h)
    return np.stack(out), {"h": h}


def _hang_in_c():
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    ctypes.CDLL(None).sleep(1000)


_ACTIONS = {"exit_0": lambda: sys.exit(0), "os_exit_0": lambda: os._exit(0),
            "aborts": os.abort, "segfaults": lambda: ctypes.string_at(0),
            "hangs_in_c": _hang_in_c}

#: name -> (failure kind, a text the report must contain)
ESCAPES = {"exit_0": ("exited", "sys.exit(0)"), "os_exit_0": ("exited", "exit code 0"),
           "aborts": ("crashed", "SIGABRT"), "segfaults": ("crashed", "SIGSEGV")}


def _escaping(base, action, name):
    def fn(params, x, state0=None, **kwargs):
        if x.shape[1] >= ESCAPE_B:
            action()
        return base(params, x, state0, **kwargs)
    fn.__name__ = fn.__qualname__ = name
    if hasattr(base, "backward"):
        fn.backward = base.backward
    return fn


for _name, _action in _ACTIONS.items():
    globals()[f"mingru_{_name}"] = _escaping(mingru, _action, f"mingru_{_name}")
    globals()[f"elman_{_name}"] = _escaping(elman, _action, f"elman_{_name}")
