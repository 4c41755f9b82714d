"""The checked-in ``generated/`` folder: which modules it holds, writing it, checking it.

Like symforce's ``compare_or_update_directory``: the check compares the *set* of files as well
as their text, and a stale folder fails with a unified diff and the command that fixes it.
"""
from __future__ import annotations

import difflib
import warnings
from pathlib import Path

from rnnsym.cells import (deltanet, elman, gated_deltanet, gla, gru, indrnn, linear_attention, lnlstm, lstm,
                          mamba, mamba2, mingru, minlstm, mlstm, qrnn, sru)
from rnnsym.codegen.generator import render

REGENERATE = "rnnsym generate --out generated"

#: the generated modules of the vector-state built-ins: module name -> (factory, its options)
GENERATED = {
    **{f"elman_{act}{'_readout' if ro else ''}": (elman, {"activation": act, "readout": ro})
       for act in ("tanh", "relu", "sigmoid", "identity") for ro in (False, True)},
    "lstm": (lstm, {}),
    "lstm_peepholes": (lstm, {"peepholes": True}),
    "lstm_coupled": (lstm, {"coupled": True}),
    "lstm_projection": (lstm, {"projection": True}),
    "lstm_clip": (lstm, {"clip": 3.0}),
    "lstm_peepholes_coupled_clip": (lstm, {"peepholes": True, "coupled": True, "clip": 3.0}),
    "gru_reset_after": (gru, {"reset": "after"}),
    "gru_reset_before": (gru, {"reset": "before"}),
    "mingru": (mingru, {}),
    "minlstm": (minlstm, {}),
    "indrnn_relu": (indrnn, {"activation": "relu"}),
    "indrnn_tanh": (indrnn, {"activation": "tanh"}),
    "sru": (sru, {}),
    "qrnn_f": (qrnn, {"pooling": "f"}),
    "qrnn_fo": (qrnn, {"pooling": "fo"}),
    "lnlstm": (lnlstm, {}),
}

#: the built-ins with a matrix state (codegen/matrix.py), kept apart from GENERATED: their x is a
#: dict of inputs and their references live in rnnsym.reference.linear
GENERATED_MATRIX = {
    "linear_attention": (linear_attention, {}),
    "gla": (gla, {}),
    "gla_decay_head": (gla, {"decay": "head"}),
    "deltanet": (deltanet, {}),
    "deltanet_qk_l2norm": (deltanet, {"qk_l2norm": True}),
    "gated_deltanet": (gated_deltanet, {}),
    "gated_deltanet_decay_key": (gated_deltanet, {"decay": "key"}),
    "mamba": (mamba, {}),
    "mamba2": (mamba2, {}),
    "mlstm": (mlstm, {}),
}


#: Deprecated names ("variant" means a cell's math options only; docs/architecture.md, glossary)
VARIANTS, MATRIX_VARIANTS = GENERATED, GENERATED_MATRIX


def generated_cell(name: str):
    """The cell of the generated module ``name`` (``generated/NAME.py``)."""
    factory, options = GENERATED[name] if name in GENERATED else GENERATED_MATRIX[name]
    return factory(**options)


def variant_cell(name: str):
    """Deprecated: :func:`generated_cell`."""
    warnings.warn("rnnsym.codegen.files.variant_cell is deprecated: use generated_cell",
                  DeprecationWarning, stacklevel=2)
    return generated_cell(name)


def expected_files(extra_cells=()) -> dict[str, str]:
    """``{file name: source}`` for every generated module (and any extra ``(name, cell)``
    pairs)."""
    files = {f"{name}.py": render(generated_cell(name), regen=REGENERATE)
             for name in (*GENERATED, *GENERATED_MATRIX)}
    for name, cell in extra_cells:
        files[f"{name}.py"] = render(cell, regen=REGENERATE)
    return files


def _not_a_file(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: not a folder (a file of that name exists)")


def write(out_dir, files: dict[str, str]) -> list[str]:
    """Write ``files`` into ``out_dir``, touching only files whose text changed; returns those."""
    out = Path(out_dir)
    for name in files:              # a file name only: nothing is ever written outside out_dir
        if Path(name).name != name or name in (".", ".."):
            raise ValueError(f"{name!r} is not a file name (it would be written outside {out_dir})")
    _not_a_file(out)
    out.mkdir(parents=True, exist_ok=True)
    changed = []
    for name, text in files.items():
        path = out / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            changed.append(name)
    return changed


def diff(out_dir, files: dict[str, str]) -> str:
    """Unified diff from what is in ``out_dir`` to what the generator writes; '' when in sync.

    Files the generator no longer writes count as stale too (only ``*.py``).
    """
    out = Path(out_dir)
    _not_a_file(out)
    if not out.is_dir():
        raise ValueError(f"--out {out_dir}: no such folder (nothing to compare; "
                         f"`rnnsym generate --out {out_dir}` writes it)")
    chunks = []
    present = {p.name for p in out.glob("*.py")}
    for name in sorted(set(files) | present):
        old = (out / name).read_text() if name in present else ""
        new = files.get(name, "")
        if old != new:
            chunks.extend(difflib.unified_diff(
                old.splitlines(True), new.splitlines(True),
                fromfile=f"{out / name}{'' if name in present else ' (missing)'}",
                tofile=f"{out / name} (generated){'' if name in files else ' (not generated: delete it)'}"))
    if not chunks:
        return ""
    return "".join(chunks) + f"\n{out} is out of date with the generator: run `{REGENERATE}` and commit.\n"
