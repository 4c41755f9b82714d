"""The cost of running the target in a worker process (``rnnsym.conformance.isolation``).

Runs ``rnnsym check`` as a user does (a fresh process each time: imports, worker start,
search, report), isolated (the default) and ``--in-process``, alternating the two so that both
meet the same load, and prints the median wall time of each and their ratio::

    PYTHONPATH=$PWD python docs/scripts/bench_isolation.py [--runs 5] [--examples 500]

Targets: ``torch --cell lstm``, the generated NumPy GRU ``generated/gru_reset_after.py:forward``
(a function target) and the generated SRU ``generated/sru.py:forward --cell sru`` (the any-cell
check, ``rnnsym.conformance.anycell``); ``--only TEXT`` picks those whose label contains TEXT. Same seed in every run: both modes check the same cases.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TARGETS = {
    "torch --cell lstm": ["torch", "--cell", "lstm"],
    "function (generated gru)": [str(ROOT / "generated" / "gru_reset_after.py") + ":forward",
                                 "--cell", "gru"],
    "any cell (generated sru)": [str(ROOT / "generated" / "sru.py") + ":forward",
                                 "--cell", "sru"],
}


def run_once(args: list[str], in_process: bool) -> float:
    cmd = [sys.executable, "-m", "rnnsym", "check", *args, "--no-progress"]
    if in_process:
        cmd.append("--in-process")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stdout}{done.stderr}")
    return elapsed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per mode (default 5)")
    parser.add_argument("--examples", type=int, default=500, help="examples per run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default="", help="only the targets whose label contains this")
    opts = parser.parse_args(argv)
    print(f"{'target':28s} {'isolated':>10s} {'in-process':>11s} {'ratio':>6s}   "
          f"(median wall s of {opts.runs} runs, --examples {opts.examples})")
    for label, args in TARGETS.items():
        if opts.only not in label:
            continue
        args = args + ["--examples", str(opts.examples), "--seed", str(opts.seed)]
        times = {True: [], False: []}
        for _ in range(opts.runs):
            for in_process in (False, True):
                times[in_process].append(run_once(args, in_process))
        iso, inp = statistics.median(times[False]), statistics.median(times[True])
        print(f"{label:28s} {iso:10.2f} {inp:11.2f} {iso / inp:6.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
