"""The attribute space of one-node models, ``--attributes``, and what a target rejects at load.

Every choice's first value is its default (the shrink target), so a counterexample has only the
attributes it needs::

    direction       forward | reverse | bidirectional
    layout          0 | 1
    activations     default | the 11 ONNX names (each slot of each direction drawn)
    activation_params  default | given (activation_alpha/beta for every activation taking one)
    clip            none | given
    linear_before_reset  0 | 1          (GRU)
    input_forget    0 | 1                (LSTM)
    B, sequence_lens, initial_h, initial_c, P   absent | present   (initial_c, P: LSTM)
    Y, Y_h, Y_c     present | absent     (at least one present)

``--attributes NAME=V1|V2,...`` restricts it (:func:`parse_attribute_space`). :func:`survey_attributes`
tries the simplest model, then each value alone on it, and takes the ones the target rejects when
loading out of the space: they are reported as *unsupported*, never as passes (a target that
rejects the simplest model has nothing left: ``empty`` is ``["model"]``; one that refuses it in
the requested dtype only, when loading or running it, ``["dtype"]``).
"""
from __future__ import annotations

import numpy as np

from rnnsym.frameworks import UsageError
from rnnsym.frameworks.onnx.model import OnnxCase
from rnnsym.frameworks.onnx.targets import OnnxTarget, Unsupported, run_target
from rnnsym.onnx import OUTPUTS
from rnnsym.onnx.attributes import DEFAULT_ACTIVATIONS, GATES, ONNX_ACTIVATIONS, SLOTS

OPTIONAL_INPUTS = ("B", "sequence_lens", "initial_h", "initial_c", "P")
OUTPUT_NAMES = ("Y", "Y_h", "Y_c")
#: the whole attribute space; the first value of each is the default (shrink target)
SPACE = {
    "direction": ("forward", "reverse", "bidirectional"),
    "layout": (0, 1),
    "activations": ("default",) + tuple(ONNX_ACTIVATIONS),
    "activation_params": ("default", "given"),
    "clip": ("none", "given"),
    "linear_before_reset": (0, 1),
    "input_forget": (0, 1),
    **{name: ("absent", "present") for name in OPTIONAL_INPUTS},
    **{name: ("present", "absent") for name in OUTPUT_NAMES},
}
#: the choices that exist for one op only
ONLY = {"linear_before_reset": "GRU", "input_forget": "LSTM", "initial_c": "LSTM", "P": "LSTM",
        "Y_c": "LSTM"}


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
            if name in OPTIONAL_INPUTS + OUTPUT_NAMES:
                match = match or [{"0": "absent", "1": "present"}.get(w, None)]
                match = [m for m in match if m]
            if not match:
                raise UsageError(f"--attributes {name}={w}: expected one of "
                                 f"{'|'.join(map(str, SPACE[name]))}")
            chosen.append(match[0])
        space[name] = tuple(dict.fromkeys(chosen))
    return space


def survey_attributes(target: OnnxTarget, op: str, space: dict, dtype: str) -> tuple[dict, list, list]:
    """Try each attribute value of the space alone on the simplest model; drop the values the
    target rejects when loading. Returns (space, unsupported texts, emptied attributes).
    First, a dtype other than float32 in which the simplest model is refused (when loading or
    running: onnxruntime has no float64 GRU kernel) while it runs in float32 leaves nothing
    to check: ``(space, [why], ["dtype"])``."""
    rng = np.random.default_rng(0)
    T, N, I, H = 2, 3, 4, 5
    G = GATES[op]
    f = np.dtype(dtype)

    def base_inputs(D=1, layout=0):
        X = rng.uniform(-1, 1, (N, T, I) if layout else (T, N, I)).astype(f)
        return {"X": X, "W": rng.uniform(-1, 1, (D, G * H, I)).astype(f),
                "R": rng.uniform(-1, 1, (D, G * H, H)).astype(f)}

    def loads(attrs, extra=None, layout=0, D=1, layers=1):
        inputs = {**base_inputs(D, layout), **(extra or {})}
        case = OnnxCase(op, {"hidden_size": H, **attrs}, inputs, OUTPUTS[op][:2],
                        layers=layers)
        case.inputs = {n: inputs[n] for n in case.input_names()}
        try:
            target.load(case.model_bytes(target.constants))
            return None
        except Unsupported as exc:
            return str(exc)
        except Exception:  # noqa: BLE001 - not a rejection: the search meets and reports it
            return None

    def runs(dtype):         # the simplest model, loaded and run: None, or why not
        f = np.dtype(dtype)
        inputs = {n: v.astype(f) for n, v in base_inputs().items()}
        case = OnnxCase(op, {"hidden_size": H}, inputs, OUTPUTS[op][:2])
        try:
            run_target(target, case)
        except Unsupported as exc:
            return str(exc)
        except Exception:  # noqa: BLE001 - a failure, for the search to report
            return None
        return None

    refused = runs(dtype) if dtype != "float32" else None
    if refused and runs("float32") is None:
        return space, [f"dtype={dtype} (the simplest model runs in float32): {refused}"], \
            ["dtype"]
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
    why = loads({})
    if why:
        return space, [f"the simplest {op} node (every attribute and optional input at its "
                       f"default): {why}"], ["model"]
    for n in space.get("layers", ()):
        if n > 1:          # node k > 0 reads [seq, batch, H]
            trials[("layers", n)] = ({}, {f"{w}_l{k}": rng.uniform(-1, 1, (1, G * H, H))
                                          .astype(f) for w in "WR" for k in range(1, n)})
    unsupported = []
    space = dict(space)
    for (name, value), (attrs, extra) in trials.items():
        if name not in space or value not in space[name]:
            continue
        D = 2 if attrs.get("direction") == "bidirectional" else 1
        why = loads(attrs, extra, layout=attrs.get("layout", 0), D=D,
                    layers=value if name == "layers" else 1)
        if why:
            unsupported.append(f"{name}={value}: {why}")
            space[name] = tuple(v for v in space[name] if v != value)
    names = [n for n in space["activations"] if n != "default"]
    kept = ["default"] if "default" in space["activations"] else []
    for act in names:
        rejected = []
        for k, slot in enumerate(SLOTS[op]):
            acts = list(DEFAULT_ACTIVATIONS[op])
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


#: Deprecated alias of :func:`survey_attributes`: "probe" also names ``Harness.probe`` (the
#: contract check) and ``rnnsym.conformance.survey`` (the feature survey); docs/architecture.md.
probe = survey_attributes
