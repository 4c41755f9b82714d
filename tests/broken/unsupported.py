"""Correct drop-ins that lack one optional feature each, and say so.

Each class computes exactly what torch computes (it is ``_base.DropIn``) but refuses one
optional feature with ``NotImplementedError`` (or ``rnnsym.conformance.Unsupported``), in the
constructor or in ``forward``, as most hand-written RNNs do. The checker must PASS them,
listing ``LACKS`` (a feature name of ``rnnsym check --without``) as unsupported; with
``--strict`` it must fail them. ``CELL`` is the --cell to check with.

Below them, drop-ins that are *not* correct in a way the verdicts must tell apart:
``NotImplementedError`` on plain input, a hang, the wrong output dtype.
"""
import time

import torch
from torch.nn.utils.rnn import PackedSequence

from _base import GRU, LSTM, RNN
from rnnsym.conformance import Unsupported


class NoPacked:
    """Mixin: no PackedSequence input (the issue's six correct drop-ins)."""
    LACKS = "lengths"

    def forward(self, input, hx=None):
        if isinstance(input, PackedSequence):
            raise NotImplementedError("packed sequences")
        return super().forward(input, hx)


class RNNNoPacked(NoPacked, RNN):
    CELL = "elman"


class LSTMNoPacked(NoPacked, LSTM):
    CELL = "lstm"


class GRUNoPacked(NoPacked, GRU):
    CELL = "gru"


class GRUNoUnbatched(GRU):
    """2-D (unbatched) input refused in forward."""
    LACKS = "unbatched"

    def forward(self, input, hx=None):
        if not isinstance(input, PackedSequence) and input.dim() == 2:
            raise NotImplementedError("unbatched input: pass (T, B, d_in)")
        return super().forward(input, hx)


def refusing(base, arg, allowed, error, lacks):
    """A correct ``base`` whose constructor raises ``error(value)`` when ``arg`` is given and
    not ``allowed`` (the harness passes every constructor argument by keyword)."""
    class Refusing(base):
        LACKS = lacks

        def __init__(self, *args, **kwargs):
            if kwargs.get(arg, allowed) != allowed:
                raise error(kwargs[arg])
            super().__init__(*args, **kwargs)
    return Refusing


class RNNNoBatchFirst(refusing(RNN, "batch_first", False,
                               lambda v: NotImplementedError("batch_first=True"), "batch_first")):
    """batch_first=True refused by the constructor."""


class LSTMUnidirectional(refusing(LSTM, "bidirectional", False,
                                  lambda v: NotImplementedError("only one direction"),
                                  "bidirectional")):
    """bidirectional=True refused by the constructor."""


class GRUOneLayer(refusing(GRU, "num_layers", 1, lambda n: Unsupported(
        f"num_layers={n}: stack GRUOneLayer modules yourself"), "layers")):
    """num_layers > 1 refused by the constructor, with rnnsym's own signal."""


class LSTMNoProjection(refusing(LSTM, "proj_size", 0,
                                lambda v: NotImplementedError("proj_size"), "projection")):
    """proj_size > 0 refused by the constructor."""


class RNNNoInitialState(RNN):
    """hx refused: always starts from zeros (and says so, unlike LSTMInitialStateIgnored)."""
    LACKS = "initial_state"

    def forward(self, input, hx=None):
        if hx is not None:
            raise NotImplementedError("an initial state hx")
        return super().forward(input, hx)


class GRUAlwaysBias(refusing(GRU, "bias", True, lambda v: NotImplementedError("bias=False"),
                             "no_bias")):
    """bias=False refused by the constructor."""


class RNNTanhOnly(refusing(RNN, "nonlinearity", "tanh",
                           lambda v: NotImplementedError(f"nonlinearity={v!r}"),
                           "activation=relu")):
    """nonlinearity='relu' refused by the constructor."""


class LSTMPackedOneDirection(LSTM):
    """PackedSequence input only for one direction: the combination is unsupported,
    each feature alone works."""
    LACKS = "bidirectional+lengths"

    def forward(self, input, hx=None):
        if isinstance(input, PackedSequence) and self.bidirectional:
            raise NotImplementedError("packed sequences with bidirectional=True")
        return super().forward(input, hx)


UNSUPPORTED = [(c.CELL, c) for c in (
    RNNNoPacked, LSTMNoPacked, GRUNoPacked, GRUNoUnbatched, RNNNoBatchFirst, LSTMUnidirectional,
    GRUOneLayer, LSTMNoProjection, RNNNoInitialState, GRUAlwaysBias, RNNTanhOnly)]


class GRUFloat32Only(GRU):
    """float64 refused: checked in float64, nothing can run (exit 3)."""

    def forward(self, input, hx=None):
        data = input.data if isinstance(input, PackedSequence) else input
        if data.dtype == torch.float64:
            raise NotImplementedError("float64")
        return super().forward(input, hx)


# ---- not correct: failures, whatever the exception says -------------------------------------


class GRUNotImplemented(GRU):
    """NotImplementedError on plain batched input: a failure, not an unsupported feature."""

    def forward(self, input, hx=None):
        raise NotImplementedError("forward")


class GRUNotImplementedLong(GRU):
    """NotImplementedError on plain input longer than 3 steps: a failure too."""

    def forward(self, input, hx=None):
        data = input.data if isinstance(input, PackedSequence) else input
        if not isinstance(input, PackedSequence) and data.shape[0 if not self.batch_first
                                                              else 1] > 3:
            raise NotImplementedError("sequences longer than 3 steps")
        return super().forward(input, hx)


class GRUHangsBatchFirst(GRU):
    """Hangs on batch_first input (an endless wait): timed out."""

    def forward(self, input, hx=None):
        if self.batch_first:
            while True:
                time.sleep(0.05)
        return super().forward(input, hx)


class GRUReturnsFloat64(GRU):
    """Right numbers in the wrong dtype: float64 outputs for float32 input."""

    def forward(self, input, hx=None):
        out, h_n = super().forward(input, hx)
        if isinstance(out, PackedSequence):
            return out, h_n.double()
        return out.double(), h_n.double()
