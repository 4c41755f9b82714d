"""``rnnsym bench``: generated forward vs hand-written NumPy vs the seed's loop vs torch CPU.

The NumPy contenders run side by side in one process, interleaved round by round, on the same
inputs; torch runs its rounds right after them (its idle OpenMP threads spin and would slow the
next contender); the table reports medians and ratios. Timings are never asserted by tests: machines are shared
and noisy, so read the ratios, not the absolute numbers.

Contenders:
  generated  the module rnnsym generates for the cell (``rnnsym.compile``)
  best-numpy hand-optimised batched NumPy (fused gates, hoisted input GEMM, in-place updates),
             written for this benchmark: the bar the generated code must meet
  reference  ``rnnsym.reference``: the plain, readable hand-written version (one GEMM per gate)
  seed-loop  the seed tutorial's per-sample loop (Elman only)
  gemms-only the forward pass's GEMMs alone: what bounds any NumPy implementation from below
  torch      ``torch.nn.RNN/LSTM/GRU`` on the CPU, when torch is installed
"""
from __future__ import annotations

import statistics
import time

import numpy as np

SHAPES = [(100, 32, 64, 128), (1000, 1, 16, 32), (50, 64, 256, 512)]
QUICK_SHAPES = [(20, 4, 8, 16)]
CELLS = ("elman", "lstm", "gru")


def add_arguments(p):
    p.add_argument("cells", nargs="*", metavar="CELL", help="elman, lstm, gru (default: all)")
    p.add_argument("--dtype", choices=["float32", "float64", "both"], default="both")
    p.add_argument("--repeats", type=int, default=7, help="timed rounds per contender (median)")
    p.add_argument("--quick", action="store_true", help="one tiny shape (a smoke test)")
    p.add_argument("--shape", action="append", default=[], metavar="T,B,D_IN,D_H",
                   help="a shape to time instead of the defaults (repeatable)")
    p.add_argument("--no-torch", action="store_true", help="leave torch out")
    p.add_argument("--unroll", action="store_true",
                   help="time the symbolic chain/nested unrolls instead of forward passes")
    p.add_argument("--backward", action="store_true",
                   help="time forward + backward (BPTT): generated vs the hand-written reference "
                        "vs torch autograd")


# --- hand-optimised NumPy baselines ------------------------------------------------------------
def _sigmoid_inplace(u):
    """σ(u) in place, overflow-free: (1 + tanh(u/2)) / 2 in float32, e^min(u,0) / (1 + e^-|u|)
    otherwise (the same per-dtype choice as the generated code)."""
    if u.dtype == np.float32:
        u *= 0.5
        np.tanh(u, out=u)
        u *= 0.5
        u += 0.5
        return u
    e = np.abs(u)
    np.negative(e, out=e)
    np.exp(e, out=e)
    e += 1
    np.minimum(u, 0, out=u)
    np.exp(u, out=u)
    u /= e
    return u


def best_elman(p, x, h):
    T, B, _ = x.shape
    W_hh_T = np.ascontiguousarray(p["W_hh"].T, dtype=x.dtype)
    xw = (x.reshape(T * B, -1) @ np.ascontiguousarray(p["W_xh"].T, dtype=x.dtype)
          + p["b_h"]).reshape(T, B, -1)
    out = np.empty((T, B, W_hh_T.shape[1]), x.dtype)
    for t in range(T):
        np.matmul(h, W_hh_T, out=out[t])
        out[t] += xw[t]
        np.tanh(out[t], out=out[t])
        h = out[t]
    return out, h


def best_lstm(p, x, h, c):
    T, B, _ = x.shape
    H = c.shape[1]
    # transposed into C-contiguous copies: OpenBLAS is slower on the transposed (F-order) views
    W_x = np.ascontiguousarray(np.concatenate([p["W_xi"], p["W_xf"], p["W_xg"], p["W_xo"]]).T, dtype=x.dtype)
    W_h = np.ascontiguousarray(np.concatenate([p["W_hi"], p["W_hf"], p["W_hg"], p["W_ho"]]).T, dtype=x.dtype)
    b = np.concatenate([p["b_xi"] + p["b_hi"], p["b_xf"] + p["b_hf"],
                        p["b_xg"] + p["b_hg"], p["b_xo"] + p["b_ho"]])
    xw = (x.reshape(T * B, -1) @ W_x + b).reshape(T, B, 4 * H)
    gates = np.empty((B, 4 * H), x.dtype)
    out = np.empty((T, B, H), x.dtype)
    for t in range(T):
        np.matmul(h, W_h, out=gates)
        gates += xw[t]
        _sigmoid_inplace(gates[:, :2 * H])
        np.tanh(gates[:, 2 * H:3 * H], out=gates[:, 2 * H:3 * H])
        _sigmoid_inplace(gates[:, 3 * H:])
        c = gates[:, H:2 * H] * c
        c += gates[:, :H] * gates[:, 2 * H:3 * H]
        np.tanh(c, out=out[t])
        out[t] *= gates[:, 3 * H:]
        h = out[t]
    return out, h, c


