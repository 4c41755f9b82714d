"""Symbolic cells: built-in Elman/LSTM/GRU and cells users define (Python or text).

The bottom layer: owns the nodes (:mod:`~.nodes`), the cell (:mod:`~.cell`), the built-ins and
the text parser. Imports SymPy only; ``Cell.latex()``, ``Cell.text()`` and ``Cell.shapes()``
import their printer or the shape solver when called (the layers contract's only exception).
"""
from rnnsym.cells.builtin import (BUILTINS, builtin, elman, gru, indrnn, lnlstm, lstm, mingru,
                                  minlstm, qrnn, sru)
from rnnsym.cells.cell import Cell, Equation, make_cell, now, param, prev
from rnnsym.cells.nodes import ACTIVATIONS, Activation, hadamard, madd, mmul, one_minus, relu, tanh
from rnnsym.cells.nodes import Chunk, HadamardQuotient, LayerNorm, chunk, divide, layernorm
from rnnsym.cells.nodes import sigmoid_ as sigmoid
from rnnsym.cells.linear import deltanet, gated_deltanet, gla, linear_attention, mamba, mamba2, mlstm
from rnnsym.cells.nodes import L2Norm, Maximum, Outer, RowScale, l2norm, maximum, outer, row_scale, transpose
from rnnsym.cells.parse import DefinitionError, parse_cell

__all__ = ["ACTIVATIONS", "Activation", "BUILTINS", "Cell", "Chunk", "DefinitionError", "Equation",
           "HadamardQuotient", "LayerNorm", "builtin", "chunk", "divide", "elman", "gru", "hadamard",
           "indrnn", "layernorm", "lnlstm", "lstm", "madd", "make_cell", "mingru", "minlstm", "mmul",
           "now", "one_minus", "param", "parse_cell", "prev", "qrnn", "relu", "sigmoid", "sru", "tanh",
           "linear_attention", "gla", "deltanet", "gated_deltanet", "mamba", "mamba2", "mlstm",
           "L2Norm", "Maximum", "Outer", "RowScale", "l2norm", "maximum", "outer", "row_scale", "transpose"]
