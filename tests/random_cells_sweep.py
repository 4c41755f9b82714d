"""Random text-defined cells through ``rnnsym check``: the generated module passes as a target,
and a random single edit of its equations (``rnnsym.conformance.mutations``) is caught and named.

    PYTHONPATH=$PWD python scripts/random_cells_sweep.py [N] [--seed S] [--examples E]

Prints one line per cell and the rates: passed, caught, named (the edit made is among the
diagnoses), and the median diagnosis time. Cells come from the generator of
tests/test_codegen_random_cells.py.
"""
import argparse
import random
import statistics
import time

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import seed as hseed

import rnnsym
from rnnsym.conformance.anycell import defined_cell
from rnnsym.conformance.mutations import mutant_forward, mutants
from rnnsym.frameworks import UsageError
from tests.test_codegen_random_cells import cell_texts


def texts(n: int, seed: int) -> list:
    found = []

    @settings(max_examples=n, database=None, suppress_health_check=list(HealthCheck),
              deadline=None)
    @hseed(seed)
    @given(cell_texts())
    def collect(drawn):
        found.append(drawn)
    collect()
    return found[:n]


def equivalent(cell, module, mutant, seed: int) -> bool:
    """Whether the edit leaves every output unchanged on 3 random cases (e.g. a gate no output
    reads, two terms of a symmetric sum exchanged): no check can catch it."""
    rng = np.random.default_rng(seed)
    table = cell.shapes()
    for _ in range(3):
        sizes = {str(d): int(rng.integers(2, 6)) for d in table.dims}
        shapes = table.concrete(**sizes)
        params = {p: rng.uniform(-1, 1, shapes[p]) for p in cell.params}
        x = rng.uniform(-1, 1, (4, 2) + shapes[cell.inputs[0]])
        state0 = {s: rng.uniform(-1, 1, (2,) + shapes[s]) for s in cell.states}
        with np.errstate(all="ignore"):
            a, fa = module.forward(params, x, state0)
            b, fb = mutant(params, x, state0)
        if not (np.allclose(a, b, equal_nan=True) and
                all(np.allclose(fa[k], fb[k], equal_nan=True) for k in fa)):
            return False
    return True


def sweep(n: int, seed: int = 0, examples: int = 30, verbose: bool = False) -> list:
    rng = random.Random(seed)
    results = []
    for text, states, readouts in texts(8 * n, seed):
        if sum("skipped" not in r for r in results) >= n:
            break
        try:
            cell = defined_cell(text, readouts=",".join(readouts))
            module = rnnsym.compile(cell)
            ok = rnnsym.check(module.forward, None, define=text, readouts=",".join(readouts),
                              examples=examples, seed=seed)
        except (UsageError, ValueError) as exc:   # shapes left open, a size only a state fixes
            results.append({"text": text, "skipped": str(exc)})
            if verbose:
                print(f"skip {exc}")
            continue
        candidates = [m for m in mutants(cell) if mutant_forward(m, module) is not None]
        mutant = rng.choice(candidates)
        target = mutant_forward(mutant, module)
        start = time.perf_counter()
        ko = rnnsym.check(target, None, define=text, readouts=",".join(readouts),
                          examples=examples, seed=seed)
        elapsed = time.perf_counter() - start
        named = any(mutant.describe(cell) in d for d in ko.diagnoses)
        row = {"text": text, "edit": mutant.what, "passed": ok.passed,
               "caught": not ko.passed, "named": named, "seconds": elapsed,
               "diagnosis": ko.diagnosis,
               "equivalent": not ko.passed or equivalent(cell, module, target, seed)}
        results.append(row)
        if verbose:
            print(f"{'ok ' if ok.passed else 'FAIL'} "
                  f"{'caught' if row['caught'] else 'equivalent' if row['equivalent'] else 'missed'} "
                  f"{'named' if named else '-----'} {elapsed:5.1f}s  {mutant.what}  |  {text}")
    return results


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("n", type=int, nargs="?", default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--examples", type=int, default=30)
    args = ap.parse_args(argv)
    np.seterr(all="ignore")
    results = sweep(args.n, args.seed, args.examples, verbose=True)
    skipped = [r for r in results if "skipped" in r]
    results = [r for r in results if "skipped" not in r]
    print(f"skipped {len(skipped)} drawn cells (shapes left open, a size only a state fixes)")
    n = len(results)
    caught = [r for r in results if r["caught"]]
    print(f"{n} cells: generated module passes {sum(r['passed'] for r in results)}/{n}; "
          f"mutation caught {len(caught)}/{n}; named {sum(r['named'] for r in caught)}/"
          f"{len(caught)} of those caught; of the {n - len(caught)} not caught, "
          f"{sum(r['equivalent'] and not r['caught'] for r in results)} leave every output "
          f"unchanged (equivalent edits); median check+diagnosis time of a mutant "
          f"{statistics.median(r['seconds'] for r in results):.2f} s")


if __name__ == "__main__":
    main()
