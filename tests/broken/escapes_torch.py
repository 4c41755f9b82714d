"""Escapes of the other kinds of target (tests/broken/escapes.py has the functions): a torch
drop-in, a torch cell drop-in and an ONNX backend."""
import ctypes
import os

import torch

from escapes import ESCAPE_B


class GRUExitsBidirectional(torch.nn.GRU):
    """A torch drop-in that calls os._exit(7) on a bidirectional module."""

    def forward(self, input, hx=None):
        if self.bidirectional:
            os._exit(7)
        return super().forward(input, hx)


class GRUCellAborts(torch.nn.GRUCell):
    """A torch cell drop-in that aborts on batches of ESCAPE_B samples or more."""

    def forward(self, input, hx=None):
        if input.dim() == 2 and input.shape[0] >= ESCAPE_B:
            os.abort()
        return super().forward(input, hx)


def onnx_segfaults(model_bytes, inputs):
    """An ONNX backend (``onnx:MODULE:NAME``) that segfaults on bidirectional models."""
    import rnnsym.onnx
    if b"bidirectional" in model_bytes:
        ctypes.string_at(0)
    return [y for y in rnnsym.onnx.run(model_bytes, inputs) if y is not None]
