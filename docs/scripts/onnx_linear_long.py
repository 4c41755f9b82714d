"""Long sequences for LinearAttention (T = 63, 64, 65, 130, 257: across chunk_size 16 and the
default 64, partial last chunks), every update_rule, per-head and per-key decay, grouped heads
(H_q=4, H_kv=2), past_state: onnxruntime and onnx.reference in float32 (or float16) against the
check's
oracle and tolerance (``rnnsym.conformance.onnx.state_ops.run_state_case``). The random check draws
T <= 6 (chunk_size 1..T+1 covers partial chunks there); this covers the default chunk.

    PYTHONPATH=$PWD python docs/scripts/onnx_linear_long.py [float16]
"""
import itertools
import sys

import numpy as np
from rnnsym.conformance.onnx.state_ops import run_state_case
from rnnsym.frameworks.onnx import onnx_target
from rnnsym.frameworks.onnx.state_ops import StateOpCase

DTYPE = sys.argv[1] if len(sys.argv) > 1 else "float32"
rng = np.random.default_rng(0)
rows = []
for target in ("onnxruntime", "onnx-reference"):
    tgt = onnx_target(target)
    for rule, T, chunk, decay in itertools.product(
            ("linear", "gated", "delta", "gated_delta"), (63, 64, 65, 130, 257), (None, 16),
            ("per_head", "per_key")):
        if decay == "per_key" and "gated" not in rule:
            continue
        B, Hq, Hkv, d_k, d_v = 2, 4, 2, 5, 3
        ins = {"query": rng.uniform(-1, 1, (B, T, Hq * d_k)),
               "key": rng.uniform(-1, 1, (B, T, Hkv * d_k)),
               "value": rng.uniform(-1, 1, (B, T, Hkv * d_v)),
               "past_state": rng.uniform(-1, 1, (B, Hkv, d_k, d_v))}
        if "delta" in rule:
            k = ins["key"].reshape(B, T, Hkv, d_k)
            ins["key"] = (k / np.linalg.norm(k, axis=-1, keepdims=True)).reshape(B, T, -1)
        if "gated" in rule:
            ins["decay"] = -0.2 * rng.uniform(0, 1, (B, T, Hkv * d_k if decay == "per_key" else Hkv))
        if "delta" in rule:
            ins["beta"] = rng.uniform(0, 1, (B, T, Hkv))
        attrs = {"q_num_heads": Hq, "kv_num_heads": Hkv, "update_rule": rule}
        if chunk:
            attrs["chunk_size"] = chunk
        ins = {k: v.astype(DTYPE) for k, v in ins.items()}
        case = StateOpCase("LinearAttention", attrs, ins, ("output", "present_state"))
        out = run_state_case(tgt, case, DTYPE, {})
        status = "ok" if not out.failed else f"FAIL {out.error or out.mismatches[0].message()}"
        rows.append((target, rule, T, chunk or "default", decay if "gated" in rule else "-",
                     out.ratio, status))
        print(*rows[-1], sep="\t", flush=True)
print("worst ratio per target:", {t: max(r[5] for r in rows if r[0] == t) for t in ("onnxruntime", "onnx-reference")})
print("failures:", sum(r[6] != "ok" for r in rows), "of", len(rows))
