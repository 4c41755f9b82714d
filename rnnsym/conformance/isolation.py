"""Running the target in a worker process, so that it cannot end, hang or fake the check.

The checker's verdict (exit 0 means an ``OK`` report was printed, nothing else) must not be
something the code under test can produce. A target that calls ``sys.exit``/``os._exit``,
aborts, segfaults in a C extension or kills its own process would end rnnsym with it; one that
hangs inside a C call cannot be interrupted by ``SIGALRM``; one that writes into its inputs
would change what the oracle sees. So the target runs in a **worker**:

- one process per check (``multiprocessing``, ``forkserver`` where there is one, else
  ``spawn``; never a plain fork of the checker, whose torch/jax threads do not survive one),
  which builds the target once (:func:`rnnsym.frameworks.registry.resolve_harness`, the ONNX
  target, or the any-cell check's target, ``rnnsym.frameworks.cell_api``, from the cell's
  recipe) and serves calls: ``run``, ``gradients`` and ``check_contract`` of a harness or cell
  target; ``load``, ``run`` and ``run_target`` of an ONNX target. The oracle, the search, the
  diagnosis and the report stay in the checker (the *parent*); what crosses is pickled, so
  the target gets copies and its outputs are copied when it returns.
- ``sys.exit(...)`` inside the target is caught in the worker and becomes the failure kind
  ``exited``; a worker that dies (``os._exit``: ``exited`` with its code; a signal: ``crashed``
  with its name) is restarted on the next call, and the search goes on and shrinks the case as
  for any other failure.
- ``--timeout``: the worker limits each call with ``SIGALRM`` as before (a call past the limit is
  made once more, :func:`rnnsym.conformance.target.call_twice_if_slow`); the parent waits at most
  :func:`hard_limit` for the reply, then kills the worker (a hang inside a C call, or a platform
  without ``SIGALRM``) and reports ``timed out``.
- the target's own stdout goes to stderr: stdout is the report's.

``in_process=True`` (CLI ``--in-process``) runs the target in the checker, as before: faster
(``rnnsym/bench_isolation.py`` measures by how much), still given copies, ``sys.exit`` still
caught, but ``os._exit``, a crash or a hang in a C call end or stall the check. A Python-API
target that cannot be pickled (a lambda, a class defined inside a function) runs in-process
too, and the report says so.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import signal
import sys
import types
from typing import Optional

import numpy as np

from rnnsym.errors import RnnsymError

#: seconds a worker may take to start and build the target (imports: not a call of it)
BUILD_LIMIT = 300.0
#: frameworks the fork server imports once (where the checker has), so that a worker's
#: (re)start is a fork, not an import of torch
PRELOAD = ("torch", "jax", "onnx", "onnxruntime")
#: the harness methods that run the target's code (the rest is layout bookkeeping)
REMOTE = ("run", "gradients", "check_contract")


class TargetDied(RnnsymError):
    """The target ended its process (kind ``exited``) or it died of a signal (``crashed``)."""

    def __init__(self, kind: str, text: str):
        super().__init__(text)
        self.kind = kind


class CannotIsolate(RnnsymError):
    """The target cannot be sent to a worker (not picklable); it runs in-process."""


def hard_limit(timeout: Optional[float]) -> Optional[float]:
    """Seconds the parent waits for one reply: the worker's two tries of ``timeout`` each, and
    slack for a loaded machine; None: no limit."""
    return None if not timeout else 2.5 * timeout + 2.0


def copied(value):
    """``value`` with every NumPy array in it (nested in dicts, lists, tuples) copied: what
    the in-process target gets and what it returns, so that writing into its inputs or reusing
    a returned buffer cannot change what the oracle sees."""
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, dict):
        return {k: copied(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and type(value) in (list, tuple):
        return type(value)(copied(v) for v in value)
    return value


def exit_text(code) -> str:
    """What ``sys.exit(code)`` inside the target reads as in a report."""
    return f"the target called sys.exit({code!r}): it ended its process"


def death(exitcode: Optional[int]) -> TargetDied:
    """The failure for a worker that died with ``exitcode`` (multiprocessing's: negative for a
    signal)."""
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return TargetDied("crashed", f"the target's process died of {name} (a segfault, "
                          "abort or kill inside the target)")
    return TargetDied("exited", f"the target ended its process with exit code {exitcode} "
                      "(os._exit or a C exit inside the target)")


# --- the worker (child process) ------------------------------------------------------------
class _RemoteError(Exception):
    """An exception of the target that could not be pickled: its type name and text."""


def _encode(exc: BaseException, unsupported: bool):
    try:
        blob = pickle.dumps(exc)
        pickle.loads(blob)
    except Exception:  # noqa: BLE001 - any exception must reach the parent somehow
        blob = None
    return ("error", blob, type(exc).__name__, str(exc), unsupported)


def _decode(reply) -> BaseException:
    _, blob, name, text, unsupported = reply
    exc = None
    if blob is not None:
        try:
            exc = pickle.loads(blob)
        except Exception:  # noqa: BLE001
            exc = None
    if exc is None:
        exc = type(name, (_RemoteError,), {})(text)
    try:
        exc._rnnsym_unsupported = unsupported
    except AttributeError:
        pass
    return exc


class _OnnxServer:
    """An ONNX target in the worker: ``load`` keeps the last session for ``run``."""

    def __init__(self, target: str):
        from rnnsym.frameworks.onnx import onnx_target
        self.target = onnx_target(target)
        self.last = (None, None)

    def load(self, model_bytes):
        self.last = (model_bytes, self.target.load(model_bytes))

    def run(self, model_bytes, inputs):
        session = self.last[1] if self.last[0] == model_bytes else self.target.load(model_bytes)
        result = self.target.run(session, inputs)
        return list(result) if isinstance(result, (list, tuple)) else result

    def run_target(self, case):
        from rnnsym.frameworks.onnx import run_target
        return run_target(self.target, case)

    def unsupported(self, exc):
        return False

    def session(self):
        return contextlib.nullcontext()


def _build(kind: str, spec):
    if kind == "onnx":
        return _OnnxServer(spec)
    if kind == "cell":
        return _cell_target(*spec)
    from rnnsym.frameworks.registry import resolve_harness
    target, cell, cell_api, backward = spec
    return resolve_harness(target, cell, cell_api=cell_api, backward=backward)[0]


def _serve(conn, kind: str, sys_path: list, environ: dict, payload: bytes) -> None:
    """The worker's loop: build the target, then answer ``(method, args, kwargs, timeout)``
    with ``("ok", result)``, ``("timeout",)``, ``("exit", code)`` or ``("error", ...)``."""
    import warnings

    from rnnsym.conformance.limits import TargetTimeout, call_twice_if_slow

    sys.path[:] = sys_path
    os.environ.clear()
    os.environ.update(environ)
    sys.stdout.flush()
    os.dup2(2, 1)                          # the target's prints: stdout is the report's
    warnings.simplefilter("ignore")
    np.seterr(all="ignore")
    try:
        server, failed = _build(kind, pickle.loads(payload)), None
    except BaseException as exc:  # noqa: BLE001 - reported with the first call
        server, failed = None, exc
    conn.send(("ready",))                  # building is not a call: no time limit on it
    with (server.session() if server is not None else contextlib.nullcontext()):
        while True:
            try:
                method, args, kwargs, timeout = conn.recv()
            except (EOFError, OSError, KeyboardInterrupt):
                return
            try:
                if failed is not None:
                    raise failed
                fn = getattr(server, method)
                reply = ("ok", call_twice_if_slow(lambda: fn(*args, **kwargs), timeout))
            except TargetTimeout:
                reply = ("timeout",)
            except SystemExit as exc:
                reply = ("exit", exc.code)
            except BaseException as exc:  # noqa: BLE001 - the target's failure is a finding
                reply = _encode(exc, bool(server is not None and server.unsupported(exc)))
            try:
                conn.send(reply)
            except Exception as exc:  # noqa: BLE001 - an unpicklable result
                conn.send(_encode(TypeError(f"returned what cannot be sent back: {exc}"), False))


# --- the parent's side ---------------------------------------------------------------------
@contextlib.contextmanager
def _main_hidden():
    """multiprocessing re-imports the parent's ``__main__`` in the worker (the user's script,
    which would start its check again); a stand-in without a file keeps it out."""
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


_PRELOADED: set = set()


def _fork_server_with(ctx, modules: list) -> None:
    """Have the fork server import ``modules`` once, so that a worker's (re)start is a fork,
    not an import of torch; a server started for another target without them is stopped
    first (a check after another in one process)."""
    from multiprocessing import forkserver

    if _PRELOADED and not set(modules) <= _PRELOADED:
        stop = getattr(forkserver._forkserver, "_stop", None)      # private: best effort
        if stop is None:
            return
        stop()
        _PRELOADED.clear()
    if not _PRELOADED:
        ctx.set_forkserver_preload(modules)
        _PRELOADED.update(modules)


def _context():
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


class Worker:
    """One worker process serving calls of one target; restarted after it dies or is killed.
    ``kind``: "harness" (``spec`` = (target, cell, cell_api, backward)), "onnx" (``spec`` =
    the target string) or "cell" (``spec`` = (target, cell recipe, label, param_map), the
    any-cell check). Raises CannotIsolate when ``spec`` cannot be pickled."""

    def __init__(self, kind: str, spec, preload=()):
        if any(getattr(v, "__module__", None) == "__main__" for v in _flat(spec)):
            raise CannotIsolate("it is defined in __main__")
        try:
            self.payload = pickle.dumps(spec)
            pickle.loads(self.payload)
        except Exception as exc:  # noqa: BLE001 - a lambda, a local class, ...
            raise CannotIsolate(f"{type(exc).__name__}: {exc}") from None
        self.kind, self.preload = kind, tuple(preload)
        self.process = self.conn = None
        self.starts = 0

    def _start(self):
        ctx = _context()
        if ctx.get_start_method() == "forkserver":
            _fork_server_with(ctx, ["rnnsym.conformance.isolation", *self.preload])
        parent, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, daemon=True, name="rnnsym-target",
                                   args=(child, self.kind, list(sys.path), dict(os.environ),
                                         self.payload))
        with _main_hidden():
            self.process.start()
        child.close()
        self.conn, self.starts = parent, self.starts + 1
        try:
            if not parent.poll(BUILD_LIMIT) or parent.recv() != ("ready",):
                self.kill()
                raise CannotIsolate(f"its worker did not start within {BUILD_LIMIT:g} s")
        except (EOFError, OSError):
            raise death(self._reap()) from None

    def _reap(self) -> Optional[int]:
        self.process.join(5)
        code = self.process.exitcode
        self._drop()
        return code

    def _drop(self):
        if self.conn is not None:
            self.conn.close()
        self.process = self.conn = None

    def kill(self):
        if self.process is not None and self.process.pid is not None:
            self.process.kill()
            self.process.join()
        self._drop()

    close = kill

    def call(self, method: str, args=(), kwargs=None, timeout: Optional[float] = None):
        """``method(*args, **kwargs)`` of the target in the worker; raises what it raised,
        TargetTimeout, or TargetDied."""
        from rnnsym.conformance.limits import TargetTimeout

        if self.process is None:
            self._start()
        try:
            self.conn.send((method, args, kwargs or {}, timeout))
            if not self.conn.poll(hard_limit(timeout)):
                self.kill()
                raise TargetTimeout(timeout, f"timed out after {timeout:g} s (--timeout): no "
                                    f"reply within {hard_limit(timeout):g} s (a hang inside a "
                                    "C call?), its process was killed")
            reply = self.conn.recv()
        except (EOFError, OSError, BrokenPipeError):
            raise death(self._reap()) from None
        if reply[0] == "ok":
            return reply[1]
        if reply[0] == "timeout":
            raise TargetTimeout(timeout)
        if reply[0] == "exit":
            raise TargetDied("exited", exit_text(reply[1]))
        raise _decode(reply)


def _cell_target(target, recipe, label, param_map):
    """The any-cell check's target (``rnnsym.frameworks.cell_api``), built in the worker:
    ``recipe()`` builds the cell again (``rnnsym.conformance.anycell.builtin_recipe`` /
    ``defined_recipe``; a cell object itself is taken as it is)."""
    from rnnsym.frameworks.cell_api import cell_target
    from rnnsym.frameworks.user import load_object

    cell = recipe() if callable(recipe) else recipe
    obj = load_object(target) if isinstance(target, str) else target
    return cell_target(obj, cell, cell.shapes(), label, param_map)


class IsolatedHarness:
    """A harness (or an any-cell target, ``rnnsym.frameworks.cell_api.CellTarget``) whose
    ``run``, ``gradients`` and ``check_contract`` run in a :class:`Worker`; every other attribute
    (shapes, layout conversion, capabilities) is the local one's."""

    def __init__(self, harness, worker: Worker):
        self._local, self._worker = harness, worker

    def __getattr__(self, name):
        value = getattr(self._local, name)
        if name in REMOTE:
            def remote(*args, **kwargs):
                return self._worker.call(name, args, kwargs)
            return remote
        return value

    def call_limited(self, method: str, args, kwargs, timeout):
        """``method`` in the worker, limited to ``timeout`` seconds (``--timeout``)."""
        return self._worker.call(method, args, kwargs, timeout)

    def unsupported(self, exc) -> bool:
        flag = getattr(exc, "_rnnsym_unsupported", None)
        return self._local.unsupported(exc) if flag is None else flag

    def close(self):
        self._worker.close()


