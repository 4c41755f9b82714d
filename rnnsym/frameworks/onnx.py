"""Checking ONNX runtimes: random one-node RNN/GRU/LSTM models against :mod:`rnnsym.onnx`.

    rnnsym check onnxruntime --cell lstm
    rnnsym check onnx-reference --cell gru --attributes layout=0,direction=forward
    rnnsym check onnx:my_backend.py:run --cell rnn        # run(model_bytes, inputs) -> outputs

Targets (:func:`onnx_target`):

``onnxruntime``     ``onnxruntime.InferenceSession`` on the CPU execution provider
``onnx-reference``  ``onnx.reference.ReferenceEvaluator``
``onnx:MODULE:NAME`` / ``onnx:path/to/file.py:NAME``
                    a function ``run(model_bytes, inputs) -> outputs``: ``inputs`` are the
                    arrays in graph-input order, ``outputs`` the graph outputs in order (the
                    node's present outputs). Raising :class:`Unsupported` (or
                    ``NotImplementedError``) declares the model unsupported.

A *load-time* rejection (session creation) is reported as **unsupported**, never as a pass:
before the run every attribute value of the space is tried alone on the simplest model and
the rejected ones are taken out of the space and listed; a rejected combination met later is
listed too and the example does not count.

The attribute space (Hypothesis draws one node per example; every choice shrinks to the
default, so a counterexample has only the attributes it needs)::

    direction       forward | reverse | bidirectional
    layout          0 | 1
    activations     default | the 11 ONNX names (each slot of each direction drawn)
    activation_params  default | given (activation_alpha/beta for every activation taking one)
    clip            none | given
    linear_before_reset  0 | 1          (GRU)
    input_forget    0 | 1                (LSTM)
    B, sequence_lens, initial_h, initial_c, P   absent | present   (initial_c, P: LSTM)
    Y, Y_h, Y_c     present | absent     (at least one present)

``--attributes NAME=V1|V2,...`` restricts it, e.g. ``layout=0``,
``activations=Tanh|Sigmoid``, ``clip=none``, ``sequence_lens=absent``.

**Open points of the spec** (:mod:`rnnsym.onnx.driver`): ``clip_before_h``, ``y_past_length``,
``empty_state``, ``alpha_order``. By default the target may follow any documented reading of
each; when it does not follow rnnsym's default one, the report carries a *note* (not a
failure). ``--variant clip_before_h=false`` (etc.) fixes a reading: then only that one is
compared.
"""
from __future__ import annotations

import itertools
import random
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
from hypothesis import HealthCheck, Phase, Verbosity, given, reject, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.errors import HypothesisException

from rnnsym.check.report import Counterexample, Report
from rnnsym.check.tolerance import backward_error_tolerance, explicit_tolerance
from rnnsym.frameworks import Config, UsageError, canonical_cell
from rnnsym.onnx import INPUTS, OUTPUTS, OnnxError, Readings, parse_attributes
from rnnsym.onnx.attributes import ONNX_ACTIVATIONS, SLOTS
from rnnsym.onnx.driver import EMPTY_STATE, Y_PAST_LENGTH, evaluate
from rnnsym.testing import strategies as rst
from rnnsym.testing.assertions import compare_flat, error_ratio, max_errors

OPSET = 22
OP = {"elman": "RNN", "gru": "GRU", "lstm": "LSTM"}
NAMED_TARGETS = ("onnxruntime", "onnx-reference")
ACTIVATION_NAMES = tuple(ONNX_ACTIVATIONS)
OPTIONAL_INPUTS = ("B", "sequence_lens", "initial_h", "initial_c", "P")
#: the whole attribute space; the first value of each is the default (shrink target)
SPACE = {
    "direction": ("forward", "reverse", "bidirectional"),
    "layout": (0, 1),
    "activations": ("default",) + ACTIVATION_NAMES,
    "activation_params": ("default", "given"),
    "clip": ("none", "given"),
    "linear_before_reset": (0, 1),
    "input_forget": (0, 1),
    **{name: ("absent", "present") for name in OPTIONAL_INPUTS},
    **{name: ("present", "absent") for name in ("Y", "Y_h", "Y_c")},
}
ONLY = {"linear_before_reset": "GRU", "input_forget": "LSTM", "initial_c": "LSTM", "P": "LSTM",
        "Y_c": "LSTM"}
#: the open points of the spec, their readings (rnnsym's default first) and what they say
OPEN = {
    "clip_before_h": ((True, False), "LSTM clip before h(C_t)"),
    "y_past_length": (Y_PAST_LENGTH, "Y past each sequence length"),
    "empty_state": (EMPTY_STATE, "Y_h/Y_c for sequence length 0"),
    "alpha_order": (("used", "positional"), "activation_alpha/beta distribution"),
}
READING_TEXT = {
    ("clip_before_h", True): "clip applied to the input of h(C_t) too (the spec's text)",
    ("clip_before_h", False): "no clip before h(C_t) (onnxruntime's reading, "
                              "microsoft/onnxruntime#27224)",
    ("y_past_length", "zero"): "Y = 0 past each length (onnxruntime)",
    ("y_past_length", "hold"): "Y past each length holds the carried state (Keras masking)",
    ("empty_state", "initial"): "Y_h = initial_h for length 0 (state after zero steps)",
    ("empty_state", "zero"): "Y_h = 0 for length 0 (onnxruntime)",
    ("alpha_order", "used"): "alpha/beta consumed by the activations that take them "
                             "(onnxruntime)",
    ("alpha_order", "positional"): "alpha/beta given positionally, one per activation slot",
}


