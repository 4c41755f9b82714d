"""Benchmark of the linear-attention recurrences (not a test): the generated sequential
``forward``, the generated ``forward_chunked``, a sequential torch reference and onnxruntime's
``LinearAttention`` (opset 27), on the same float32 inputs, medians of interleaved rounds.

    OPENBLAS_NUM_THREADS=1 python -m rnnsym.bench_linear --threads 1   # T=4096, d_k=d_v=64, B·H=8
    python -m rnnsym.bench_linear --rule linear --T 1024 --repeat 3

``--threads`` sets torch's and onnxruntime's intra-op threads; NumPy's BLAS threads are set by
``OPENBLAS_NUM_THREADS`` before Python starts (on a loaded machine one thread each is the fair
comparison: torch with 2 threads on 2 busy cores ran 15× slower per step than with 1).

Heads are the batch axis of the generated modules (one head per cell, B·H rows); onnxruntime gets
them packed, (1, T, H·d), with q_num_heads = kv_num_heads = H. Before timing, every candidate's
outputs are compared with the generated forward in float64 (the error is printed).
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from rnnsym.codegen.compile import compile_cell
from rnnsym.codegen.files import generated_cell

#: --rule: (generated variant, ONNX update_rule, per-key decay)
RULES = {"linear": ("linear_attention", "linear", None), "gated": ("gla", "gated", True),
         "gated_head": ("gla_decay_head", "gated", False)}


def inputs(T, BH, d_k, d_v, rule, seed=0):
    rng = np.random.default_rng(seed)
    x = {"q": rng.standard_normal((T, BH, d_k)), "k": rng.standard_normal((T, BH, d_k)) / np.sqrt(d_k),
         "v": rng.standard_normal((T, BH, d_v))}
    per_key = RULES[rule][2]
    if per_key is not None:
        x["g"] = -rng.uniform(0.001, 0.1, (T, BH, d_k if per_key else 1))
    return {k: v.astype(np.float32) for k, v in x.items()}


def torch_sequential(x):
    """The sequential recurrence in torch (float32): S = exp(g) * S + k vᵀ, o = Sᵀ q / sqrt(d_k)."""
    import torch
    q, k, v = (torch.from_numpy(x[n]) for n in ("q", "k", "v"))
    g = torch.from_numpy(x["g"]) if "g" in x else None
    T, BH, d_k = q.shape
    S = q.new_zeros((BH, d_k, v.shape[2]))
    out = q.new_empty((T, BH, v.shape[2]))
    with torch.no_grad():
        for t in range(T):
            if g is not None:
                S = torch.exp(g[t]).unsqueeze(-1) * S
            S = S + k[t].unsqueeze(-1) * v[t].unsqueeze(-2)
            out[t] = torch.einsum("bkv,bk->bv", S, q[t]) / d_k ** 0.5
    return out.numpy()


def onnxruntime_session(x, H, rule, threads):
    """A one-node LinearAttention model (heads packed), and a function that runs it; or the reason
    it cannot run here."""
    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper
    except ImportError as e:
        return None, f"not installed ({e.name})"
    T, BH, d_k = x["q"].shape
    d_v = x["v"].shape[2]
    B = BH // H
    names = ["q", "k", "v", "", "g"] if "g" in x else ["q", "k", "v"]
    node = helper.make_node("LinearAttention", names, ["o", "S"], q_num_heads=H, kv_num_heads=H,
                            update_rule=RULES[rule][1])

    def packed(a):        # (T, B·H, d) -> (B, T, H·d): row b·H + h is batch b, head h
        return np.ascontiguousarray(a.reshape(T, B, H, -1).transpose(1, 0, 2, 3).reshape(B, T, -1))

    feeds = {n: packed(x[n]) for n in names if n}
    graph = helper.make_graph(
        [node], "linear_attention",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(a.shape)) for n, a in feeds.items()],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("o", "S")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 27)])
    model.ir_version = 11
    try:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - reported, not raised: the other rows still run
        return None, f"cannot load LinearAttention: {str(e).splitlines()[0][:120]}"

    def run():
        o = session.run(["o"], feeds)[0]
        return o.reshape(B, T, H, d_v).transpose(1, 0, 2, 3).reshape(T, BH, d_v)
    return run, None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m rnnsym.bench_linear", description=__doc__.split("\n\n")[0])
    p.add_argument("--rule", choices=sorted(RULES), default="gated")
    p.add_argument("--T", type=int, default=4096)
    p.add_argument("--d", type=int, default=64, help="d_k = d_v")
    p.add_argument("--heads", type=int, default=8, help="B·H (onnxruntime: B=1, H heads)")
    p.add_argument("--chunk", type=int, default=64)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--threads", type=int, default=1, help="torch and onnxruntime intra-op threads")
    args = p.parse_args(argv)
    import torch
    torch.set_num_threads(args.threads)
    module = compile_cell(generated_cell(RULES[args.rule][0]))
    x = inputs(args.T, args.heads, args.d, args.d, args.rule)
    x64 = {k: v.astype(np.float64) for k, v in x.items()}
    want = module.forward({}, x64)[0]
    candidates = {
        "generated forward (sequential)": lambda: module.forward({}, x)[0],
        f"generated forward_chunked (chunk={args.chunk})": lambda: module.forward_chunked({}, x, chunk=args.chunk)[0],
        "torch sequential reference": lambda: torch_sequential(x),
    }
    ort_run, why = onnxruntime_session(x, args.heads, args.rule, args.threads)
    if ort_run is not None:
        candidates["onnxruntime LinearAttention (CPU)"] = ort_run
    print(f"rule {args.rule} ({RULES[args.rule][0]}), T={args.T}, d_k=d_v={args.d}, B·H={args.heads}, "
          f"float32, {args.repeat} interleaved rounds, {args.threads} torch/onnxruntime thread(s)")
    if why:
        print(f"onnxruntime: {why}")
    errors = {}
    for name, fn in candidates.items():
        got = fn()
        errors[name] = float(np.linalg.norm(got - want) / np.linalg.norm(want))
    times: dict = {name: [] for name in candidates}
    for _ in range(args.repeat):
        for name, fn in candidates.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    base = statistics.median(times[f"generated forward_chunked (chunk={args.chunk})"])
    width = max(map(len, candidates))
    print(f"{'':{width}}  median s   × chunked  error vs float64 forward")
    for name in candidates:
        med = statistics.median(times[name])
        print(f"{name:{width}}  {med:8.4f}   {med / base:8.2f}  {errors[name]:.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