def best_gru(p, x, h):
    T, B, _ = x.shape
    H = h.shape[1]
    W_x = np.ascontiguousarray(np.concatenate([p["W_xr"], p["W_xz"], p["W_xn"]]).T, dtype=x.dtype)
    W_h = np.ascontiguousarray(np.concatenate([p["W_hr"], p["W_hz"], p["W_hn"]]).T, dtype=x.dtype)
    b_x = np.concatenate([p["b_xr"] + p["b_hr"], p["b_xz"] + p["b_hz"], p["b_xn"]])
    xw = (x.reshape(T * B, -1) @ W_x + b_x).reshape(T, B, 3 * H)
    b_hn = p["b_hn"].astype(x.dtype)
    hw = np.empty((B, 3 * H), x.dtype)
    out = np.empty((T, B, H), x.dtype)
    for t in range(T):
        np.matmul(h, W_h, out=hw)
        rz = hw[:, :2 * H]
        rz += xw[t, :, :2 * H]
        _sigmoid_inplace(rz)
        n = hw[:, 2 * H:]
        n += b_hn
        n *= rz[:, :H]
        n += xw[t, :, 2 * H:]
        np.tanh(n, out=n)
        # h = (1 - z) * n + z * h  =  n + z * (h - n)
        np.subtract(h, n, out=out[t])
        out[t] *= rz[:, H:]
        out[t] += n
        h = out[t]
    return out, h


def gemms_only(x, W_x, W_h, B, H):
    """The GEMMs of a forward pass and nothing else (h stays zero): the floor for NumPy, since
    every NumPy implementation must at least run these."""
    T = x.shape[0]
    xw = x.reshape(T * B, -1) @ W_x
    h = np.zeros((B, H), x.dtype)
    buf = np.empty((B, W_h.shape[1]), x.dtype)
    for _ in range(T):
        np.matmul(h, W_h, out=buf)
    return xw, buf


# --- set-up ------------------------------------------------------------------------------------
def _params(cell_name, d_in, d_h, dtype, rng):
    from rnnsym.cells import builtin
    from rnnsym.shapes import derive
    cell = builtin(cell_name)
    shapes = derive(cell).concrete(d_in=d_in, d_h=d_h)
    scale = 1 / np.sqrt(d_h)
    return cell, {k: (rng.uniform(-scale, scale, shapes[k])).astype(dtype) for k in cell.params}


def _torch_module(cell_name, params, d_in, d_h, dtype):
    import torch
    cls = {"elman": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell_name]
    m = cls(d_in, d_h).to(getattr(torch, dtype))
    gates = {"elman": None, "lstm": "ifgo", "gru": "rzn"}[cell_name]
    with torch.no_grad():
        if gates is None:
            m.weight_ih_l0.copy_(torch.from_numpy(params["W_xh"]))
            m.weight_hh_l0.copy_(torch.from_numpy(params["W_hh"]))
            m.bias_ih_l0.copy_(torch.from_numpy(params["b_h"]))
            m.bias_hh_l0.zero_()
        else:
            for dst, w in (("weight_ih_l0", "W_x"), ("weight_hh_l0", "W_h"),
                           ("bias_ih_l0", "b_x"), ("bias_hh_l0", "b_h")):
                getattr(m, dst).copy_(torch.from_numpy(
                    np.concatenate([params[f"{w}{g}"] for g in gates])))
    return m


