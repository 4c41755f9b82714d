"""An example "framework" added as a target the way docs/targets.md describes (one file, one
registry line): rnnsym's hand-written NumPy references, checked as a framework."""
from rnnsym.frameworks.user import FunctionHarness
from rnnsym.reference import elman_forward, gru_forward, lstm_forward

FORWARDS = {"elman": elman_forward, "lstm": lstm_forward, "gru": gru_forward}


def make_harness(spec, cell, options):
    fn = FORWARDS[cell]
    return FunctionHarness(fn, cell, f"rnnsym.reference.{fn.__name__}")