class Unsupported(Exception):
    """Raised by a target that rejects a model when loading it (or declares it unsupported)."""


# ------------------------------------------------------------------------------------------
# targets


@dataclass
class OnnxTarget:
    """``load(model_bytes) -> session`` (raise Unsupported) and
    ``run(session, inputs list) -> outputs list`` (graph-output order)."""

    name: str
    load: Callable
    run: Callable


def _ort_target() -> OnnxTarget:
    import onnxruntime as ort

    def load(model_bytes):
        options = ort.SessionOptions()
        options.log_severity_level = 4
        options.intra_op_num_threads = 1
        try:
            return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - any load failure is "unsupported"
            raise Unsupported(_first_line(exc)) from exc

    def run(session, inputs):
        feed = {i.name: v for i, v in zip(session.get_inputs(), inputs)}
        return session.run(None, feed)
    return OnnxTarget("onnxruntime", load, run)


def _reference_target() -> OnnxTarget:
    import onnx
    from onnx.reference import ReferenceEvaluator

    def load(model_bytes):
        try:
            return ReferenceEvaluator(onnx.load_model_from_string(model_bytes))
        except Exception as exc:  # noqa: BLE001
            raise Unsupported(_first_line(exc)) from exc

    def run(session, inputs):
        return session.run(None, {n: v for n, v in zip(session.input_names, inputs)})
    return OnnxTarget("onnx-reference", load, run)


def _function_target(spec: str) -> OnnxTarget:
    from rnnsym.frameworks.user import load_object

    fn = load_object(spec)
    if not callable(fn):
        raise UsageError(f"target onnx:{spec}: expected a function run(model_bytes, inputs)")

    def run(model_bytes, inputs):
        try:
            return fn(model_bytes, list(inputs))
        except (Unsupported, NotImplementedError) as exc:
            raise Unsupported(_first_line(exc)) from exc
    return OnnxTarget(f"onnx:{spec}", lambda model_bytes: model_bytes, run)


def is_onnx_target(target) -> bool:
    return isinstance(target, str) and (target.lower() in NAMED_TARGETS or
                                        target.lower().startswith("onnx:"))


def onnx_target(target: str) -> OnnxTarget:
    """``onnxruntime``, ``onnx-reference`` or ``onnx:MODULE:NAME`` -> OnnxTarget."""
    key = target.lower()
    try:
        if key == "onnxruntime":
            return _ort_target()
        if key == "onnx-reference":
            return _reference_target()
    except ImportError as exc:
        raise UsageError(f"target {target}: {exc}") from exc
    if key.startswith("onnx:"):
        return _function_target(target[len("onnx:"):])
    raise UsageError(f"target {target!r}: expected onnxruntime, onnx-reference or "
                     "onnx:MODULE:NAME")


def _first_line(exc) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}"[:500]


# ------------------------------------------------------------------------------------------
# the space and --attributes


def parse_attribute_space(text, op: str) -> dict:
    """``"layout=0,activations=Tanh|Sigmoid"`` (or a dict) -> the restricted space for op."""
    space = {k: v for k, v in SPACE.items() if ONLY.get(k, op) == op}
    if not text:
        return space
    items = text.items() if isinstance(text, dict) else \
        [w.split("=", 1) if "=" in w else (w, None)
         for w in filter(None, (w.strip() for w in str(text).split(",")))]
    for name, values in items:
        name = name.strip()
        if name not in SPACE:
            raise UsageError(f"--attributes {name}: unknown (known: {', '.join(SPACE)})")
        if name not in space:
            raise UsageError(f"--attributes {name}: not an attribute or input of {op}")
        if values is None:
            raise UsageError(f"--attributes {name}: expected {name}=VALUE[|VALUE...]")
        wanted = [values] if not isinstance(values, str) else values.split("|")
        chosen = []
        for w in wanted:
            w = str(w).strip()
            match = [v for v in SPACE[name] if str(v).lower() == w.lower()]
            if name in OPTIONAL_INPUTS + ("Y", "Y_h", "Y_c"):
                match = match or [{"0": "absent", "1": "present"}.get(w, None)]
                match = [m for m in match if m]
            if not match:
                raise UsageError(f"--attributes {name}={w}: expected one of "
                                 f"{'|'.join(map(str, SPACE[name]))}")
            chosen.append(match[0])
        space[name] = tuple(dict.fromkeys(chosen))
    return space


def parse_readings(variant) -> dict:
    """``--variant clip_before_h=false,empty_state=zero`` -> {open point: reading}."""
    if not variant:
        return {}
    items = variant.items() if isinstance(variant, dict) else \
        [w.split("=", 1) for w in filter(None, (w.strip() for w in str(variant).split(",")))]
    fixed = {}
    for item in items:
        if len(item) != 2:
            raise UsageError(f"--variant {item[0]}: expected NAME=VALUE, e.g. clip_before_h=false")
        name, value = item[0].strip(), str(item[1]).strip().lower()
        if name not in OPEN:
            raise UsageError(f"--variant {name}: not an open point of the ONNX spec (known: "
                             f"{', '.join(OPEN)})")
        readings = OPEN[name][0]
        if name == "clip_before_h":
            value = {"true": True, "1": True, "false": False, "0": False}.get(value, value)
        if value not in readings:
            raise UsageError(f"--variant {name}={item[1]}: expected one of "
                             f"{', '.join(str(r).lower() for r in readings)}")
        fixed[name] = value
    return fixed


