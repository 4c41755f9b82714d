"""``rnnsym check`` for ONNX's opset-27 ops with a carried state: ``--cell linear_attention``
(``LinearAttention``) and ``--cell causal_conv`` (``CausalConvWithState``).

    rnnsym check onnxruntime --cell linear_attention
    rnnsym check onnx-reference --cell linear_attention --attributes update_rule=gated_delta
    rnnsym check onnx:my_backend.py:run --cell causal_conv

Random one-node models over the space of :mod:`rnnsym.frameworks.onnx.state_ops` (every
attribute and optional input), the same targets as RNN/GRU/LSTM, the float64 sequential
oracle (:mod:`rnnsym.onnx.linear_attention`, :mod:`rnnsym.onnx.causal_conv`), the
backward-error tolerance of :func:`rnnsym.conformance.tolerance.state_op_tolerance`, the common
search loop (shrinking included) and a diagnosis by the bug models of :data:`BUG_MODELS`.

Drawn values: query and value uniform in ``[-m, m]``; for the delta rules the keys are
l2-normalised per head (as the spec asks of the model) and ``beta`` is in ``(0, 1)`` (a sigmoid
output), otherwise keys are uniform; decays (log space) in ``[-2, 0]``. Sizes ``T, B, d_k, d_v``
are distinct from one another (a transposed state cannot pass).

**Open point** (``--variant``): which query heads read which key/value head under grouped-query
sharing. The spec does not say; the ONNX package's reference implementation and onnxruntime
read head ``i // G`` ("grouped"), and rnnsym requires that reading unless ``--variant
kv_heads=tiled`` selects the other (``i % kv_num_heads``): a tiled target is transformers#37533's
bug, so it is not waved through as a note.

Dtypes: float32 (default), float16 (the op's other type; outputs whose exact value is past
1/64 of float16's range are not drawn) and float64 (outside the type constraints: the model is
built all the same). A target that rejects the simplest model when loading or running it (an
op it lacks, or the dtype) leaves nothing to check: UNSUPPORTED, exit 3, with the runtime's
error.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Union

import numpy as np
from hypothesis import strategies as st

from rnnsym.conformance import strategies as rst
from rnnsym.conformance.compare import compare_flat, error_ratio
from rnnsym.conformance.onnx.oracle import OnnxOutcome, shape_error
from rnnsym.conformance.onnx.report import OnnxReport, add_failure
from rnnsym.conformance.isolation import onnx_target_in_worker
from rnnsym.conformance.search import SearchStats, quiet, run_checks
from rnnsym.conformance.target import TargetTimeout, call_twice_if_slow, timeout_text
from rnnsym.conformance.tolerance import FUNCTION_ULPS, explicit_tolerance, state_op_tolerance
from rnnsym.check_options import CheckOptions
from rnnsym.frameworks import UsageError
from rnnsym.frameworks.onnx import Unsupported, first_line, run_target
from rnnsym.frameworks.onnx.state_ops import (STATE_OP, STATE_SPACE, StateOpCase,
                                              parse_state_space)
from rnnsym.onnx import OnnxError, causal_conv, linear_attention as la

#: the open points per op: name -> (readings, rnnsym's first)
OPEN = {"LinearAttention": {"kv_heads": la.KV_HEADS}, "CausalConvWithState": {}}


# --- drawing models -------------------------------------------------------------------------

def _f32(x: float) -> float:
    return float(np.float32(x))


@st.composite
def state_op_cases(draw, op: str, space: dict, dtype: str, max_size: int = 6):
    """Strategy for :class:`StateOpCase` within ``space`` (parse_state_space)."""
    choices = {name: draw(st.sampled_from(space[name]), label=name) for name in space}
    f = np.dtype(dtype)
    outputs = tuple(n for n in ("output", "present_state") if choices[n] == "present") or \
        ("present_state",)
    if op == "CausalConvWithState":
        return _causal_conv_case(draw, choices, f, outputs, max_size)
    rule = "gated_delta" if choices["update_rule"] == "default" else choices["update_rule"]
    for name, used in (("decay", rule in ("gated", "gated_delta")),
                       ("beta", rule in ("delta", "gated_delta"))):
        if not used:
            del choices[name]
    dims = draw(rst.distinct_sizes(["T", "B", "d_k", "d_v"], max_value=max(max_size, 5)),
                label="sizes")
    T, B, d_k, d_v = dims["T"], dims["B"], dims["d_k"], dims["d_v"]
    Hkv = draw(st.integers(1, 3), label="H_kv")
    Hq = Hkv * (draw(st.integers(2, 3), label="group") if choices["heads"] == "grouped" else 1)
    attrs = {"q_num_heads": Hq, "kv_num_heads": Hkv}
    if choices["update_rule"] != "default":
        attrs["update_rule"] = rule
    if choices["scale"] == "zero":
        attrs["scale"] = 0.0
    elif choices["scale"] == "given":
        attrs["scale"] = _f32(draw(st.floats(0.1, 2.0), label="scale"))
    if choices["chunk_size"] == "given":
        attrs["chunk_size"] = draw(st.integers(1, T + 1), label="chunk_size")
    values = draw(rst.float_arrays({"query": (B, T, Hq * d_k), "key": (B, T, Hkv * d_k),
                                    "value": (B, T, Hkv * d_v)}, np.float64,
                                   magnitudes=(1.0, 0.1, 10.0)), label="query, key, value")
    if "beta" in choices:            # keys l2-normalised per head, as the spec asks
        k = values["key"].reshape(B, T, Hkv, d_k)
        norm = np.linalg.norm(k, axis=-1, keepdims=True)
        values["key"] = (k / np.where(norm > 0, norm, 1)).reshape(B, T, Hkv * d_k)
    if choices["past_state"] == "present":
        values.update(draw(rst.float_arrays({"past_state": (B, Hkv, d_k, d_v)},
                                            magnitudes=(1.0, 0.1, 10.0)), label="past_state"))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label="gate seed"))
    if "decay" in choices:
        width = Hkv * d_k if choices["decay"] == "per_key" else Hkv
        values["decay"] = -2.0 * rng.uniform(0, 1, (B, T, width))
    if "beta" in choices:
        values["beta"] = rng.uniform(0, 1, (B, T, Hkv if choices["beta"] == "per_head" else 1))
    inputs = {n: values[n].astype(f) for n in la.INPUTS if n in values}
    return StateOpCase(op, attrs, inputs, outputs, choices)


def _causal_conv_case(draw, choices, f, outputs, max_size):
    dims = draw(rst.distinct_sizes(["B", "C", "L", "k"], max_value=max(max_size, 5)),
                label="sizes")
    B, C, L, k = dims["B"], dims["C"], dims["L"], dims["k"]
    attrs = {} if choices["activation"] == "default" else {"activation": choices["activation"]}
    shapes = {"input": (B, C, L), "weight": (C, 1, k)}
    if choices["bias"] == "present":
        shapes["bias"] = (C,)
    if choices["past_state"] == "present":
        shapes["past_state"] = (B, C, k - 1)
    values = draw(rst.float_arrays(shapes, f, magnitudes=(1.0, 0.1, 10.0)), label="inputs")
    inputs = {n: values[n] for n in causal_conv.INPUTS if n in values}
    return StateOpCase("CausalConvWithState", attrs, inputs, outputs, choices)


# --- the oracle and the bug models ------------------------------------------------------------

def step_decay_after(S, k, v, g, beta, rule):
    """Bug model: the decay applied after the (delta) update, ``S = exp(g) (S + outer(k, u))``
    with ``u = beta (v - S^T k)`` read from the undecayed state."""
    S = la.step(S, k, v, g, beta, {"gated": "linear", "gated_delta": "delta"}.get(rule, rule))
    return np.exp(g)[..., None] * S if rule in ("gated", "gated_delta") else S


def step_delta_undecayed(S, k, v, g, beta, rule):
    """Bug model: gated_delta's delta term reads ``S_{t-1}`` instead of ``exp(g) S_{t-1}``."""
    if rule != "gated_delta":
        return la.step(S, k, v, g, beta, rule)
    return np.exp(g)[..., None] * S + np.outer(k, beta * (v - S.T @ k))


