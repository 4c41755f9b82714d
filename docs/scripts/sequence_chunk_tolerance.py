"""Why a chunked path needs its own tolerance term (docs/sequence-targets.md, "Tolerance"):
the correct chunked NumPy GLA of tests/sequence_targets/gla_numpy.py, float32, one chunk of T
steps, compared with the float64 oracle under the sequential model and under the chunked one.
Prints the largest error / tolerance over 4 seeds per row (below 1: passes).

    PYTHONPATH=. python docs/scripts/sequence_chunk_tolerance.py
"""
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "sequence_targets"))

import gla_numpy  # noqa: E402

from rnnsym.conformance.sequence_oracle import expected  # noqa: E402
from rnnsym.conformance.sequence_properties import compare_all  # noqa: E402
from rnnsym.conformance.sequence_strategies import Draw, build_case, round_case  # noqa: E402
from rnnsym.conformance.sequence_tolerance import sequence_tolerance  # noqa: E402


def ratios(lo, hi, T, seeds=4):
    chunked, sequential = [], []
    for seed in range(seeds):
        d = Draw(sizes=(("d_k", 16), ("d_v", 8)), B=2, T=T, kv_heads=2, group=1, chunk=T,
                 chunk2=None, decay="mild", beta="uniform", keys="random", dt="ordinary",
                 state0=True, split=0, segments=(), seed=seed)
        case = build_case(gla_numpy.correct, d)
        g = -np.random.default_rng(seed).uniform(lo, hi, case.inputs["g"].shape)
        case = round_case(replace(case, inputs=dict(case.inputs, g=g)), "float32")
        got, exp = gla_numpy.chunked(case, T, ()), expected(case)
        for algorithm, chunk, into in (("chunked", T, chunked), ("sequential", None, sequential)):
            tol = sequence_tolerance(case, {}, exp, algorithm=algorithm, chunk=chunk,
                                     accumulates=None)
            into.append(compare_all(got, exp, tol, "")[0])
    return max(chunked), max(sequential)


if __name__ == "__main__":
    print("| log-decay per step | T = chunk | chunked model | sequential model |")
    print("|---|---|---|---|")
    for lo, hi in ((0, 1), (1, 3), (2, 8)):
        for T in (16, 64):
            c, s = ratios(lo, hi, T)
            print(f"| -U({lo}, {hi}) | {T} | {c:.3f} | {s:.2f} |")