def _flat(spec) -> list:
    return list(spec) if isinstance(spec, tuple) else [spec]


def _preload(harness=None) -> tuple:
    loaded = tuple(m for m in PRELOAD if m in sys.modules)
    module = type(harness).__module__ if harness is not None else ""
    return loaded + ((module,) if module.startswith("rnnsym.frameworks.") else ())


def isolate_harness(harness, target, cell: str, cell_api: bool, backward=None):
    """``(harness in a worker, None)``, or ``(harness, why not)`` when the target cannot be
    sent to one."""
    try:
        worker = Worker("harness", (target, cell, cell_api, backward), preload=_preload(harness))
    except CannotIsolate as exc:
        return harness, f"ran in-process: it cannot be pickled for a worker, {exc}"
    return IsolatedHarness(harness, worker), None


def isolate_cell(local, target, recipe, label: str, param_map=None):
    """``(the any-cell target in a worker, None)``, or ``(local, why not)``: ``local`` is the
    ``CellTarget`` built here for ``target``; the worker builds its own from ``target``, the
    cell's ``recipe`` (see :func:`_cell_target`), ``label`` and ``param_map``."""
    try:
        worker = Worker("cell", (target, recipe, label, param_map),
                        preload=_preload(local) + ("rnnsym.cells",))
    except CannotIsolate as exc:
        return local, f"ran in-process: it cannot be pickled for a worker, {exc}"
    return IsolatedHarness(local, worker), None


