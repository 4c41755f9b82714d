"""Measure the transformers sequence targets against rnnsym's float64 oracle on the cases of
tests/test_transformers_targets.py: the table and the decode-after-prefill gaps of
docs/targets-transformers.md.

    PYTHONPATH=$PWD python docs/scripts/transformers_targets_measure.py
"""
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

warnings.filterwarnings("ignore")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
import test_transformers_targets as TT  # noqa: E402

from rnnsym.conformance.sequence_oracle import expected  # noqa: E402
from rnnsym.frameworks import transformers_gdn as gdn  # noqa: E402
from rnnsym.frameworks import transformers_mamba as mam  # noqa: E402



def rounded(case, keep=("g",), keep_params=("A",)):
    """The case with its inputs rounded to its dtype (the oracle's view of a low-precision run),
    but for those the model passes in float32."""
    def r(a):
        return torch.tensor(a).to(getattr(torch, case.dtype)).double().numpy()
    return TT.with_(case, inputs={n: (a if n in keep else r(a)) for n, a in case.inputs.items()},
                    params={n: (a if n in keep_params else r(a)) for n, a in case.params.items()},
                    state0=case.state0)   # the state stays float32, as the models' caches hold it


def row(tname, t, path, case, cs, keep=("g",)):
    want, wf = expected(rounded(case, keep) if case.dtype != "float32" else case, t.cell_options)
    t0 = time.perf_counter()
    out, f = t.path(path).run(case, cs)
    dt = time.perf_counter() - t0
    k = list(wf)[0]
    print(f"| {tname} | {path} | {cs} | {case.dtype} | {np.abs(out - want).max():.2e} | "
          f"{np.abs(f[k] - wf[k]).max():.2e} | {np.abs(want).max():.2f} | {dt * 1e3:.0f} ms |")


def decode_after_prefill(t, case, T):
    full, ff = t.path("chunked").run(case, 4)
    _, pre = t.path("chunked").run(TT.steps(case, 0, T - 1), 4)
    out, f = t.path("step").run(TT.with_(TT.steps(case, T - 1, T), state0=pre))
    want, _ = expected(case, t.cell_options)
    print(f"{t.name} {t.cell_options}: step vs prefill out {np.abs(out[:, 0] - full[:, T - 1]).max():.3g} "
          f"state {np.abs(f['h'] - ff['h']).max():.3g} (|out| <= {np.abs(full[:, T - 1]).max():.3g}); "
          f"chunked vs oracle {np.abs(full - want).max():.3g}, step vs oracle "
          f"{np.abs(out[:, 0] - want[:, T - 1]).max():.3g}")


def main():
    print("| target | path | chunk | dtype | max abs err out | max abs err state | max abs out | time |")
    q, k_, m2, m1 = gdn.qwen3_next_gdn(), gdn.kimi_linear_kda(), mam.mamba2(), mam.mamba()
    rng = np.random.default_rng(0)
    for dt in ("float32","bfloat16","float16"):
        c = TT.gdn_case(rng, T=64, dtype=dt)
        row("qwen3-next-gdn", q, "chunked", c, 16); row("qwen3-next-gdn", q, "recurrent", c, None)
        c = TT.kda_case(rng, T=64); c = TT.with_(c, dtype=dt)
        row("kimi-linear-kda", k_, "chunked", c, 16); row("kimi-linear-kda", k_, "recurrent", c, None)
        c = TT.mamba2_case(rng, T=64, dtype=dt)
        row("mamba2", m2, "chunked", c, 16, keep=())
        c = TT.with_(TT.mamba_case(rng, T=64), dtype=dt)
        row("mamba", m1, "recurrent", c, None, keep=())
    c = TT.mamba2_case(rng, T=100, A=np.full((TT.H, 1), -30.0), dt=np.full((TT.B, 100, TT.H), 5.0))
    c = TT.with_(c, params={**c.params, "dt_bias": np.zeros((TT.H, 1))})
    row("mamba2 strong decay (-150/step)", m2, "chunked", c, 256)
    c = TT.gdn_case(rng, T=200, g=np.full((TT.B, 200, TT.H), -30.0))
    row("qwen3-next strong decay (-30/step)", q, "chunked", c, 64); row("qwen3-next strong decay (-30/step)", q, "recurrent", c, None)

    rng = np.random.default_rng(15)
    for lim in ((0.0, math.inf), (0.0, 0.1)):
        decode_after_prefill(mam.mamba2(dt_limit=lim), TT.mamba2_case(rng, T=9), 9)
    decode_after_prefill(mam.nemotron_h_mamba2(),
                         TT.mamba2_case(np.random.default_rng(2), T=9, dt=np.full((TT.B, 9, TT.H), -9.0)), 9)


if __name__ == "__main__":
    main()
