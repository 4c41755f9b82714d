"""Curves for the command line: one per cell and radius, the text table and the plot."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rnnsym.cells.cell import Cell
from rnnsym.codegen.generator import module_name
from rnnsym.shapes import derive
from rnnsym.vanishing.chain import _CHUNK, GradientsError, log_norms
from rnnsym.vanishing.weights import default_sizes, load_params, random_params, scale_recurrent


# --- curves for the command line -----------------------------------------------------------------
@dataclass
class Curve:
    """``log10 ‖∂h_t/∂h_0‖₂`` for t = 1..N of one cell and one set of weights."""

    label: str
    cell: Cell
    log10: np.ndarray                 # (N,)
    radius: float | None = None
    params: dict = field(default_factory=dict, repr=False)


#: the most memory the analysis of one cell may need (parameters and the batched Jacobian rows)
MEMORY_LIMIT = 4 * 2**30


def _check_memory(cell: Cell, sizes: dict, steps: int) -> None:
    """Refuse sizes whose analysis needs more than MEMORY_LIMIT bytes, before allocating: the
    parameters, and per chunk of steps one batch row per state unit holding every quantity."""
    shapes = derive(cell).concrete(**sizes)
    params = sum(int(np.prod(shapes[p])) for p in cell.params)
    units = sum(shapes[s][0] for s in cell.states)
    per_row = sum(shapes[q][0] for q in (*cell.inputs, *(e.name for e in cell.equations)))
    need = 8 * (params + 3 * min(steps, _CHUNK) * units * per_row)
    if need > MEMORY_LIMIT:
        given = ", ".join(f"{k}={v}" for k, v in sizes.items())
        raise GradientsError(f"sizes {given}: the analysis of {cell.name} needs about "
                             f"{need / 2**30:,.1f} GiB, more than the limit of "
                             f"{MEMORY_LIMIT / 2**30:g} GiB; give smaller --sizes")


def curves(cells, steps: int, radii=(1.0,), sizes: dict | None = None, seed: int = 0,
           weights=None, fill: dict | None = None) -> list[Curve]:
    """One curve per cell and radius. Weights are drawn (seeded) per cell, once, and rescaled
    to each radius, so the curves of one cell differ only in the radius; ``weights`` (one cell:
    a path or mapping) replaces the draw (rescaled only when ``radii`` is given). The input is
    ``x_t ~ N(0, 1)`` for one sequence, the initial state zero."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise GradientsError(f"steps must be a positive integer, got {steps!r}")
    cells = list(cells)
    if weights is not None and len(cells) != 1:
        raise GradientsError("weights belong to one cell: give exactly one CELL with weights")
    fill = dict(fill or {})
    for p in fill:
        if not any(p in c.params for c in cells):
            raise GradientsError(f"{p!r} is not a parameter of "
                                 + ", ".join(c.name for c in cells))
    out = []
    for cell in cells:
        rng = np.random.default_rng(seed)
        if weights is not None:
            base = load_params(cell, weights)
            sz = derive(cell).infer_sizes(base)
            for p in fill:
                if p in cell.params:
                    base[p] = np.full(np.shape(base[p]), float(fill[p]))
        else:
            sz = default_sizes(cell, sizes)
            _check_memory(cell, sz, steps)
            base = random_params(cell, sz, rng, fill={p: v for p, v in fill.items() if p in cell.params})
        x = rng.standard_normal((steps, 1, sz[str(derive(cell).shape(cell.inputs[0])[0])]))
        for r in (radii if (weights is None or radii) else (None,)):
            params = base if r is None else scale_recurrent(cell, base, r)
            label = module_name(cell) + "".join(f" {p}={v:g}" for p, v in fill.items()
                                                if p in cell.params)
            label += "" if r is None else f" r={r:g}"
            out.append(Curve(label, cell, log_norms(cell, params, x)[:, 0], r, params))
    return out


def _fmt(log10v: float) -> str:
    """``10**log10v`` as ``1.234e-05``, also beyond float64's range."""
    if np.isnan(log10v):
        return "nan"
    if log10v == -np.inf:
        return "0"
    if log10v == np.inf:
        return "inf"
    e = int(np.floor(log10v))
    m = 10 ** (log10v - e)
    if m >= 9.9995:
        m, e = m / 10, e + 1
    return f"{m:.3f}e{e:+03d}"


def table(curves_: list[Curve], every: int | None = None) -> str:
    """The text table: one row per step shown (every step up to 20, else about 20 rows and the
    last), one column per curve."""
    n = len(curves_[0].log10)
    every = every or max(1, -(-n // 20))
    ts = [t for t in range(1, n + 1) if t == 1 or t % every == 0 or t == n]
    width = max(11, *(len(c.label) for c in curves_))
    lines = ["‖∂h_t/∂h_0‖₂", "t".rjust(5) + "".join(c.label.rjust(width + 2) for c in curves_)]
    for t in ts:
        lines.append(f"{t:5d}" + "".join(_fmt(c.log10[t - 1]).rjust(width + 2) for c in curves_))
    return "\n".join(lines)


def plot(curves_: list[Curve], path: str, title: str | None = None) -> None:
    """Log-scale curves into ``path`` (.png or .svg), byte-stable: no dates or versions in the
    file, fixed SVG ids. Needs matplotlib (``pip install 'rnnsym[plot]'``)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    suffix = str(path).rsplit(".", 1)[-1].lower()
    if suffix not in ("png", "svg"):
        raise GradientsError(f"--plot: the file must end in .png or .svg, got {path}")
    colors = {}
    styles = ["-", "--", ":", "-."]
    radii: dict = {}
    with matplotlib.rc_context({"svg.hashsalt": "rnnsym", "svg.fonttype": "none",
                                "font.size": 9}):
        fig, ax = plt.subplots(figsize=(6.4, 4.0))
        for c in curves_:
            color = colors.setdefault(c.cell.name + c.cell.title, f"C{len(colors)}")
            style = styles[radii.setdefault(c.radius, len(radii)) % len(styles)]
            t = np.arange(1, len(c.log10) + 1)
            with np.errstate(over="ignore", under="ignore"):
                ax.semilogy(t, 10.0 ** np.clip(c.log10, -300, 300), style, color=color,
                            label=c.label, linewidth=1.4)
        ax.set_xlabel("t (steps back)")
        ax.set_ylabel(r"$\|\partial h_t / \partial h_0\|_2$")
        ax.set_title(title or "gradient norm through time (random weights, recurrent matrix "
                     "at spectral radius r)", fontsize=9)
        ax.grid(True, which="major", linewidth=0.4, alpha=0.5)
        ax.legend(fontsize=8, ncol=2)
        fig.tight_layout()
        meta = {"Date": None, "Creator": None} if suffix == "svg" else {"Software": None}
        fig.savefig(path, format=suffix, metadata=meta)
        plt.close(fig)
