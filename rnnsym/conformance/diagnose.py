"""Name the likely bug: the table of known bug classes, and the ones a failure matches.

Each bug class of the reference notes (section (d)), or a common structural / numerical
mistake, is one entry of :data:`BUG_CLASSES`: when it applies, its message, and the variant
of the cell that reproduces it (``rnnsym.conformance.bug_models.BugModel``). A failure with wrong
numbers is re-run under every applicable variant; all that fit are reported, in table order,
the first is "the" diagnosis. Failures of shape are read off their error with
:data:`SHAPE_CLASSES`. Adding a bug class is adding one entry::

    BugClass("matches with the update rule flipped, h = z*n + (1-z)*h_prev",
             when=lambda x: x.cell == "gru",
             make=lambda x: {"params": map_params(flip_z)})

``when`` and ``make`` get a :class:`Facts` about the failing case; ``over`` expands one entry
into several variants (e.g. every gate order), its items fill the message's ``{fields}`` and
are passed to ``make`` as keywords; ``fixed`` holds BugModel fields that need no facts.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from rnnsym.conformance.oracle import VARIANT_DEFAULTS, oracle_forward, variant_for
from rnnsym.conformance.bug_models import (  # noqa: F401 - pad_outputs: part of the API
    GATE_ORDER, BugModel, bias_groups, fits, interleave, length_padding, map_params, pad_outputs,
    padded_length, permute_gates, state0_direction_major, states_direction_major,
    swap_directions, swap_hc_output, swap_hc_state, swapped, zero_group)
from rnnsym.frameworks import Config

RESET_TEXT = {
    "before": ("reset applied before the matmul, n = tanh(W_xn x + W_hn (r*h) + b_xn + b_hn): "
               "this implementation follows the original paper (Cho et al. 2014) / ONNX "
               "linear_before_reset=0 / Keras reset_after=False"),
    "after": ("reset applied after the matmul, n = tanh(W_xn x + b_xn + r*(W_hn h + b_hn)): "
              "this implementation follows PyTorch / ONNX linear_before_reset=1 / Keras "
              "reset_after=True"),
}
PADDING_TEXT = {
    "zero": "zeros",
    "repeat": "the last valid output repeated (Keras masking, zero_output_for_mask=False)",
    "raw": "the values computed on the padding (not masked)",
}
HARD_SIGMOIDS = [("ONNX HardSigmoid / Keras 2, clip(0.2 u + 0.5, 0, 1)", ("hardsigmoid", 0.2, 0.5)),
                 ("Keras 3 hard_sigmoid, clip(u/6 + 1/2, 0, 1)", ("hardsigmoid", 1 / 6, 0.5))]
WRONG_ACTIVATIONS = {
    "lstm": [(("sigmoid", "sigmoid", "tanh"), "the cell candidate g squashed with sigmoid "
              "instead of tanh"),
             (("sigmoid", "tanh", "identity"), "h = o * c: the tanh on the cell state is missing"),
             (("sigmoid", "identity", "tanh"), "the cell candidate g without its tanh")],
    "gru": [(("sigmoid", "sigmoid"), "the candidate n squashed with sigmoid instead of tanh"),
            (("sigmoid", "identity"), "the candidate n without its tanh")],
}
CORE_INPUT = ("a plain batched float sequence: one layer, one direction, time-major, no "
              "initial state")


@dataclass
class Facts:
    """What the bug classes may ask about a failing case."""

    c: Config
    cell: str
    values: dict                # the target's parameters (target layout)
    variant: dict               # the oracle options of the config
    reset: str = "after"        # GRU: the claimed reset placement, and the other one
    other_reset: str = "before"
    activation: str = "tanh"    # Elman: the claimed activation
    lengths: Optional[tuple] = None
    padded: bool = False        # some sample ends before the padded length
    padding: str = "zero"       # the harness's outputs past a length

    @property
    def conv(self) -> str:
        return ",".join(GATE_ORDER.get(self.cell, ""))

    @property
    def other_reset_text(self) -> str:
        return RESET_TEXT[self.other_reset]


def facts(harness, case) -> Facts:
    c = case.config
    claimed = {**VARIANT_DEFAULTS[c.cell], **c.options}
    x = Facts(c=c, cell=c.cell, values=case.values, variant=variant_for(c),
              activation=claimed.get("activation", "tanh"), lengths=case.lengths)
    if c.cell == "gru":
        x.reset = claimed["reset"]
        x.other_reset = "before" if x.reset == "after" else "after"
    if case.lengths is not None:
        x.padded = any(n < padded_length(harness, case.lengths, c.T) for n in case.lengths)
        x.padding = length_padding(harness, c)
    return x


@dataclass(frozen=True)
class BugClass:
    """One known bug class (see the module docstring)."""

    text: str
    when: Callable[[Facts], bool] = lambda x: True
    make: Callable[..., dict] = lambda x, **item: {}
    fixed: dict = field(default_factory=dict)
    over: Callable[[Facts], list] = lambda x: [{}]

    def variants(self, x: Facts) -> list[BugModel]:
        if not self.when(x):
            return []
        fields = {"conv": x.conv, "other_reset": x.other_reset,
                  "other_reset_text": x.other_reset_text, "activation": x.activation,
                  "padding": PADDING_TEXT[x.padding]}
        return [BugModel(self.text.format(**fields, **item), **self.fixed, **self.make(x, **item))
                for item in self.over(x)]


def _gru(x):
    return x.cell == "gru"


def _gated(x):
    return x.cell in GATE_ORDER


def _bidirectional(x):
    return x.c.bidirectional


def _gate_orders(x) -> list[dict]:
    conv = GATE_ORDER[x.cell]
    return [{"order": ",".join(order), "perm": "".join(order),
             "swapped": swapped(conv, "".join(order))}
            for order in itertools.permutations(conv) if "".join(order) != conv]


def _with_activations(x, acts):
    return {"forward": oracle_forward(x.cell, **{**x.variant, "activations": acts})}


def _flip_z(p):
    return {**p, **{k: -p[k] for k in ("W_xz", "W_hz", "b_xz", "b_hz") if k in p}}


BUG_CLASSES = [
    # GRU: reset placement, b_hn placement, update rule (reference notes (d) 2, 3)
    BugClass("matches rnnsym's GRU with {other_reset_text}", when=_gru,
             make=lambda x: {"forward": oracle_forward("gru", reset=x.other_reset)}),
    BugClass("matches with b_hn added outside the reset gate, n = tanh(W_xn x + r*(W_hn h) + b_xn "
             "+ b_hn) (bias placement, cf. CoreML GRU apple/coremltools#1124)",
             when=lambda x: _gru(x) and x.reset == "after",
             fixed={"params": map_params(lambda p: {**p, "b_xn": p["b_xn"] + p["b_hn"],
                                                     "b_hn": 0 * p["b_hn"]})}),
    BugClass("matches with the hidden bias b_hn missing, n = tanh(W_xn x + b_xn + r*(W_hn h)) "
             "(bias missing, cf. flax nnx.GRUCell google/flax#5594)",
             when=lambda x: _gru(x) and x.reset == "after",
             fixed={"params": map_params(lambda p: {**p, "b_hn": 0 * p["b_hn"]})}),
    BugClass("matches with the update rule flipped, h = z*n + (1-z)*h_prev", when=_gru,
             fixed={"params": map_params(_flip_z)}),
    # gate order (d1), alone and with the other reset placement
    BugClass("matches with gates read in order {order} instead of {conv}{swapped} (gate-order "
             "permutation)", when=_gated, over=_gate_orders,
             make=lambda x, perm, **_: {"params": permute_gates(x.cell, perm)}),
    BugClass("matches with gates read in order {order} instead of {conv} and reset applied "
             "{other_reset} the matmul", when=_gru, over=_gate_orders,
             make=lambda x, perm, **_: {"params": permute_gates(x.cell, perm),
                                        "forward": oracle_forward("gru", reset=x.other_reset)}),
    # activations (numerics, wrong functions)
    BugClass("matches with a hard sigmoid ({label}) for the gates instead of the logistic sigmoid "
             "(numerics)", when=_gated,
             over=lambda x: [{"label": label, "hard": hard} for label, hard in HARD_SIGMOIDS],
             make=lambda x, hard, **_: _with_activations(
                 x, (hard, "tanh", "tanh") if x.cell == "lstm" else (hard, "tanh"))),
    BugClass("matches with {what} (wrong activation)", when=lambda x: x.cell in WRONG_ACTIVATIONS,
             over=lambda x: [{"what": what, "acts": acts}
                             for acts, what in WRONG_ACTIVATIONS[x.cell]],
             make=lambda x, acts, **_: _with_activations(x, acts)),
    BugClass("matches rnnsym's Elman RNN with activation {act} instead of {activation} "
             "(nonlinearity ignored or wrong)", when=lambda x: x.cell == "elman",
             over=lambda x: [{"act": a} for a in ("tanh", "relu", "sigmoid", "identity")
                             if a != x.activation],
             make=lambda x, act: {"forward": oracle_forward("elman", activation=act)}),
    # parameters and state
    BugClass("matches with the {group}* parameters ignored (bias missing)",
             when=lambda x: x.c.bias,
             over=lambda x: [{"group": g} for g in bias_groups(x.values)],
             make=lambda x, group: {"values": zero_group(group)}),
    BugClass("matches with the initial state ignored (zeros used instead)",
             when=lambda x: x.c.initial_state,
             fixed={"state": lambda s: {k: 0 * v for k, v in s.items()}}),
    BugClass("matches with the state not carried between time steps (every step starts again "
             "from the initial state)", when=lambda x: x.c.T > 1, fixed={"step_restart": True}),
    # reverse direction and layouts (d4, d5)
    BugClass("matches with the reverse direction's outputs not realigned with input time (left "
             "in processing order, cf. Keras go_backwards vs ONNX reverse)", when=_bidirectional,
             fixed={"stack": {"realign": False}}),
    BugClass("matches with the reverse direction running forwards in time", when=_bidirectional,
             fixed={"stack": {"reverse_time": False}}),
    BugClass("matches with the reverse direction's final state taken after its first step "
             "(output[-1]) instead of after seeing x[0] (output[0])", when=_bidirectional,
             fixed={"stack": {"reverse_final": "first_step"}}),
    BugClass("matches with the direction axis interleaved: output laid out (..., d_out, D) "
             "instead of (..., D, d_out) (direction-axis layout, cf. pytorch/pytorch#10838)",
             when=_bidirectional, fixed={"output": interleave}),
    BugClass("matches with the forward and reverse halves of the output swapped",
             when=_bidirectional, fixed={"output": swap_directions}),
    BugClass("matches with final states ordered direction-major (direction*num_layers + layer "
             "instead of layer*D + direction): layer states mixed up",
             when=lambda x: x.c.bidirectional and x.c.num_layers > 1,
             fixed={"output": states_direction_major}),
    BugClass("matches with the initial state read direction-major (direction*num_layers + "
             "layer): layer states mixed up",
             when=lambda x: x.c.bidirectional and x.c.num_layers > 1 and x.c.initial_state,
             fixed={"state": state0_direction_major}),
    BugClass("matches with initial and final states ordered direction-major: layer states "
             "mixed up",
             when=lambda x: x.c.bidirectional and x.c.num_layers > 1 and x.c.initial_state,
             fixed={"state": state0_direction_major, "output": states_direction_major}),
    # variable lengths (d6, d10)
    BugClass("matches with the lengths ignored: padding steps processed as if valid (every "
             "sample runs all steps, its final state taken at T-1 instead of len-1, the reverse "
             "direction starting in the padding)", when=lambda x: x.padded,
             fixed={"lengths": {"mode": "ignored"}}),
    BugClass("matches with the lengths/mask ignored: padding steps processed as if valid and "
             "the outputs past each length not masked",
             when=lambda x: x.padded and x.padding != "raw",
             fixed={"lengths": {"mode": "ignored", "padding": "raw"}}),
    BugClass("matches with the reverse direction starting at the padded end (T-1) instead of at "
             "len-1 (cf. onnx/onnx-tensorflow#342)", when=lambda x: x.padded and x.c.bidirectional,
             fixed={"lengths": {"mode": "reverse_padded"}}),
    BugClass("matches with the final state taken at the padded end (T-1) instead of after the "
             "last valid step len-1: the state runs on through the padding while the outputs "
             "are masked", when=lambda x: x.padded, fixed={"lengths": {"mode": "final_padded"}}),
    BugClass("matches with the outputs past each length being {other} instead of {padding} "
             "(masking / zero_output_for_mask semantics, cf. microsoft/onnxruntime#12492, "
             "keras-team/keras#17596)", when=lambda x: x.padded,
             over=lambda x: [{"other": PADDING_TEXT[p], "mode": p} for p in PADDING_TEXT
                             if p != x.padding],
             make=lambda x, mode, **_: {"lengths": {"padding": mode}}),
    # LSTM state ordering
    BugClass("matches with the initial state read as (c, h) instead of (h, c) (state ordering)",
             when=lambda x: x.cell == "lstm" and not x.c.d_proj and x.c.initial_state,
             fixed={"state": swap_hc_state}),
    BugClass("matches with states read and returned as (c, h) instead of (h, c) (state "
             "ordering)", when=lambda x: x.cell == "lstm" and not x.c.d_proj and x.c.initial_state,
             fixed={"state": swap_hc_state, "output": swap_hc_output}),
    BugClass("matches with the final state returned as (c, h) instead of (h, c) (state "
             "ordering)", when=lambda x: x.cell == "lstm" and not x.c.d_proj,
             fixed={"output": swap_hc_output}),
    # precision
    BugClass("matches within float32 tolerance: the target computes (at least partly) in "
             "float32 although float64 was requested (e.g. Keras 3 casts 64-bit matmul results "
             "to 32-bit outside TensorFlow)", when=lambda x: x.c.dtype == "float64",
             make=lambda x: {"config": x.c.replace(dtype="float32")}),
]


def catalogue(harness, outcome) -> list[BugModel]:
    """All variants of the table that apply to this failing case, in table order."""
    x = facts(harness, outcome.case)
    return [v for bug in BUG_CLASSES for v in bug.variants(x)]


# ------------------------------------------------------------------------------------------
# failures of shape: read off the error


def _before(err: str, word: str) -> str:
    return err.split(word)[0]


def _listed(err: str, word: str, stop: str) -> str:
    return err.split(word, 1)[1].split(stop)[0] if word in err else ""


SHAPE_CLASSES = [
    ("batch_first ignored: the target treats (B, T, ·) input as time-major",
     lambda c, err: c.batch_first and "(B, T" in _before(err, "got") and "= (T, B" in err),
    ("batch_first ignored: the target treats (B, T, ·) input as time-major (its h_n has T where "
     "B belongs)",
     lambda c, err: c.batch_first and "h_n" in err and "got" in err
     and ", T, " in err.split("got")[1]),
    ("projection ignored: the target returns d_h where proj_size belongs",
     lambda c, err: "d_h" in err.split("got")[-1] and "d_out" in _before(err, "got")
     and c.d_proj),
    ("bias=False ignored: the target still creates bias parameters",
     lambda c, err: not c.bias and "bias" in _listed(err, "unexpected", "expected exactly")),
    ("bidirectional ignored: the target has no _reverse parameters",
     lambda c, err: c.bidirectional and "_reverse" in _listed(err, "missing", "unexpected")),
    ("num_layers ignored: the target has no parameters for layer 1",
     lambda c, err: c.num_layers > 1 and "_l1" in _listed(err, "missing", "unexpected")),
    ("proj_size ignored: the target has no (or the wrong) projection",
     lambda c, err: c.d_proj and ("weight_hr" in _listed(err, "missing", "unexpected")
                                  or ("weight_hh" in err and "d_out" in err))),
]


def _shape_diagnosis(outcome) -> list[str]:
    err, c = outcome.error or "", outcome.case.config
    return [text for text, applies in SHAPE_CLASSES if applies(c, err)]


# ------------------------------------------------------------------------------------------
# naming the bug


def _related_outcomes(harness, outcome, count: int = 2) -> list:
    """Failing outcomes on richer relatives of the counterexample (T + 2 steps, an
    initial state where supported, fresh values) to tell apart variants that the
    shrunk example cannot (at T=1 from a zero state, a GRU's reset placement and
    its b_hn placement coincide). A variable-length counterexample keeps its lengths
    (full-length samples grow with T) and also gets a bidirectional relative where
    the target has one (ignored lengths and a final state taken at the padded end
    only differ in the reverse direction)."""
    from rnnsym.conformance.cases import build_case
    from rnnsym.conformance.target import run_case

    case = outcome.case
    c = case.config
    richer = c.replace(T=c.T + 2, initial_state=c.initial_state or
                       True in harness.capabilities.initial_state)
    if richer.T in (richer.B, richer.d_in, richer.d_h, richer.d_proj):
        richer = richer.replace(T=max(richer.sizes().values()) + 1)
    configs = [richer] * count
    lengths = case.lengths
    if lengths is not None:
        lengths = tuple(richer.T if n == c.T else n for n in lengths)
        if not c.bidirectional and True in harness.capabilities.bidirectional:
            configs.append(richer.replace(bidirectional=True))
    related = []
    for seed, config in enumerate(configs):
        try:
            other = run_case(harness, build_case(harness, config, seed=12345 + seed,
                                                 lengths=lengths, length_mode=case.length_mode))
        except Exception:  # noqa: BLE001 - diagnosis is best effort
            continue
        if other is not None and other.got is not None and other.mismatches:
            related.append(other)
    return related


def diagnose(harness, outcome, core=None) -> list[str]:
    """Texts of all bug classes that reproduce the target's output (best first). When
    several fit the shrunk counterexample, those that also fit richer failing
    relatives of it are kept. A failure of another kind than wrong numbers gets what its
    error says (shapes), or nothing beyond the error itself."""
    if outcome.kind == "raised" and outcome.unsupported:
        return [f"{outcome.unsupported.split(':')[0]} on core input ({CORE_INPUT}): "
                "declaring something unsupported is only for optional features"]
    if outcome.got is None:
        return _shape_diagnosis(outcome)
    found = []
    got, expected = outcome.got, outcome.expected
    nonfinite = any(np.any(~np.isfinite(np.asarray(got[k], np.float64))
                           & np.isfinite(expected[k])) for k in expected)
    if nonfinite:
        found.append("non-finite output (nan/inf) where the exact result is finite: likely "
                     "exp overflow in a naive sigmoid/tanh, e.g. exp(x)/(1+exp(x)) for large "
                     "|pre-activation| (numerics)")
    fitting = [v for v in catalogue(harness, outcome) if fits(harness, outcome, v)]
    if len(fitting) > 1:
        related = _related_outcomes(harness, outcome)
        narrowed = [v for v in fitting if all(fits(harness, o, v) for o in related)]
        fitting = narrowed or fitting
    return found + [v.text for v in fitting]
