"""The table of the closing note of issue 21: every registered sequence target x dtype, each
property's verdict per path, the time, and every counterexample line.

    PYTHONPATH=. python docs/scripts/sequence_targets_table.py --examples 30 --seed 0 > table.md

One process, one target after the other; times are wall-clock on whatever machine runs it.
"""
from __future__ import annotations

import argparse
import sys
import warnings

from rnnsym.conformance.sequence import check_sequence
from rnnsym.frameworks.registry import TARGETS, sequence_target

MARK = {"PASS": "pass", "MISMATCH": "**FAIL**", "UNSUPPORTED": "unsup", "N/A": "-"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtypes", default="float32,bfloat16,float16")
    ap.add_argument("--targets", default="")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    names = [t.name for t in TARGETS if t.sequence and t.prefix is None]
    if args.targets:
        names = [n for n in names if n in args.targets.split(",")]
    rows, failures = [], []
    props = None
    for name in names:
        target = sequence_target(name)
        for dtype in args.dtypes.split(","):
            report = check_sequence(target, dtype=dtype, examples=args.examples, seed=args.seed)
            props = props or list(dict.fromkeys(r.property for r in report.results))
            cells = []
            for prop in props:
                per = [f"{r.path} {MARK[r.verdict]}" for r in report.results
                       if r.property == prop and r.verdict != "N/A"]
                cells.append(", ".join(per) or "-")
            rows.append(f"| `{name}` | {dtype} | {report.verdict} | {report.elapsed:.1f} s | "
                        + " | ".join(cells) + " |")
            for r in report.results:
                if r.verdict == "MISMATCH":
                    failures.append(f"- `{name}` {dtype} {r.property}/{r.path}: {r.message}\n"
                                    f"  diagnosis: {r.diagnosis}\n  replay: `{r.replay}`")
            print(rows[-1], file=sys.stderr, flush=True)
    print("| target | dtype | verdict | time | " + " | ".join(props) + " |")
    print("|---" * (4 + len(props)) + "|")
    print("\n".join(rows))
    print("\nCounterexamples:\n")
    print("\n".join(failures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