# ------------------------------------------------------------------------------------------
# cases


@dataclass
class OnnxCase:
    """One drawn node: op, ONNX attribute values, present inputs by name, requested outputs."""

    op: str
    attributes: dict
    inputs: dict
    outputs: tuple
    choices: dict = field(default_factory=dict)

    def model_bytes(self) -> bytes:
        return build_model(self.op, self.attributes, self.inputs, self.outputs)

    @property
    def graph_inputs(self) -> list:
        return [self.inputs[n] for n in INPUTS[self.op] if n in self.inputs]

    def sizes(self) -> dict:
        X = self.inputs["X"]
        T, N = (X.shape[1], X.shape[0]) if self.attributes.get("layout") else X.shape[:2]
        return {"T": T, "N": N, "I": X.shape[2], "H": self.attributes["hidden_size"]}

    def describe(self) -> str:
        attrs = ", ".join(f"{k}={v!r}" for k, v in self.attributes.items())
        ins = ", ".join(f"{k}{list(v.shape)}" for k, v in self.inputs.items())
        return f"{self.op}({attrs}) inputs {ins} -> {', '.join(self.outputs)}"


def build_model(op: str, attributes: dict, inputs: dict, outputs) -> bytes:
    """A one-node opset-22 model: graph inputs = the present inputs (names as in the spec),
    graph outputs = the requested outputs; omitted optional ones are ``""`` in the node."""
    from onnx import TensorProto, helper

    node_inputs = [n if n in inputs else "" for n in INPUTS[op]]
    while node_inputs and not node_inputs[-1]:
        node_inputs.pop()
    node_outputs = [n if n in outputs else "" for n in OUTPUTS[op]]
    while node_outputs and not node_outputs[-1]:
        node_outputs.pop()
    node = helper.make_node(op, node_inputs, node_outputs, **attributes)
    elem = helper.np_dtype_to_tensor_dtype(inputs["X"].dtype)
    graph = helper.make_graph(
        [node], f"rnnsym_{op.lower()}",
        [helper.make_tensor_value_info(n, TensorProto.INT32 if n == "sequence_lens" else elem,
                                       inputs[n].shape) for n in INPUTS[op] if n in inputs],
        [helper.make_tensor_value_info(n, elem, None) for n in OUTPUTS[op] if n in outputs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="rnnsym")
    model.ir_version = 10
    return model.SerializeToString()


def _float32(x: float) -> float:
    return float(np.float32(x))


@st.composite
def onnx_cases(draw, op: str, space: dict, dtype: str, max_size: int = 6):
    """Strategy for OnnxCase within ``space`` (parse_attribute_space)."""
    def pick(name):
        return draw(st.sampled_from(space[name]), label=name)

    choices = {name: pick(name) for name in ("direction", "layout", "clip", "activation_params")
               + tuple(n for n in ("linear_before_reset", "input_forget") if n in space)}
    D = 2 if choices["direction"] == "bidirectional" else 1
    dims = draw(rst.distinct_sizes(["T", "N", "I", "H"], max_value=max(max_size, 5)),
                label="sizes")
    T, N, I, H = dims["T"], dims["N"], dims["I"], dims["H"]
    attrs = {"hidden_size": H}
    if choices["direction"] != "forward":
        attrs["direction"] = choices["direction"]
    if choices["layout"]:
        attrs["layout"] = 1
    names = [n for n in space["activations"]]
    if names != ["default"]:
        slots = []
        for d in range(D):
            for slot in SLOTS[op]:
                slots.append(draw(st.sampled_from(names), label=f"activation {slot}{d}"))
        if any(s != "default" for s in slots):
            defaults = {"RNN": ("Tanh",), "GRU": ("Sigmoid", "Tanh"),
                        "LSTM": ("Sigmoid", "Tanh", "Tanh")}[op]
            attrs["activations"] = [defaults[k % len(SLOTS[op])] if s == "default" else s
                                    for k, s in enumerate(slots)]
            choices["activations"] = "given"
    if choices["activation_params"] == "given":
        acts = attrs.get("activations", [])
        from rnnsym.cells.nodes import ACTIVATIONS
        keys = [ONNX_ACTIVATIONS[a] for a in acts]
        alphas = [_float32(draw(st.floats(0.1, 1.5), label="alpha"))
                  for k in keys if ACTIVATIONS[k].params]
        betas = [_float32(draw(st.floats(-0.5, 1.0), label="beta"))
                 for k in keys if len(ACTIVATIONS[k].params) > 1]
        if alphas:
            attrs["activation_alpha"] = alphas
        if betas:
            attrs["activation_beta"] = betas
    if choices["clip"] == "given":
        attrs["clip"] = _float32(draw(st.floats(0.1, 3.0), label="clip"))
    for name in ("linear_before_reset", "input_forget"):
        if choices.get(name):
            attrs[name] = 1
    G = {"RNN": 1, "GRU": 3, "LSTM": 4}[op]
    np_dtype = np.dtype(dtype)
    shapes = {"W": (D, G * H, I), "R": (D, G * H, H)}
    present = {n: pick(n) == "present" for n in OPTIONAL_INPUTS if n in space}
    choices.update({n: "present" if p else "absent" for n, p in present.items()})
    if present.get("B"):
        shapes["B"] = (D, 2 * G * H)
    if present.get("P"):
        shapes["P"] = (D, 3 * H)
    values = draw(rst.float_arrays(shapes, np_dtype), label="weights")
    X = draw(rst.inputs({"T": T, "B": N, "d_in": I}, np_dtype), label="X")
    inputs = {"X": X.transpose(1, 0, 2).copy() if choices["layout"] else X}
    inputs.update(values)
    state_names = [n for n in ("initial_h", "initial_c") if present.get(n)]
    if state_names:
        shape = (N, D, H) if choices["layout"] else (D, N, H)
        inputs.update(draw(rst.float_arrays({n: shape for n in state_names}, np_dtype,
                                            magnitudes=(1.0, 0.1, 10.0)), label="states"))
    if present.get("sequence_lens"):
        inputs["sequence_lens"] = np.array(
            draw(st.lists(st.integers(0, T).map(lambda v, T=T: T - v), min_size=N, max_size=N),
                 label="sequence_lens"), dtype=np.int32)
    outputs = [n for n in OUTPUTS[op] if pick(n) == "present"]
    if not outputs:
        outputs = [OUTPUTS[op][1]]
    choices.update({n: "present" if n in outputs else "absent" for n in OUTPUTS[op]})
    ordered = {n: inputs[n] for n in INPUTS[op] if n in inputs}
    return OnnxCase(op, attrs, ordered, tuple(outputs), choices)


# ------------------------------------------------------------------------------------------
# oracle


def open_points(case: OnnxCase) -> list[str]:
    """The open points of the spec that can make a difference in this case."""
    points = []
    if case.op == "LSTM" and "clip" in case.attributes:
        points.append("clip_before_h")
    lens = case.inputs.get("sequence_lens")
    T = case.sizes()["T"]
    if lens is not None and "Y" in case.outputs and np.any(lens < T):
        points.append("y_past_length")
    if lens is not None and np.any(lens == 0) and set(case.outputs) & {"Y_h", "Y_c"}:
        points.append("empty_state")
    if {"activation_alpha", "activation_beta"} & set(case.attributes):
        try:
            a = parse_attributes(case.op, case.attributes, alpha_order="used")
            b = parse_attributes(case.op, case.attributes, alpha_order="positional")
            if a.activations != b.activations:
                points.append("alpha_order")
        except OnnxError:
            pass
    return points


def oracle(case: OnnxCase, readings: Readings, *, attributes=None, drop=()):
    """``run(params, x, state0, wrap=None) -> flat outputs`` for the tolerance estimate, and
    its arguments. ``attributes``/``drop`` (input names) model a target that ignores them."""
    attrs = parse_attributes(case.op, case.attributes if attributes is None else attributes,
                             alpha_order=readings.alpha_order)
    inputs = {k: v for k, v in case.inputs.items() if k not in drop}
    params = {k: inputs[k] for k in ("W", "R", "B", "P") if k in inputs}
    state0 = {k: inputs[k] for k in ("initial_h", "initial_c") if k in inputs} or None
    lens = inputs.get("sequence_lens")

    def run(params, x, state0, wrap=None):
        out = evaluate(attrs, x, sequence_lens=lens, readings=readings, wrap=wrap,
                       **params, **(state0 or {}))
        return {k: out[k] for k in case.outputs}
    return run, params, inputs["X"], state0


def config_for(case: OnnxCase, dtype: str) -> Config:
    s = case.sizes()
    return Config(cell={"RNN": "elman", "GRU": "gru", "LSTM": "lstm"}[case.op], T=s["T"],
                  B=s["N"], d_in=s["I"], d_h=s["H"],
                  bidirectional=case.attributes.get("direction") == "bidirectional",
                  dtype=dtype)


def expectation(case: OnnxCase, readings: Readings, dtype: str, rtol=None, atol=None, **kw):
    """(expected flat outputs, Tolerance) under ``readings``."""
    run, params, x, state0 = oracle(case, readings, **kw)
    with np.errstate(all="ignore"):
        expected = run(params, x, state0)
        if rtol is None and atol is None:
            tol = backward_error_tolerance(config_for(case, dtype), run, params, x, state0,
                                           expected)
            tol = _gate_rounding(tol, expected, state0, dtype)
        else:
            tol = explicit_tolerance(expected, rtol or 0.0, atol or 0.0)
    return expected, tol


def _gate_rounding(tol, expected: dict, state0, dtype: str):
    """Add the rounding of the gates themselves: a gate near 1 carries an absolute error of a
    few u, which ``(1 - z) * n`` / ``f * c`` multiply by the size of the states they gate
    (onnxruntime computes ``1 - z`` from a float32 ``z``, so ``(1 - z) * 44`` is off by
    ``44 u``). The probes of the backward-error estimate perturb inputs and states, not gate
    outputs, so this term is added: ``SAFETY * FUNCTION_ULPS * u * max |state|``."""
    from rnnsym.check.tolerance import FUNCTION_ULPS, SAFETY, Tolerance, unit_roundoff

    arrays = list(expected.values()) + list((state0 or {}).values())
    scale = max((float(np.max(np.abs(a))) for a in arrays if np.size(a)), default=0.0)
    extra = SAFETY * FUNCTION_ULPS * unit_roundoff(dtype) * scale
    return Tolerance({k: v + extra for k, v in tol.arrays.items()}, tol.method, tol.u, tol.gamma)


def representable(expected: dict, dtype: str) -> bool:
    limit = np.finfo(np.dtype(dtype)).max * 1e-6
    return all(np.all(np.abs(v) < limit) for v in expected.values())


# ------------------------------------------------------------------------------------------
# one case


@dataclass
class OnnxOutcome:
    case: OnnxCase
    expected: dict
    tolerance: object
    got: Optional[dict] = None
    error: Optional[str] = None
    unsupported: Optional[str] = None
    mismatches: list = field(default_factory=list)
    ratio: float = 0.0
    readings: dict = field(default_factory=dict)   # non-default readings it matched

    @property
    def failed(self) -> bool:
        return bool(self.error or self.mismatches)


def run_target(target: OnnxTarget, case: OnnxCase, dtype: str) -> dict:
    """Load (Unsupported propagates) and run; the outputs by name, shapes checked."""
    session = target.load(case.model_bytes())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = target.run(session, case.graph_inputs)
    result = list(result) if isinstance(result, (list, tuple)) else [result]
    if len(result) != len(case.outputs):
        raise AssertionError(f"returned {len(result)} outputs, expected {len(case.outputs)} "
                             f"({', '.join(case.outputs)})")
    return {n: np.asarray(v) for n, v in zip(case.outputs, result)}


def _shape_error(expected: dict, got: dict) -> Optional[str]:
    for n, e in expected.items():
        if np.shape(got[n]) != np.shape(e):
            return f"output {n}: expected shape {np.shape(e)}, got {np.shape(got[n])}"
    return None


def run_case(target: OnnxTarget, case: OnnxCase, dtype: str, fixed: dict, *, rtol=None,
             atol=None) -> Optional[OnnxOutcome]:
    """Compare the target with rnnsym on one case, under every admissible reading of the open
    points (``fixed`` ones only as given). None if the exact result is not representable."""
    points = open_points(case)
    base = Readings(**fixed)
    alternatives = [p for p in points if p not in fixed]
    expected, tol = expectation(case, base, dtype, rtol, atol)
    if not representable(expected, dtype):
        return None
    outcome = OnnxOutcome(case, expected, tol)
    try:
        got = run_target(target, case, dtype)
    except Unsupported as exc:
        outcome.unsupported = str(exc)
        return outcome
    except Exception as exc:  # noqa: BLE001 - the target's failure is a finding
        outcome.error = _first_line(exc)
        return outcome
    outcome.got = got
    outcome.error = _shape_error(expected, got)
    if outcome.error:
        return outcome
    outcome.mismatches = compare_flat(expected, got, tol.arrays)
    outcome.ratio = error_ratio(expected, got, tol.arrays)
    if not outcome.mismatches or not alternatives:
        return outcome
    options = [OPEN[p][0] for p in alternatives]
    for combo in itertools.product(*options):
        choice = dict(zip(alternatives, combo))
        if all(choice[p] == getattr(base, p) for p in alternatives):
            continue
        exp2, tol2 = expectation(case, base.replace(**choice), dtype, rtol, atol)
        if _shape_error(exp2, got) is None and not compare_flat(exp2, got, tol2.arrays):
            outcome.mismatches = []
            outcome.ratio = error_ratio(exp2, got, tol2.arrays)
            outcome.readings = {p: v for p, v in choice.items() if v != getattr(base, p)}
            break
    return outcome


# ------------------------------------------------------------------------------------------
# diagnosis: which way of ignoring or misreading an attribute reproduces the target


def _without(attrs: dict, *names) -> dict:
    return {k: v for k, v in attrs.items() if k not in names}


#: onnxruntime's values of activation parameters that are not given (rnn_helpers.cc)
ORT_ACTIVATION_DEFAULTS = {"affine": (0.0, 0.0), "scaledtanh": (0.0, 0.0),
                           "thresholdedrelu": (0.0,), "leakyrelu": (0.01,),
                           "hardsigmoid": (0.2, 0.5), "elu": (1.0,)}


def _zero_defaults(activations) -> dict:
    """activation_alpha/beta that spell out onnxruntime's defaults for ``activations``."""
    alphas, betas = [], []
    for name in activations:
        params = ORT_ACTIVATION_DEFAULTS.get(ONNX_ACTIVATIONS[_canonical_name(name)], ())
        alphas += list(params[:1])
        betas += list(params[1:2])
    if not any(ONNX_ACTIVATIONS[_canonical_name(n)] in ("affine", "scaledtanh", "thresholdedrelu")
               for n in activations):
        return {}
    out = {"activation_alpha": alphas}
    if betas:
        out["activation_beta"] = betas
    return out


def _canonical_name(name) -> str:
    name = name.decode() if isinstance(name, bytes) else str(name)
    return {k.lower(): k for k in ONNX_ACTIVATIONS}[name.lower()]


def variants(case: OnnxCase, fixed: dict) -> list[tuple[str, dict, dict]]:
    """(text, oracle keywords, reading changes) of the bug models that apply to ``case``."""
    a, out = case.attributes, []
    if "sequence_lens" in case.inputs:
        out.append(("sequence_lens ignored (every sequence run to seq_length)",
                    {"drop": ("sequence_lens",)}, {}))
    if "clip" in a:
        out.append(("clip ignored (activation inputs not clipped)",
                    {"attributes": _without(a, "clip")}, {}))
        if case.op == "LSTM" and fixed.get("clip_before_h", True):
            out.append(("clip not applied before h(C_t) (microsoft/onnxruntime#27224)", {},
                        {"clip_before_h": False}))
    if "activations" in a:
        out.append(("activations ignored (the defaults used)",
                    {"attributes": _without(a, "activations", "activation_alpha",
                                            "activation_beta")}, {}))
        k = len(SLOTS[case.op])
        if a.get("direction") == "bidirectional" and a["activations"][:k] != a["activations"][k:]:
            out.append(("the reverse direction uses the forward direction's activations",
                        {"attributes": _without({**a, "activations": a["activations"][:k] * 2},
                                                "activation_alpha", "activation_beta")}, {}))
    if {"activation_alpha", "activation_beta"} & set(a):
        out.append(("activation_alpha/beta ignored (the operators' defaults used)",
                    {"attributes": _without(a, "activation_alpha", "activation_beta")}, {}))
        if "alpha_order" not in fixed:
            out.append(("activation_alpha/beta read positionally", {},
                        {"alpha_order": "positional"}))
    if "activations" in a and not {"activation_alpha", "activation_beta"} & set(a):
        zeros = _zero_defaults(a["activations"])
        if zeros:
            out.append(("activation parameters left out default to 0 for Affine, ScaledTanh and "
                        "ThresholdedRelu (onnxruntime), not to the operators' defaults "
                        "(Affine 1/0, ScaledTanh 1/1, ThresholdedRelu 1)",
                        {"attributes": {**a, **zeros}}, {}))
    if a.get("input_forget"):
        out.append(("input_forget ignored (f computed from its own weights)",
                    {"attributes": _without(a, "input_forget")}, {}))
    if case.op == "GRU":
        flipped = {**a, "linear_before_reset": 0 if a.get("linear_before_reset") else 1}
        out.append(("linear_before_reset read the other way (reset applied "
                    f"{'before' if a.get('linear_before_reset') else 'after'} the matmul)",
                    {"attributes": flipped}, {}))
    for name in ("B", "P", "initial_h", "initial_c"):
        if name in case.inputs:
            out.append((f"input {name} ignored (zeros used)", {"drop": (name,)}, {}))
    if a.get("direction") == "reverse":
        out.append(("direction=reverse run forwards", {"attributes": _without(a, "direction")},
                    {}))
    if "sequence_lens" in case.inputs:
        for point in ("y_past_length", "empty_state"):
            if point in fixed:
                for r in OPEN[point][0]:
                    if r != fixed[point]:
                        out.append((READING_TEXT[(point, r)], {}, {point: r}))
    return out


def diagnose(case: OnnxCase, got: dict, dtype: str, fixed: dict) -> list[str]:
    """The texts of the bug models (single, then pairs) that reproduce ``got``."""
    base = Readings(**fixed)
    singles = variants(case, fixed)

    def fits(parts) -> bool:
        kw, changes = {}, {}
        for _, k, c in parts:
            for key, value in k.items():
                if key == "drop":
                    kw["drop"] = kw.get("drop", ()) + value
                elif key == "attributes":
                    merged = dict(kw.get("attributes", case.attributes))
                    for name in set(case.attributes) | set(value):
                        if value.get(name) != case.attributes.get(name):
                            if name in value:
                                merged[name] = value[name]
                            else:
                                merged.pop(name, None)
                    kw["attributes"] = merged
            changes.update(c)
        try:
            exp, tol = expectation(case, base.replace(**changes), dtype, **kw)
        except (OnnxError, ValueError):
            return False
        return _shape_error(exp, got) is None and not compare_flat(exp, got, tol.arrays)

    found = [text for text, k, c in singles if fits([(text, k, c)])]
    if not found:
        for one, two in itertools.combinations(singles, 2):
            if fits([one, two]):
                found.append(f"{one[0]}, and {two[0]}")
    return found


# ------------------------------------------------------------------------------------------
# report


@dataclass
class OnnxCounterexample(Counterexample):
    case: Optional[OnnxCase] = None

    def describe(self) -> str:
        case = self.case
        lines = [f"  node: {case.op}(" + ", ".join(f"{k}={v!r}" for k, v in
                                                  case.attributes.items()) + ")",
                 "  sizes: " + " ".join(f"{k}={v}" for k, v in case.sizes().items()) +
                 f"; outputs {', '.join(case.outputs)}"]
        for name, value in case.inputs.items():
            if name not in ("W", "R") or value.size <= 24:
                lines.append(f"  {name} {list(value.shape)} = {_short(value)}")
            else:
                lines.append(f"  {name} {list(value.shape)} (|max| {np.abs(value).max():.3g})")
        if self.error:
            lines.append(f"  target failed: {self.error}")
        for m in self.mismatches:
            lines.append(f"  {m.name}{list(m.index)} differs: got {m.got:.7g}, expected "
                         f"{m.expected:.7g} (tolerance {m.tolerance:.2g}); {m.bad}/{m.size} "
                         f"elements differ, max abs error {m.max_abs_error:.3g}")
        if self.mismatches and self.got is not None:
            first = self.mismatches[0].name
            lines.append(f"  expected {first}: {_short(self.expected[first])}")
            lines.append(f"  got      {first}: {_short(self.got[first])}")
        return "\n".join(lines)


def _short(arr, limit: int = 12) -> str:
    if np.issubdtype(np.asarray(arr).dtype, np.integer):
        return str(np.asarray(arr).ravel().tolist())
    flat = np.asarray(arr, np.float64).ravel()
    text = np.array2string(flat[:limit], precision=4, separator=", ", max_line_width=10**6)
    return text[:-1] + ", ...]" if flat.size > limit else text


@dataclass
class OnnxReport(Report):
    """A Report with the ONNX-specific sections: notes (open points of the spec where the
    target follows another reading) and unsupported attribute values."""

    notes: list = field(default_factory=list)
    unsupported: list = field(default_factory=list)
    checked_nothing: bool = False

    @property
    def exit_code(self) -> int:
        """2 when nothing could be checked (every model rejected): not a pass, not a bug found."""
        return 2 if self.checked_nothing else super().exit_code

    def format(self) -> str:
        if self.checked_nothing:
            text = (f"rnnsym check {self.target} --cell {self.cell} ({self.dtype}): UNSUPPORTED: "
                    "the target rejected every model of this attribute space when loading it; "
                    f"nothing was checked\n  replay: {self.command}")
        else:
            text = super().format()
        extra = []
        if self.notes:
            extra.append("notes (open points of the spec: the target follows another reading; "
                         "not failures):")
            extra += [f"  - {n}" for n in self.notes]
        if self.unsupported:
            extra.append("unsupported (rejected when loading the model; not counted as passes):")
            extra += [f"  - {u}" for u in self.unsupported]
        return "\n".join([text] + extra)


# ------------------------------------------------------------------------------------------
# the run


class _Failure(Exception):
    pass


SHRINK_BUDGET_S = 40.0


def _probe(target: OnnxTarget, op: str, space: dict, dtype: str) -> tuple[dict, list, list]:
    """Try each attribute value of the space alone on the simplest model; drop the values the
    target rejects when loading. Returns (space, unsupported texts, emptied attributes)."""
    rng = np.random.default_rng(0)
    T, N, I, H = 2, 3, 4, 5
    G = {"RNN": 1, "GRU": 3, "LSTM": 4}[op]
    f = np.dtype(dtype)

    def base_inputs(D=1, layout=0):
        X = rng.uniform(-1, 1, (N, T, I) if layout else (T, N, I)).astype(f)
        return {"X": X, "W": rng.uniform(-1, 1, (D, G * H, I)).astype(f),
                "R": rng.uniform(-1, 1, (D, G * H, H)).astype(f)}

    def loads(attrs, extra=None, layout=0, D=1, outputs=None):
        inputs = {**base_inputs(D, layout), **(extra or {})}
        ordered = {n: inputs[n] for n in INPUTS[op] if n in inputs}
        case = OnnxCase(op, {"hidden_size": H, **attrs}, ordered,
                        tuple(outputs or OUTPUTS[op][:2]))
        try:
            target.load(case.model_bytes())
            return None
        except Unsupported as exc:
            return str(exc)

    trials = {
        ("direction", "reverse"): ({"direction": "reverse"}, {}),
        ("direction", "bidirectional"): ({"direction": "bidirectional"}, {}),
        ("layout", 1): ({"layout": 1}, {}),
        ("clip", "given"): ({"clip": 1.0}, {}),
        ("linear_before_reset", 1): ({"linear_before_reset": 1}, {}),
        ("input_forget", 1): ({"input_forget": 1}, {}),
        ("B", "present"): ({}, {"B": np.zeros((1, 2 * G * H), f)}),
        ("sequence_lens", "present"): ({}, {"sequence_lens": np.full(N, T, np.int32)}),
        ("initial_h", "present"): ({}, {"initial_h": np.zeros((1, N, H), f)}),
        ("initial_c", "present"): ({}, {"initial_c": np.zeros((1, N, H), f)}),
        ("P", "present"): ({}, {"P": np.zeros((1, 3 * H), f)}),
    }
    unsupported = []
    space = dict(space)
    for (name, value), (attrs, extra) in trials.items():
        if name not in space or value not in space[name]:
            continue
        D = 2 if attrs.get("direction") == "bidirectional" else 1
        why = loads(attrs, extra, layout=attrs.get("layout", 0), D=D)
        if why:
            unsupported.append(f"{name}={value}: {why}")
            space[name] = tuple(v for v in space[name] if v != value)
    names = [n for n in space["activations"] if n != "default"]
    kept = ["default"] if "default" in space["activations"] else []
    defaults = {"RNN": ["Tanh"], "GRU": ["Sigmoid", "Tanh"], "LSTM": ["Sigmoid", "Tanh", "Tanh"]}
    for act in names:
        rejected = []
        for k, slot in enumerate(SLOTS[op]):
            acts = list(defaults[op])
            acts[k] = act
            why = loads({"activations": acts})
            if why:
                rejected.append((slot, why))
        if len(rejected) == len(SLOTS[op]):
            unsupported.append(f"activations={act} (in every slot): {rejected[0][1]}")
        else:
            kept.append(act)
            for slot, why in rejected:
                unsupported.append(f"activations={act} in slot {slot}: {why} (other slots "
                                   "still drawn)")
    space["activations"] = tuple(kept)
    empty = [n for n, v in space.items() if not v]
    return space, unsupported, empty


def _replay(target, cell, examples, seed, dtype, attributes, variant, rtol, atol) -> str:
    parts = ["rnnsym", "check", target, "--cell", cell, "--examples", str(examples),
             "--seed", str(seed), "--dtype", dtype]
    if attributes:
        parts += ["--attributes", attributes if isinstance(attributes, str) else
                  ",".join(f"{k}={v}" for k, v in attributes.items())]
    if variant:
        parts += ["--variant", ",".join(f"{k}={str(v).lower()}" for k, v in variant.items())]
    if rtol is not None:
        parts += ["--rtol", repr(rtol)]
    if atol is not None:
        parts += ["--atol", repr(atol)]
    return " ".join(parts)


def check_onnx(target: str, cell: str, *, examples: int = 500, seed=None, dtype=None,
               rtol=None, atol=None, attributes=None, variant=None, bidirectional="both",
               max_size: int = 6, **_ignored) -> OnnxReport:
    """Property-test an ONNX runtime's RNN/GRU/LSTM (see the module docstring)."""
    cell = canonical_cell(cell)
    op = OP[cell]
    dtype = dtype or "float32"
    if dtype not in ("float32", "float64"):
        raise UsageError(f"--dtype: expected float32 or float64, got {dtype!r}")
    if examples < 1:
        raise UsageError(f"--examples: expected a positive number, got {examples}")
    seed = random.randrange(2**32) if seed is None else int(seed)
    fixed = parse_readings(variant)
    space = parse_attribute_space(attributes, op)
    bidir = {"yes": ("bidirectional",), "no": ("forward", "reverse")}.get(
        str(bidirectional).lower())
    if bidir:
        space["direction"] = tuple(d for d in space["direction"] if d in bidir) or bidir
    tgt = onnx_target(target)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        space, unsupported, empty = _probe(tgt, op, space, dtype)
    stats = {"examples": 0, "failure": None, "first_failure_at": None, "ratio": 0.0,
             "abs": 0.0, "rel": 0.0, "coverage": {}, "notes": {}, "configs": set(),
             "rejected": {}}
    label = f"rnnsym check {target} --cell {cell}"
    command = _replay(target, cell, examples, seed, dtype, attributes, fixed, rtol, atol)
    start = time.monotonic()

    if not empty:
        @settings(max_examples=examples, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck), report_multiple_bugs=False,
                  phases=[Phase.explicit, Phase.generate, Phase.target, Phase.shrink],
                  verbosity=Verbosity.quiet, print_blob=False)
        @hypothesis_seed(seed)
        @given(case=onnx_cases(op, space, dtype, max_size))
        def property_(case):
            failure = stats["failure"]
            if failure is not None and \
                    time.monotonic() - stats["first_failure_at"] > SHRINK_BUDGET_S:
                return
            outcome = run_case(tgt, case, dtype, fixed, rtol=rtol, atol=atol)
            if outcome is None:
                reject()
            if outcome.unsupported:
                key = ", ".join(f"{k}={v}" for k, v in case.choices.items()
                                if v not in ("absent", "default", 0, "none", "forward"))
                stats["rejected"].setdefault(outcome.unsupported, key)
                reject()
            if outcome.failed:
                if stats["failure"] is None:
                    stats["first_failure_at"] = time.monotonic()
                stats["failure"] = outcome
                raise _Failure()
            if failure is None:
                stats["examples"] += 1
                stats["configs"].add(tuple(sorted(case.choices.items(), key=str)))
                for k, v in case.choices.items():
                    stats["coverage"].setdefault(k, set()).add(v)
                stats["ratio"] = max(stats["ratio"], outcome.ratio)
                a, r = max_errors(outcome.expected, outcome.got)
                stats["abs"], stats["rel"] = max(stats["abs"], a), max(stats["rel"], r)
                for point, reading in outcome.readings.items():
                    size = int(np.prod(list(case.sizes().values())))
                    prev = stats["notes"].get((point, reading))
                    if prev is None or size < prev[0]:
                        stats["notes"][(point, reading)] = (size, case)

        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                property_()
        except _Failure:
            pass
        except HypothesisException:
            if stats["failure"] is None and not stats["rejected"]:
                raise
    elapsed = time.monotonic() - start

    notes = []
    for (point, reading), (_, case) in stats["notes"].items():
        default = fixed.get(point, OPEN[point][0][0])
        notes.append(f"{OPEN[point][1]}: the target follows '{READING_TEXT[(point, reading)]}',"
                     f" not rnnsym's default '{READING_TEXT[(point, default)]}' (select it "
                     f"with --variant {point}={str(reading).lower()}); e.g. {case.describe()}")
    unsupported += [f"{where or 'a combination of defaults'}: {why}"
                    for why, where in stats["rejected"].items()]
    unsupported += [f"every value of {n} (nothing left to draw)" for n in empty]
    report = OnnxReport(
        target=target, cell=cell, dtype=dtype, seed=seed,
        passed=stats["failure"] is None and stats["examples"] > 0,
        examples=stats["examples"] + (stats["failure"] is not None),
        configurations=len(stats["configs"]), elapsed=elapsed,
        max_abs_error=stats["abs"], max_rel_error=stats["rel"],
        max_error_ratio=stats["ratio"],
        tolerance=("explicit rtol/atol" if rtol is not None or atol is not None
                   else "backward-error estimate, see rnnsym.check.tolerance"),
        command=command, coverage={k: sorted(v, key=str) for k, v in stats["coverage"].items()},
        notes=notes, unsupported=unsupported,
        checked_nothing=stats["examples"] == 0 and stats["failure"] is None)
    outcome = stats["failure"]
    if outcome is not None:
        ce = OnnxCounterexample(config=config_for(outcome.case, dtype),
                                mismatches=outcome.mismatches, error=outcome.error,
                                got=outcome.got, expected=outcome.expected, case=outcome.case)
        if outcome.got is not None:
            ce.max_abs_error, ce.max_rel_error = max_errors(outcome.expected, outcome.got)
        report.counterexample = ce
        if outcome.got is not None and not outcome.error:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                report.diagnoses = diagnose(outcome.case, outcome.got, dtype, fixed)
            report.diagnosis = report.diagnoses[0] if report.diagnoses else None
        elif outcome.error:
            report.diagnosis = ("the target raised an error instead of returning outputs (see "
                                "'target failed' above): it cannot run this model")
            report.diagnoses = [report.diagnosis]
    del label
    return report