@dataclass(frozen=True)
class Variant:
    """How a (correct or buggy) implementation computes a case: the evaluator's options."""

    kv_heads: str = "grouped"
    step: Callable = la.step
    dtype: object = np.float64           # the arithmetic of the state (float32: a bug model)
    attributes: Optional[Callable] = None  # case -> the attributes used instead
    drop: tuple = ()                     # inputs ignored
    tokens: Optional[Callable] = None    # case -> how many leading tokens are processed


def oracle(case: StateOpCase, variant: Variant = Variant()) -> Callable:
    """``run(inputs, state_noise=None) -> {output name: float64 array}`` for the case's
    requested outputs, as ``variant`` computes them."""
    attrs = variant.attributes(case) if variant.attributes else case.attributes

    def run(inputs, state_noise=None):
        ins = {n: v for n, v in inputs.items() if n not in variant.drop}
        if case.op == "CausalConvWithState":
            if np.dtype(variant.dtype) == np.float32:     # inputs as float32 sees them
                ins = {k: v.astype(np.float32) for k, v in ins.items()}
            out = causal_conv.evaluate(causal_conv.parse_attributes(attrs), **ins)
        else:
            parsed = la.parse_attributes(attrs)
            T = case.inputs["query"].shape[1]
            n = T if variant.tokens is None else variant.tokens(case)
            ins = {k: v if k == "past_state" else v[:, :n] for k, v in ins.items()}
            out = la.evaluate(parsed, kv_heads=variant.kv_heads, dtype=variant.dtype,
                              step=variant.step, state_noise=state_noise, **ins)
            if n < T:         # the dropped tokens' outputs: zeros
                full = np.zeros(case.inputs["query"].shape[:2] + out["output"].shape[2:])
                full[:, :n] = out["output"]
                out["output"] = full
        return {k: np.asarray(out[k], np.float64) for k in case.outputs}
    return run


