"""The table of built-in cells x target kinds: ``rnnsym check`` on each hand-written correct
implementation (must pass) and each broken one (must fail with the named edit), with times.

    PYTHONPATH=$PWD python scripts/check_cells_table.py [--examples N]
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

import rnnsym  # noqa: E402
import rnnsym.conformance.mutations as mutations  # noqa: E402
from broken import cells  # noqa: E402

DIAGNOSIS_SECONDS = []
_diagnose = mutations.diagnose_cell


def timed_diagnose(*args):
    start = time.perf_counter()
    try:
        return _diagnose(*args)
    finally:
        DIAGNOSIS_SECONDS.append(time.perf_counter() - start)


mutations.diagnose_cell = timed_diagnose


def run(target, cell, variant=None, **kw):
    start = time.perf_counter()
    report = rnnsym.check(target, cell, variant=variant, **kw)
    return report, time.perf_counter() - start


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    kw = dict(examples=args.examples, seed=args.seed)
    rows = [(c, v, "function", good, bad, edit, {}) for c, v, good, bad, edit in cells.CASES]
    rows += [("lnlstm", None, "torch cell API", cells.LayerNormLSTMCell, cells.LayerNormLSTMCellBug,
              "blocks of g and o exchanged", {"param_map": cells.LNLSTM_MAP}),
             ("elman", "readout=true", "torch cell API", cells.SimpleRNN, cells.SimpleRNNBug,
              "h[t-1] instead of h[t] in y", {"param_map": cells.SIMPLE_RNN_MAP}),
             ("indrnn", None, "torch cell API --gradients", cells.IndRNNCell,
              cells.IndRNNCellDetached, "state detached",
              {"param_map": "W_xh=weight.T,w_hh=u,b_h=b", "gradients": True})]
    print("| cell | variant | target | correct: verdict (examples, s) | broken: verdict, s "
          "(diagnosis time) | named edit |")
    print("|---|---|---|---|---|---|")
    for cell, variant, kind, good, bad, edit, extra in rows:
        ok, t_ok = run(good, cell, variant, **kw, **extra)
        DIAGNOSIS_SECONDS.clear()
        ko, t_ko = run(bad, cell, variant, **kw, **extra)
        t_diag = sum(DIAGNOSIS_SECONDS)
        named = bool(ko.diagnosis) and any(edit in d for d in ko.diagnoses)
        print(f"| {cell} | {variant or ''} | {kind} | {ok.verdict} ({ok.examples}, {t_ok:.1f}) "
              f"| {ko.verdict}, {t_ko:.1f} ({t_diag:.2f}) | {'yes' if named else 'NO'}: "
              f"{(ko.diagnosis or '-')[:90]} |")


if __name__ == "__main__":
    main()
