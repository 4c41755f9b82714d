"""How many of the hand-written bug classes of tests/broken/ the mutation engine
(``rnnsym.conformance.mutations``) names by itself, and its time per diagnosis.

Each broken torch drop-in of tests/broken/impls.py is checked by the
framework checker on core input (one layer, one direction, fixed lengths, initial state on);
its shrunk counterexample is then handed to the mutation engine alone (the built-in cell the
config implies, the canonical parameters) and the edits it finds are printed beside the
hand-written table's diagnosis.

    PYTHONPATH=$PWD python scripts/mutations_on_broken.py [--examples N]
"""
import argparse
import inspect
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "broken"))

import rnnsym  # noqa: E402
from broken import impls  # noqa: E402
from rnnsym.cells import builtin  # noqa: E402
from rnnsym.conformance.anycell import expected_for  # noqa: E402
from rnnsym.conformance.cases import Case  # noqa: E402
from rnnsym.conformance.mutations import diagnose_cell  # noqa: E402
from rnnsym.conformance.oracle import variant_for  # noqa: E402
from rnnsym.conformance.target import Outcome  # noqa: E402
from rnnsym.codegen.compile import compile_cell  # noqa: E402
from rnnsym.frameworks.cell_api import CellConfig  # noqa: E402
from rnnsym.frameworks.user import resolve_harness  # noqa: E402


def cell_case(harness, ce):
    """The framework counterexample as a case of the symbolic-cell check."""
    config = ce.config
    options = variant_for(config)
    cell = builtin(config.cell, **options)
    table = cell.shapes()
    dims = tuple((str(d), {"d_in": config.d_in, "d_h": config.d_h,
                           "d_proj": config.d_proj}[str(d)]) for d in table.dims)
    cc = CellConfig(cell=config.cell, T=config.T, B=config.B, dims=dims, dtype=config.dtype)
    params = harness.to_canonical(config, ce.values)[0][0]
    params = {k: v for k, v in params.items() if k in cell.params}
    state0 = None if ce.state0 is None else {k: np.asarray(v)[0, 0] for k, v in ce.state0.items()}
    return cell, Case(cc, params, np.asarray(ce.x), state0)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=200)
    args = ap.parse_args(argv)
    classes = [(m, c) for m in (impls,)
               for _, c in inspect.getmembers(m, inspect.isclass)
               if c.__module__ == m.__name__ and not c.__name__.startswith("_")
               and "Correct" not in (c.__doc__ or "") and hasattr(c, "CELL")]
    times, named = [], 0
    rows = []
    for module, cls in classes:
        try:
            report = rnnsym.check(cls, cls.CELL, examples=args.examples, seed=1, layers=(1,),
                                  bidirectional="no", features="initial_state")
        except Exception as exc:  # noqa: BLE001 - e.g. a feature the class needs
            rows.append((cls.__name__, "-", f"not checkable on core input: {exc}", "", 0.0))
            continue
        ce = report.counterexample
        if ce is None or ce.got is None or report.failure_kind not in ("wrong numbers",
                                                                       "wrong gradients"):
            rows.append((cls.__name__, report.verdict, report.diagnosis or report.failure_kind,
                         "(no wrong-numbers counterexample on core input)", 0.0))
            continue
        harness = resolve_harness(cls, cls.CELL)[0]
        cell, case = cell_case(harness, ce)
        module_ = compile_cell(cell)
        oracle = expected_for(module_, cell, case)
        start = time.perf_counter()
        outcome = Outcome(case, *oracle)
        outcome.got = dict(ce.got)
        outcome.kind = "wrong numbers"
        diagnoses = diagnose_cell(cell, module_, outcome)
        elapsed = time.perf_counter() - start
        times.append(elapsed)
        named += bool(diagnoses)
        rows.append((cls.__name__, report.verdict, report.diagnosis or "-",
                     diagnoses[0] if diagnoses else "none", elapsed))
    print("| class | verdict | hand-written table | mutation engine | s |")
    print("|---|---|---|---|---|")
    for name, verdict, table_, mut, s in rows:
        print(f"| {name} | {verdict} | {str(table_)[:80]} | {str(mut)[:110]} | {s:.2f} |")
    print(f"mutation engine named {named}/{len(times)} wrong-numbers counterexamples; "
          f"median {statistics.median(times):.2f} s, max {max(times):.2f} s per diagnosis")


if __name__ == "__main__":
    main()
