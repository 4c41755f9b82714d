"""Targets that try to end, hang or fake the check, and correct ones that behave oddly.

Canonical NumPy GRU functions (``fn(params, x, state0) -> (outputs, state)``, reset after),
each escaping only when the batch has more than 2 samples, so that the search has something to
shrink (the smallest escaping case has B=3): ``sys.exit(0)``, ``sys.exit(3)``,
``sys.exit("bye")``, ``os._exit(0)``, ``os.abort()``, a segfault in C (``ctypes.string_at(0)``),
``SIGKILL`` to itself, and a hang inside one C call (libc's ``sleep`` with ``SIGALRM``
blocked: no Python code runs for the alarm to interrupt). Then targets that write into their inputs or
return a view of a buffer they reuse: the oracle must not see either.

The correct ones must pass isolated: one printing to stdout, one computing in a thread, one
slow on its first call only, one keeping module-level state between calls.
"""
import ctypes
import os
import signal
import sys
import threading
import time

import numpy as np

ESCAPE_B = 3        # the escapes fire from this batch size on


def _sigmoid(a):
    return 0.5 * (1 + np.tanh(0.5 * a))


def gru(params, x, state0=None):
    """A correct GRU in the canonical convention (reset after)."""
    p = params
    h = np.zeros((x.shape[1], p["W_hr"].shape[0]), x.dtype) if state0 is None else state0["h"]
    outputs = []
    for x_t in x:
        r = _sigmoid(x_t @ p["W_xr"].T + p["b_xr"] + h @ p["W_hr"].T + p["b_hr"])
        z = _sigmoid(x_t @ p["W_xz"].T + p["b_xz"] + h @ p["W_hz"].T + p["b_hz"])
        n = np.tanh(x_t @ p["W_xn"].T + p["b_xn"] + r * (h @ p["W_hn"].T + p["b_hn"]))
        h = n + z * (h - n)
        outputs.append(h)
    return np.stack(outputs), {"h": h}


def _escaping(escape):
    def fn(params, x, state0=None):
        if x.shape[1] >= ESCAPE_B:
            escape()
        return gru(params, x, state0)
    fn.__doc__ = escape.__doc__
    return fn


def _hang_in_c():
    """Sleeps 1000 s inside one C call (libc's sleep) with SIGALRM blocked, as a C library
    may block it: no signal handler can interrupt it."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    ctypes.CDLL(None).sleep(1000)


exit_0 = _escaping(lambda: sys.exit(0))
exit_3 = _escaping(lambda: sys.exit(3))
exit_bye = _escaping(lambda: sys.exit("bye"))
os_exit_0 = _escaping(lambda: os._exit(0))
aborts = _escaping(os.abort)
segfaults = _escaping(lambda: ctypes.string_at(0))
kills_itself = _escaping(lambda: os.kill(os.getpid(), signal.SIGKILL))
hangs_in_c = _escaping(_hang_in_c)

#: name -> (failure kind, a text the report must contain)
ESCAPES = {
    "exit_0": ("exited", "sys.exit(0)"),
    "exit_3": ("exited", "sys.exit(3)"),
    "exit_bye": ("exited", "sys.exit('bye')"),
    "os_exit_0": ("exited", "exit code 0"),
    "aborts": ("crashed", "SIGABRT"),
    "segfaults": ("crashed", "SIGSEGV"),
    "kills_itself": ("crashed", "SIGKILL"),
}
for _name in ESCAPES:
    globals()[_name].__name__ = globals()[_name].__qualname__ = _name
hangs_in_c.__name__ = hangs_in_c.__qualname__ = "hangs_in_c"


# --- writing into what it was given --------------------------------------------------------
def scribbles_on_inputs(params, x, state0=None):
    """Right outputs, then overwrites its parameters, input and initial state with zeros."""
    result = gru(params, x, state0)
    result = (result[0].copy(), {"h": result[1]["h"].copy()})
    for v in params.values():
        v[...] = 0.0
    x[...] = 0.0
    if state0 is not None:
        state0["h"][...] = 0.0
    return result


def replaces_params(params, x, state0=None):
    """Right outputs, then swaps the arrays of its parameter dict for others."""
    result = gru(params, x, state0)
    for k in list(params):
        params[k] = np.ones_like(params[k])
    return result


_BUFFER = {}


def reuses_its_buffer(params, x, state0=None):
    """Right outputs, returned as views of one module-level buffer per shape that the next
    call of that shape overwrites."""
    outputs, final = gru(params, x, state0)
    buf = _BUFFER.setdefault(outputs.shape, np.empty((2,) + outputs.shape, outputs.dtype))
    buf[0], buf[1, -1] = outputs, final["h"]
    return buf[0], {"h": buf[1, -1]}


# --- correct, but odd ------------------------------------------------------------------------
def prints(params, x, state0=None):
    """Correct; prints a line to stdout on every call."""
    print(f"computing a GRU on x of shape {x.shape}")
    return gru(params, x, state0)


def in_a_thread(params, x, state0=None):
    """Correct; computes in a worker thread and waits for it."""
    result = []
    worker = threading.Thread(target=lambda: result.append(gru(params, x, state0)))
    worker.start()
    worker.join()
    return result[0]


_SEEN = set()


def slow_first_call(params, x, state0=None):
    """Correct; its first call per input shape sleeps 1 s ('compiling'), in Python."""
    if x.shape not in _SEEN:
        _SEEN.add(x.shape)
        time.sleep(1.0)
    return gru(params, x, state0)


_TRANSPOSED = {}


def caches_weights(params, x, state0=None):
    """Correct; keeps the transposed weights of the calls so far in a module-level cache
    (keyed by their bytes) and reuses them."""
    p = {}
    for k, v in params.items():
        key = (k, v.shape, v.dtype.str, v.tobytes())
        if key not in _TRANSPOSED:
            _TRANSPOSED[key] = np.ascontiguousarray(v.T).T
        p[k] = _TRANSPOSED[key]
    return gru(p, x, state0)



class LockedError(RuntimeError):
    """An exception holding a lock: it cannot be pickled back from the worker."""

    def __init__(self, message):
        super().__init__(message)
        self.lock = threading.Lock()


def raises_unpicklable(params, x, state0=None):
    """Raises an exception that cannot be pickled, on batches of ESCAPE_B samples or more."""
    if x.shape[1] >= ESCAPE_B:
        raise LockedError("batch too large")
    return gru(params, x, state0)


def _hang_in_python():
    while True:
        time.sleep(0.05)


hangs_in_python = _escaping(_hang_in_python)
hangs_in_python.__name__ = hangs_in_python.__qualname__ = "hangs_in_python"
