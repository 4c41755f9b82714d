"""Time limits on a target call (``--timeout``): :class:`TargetTimeout`, a call limited with
``SIGALRM`` where this thread can (:func:`call_with_limit`), made once more before it counts as
a time-out (:func:`call_twice_if_slow`), and the report's text for it. Used in the checker's
process and inside the target's worker (``rnnsym.conformance.isolation``); re-exported by
``rnnsym.conformance.target``."""
from __future__ import annotations

import signal
import threading
from typing import Optional


class TargetTimeout(BaseException):
    """Raised inside a target call that ran past its time limit. A BaseException, so that a
    target's own ``except Exception`` cannot swallow it. ``args``: the limit, and optionally
    the text for the report (default :func:`timeout_text`)."""


def can_limit_time() -> bool:
    """Whether calls can be time-limited here (SIGALRM, main thread)."""
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


def call_with_limit(fn, seconds: Optional[float]):
    """``fn()``, raising TargetTimeout after ``seconds`` (None or 0: no limit, as where
    :func:`can_limit_time` is False)."""
    if not seconds or not can_limit_time():
        return fn()
    armed = [True]

    def expire(signum, frame):
        if armed[0]:
            raise TargetTimeout(seconds)

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn()
    finally:
        armed[0] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def call_twice_if_slow(fn, seconds: Optional[float]):
    """:func:`call_with_limit`, and once more if the first call ran past the limit: raises
    TargetTimeout only when both did."""
    try:
        return call_with_limit(fn, seconds)
    except TargetTimeout:
        return call_with_limit(fn, seconds)


def timeout_text(seconds: float, exc: Optional[TargetTimeout] = None) -> str:
    if exc is not None and len(exc.args) > 1:
        return exc.args[1]
    return f"timed out after {seconds:g} s, twice (--timeout)"