def _longest_dot(case: StateOpCase) -> int:
    s = case.sizes()
    return s["k"] if case.op == "CausalConvWithState" else s["d_k"]


def expectation(case: StateOpCase, dtype: str, rtol=None, atol=None,
                variant: Variant = Variant()):
    """(expected outputs, Tolerance) of ``case`` under ``variant``, the tolerance that of a
    ``dtype`` target (float32 when the variant computes in float32)."""
    run = oracle(case, variant)
    inputs = {n: np.asarray(v, np.float64) for n, v in case.inputs.items()}
    with np.errstate(all="ignore"):
        expected = run(inputs)
        if rtol is not None or atol is not None:
            return expected, explicit_tolerance(expected, rtol or 0.0, atol or 0.0)
        if np.dtype(variant.dtype) == np.float32:
            dtype = "float32"
        tol = state_op_tolerance(dtype, _longest_dot(case), run, inputs, expected,
                                 state_noise=case.op == "LinearAttention",
                                 absolute=_silu_error(case, inputs))
    return expected, tol


def _silu_error(case: StateOpCase, inputs: dict) -> Optional[dict]:
    """A fused SiLU's absolute error in units of u: ``FUNCTION_ULPS * |y|``, y its input
    (:func:`rnnsym.conformance.tolerance.state_op_tolerance`)."""
    if case.op != "CausalConvWithState" or \
            causal_conv.parse_attributes(case.attributes) == "none" or "output" not in case.outputs:
        return None
    y = causal_conv.evaluate("none", **inputs)["output"]
    return {"output": FUNCTION_ULPS * np.abs(y)}


def _has(name):
    return lambda case, fixed: name in case.inputs


def _gated(case, fixed):
    return case.op == "LinearAttention" and "decay" in case.inputs


def _default_scale(case, fixed):
    return case.op == "LinearAttention" and not case.attributes.get("scale")


def _scaled(value: Callable[[dict], float]):
    return lambda case: {**case.attributes, "scale": value(case.sizes())}


def _partial_chunk(case, fixed):
    if case.op != "LinearAttention":
        return False
    return case.sizes()["T"] % case.attributes.get("chunk_size", 64) != 0


def _full_chunks(case):
    return case.sizes()["T"] // case.attributes.get("chunk_size", 64) * \
        case.attributes.get("chunk_size", 64)


def _grouped_heads(case, fixed):
    s = case.sizes() if case.op == "LinearAttention" else {}
    return s.get("H_kv", 1) > 1 and s["H_q"] > s["H_kv"]


def _other_heads(case, fixed):
    return "tiled" if fixed.get("kv_heads", "grouped") == "grouped" else "grouped"


