"""Dead-assignment elimination on a generated module's source: a name bound and never read in its
function is not written at all.

The generator emits every GEMM group's named views and every equation's variable by rule (a
hoisted slice ``W_xi_x = xW[:, :, 0:d_h]`` that the loop never reads once it is added into the
in-loop buffer, ``y = out[t]`` after the output row is written). This pass removes them from the
finished source, so that each rule stays simple and the module reads as a person would write it:

* ``name = <view>`` is deleted when ``name`` is never read in the function and ``<view>`` has no
  effect (a name, a constant, or subscripts of them: ``xW[:, :, 0:d_h]``, ``cache["y_all"]``);
* ``name = other[t] = <expr>`` loses its dead ``name =`` and keeps the store into ``other``.

Only one-line statements are touched, and the pass repeats until nothing is dead (a view read
only by a deleted view is dead next).
"""
from __future__ import annotations

import ast


def _pure(node: ast.AST) -> bool:
    """An expression with no effect: names, constants, subscripts, slices and arithmetic on them."""
    if isinstance(node, (ast.Name, ast.Constant)):
        return True
    if isinstance(node, ast.Subscript):
        return _pure(node.value) and _pure(node.slice)
    if isinstance(node, ast.Slice):
        return all(_pure(p) for p in (node.lower, node.upper, node.step) if p is not None)
    if isinstance(node, ast.Tuple):
        return all(_pure(e) for e in node.elts)
    if isinstance(node, ast.BinOp):
        return _pure(node.left) and _pure(node.right)
    if isinstance(node, ast.UnaryOp):
        return _pure(node.operand)
    return False


def dead_names(fn: ast.FunctionDef) -> set[str]:
    """Names bound in ``fn`` (a plain ``name`` target) and never read in it."""
    stored, loaded = set(), set()
    for node in ast.walk(fn):
        if isinstance(node, ast.Name):
            (stored if isinstance(node.ctx, ast.Store) else loaded).add(node.id)
    return stored - loaded


def _edits(source: str) -> list[tuple[int, int, int]]:
    """(line, start column, end column) spans to delete; end -1: the whole line."""
    edits = []
    for fn in ast.walk(ast.parse(source)):
        if not isinstance(fn, ast.FunctionDef):
            continue
        dead = dead_names(fn)
        for node in ast.walk(fn):
            if not (isinstance(node, ast.Assign) and node.lineno == node.end_lineno):
                continue
            names = [t for t in node.targets if isinstance(t, ast.Name) and t.id in dead]
            if not names:
                continue
            if len(names) == len(node.targets) and _pure(node.value):
                edits.append((node.lineno, 0, -1))
            elif len(names) < len(node.targets):
                for t in names:             # `y = out[t] = ...`: drop `y = ` only
                    k = node.targets.index(t)
                    edits.append((node.lineno, t.col_offset, node.targets[k + 1].col_offset
                                  if k + 1 < len(node.targets) else node.value.col_offset))
    return edits


def drop_dead_assignments(source: str) -> str:
    """``source`` without its dead assignments (see the module docstring)."""
    while True:
        edits = _edits(source)
        if not edits:
            return source
        lines = source.split("\n")
        for line, start, end in sorted(edits, reverse=True):
            if end == -1:
                lines[line - 1] = None
            else:                           # ast's columns count UTF-8 bytes
                text = lines[line - 1].encode()
                lines[line - 1] = (text[:start] + text[end:]).decode()
        source = "\n".join(line for line in lines if line is not None)