def contenders(cell_name, params, x, use_torch=True):
    from rnnsym import compile as rnn_compile
    from rnnsym import reference
    from rnnsym.cells import builtin
    B, d_h = x.shape[1], params["W_hh" if cell_name == "elman" else "W_hi" if cell_name == "lstm"
                                 else "W_hr"].shape[0]
    zeros = np.zeros((B, d_h), x.dtype)
    gen = rnn_compile(builtin(cell_name))
    out = {"generated": lambda: gen.forward(params, x)}
    if cell_name == "elman":
        out["best-numpy"] = lambda: best_elman(params, x, zeros)
        out["reference"] = lambda: reference.elman_forward(params, x)
        if x.shape[0] * x.shape[1] <= 3200:
            out["seed-loop"] = lambda: reference.seed_elman_forward_per_sample(params, x)
    elif cell_name == "lstm":
        out["best-numpy"] = lambda: best_lstm(params, x, zeros, zeros)
        out["reference"] = lambda: reference.lstm_forward(params, x)
    else:
        out["best-numpy"] = lambda: best_gru(params, x, zeros)
        out["reference"] = lambda: reference.gru_forward(params, x)
    gates = {"elman": ("h",), "lstm": tuple("ifgo"), "gru": tuple("rzn")}[cell_name]
    wx = "W_xh" if cell_name == "elman" else None
    W_x = np.ascontiguousarray(np.concatenate(
        [params[wx]] if wx else [params[f"W_x{g}"] for g in gates]).T)
    W_h = np.ascontiguousarray(np.concatenate(
        [params["W_hh"]] if wx else [params[f"W_h{g}"] for g in gates]).T)
    out["gemms-only"] = lambda: gemms_only(x, W_x, W_h, B, d_h)
    if use_torch:
        try:
            import torch
        except ImportError:
            torch = None
        if torch is not None:
            m = _torch_module(cell_name, params, x.shape[2], d_h, str(x.dtype))
            xt = torch.from_numpy(x)

            def run_torch():
                with torch.no_grad():
                    return m(xt)
            out["torch"] = run_torch
    return out


def backward_contenders(cell_name, params, x, use_torch=True):
    """Forward + backward over all T steps, from an upstream gradient of the outputs."""
    from rnnsym import compile as rnn_compile
    from rnnsym import reference
    from rnnsym.cells import builtin
    gen = rnn_compile(builtin(cell_name))
    d_out = np.random.default_rng(1).standard_normal(gen.forward(params, x[:1])[0].shape[1:])
    d_out = np.broadcast_to(d_out, (x.shape[0],) + d_out.shape).astype(x.dtype)

    def generated():
        _, _, cache = gen.forward(params, x, return_cache=True)
        return gen.backward(params, cache, d_out)
    ref = {"elman": reference.elman_backward, "lstm": reference.lstm_backward,
           "gru": reference.gru_backward}[cell_name]
    out = {"generated": generated, "reference": lambda: ref(params, x, None, d_out)}
    if use_torch:
        try:
            import torch
        except ImportError:
            torch = None
        if torch is not None:
            d_h = params["W_hh" if cell_name == "elman" else "W_hi" if cell_name == "lstm"
                         else "W_hr"].shape[0]
            m = _torch_module(cell_name, params, x.shape[2], d_h, str(x.dtype))
            xt = torch.from_numpy(np.ascontiguousarray(x)).requires_grad_()
            gt = torch.from_numpy(np.ascontiguousarray(d_out))

            def run_torch():
                m.zero_grad(set_to_none=True)
                xt.grad = None
                y, _ = m(xt)
                y.backward(gt)
                return xt.grad
            out["torch"] = run_torch
    return out


BACKWARD_COLUMNS = ("generated", "reference", "torch")
BACKWARD_RATIOS = (("gen/ref", "generated", "reference"), ("gen/torch", "generated", "torch"))


def time_all(fns: dict, repeats: int) -> dict:
    """Median seconds per contender; rounds interleave the contenders to share the noise."""
    for f in fns.values():
        f()                                  # warm-up
    times = {k: [] for k in fns}
    keys = list(fns)
    for r in range(repeats):
        # rotate the order each round, so that no contender always runs after the same one
        for k in keys[r % len(keys):] + keys[:r % len(keys)]:
            f = fns[k]
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def run(cells=CELLS, shapes=SHAPES, dtypes=("float32", "float64"), repeats=7, use_torch=True,
        log=None, backward=False, progress=None):
    """One row per cell, shape and dtype: each contender's median seconds. ``backward``: forward
    + backward passes (``backward_contenders``) instead of forward passes. ``progress`` gets a
    line before each row is timed (``[2/18] lstm (T,B,d_in,d_h)=... float32: ...``): a row can
    take minutes."""
    make = backward_contenders if backward else contenders
    rng = np.random.default_rng(0)
    rows = []
    total = len(cells) * len(shapes) * len(dtypes)
    for cell_name in cells:
        for (T, B, d_in, d_h) in shapes:
            for dtype in dtypes:
                _, params = _params(cell_name, d_in, d_h, dtype, rng)
                x = rng.standard_normal((T, B, d_in)).astype(dtype)
                fns = make(cell_name, params, x, use_torch)
                if progress:
                    progress(f"[{len(rows) + 1}/{total}] {cell_name} (T,B,d_in,d_h)="
                             f"{(T, B, d_in, d_h)} {dtype}: timing {', '.join(fns)} "
                             f"({repeats} rounds each) ...")
                # torch runs in its own rounds, after the NumPy contenders: its OpenMP threads
                # keep spinning after a call and would slow whatever ran next on 2 cores
                torch_fn = {k: fns.pop(k) for k in ("torch",) if k in fns}
                med = time_all(fns, repeats)
                if torch_fn:
                    med.update(time_all(torch_fn, repeats))
                rows.append({"cell": cell_name, "shape": (T, B, d_in, d_h), "dtype": dtype, **med})
                if log:
                    log(format_rows([rows[-1]], header=len(rows) == 1, backward=backward))
    return rows