@dataclass(frozen=True)
class BugModel:
    """One known way of getting the op wrong: the diagnosis, when it can differ from the
    correct result on a case (``applies(case, fixed readings)``), and how it computes
    (``variant(case, fixed) -> Variant``)."""

    text: Union[str, Callable]
    applies: Callable
    variant: Callable
    transform: Optional[Callable] = None     # case -> the inputs the buggy target reads

    def describe(self, case, fixed) -> str:
        return self.text if isinstance(self.text, str) else self.text(case, fixed)


def _with(**changes):
    return lambda case, fixed: Variant(kv_heads=fixed.get("kv_heads", "grouped"), **changes)


BUG_MODELS = {
    "LinearAttention": [
        BugModel("the decay applied after the update: S = exp(g) (S + k (x) u), not "
                 "exp(g) S + k (x) u", _gated, _with(step=step_decay_after)),
        BugModel("gated_delta's delta term reads S_{t-1}, not exp(g_t) S_{t-1}",
                 lambda case, fixed: _gated(case, fixed) and "beta" in case.inputs,
                 _with(step=step_delta_undecayed)),
        BugModel(lambda case, fixed: "grouped heads shared " + (
                     "tiled (query head i reads key/value head i % H_kv, numpy tile / torch "
                     "repeat), not interleaved (i // G, repeat_interleave)"
                     if _other_heads(case, fixed) == "tiled" else
                     "interleaved (query head i reads key/value head i // G), not tiled "
                     "(i % H_kv) as --variant kv_heads=tiled asks"),
                 _grouped_heads,
                 lambda case, fixed: Variant(kv_heads=_other_heads(case, fixed))),
        BugModel("scale 0 (default) read as 1 (no scaling), not 1/sqrt(d_k)", _default_scale,
                 _with(attributes=_scaled(lambda s: 1.0))),
        BugModel("scale 0 (default) read as 1/d_k, not 1/sqrt(d_k)", _default_scale,
                 _with(attributes=_scaled(lambda s: 1.0 / s["d_k"]))),
        BugModel("scale 0 (default) read as 1/sqrt(d_v), not 1/sqrt(d_k)", _default_scale,
                 _with(attributes=_scaled(lambda s: 1.0 / np.sqrt(s["d_v"])))),
        BugModel("scale 0 (default) read as 1/sqrt(H_q*d_k) (the packed width), not "
                 "1/sqrt(d_k)", _default_scale,
                 _with(attributes=_scaled(lambda s: 1.0 / np.sqrt(s["H_q"] * s["d_k"])))),
        BugModel("past_state ignored (zeros used)", _has("past_state"),
                 _with(drop=("past_state",))),
        BugModel("state (and the whole recurrence) computed in float32, not in the input "
                 "dtype float64", lambda case, fixed: case.inputs["query"].dtype == np.float64,
                 _with(dtype=np.float32)),
        BugModel(lambda case, fixed: f"the last partial chunk dropped (T={case.sizes()['T']} "
                 f"not a multiple of chunk_size={case.attributes.get('chunk_size', 64)}: only "
                 f"the first {_full_chunks(case)} tokens processed)",
                 _partial_chunk, _with(tokens=_full_chunks)),
    ],
    "CausalConvWithState": [
        BugModel("past_state ignored (zeros used)", _has("past_state"),
                 _with(drop=("past_state",))),
        BugModel("bias ignored", _has("bias"), _with(drop=("bias",))),
        BugModel("the kernel flipped (weight[c, 0, 0] multiplies the current input: a "
                 "convolution, not ONNX Conv's cross-correlation)",
                 lambda case, fixed: case.inputs["weight"].shape[2] > 1, _with(),
                 transform=lambda case: {**case.inputs,
                                         "weight": case.inputs["weight"][:, :, ::-1]}),
        BugModel("computed in float32 (the SiLU at least), not in the input dtype float64",
                 lambda case, fixed: case.inputs["input"].dtype == np.float64,
                 _with(dtype=np.float32)),
        BugModel("activation ignored (no SiLU)",
                 lambda case, fixed: case.attributes.get("activation", "none") != "none",
                 _with(attributes=lambda case: {})),
    ],
}


