"""Benchmark of unrolling (not a test): time and size of the chain form per built-in cell and N,
and of Elman's nested form.

Columns: ``build`` is :func:`rnnsym.unroll.unroll` (the one-step template; the chain's per-step
SymPy expressions are built on demand), ``latex`` is ``.latex()`` of the result, ``exprs`` builds
every step's SymPy expressions (``.equations``), ``size`` is the total tree size. Times are
medians over a few repeats where a run is cheap, in seconds.
"""
from __future__ import annotations

import statistics
import time

from rnnsym.cells.builtin import builtin
from rnnsym.unroll import unroll

CELLS = ("elman", "lstm", "gru")


def _timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def _measure(cell, form: str, steps: int) -> dict:
    repeats = 5 if steps <= 100 else 3 if steps <= 1000 else 1
    build, result = _timed(lambda: unroll(cell, steps, form), repeats)
    tex, _ = _timed(result.latex, repeats)
    exprs, _ = _timed(lambda: unroll(cell, steps, form).equations, repeats)
    return {"cell": cell.name, "form": form, "steps": steps, "size": result.size,
            "build_s": build, "latex_s": tex, "exprs_s": exprs}


def run(cells=None, steps=(10, 100, 1000, 10000), nested_steps=(10, 100, 1000)) -> list[dict]:
    """Measure the chain form of each cell (default: elman, lstm, gru) for each N in ``steps``,
    and Elman's nested form for each N in ``nested_steps``."""
    rows = []
    for name in cells or CELLS:
        cell = builtin(name)
        rows += [_measure(cell, "chain", n) for n in steps]
    rows += [_measure(builtin("elman"), "nested", n) for n in nested_steps]
    return rows


def format_table(rows: list[dict]) -> str:
    """The rows as an aligned plain-text table."""
    head = ("cell", "form", "N", "size", "build s", "latex s", "exprs s")
    body = [(r["cell"], r["form"], f"{r['steps']:,}", f"{r['size']:,}", f"{r['build_s']:.4f}",
             f"{r['latex_s']:.4f}", f"{r['exprs_s']:.4f}") for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    fmt = "  ".join(f"{{:<{w}}}" if i < 2 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return "\n".join(fmt.format(*line) for line in (head, *body))


if __name__ == "__main__":
    print(format_table(run()))
