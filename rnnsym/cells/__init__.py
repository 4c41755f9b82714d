"""Symbolic cells: built-in Elman/LSTM/GRU and cells users define (Python or text)."""
from rnnsym.cells.builtin import BUILTINS, builtin, elman, gru, lstm
from rnnsym.cells.cell import Cell, Equation, make_cell, now, param, prev
from rnnsym.cells.nodes import ACTIVATIONS, Activation
from rnnsym.cells.parse import DefinitionError, parse_cell

__all__ = ["ACTIVATIONS", "Activation", "BUILTINS", "Cell", "DefinitionError", "Equation",
           "builtin", "elman", "gru", "lstm", "make_cell", "now", "param", "parse_cell", "prev"]