def _bug_expectation(model: BugModel, case: StateOpCase, dtype: str, fixed: dict):
    if model.transform is not None:
        case = StateOpCase(case.op, case.attributes, model.transform(case), case.outputs,
                           case.choices)
    return expectation(case, dtype, variant=model.variant(case, fixed))


def diagnose(case: StateOpCase, got: dict, dtype: str, fixed: dict) -> list[str]:
    """The texts of the bug models (single, then pairs of independent ones) that reproduce
    ``got`` within the tolerance."""
    models = [m for m in BUG_MODELS[case.op] if m.applies(case, fixed)]

    def fits(exp, tol) -> bool:
        return shape_error(exp, got) is None and not compare_flat(exp, got, tol.arrays)

    found = []
    for m in models:
        try:
            if fits(*_bug_expectation(m, case, dtype, fixed)):
                found.append(m.describe(case, fixed))
        except (OnnxError, ValueError):
            pass
    if found or case.op != "LinearAttention":
        return found
    for i, one in enumerate(models):
        for two in models[i + 1:]:
            a, b = one.variant(case, fixed), two.variant(case, fixed)
            merged = Variant(**{f: getattr(b, f) if getattr(b, f) != getattr(Variant(), f)
                                else getattr(a, f) for f in Variant.__dataclass_fields__})
            try:
                if fits(*expectation(case, dtype, variant=merged)):
                    found.append(f"{one.describe(case, fixed)}, and {two.describe(case, fixed)}")
            except (OnnxError, ValueError):
                pass
    return found


# --- one case, the subject, the check -------------------------------------------------------

def run_state_case(target, case: StateOpCase, dtype: str, fixed: dict, *, rtol=None,
                   atol=None, timeout=None) -> Optional[OnnxOutcome]:
    """Compare the target with the oracle on one case (None: the exact result is not
    representable in ``dtype``)."""
    expected, tol = expectation(case, dtype, rtol, atol,
                                Variant(kv_heads=fixed.get("kv_heads", "grouped")))
    limit = np.finfo(np.dtype(dtype)).max / 64        # float16: 1023
    if not all(np.all(np.abs(v) < limit) for v in expected.values()):
        return None
    outcome = OnnxOutcome(case, expected, tol)
    try:
        got = call_twice_if_slow(lambda: run_target(target, case), timeout)
    except TargetTimeout:
        outcome.error, outcome.timed_out = timeout_text(timeout), True
        return outcome
    except Unsupported as exc:
        outcome.unsupported = str(exc)
        return outcome
    except Exception as exc:  # noqa: BLE001 - the target's failure is a finding
        outcome.error = first_line(exc)
        return outcome
    outcome.got = got
    outcome.error = shape_error(expected, got)
    if not outcome.error:
        outcome.mismatches = compare_flat(expected, got, tol.arrays)
        outcome.ratio = error_ratio(expected, got, tol.arrays)
    return outcome


class StateOpSubject:
    """What the common search loop needs: cases of the space, one run each; a case the target
    declares unsupported is listed (by its non-default choices) and skipped."""

    nothing_left = False

    def __init__(self, target, op, space, dtype, fixed, *, rtol=None, atol=None, max_size=6,
                 timeout=None):
        self.target, self.op, self.space, self.dtype, self.fixed = target, op, space, dtype, fixed
        self.rtol, self.atol, self.max_size, self.timeout = rtol, atol, max_size, timeout
        self.rejected: dict = {}

    def cases(self):
        return state_op_cases(self.op, self.space, self.dtype, self.max_size)

    def excluded(self, case) -> bool:
        return False

    def run(self, case):
        return run_state_case(self.target, case, self.dtype, self.fixed, rtol=self.rtol,
                              atol=self.atol, timeout=self.timeout)

    def unsupported(self, outcome) -> bool:
        where = ", ".join(f"{k}={v}" for k, v in outcome.case.choices.items()
                          if v != STATE_SPACE[self.op][k][0])
        self.rejected.setdefault(outcome.unsupported, where)
        return True

    def cover(self, stats: SearchStats, case, outcome) -> None:
        stats.configs.add(tuple(sorted(case.choices.items())))
        for k, v in case.choices.items():
            stats.coverage.setdefault(k, set()).add(v)