class IsolatedOnnxTarget:
    """An :class:`rnnsym.frameworks.onnx.OnnxTarget` whose ``load`` and ``run`` run in a
    worker (``load`` there keeps the session; here it returns the model bytes as the
    "session" that ``run`` sends back)."""

    def __init__(self, local, worker: Worker):
        self.name, self.constants, self.label = local.name, local.constants, local.label
        self.stage, self._worker = local.stage, worker

    def load(self, model_bytes):
        self._worker.call("load", (model_bytes,))
        return model_bytes

    def run(self, model_bytes, inputs):
        return self._worker.call("run", (model_bytes, list(inputs)))

    def call_limited(self, method: str, args, kwargs, timeout):
        return self._worker.call(method, args, kwargs, timeout)

    def close(self):
        self._worker.close()


def isolate_onnx(target: str, local):
    """The ONNX target ``target`` (a string, built locally as ``local``) in a worker."""
    return IsolatedOnnxTarget(local, Worker("onnx", target, preload=_preload()))


@contextlib.contextmanager
def onnx_target_in_worker(target: str, in_process: bool = False):
    """The ONNX target ``target`` for one check: built here, run in a worker unless
    ``in_process``; the worker is closed when the check ends."""
    from rnnsym.frameworks.onnx import onnx_target
    tgt = onnx_target(target)
    if not in_process:
        tgt = isolate_onnx(target, tgt)
    try:
        yield tgt
    finally:
        getattr(tgt, "close", lambda: None)()