COLUMNS = ("generated", "best-numpy", "reference", "seed-loop", "gemms-only", "torch")


RATIOS = (("gen/best", "generated", "best-numpy"), ("gen/torch", "generated", "torch"),
          ("seed/gen", "seed-loop", "generated"))


def format_rows(rows, header=True, backward=False) -> str:
    columns, ratios = (BACKWARD_COLUMNS, BACKWARD_RATIOS) if backward else (COLUMNS, RATIOS)
    lines = []
    if header:
        lines.append(f"{'cell':<6} {'(T,B,d_in,d_h)':<18} {'dtype':<8} "
                     + " ".join(f"{c:>11}" for c in columns)
                     + "".join(f" {name:>9}" for name, _, _ in ratios))
    for r in rows:
        cells = " ".join(f"{r[c] * 1e3:>9.2f}ms" if c in r else f"{'-':>11}" for c in columns)

        def ratio(a, b):
            return f"{r[a] / r[b]:>9.2f}" if a in r and b in r else f"{'-':>9}"
        lines.append(f"{r['cell']:<6} {str(r['shape']):<18} {r['dtype']:<8} {cells}"
                     + "".join(f" {ratio(a, b)}" for _, a, b in ratios))
    return "\n".join(lines)


def _check_memory(shapes, backward: bool) -> None:
    """Refuse a --shape whose arrays (float64 input, LSTM gates and outputs, weights; the
    backward's cache besides) would pass the memory limit, before allocating anything."""
    from rnnsym.vanishing.curves import MEMORY_LIMIT
    for T, B, d_in, d_h in shapes:
        need = 8 * (T * B * (d_in + 5 * d_h) * (3 if backward else 1) + 4 * d_h * (d_in + d_h))
        if need > MEMORY_LIMIT:
            raise ValueError(f"--shape {T},{B},{d_in},{d_h}: needs about {need / 2**30:,.1f} GiB, "
                             f"more than the limit of {MEMORY_LIMIT / 2**30:g} GiB")


def main(args) -> int:
    import sys
    if args.unroll:
        from rnnsym import bench_unroll
        rows = bench_unroll.run(cells=tuple(args.cells) or None)
        print(bench_unroll.format_table(rows))
        return 0
    if args.repeats < 1:
        raise ValueError(f"--repeats must be at least 1, got {args.repeats}")
    cells = tuple(c if c != "rnn" else "elman" for c in args.cells) or CELLS
    for c in cells:
        if c not in CELLS:
            raise ValueError(f"unknown cell {c!r} for bench; choose from {', '.join(CELLS)}")
    shapes = QUICK_SHAPES if args.quick else SHAPES
    if args.shape:
        shapes = []
        for s in args.shape:
            parts = s.split(",")
            if len(parts) != 4 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
                raise ValueError(f"--shape takes T,B,D_IN,D_H (positive integers), got {s!r}")
            shapes.append(tuple(int(p) for p in parts))
    _check_memory(shapes, args.backward)
    dtypes = ("float32", "float64") if args.dtype == "both" else (args.dtype,)

    def progress(line):             # stderr, so that stdout stays the table
        print(line, file=sys.stderr, flush=True)
    if args.backward:
        print(f"median of {args.repeats} interleaved rounds; times per forward + backward pass "
              "over T steps (torch: autograd, CPU)", file=sys.stderr)
        run(cells, shapes, dtypes, args.repeats, not args.no_torch,
            log=lambda s: print(s, flush=True), backward=True, progress=progress)
        return 0
    print(f"median of {args.repeats} interleaved rounds; times per forward pass over T steps",
          file=sys.stderr)
    run(cells, shapes, dtypes, args.repeats, not args.no_torch,
        log=lambda s: print(s, flush=True), progress=progress)
    return 0