def parse_variant(variant, op: str) -> dict:
    """``--variant kv_heads=tiled`` -> {open point: reading}."""
    if not variant:
        return {}
    items = variant.items() if isinstance(variant, dict) else \
        [w.split("=", 1) for w in filter(None, (w.strip() for w in str(variant).split(",")))]
    fixed = {}
    for item in items:
        if len(item) != 2 or item[0].strip() not in OPEN[op]:
            known = ", ".join(f"{k}={'|'.join(v)}" for k, v in OPEN[op].items()) or "none"
            raise UsageError(f"--variant {'='.join(map(str, item))}: not an open point of "
                             f"{op} (known: {known})")
        name, value = item[0].strip(), str(item[1]).strip().lower()
        if value not in OPEN[op][name]:
            raise UsageError(f"--variant {name}={value}: expected one of "
                             f"{'|'.join(OPEN[op][name])}")
        fixed[name] = value
    return fixed


def _simplest(op: str, dtype: str) -> StateOpCase:
    f = np.dtype(dtype)
    rng = np.random.default_rng(0)
    if op == "CausalConvWithState":
        return StateOpCase(op, {}, {"input": rng.uniform(-1, 1, (2, 3, 4)).astype(f),
                                    "weight": rng.uniform(-1, 1, (3, 1, 2)).astype(f)},
                           ("output", "present_state"))
    return StateOpCase(op, {"q_num_heads": 1, "kv_num_heads": 1, "update_rule": "linear"},
                       {n: rng.uniform(-1, 1, (2, 3, 4)).astype(f)
                        for n in ("query", "key", "value")}, ("output", "present_state"))


def check_state_op(target: str, cell=None, *, options: Optional[CheckOptions] = None,
                   **kwargs) -> OnnxReport:
    """Property-test an ONNX target's LinearAttention / CausalConvWithState (module
    docstring); the target runs in a worker process unless ``in_process``
    (``rnnsym.conformance.isolation``). ``bidirectional`` other than "both" (the default, nothing
    restricted) is a UsageError: these ops have no direction."""
    o = CheckOptions.of(options, **({} if cell is None else {"cell": cell}), **kwargs)
    o = o.replace(cell=str(o.cell).lower(), dtype=o.dtype or "float32").with_seed()
    op = STATE_OP[o.cell]
    if o.bidirectional != "both":
        raise UsageError(f"--bidirectional {o.bidirectional}: {op} has no direction "
                         "(--bidirectional is for RNN/GRU/LSTM)")
    if o.layers not in (None, (1,)):
        raise UsageError(f"--layers: {op} models have one node")
    fixed = parse_variant(o.variant, op)
    space = parse_state_space(o.attributes, op)
    with onnx_target_in_worker(target, o.in_process) as tgt:
        return _search_and_report(tgt, target, o, op, fixed, space)


def _search_and_report(tgt, target, o: CheckOptions, op, fixed, space) -> OnnxReport:
    """Probe the simplest model, search, report (``tgt`` in a worker unless in-process)."""
    dtype = o.dtype
    subject = StateOpSubject(tgt, op, space, dtype, fixed, rtol=o.rtol, atol=o.atol,
                             max_size=o.max_size, timeout=o.timeout)
    reason = []

    def prepare(stats):
        first = run_state_case(tgt, _simplest(op, dtype), dtype, fixed, timeout=o.timeout)
        if first is not None and first.unsupported:
            reason.append(f"the target rejects the simplest {op} model in {dtype}")
            subject.rejected[first.unsupported] = f"{op} in {dtype}"
            return None
        return subject
    stats = run_checks(o, f"rnnsym check {target} --cell {o.cell}", prepare)
    report = OnnxReport(
        target=f"{target} [{tgt.label}]" if tgt.label else target, cell=o.cell, stage=tgt.stage,
        dtype=dtype, command=o.replay(target), reason="".join(reason),
        **stats.report_fields(o, [f"{where or 'the defaults'}: {why}"
                                  for why, where in subject.rejected.items()]))

    def diagnosis(outcome):
        with quiet():
            return diagnose(outcome.case, outcome.got, dtype, fixed)
    add_failure(report, stats, None, diagnosis)
    return report


__all__ = ["check_state_op", "state_op_cases", "oracle", "expectation", "diagnose",
           "BUG_MODELS", "Variant", "STATE_OP"]
