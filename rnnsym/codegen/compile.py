"""``rnnsym.compile(cell)``: the generated forward of a cell defined at run time, in memory.

The source is exactly what ``rnnsym generate`` would write for the cell; it is compiled from
that text with Python's ``compile`` (rnnsym's own generated code, whose every name was validated
as an identifier by the parser: no user text is ever evaluated), and registered with
``linecache`` so tracebacks show the generated lines.
"""
from __future__ import annotations

import linecache
import types

import sympy as sp

from rnnsym.cells.cell import Cell
from rnnsym.codegen.generator import render

_CACHE: dict = {}
_BY_CELL: dict = {}


def _key(cell: Cell) -> str:
    """Everything the source depends on, exactly (``srepr`` keeps the terms' written order)."""
    eqs = tuple((e.name, e.kind, sp.srepr(e.rhs)) for e in cell.equations)
    return repr((cell.name, cell.title, cell.inputs, eqs, cell.params, cell.dim_names,
                 cell.soft_dim_names, cell.equal_dims, cell.options))


def compile_cell(cell: Cell | str, *, backward: bool = True) -> types.ModuleType:
    """A module object with ``forward``, ``step``, ``PARAM_SHAPES``, ``STATE_SHAPES`` and the
    source as ``__source__``; also ``backward`` (see the module's docstring) unless
    ``backward=False`` (forward only: about half the generation time). ``cell`` is a
    :class:`Cell` or a built-in cell's name (``"elman"``, ``"lstm"``, ...: its default options)."""
    if isinstance(cell, str):
        from rnnsym.cells import builtin
        cell = builtin(cell)
    elif not isinstance(cell, Cell):
        raise TypeError(f"rnnsym.compile: cell must be a Cell (rnnsym.lstm(), rnnsym.parse_cell("
                        f"...)) or a built-in cell's name, got {type(cell).__name__}")
    key = _key(cell) + ("" if backward else " forward only")   # same key, same source
    if key in _BY_CELL:
        return _BY_CELL[key]
    source = render(cell, regen="rnnsym.compile(cell)", backward=backward)
    if source in _CACHE:
        _BY_CELL[key] = _CACHE[source]
        return _CACHE[source]
    filename = f"<rnnsym generated {cell.name} {len(_CACHE)}>"
    module = types.ModuleType(f"rnnsym_generated_{cell.name}")
    module.__file__ = filename
    module.__source__ = source
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), module.__dict__)  # noqa: S102 - our own generated code
    _CACHE[source] = _BY_CELL[key] = module
    return module
