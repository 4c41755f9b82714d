"""Name the likely bug: re-run the oracle under known wrong variants and see which
one reproduces the target's output.

Each Variant models one bug class of the reference notes (section (d)) or a common
structural/numerical mistake, as a change to the oracle's *inputs* (parameters,
state), its single-layer *forward* (GRU reset placement, activation), the stack
*driver* (reverse direction handling) or the *output layout* (direction axis, state
ordering). A variant fits when every output of the target lies within the variant's
own backward-error tolerance (``rnnsym.check.tolerance``), exactly the test the
correct oracle failed. Variants are tried in the order below; all that fit are
reported, the first is "the" diagnosis.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from rnnsym.check.oracle import VARIANT_DEFAULTS, oracle_forward, variant_for
from rnnsym.check.tolerance import backward_error_tolerance
from rnnsym.frameworks import Config, flat_outputs, nest_state
from rnnsym.frameworks.layers import stack_forward
from rnnsym.check.compare import compare_flat

GATE_ORDER = {"lstm": "ifgo", "gru": "rzn"}
RESET_TEXT = {
    "before": ("reset applied before the matmul, n = tanh(W_xn x + W_hn (r*h) + b_xn + b_hn): "
               "this implementation follows the original paper (Cho et al. 2014) / ONNX "
               "linear_before_reset=0 / Keras reset_after=False"),
    "after": ("reset applied after the matmul, n = tanh(W_xn x + b_xn + r*(W_hn h + b_hn)): "
              "this implementation follows PyTorch / ONNX linear_before_reset=1 / Keras "
              "reset_after=True"),
}


@dataclass
class Variant:
    """A wrong-but-plausible model of the target.

    text       the diagnosis, e.g. "matches with gates i,f,o,g ..."
    params     canonical params -> params the variant computes with
    forward    single-layer forward to use instead of the oracle's
    state      flat state0 -> state0 the variant starts from
    output     flat expected -> flat outputs as the variant would report them
    stack      keyword options of _stack (reverse-direction handling)
    values     target-layout values -> values (e.g. a bias group zeroed)
    step_restart  every time step starts from the initial state (state not carried)
    config     config to run the oracle in (e.g. float32 arithmetic)
    lengths    variable-length cases only: how the variant treats the lengths, a dict
               with ``mode`` ("valid" = correct, "ignored", "reverse_padded",
               "final_padded"; see _stack_lengths) and ``padding`` (what it reports
               past each length: "zero", "repeat" or "raw"; default: the harness's)
    """

    text: str
    params: Optional[Callable] = None
    forward: Optional[Callable] = None
    state: Optional[Callable] = None
    output: Optional[Callable] = None
    stack: Optional[dict] = None
    values: Optional[Callable] = None
    step_restart: bool = False
    config: Optional[Config] = None
    lengths: Optional[dict] = None


# ------------------------------------------------------------------------------------------
# a stack driver with knobs for the reverse-direction bugs


def _stack(forward, params, x, state0, *, realign=True, reverse_time=True,
           reverse_final="full"):
    """Like layers.stack_forward, but the reverse direction can be mishandled:
    realign=False leaves its outputs in processing order; reverse_time=False runs
    it forwards; reverse_final="first_step" reports the state after its first step."""
    inp, final = x, []
    for layer, dirs in enumerate(params):
        outs, states = [], []
        for d, p in enumerate(dirs):
            s0 = None if state0 is None else state0[layer][d]
            if d == 0 or not reverse_time:
                out, st = forward(p, inp, s0)
            else:
                out, st = forward(p, inp[::-1], s0)
                if reverse_final == "first_step":
                    _, st = forward(p, inp[::-1][:1], s0)
                if realign:
                    out = out[::-1]
            outs.append(out)
            states.append(st)
        inp = np.concatenate(outs, axis=-1)
        final.append(states)
    return inp, final


# ------------------------------------------------------------------------------------------
# variable-length batches (bug classes 6 and 10)


def _sample_state(state0, b):
    if state0 is None:
        return None
    return [[{k: v[b:b + 1] for k, v in s.items()} for s in layer] for layer in state0]


def _masked_stack(forward, params, x, state0, length, mode):
    """One sample ``x (T_pad, 1, F)`` of valid length ``length`` through a stack whose
    layers mask their outputs past the length (zeros) but mishandle the padding:
    mode "reverse_padded": the reverse direction starts at the padded end T_pad-1
    (onnx/onnx-tensorflow#342); "final_padded": the forward direction's final state
    is taken after running on through the padding (T_pad-1 instead of length-1)."""
    inp, final = x, []
    for layer, dirs in enumerate(params):
        outs, states = [], []
        for d, p in enumerate(dirs):
            s0 = None if state0 is None else state0[layer][d]
            out = None
            if d == 0:
                out, st = forward(p, inp[:length], s0)
                if mode == "final_padded":
                    _, st = forward(p, inp, s0)
            elif mode == "reverse_padded":
                out, st = forward(p, inp[::-1], s0)
                out = out[::-1][:length]
            else:
                out, st = forward(p, inp[:length][::-1], s0)
                out = out[::-1]
            padded = np.zeros((len(inp),) + out.shape[1:], out.dtype)
            padded[:length] = out
            outs.append(padded)
            states.append(st)
        inp = np.concatenate(outs, axis=-1)
        final.append(states)
    return inp, final


def pad_outputs(outputs, lengths, num_dirs: int, padding: str):
    """Outputs past each sample's length as a framework reports them: "zero" (torch
    pad_packed_sequence, ONNX, Keras Bidirectional), "repeat" (Keras masking with
    zero_output_for_mask=False: the forward direction repeats its last valid
    output, the reverse direction -- which meets the padding first -- gives zeros)
    or "raw" (left as computed)."""
    if padding == "raw":
        return outputs
    out = np.array(outputs, copy=True)
    width = out.shape[-1] // num_dirs
    for b, length in enumerate(lengths):
        out[length:, b] = 0
        if padding == "repeat":
            out[length:, b, :width] = out[length - 1, b, :width]
    return out


def _stack_lengths(forward, params, x, state0, lengths, *, stack=None, mode="valid",
                   padded_len=None):
    """Variable-length stack, sample by sample; outputs past a sample's own valid
    steps are zero (raw values with mode "ignored"). mode "valid" is the correct
    semantics (``layers.stack_forward(..., lengths=)``, here with ``stack`` -- e.g.
    the reverse-direction knobs of _stack -- applied to each sample's valid steps);
    "ignored" runs every sample over all ``padded_len`` steps (padding processed as if
    valid); "reverse_padded" and "final_padded": see _masked_stack."""
    T, B = x.shape[:2]
    padded_len = padded_len or T
    stack = stack or stack_forward
    per_sample = []
    for b, length in enumerate(int(n) for n in lengths):
        s0 = _sample_state(state0, b)
        if mode == "ignored":
            out, fin = stack(forward, params, x[:padded_len, b:b + 1], s0)
        elif mode == "valid":
            out, fin = stack(forward, params, x[:length, b:b + 1], s0)
        else:
            out, fin = _masked_stack(forward, params, x[:padded_len, b:b + 1], s0, length, mode)
        per_sample.append((out, fin))
    outputs = np.zeros((T, B, per_sample[0][0].shape[-1]))
    for b, (out, _) in enumerate(per_sample):
        outputs[:len(out), b] = out[:, 0]
    final = [[{k: np.concatenate([ps[1][layer][d][k] for ps in per_sample], axis=0)
               for k in per_sample[0][1][layer][d]}
              for d in range(len(params[0]))]
             for layer in range(len(params))]
    return outputs, final


def padded_length(harness, lengths, T: int) -> int:
    """How many steps a target that ignores the lengths runs: max(lengths) for torch
    packed input (all it can unpack), T for a Keras mask."""
    fn = getattr(harness, "padded_length", None)
    return int(fn(lengths, T)) if fn else T


def length_padding(harness, config: Config) -> str:
    """The target's convention for outputs past a length (see pad_outputs)."""
    fn = getattr(harness, "length_padding", None)
    return fn(config) if fn else "zero"


def lengths_oracle(harness, case):
    """``run(params, x, state0, wrap=None) -> flat`` for a variable-length case: the
    canonical stack driver ``layers.stack_forward(..., lengths=)`` with the oracle's
    forward, outputs past each length in the harness's convention."""
    return _runner(case.config, Variant("correct"), harness=harness, lengths=case.lengths)


def _restart_each_step(forward):
    def forward_restarting(params, x, state0=None):
        outs, st = [], None
        for t in range(len(x)):
            out, st = forward(params, x[t:t + 1], state0)
            outs.append(out)
        if not outs:
            return forward(params, x, state0)
        return np.concatenate(outs), st
    return forward_restarting


def _runner(config: Config, variant: Variant, *, harness=None, lengths=None):
    base = variant.forward or oracle_forward(config.cell, **variant_for(config))
    knobs = dict(variant.lengths or {})
    mode = knobs.get("mode", "valid")
    padding = knobs.get("padding") or length_padding(harness, config)
    padded_len = None if lengths is None else padded_length(harness, lengths, config.T)

    def run(params, x, state0, wrap=None):
        forward = wrap(base) if wrap else base
        if variant.step_restart:   # after wrap: the probes' noise must not carry state
            forward = _restart_each_step(forward)
        p = [[{k: np.asarray(v, np.float64) for k, v in d.items()} for d in layer]
             for layer in params]
        s = variant.state(state0) if (variant.state and state0 is not None) else state0
        nested = nest_state(s, config.num_layers, config.D)
        x64 = np.asarray(x, np.float64)
        if lengths is not None:
            if variant.stack or mode != "valid":
                stack = (lambda *a: _stack(*a, **variant.stack)) if variant.stack else None
                outputs, final = _stack_lengths(forward, p, x64, nested, lengths, stack=stack,
                                                mode=mode, padded_len=padded_len)
            else:   # the correct semantics: the canonical driver itself
                outputs, final = stack_forward(forward, p, x64, nested, lengths=lengths)
            outputs = pad_outputs(outputs, lengths, config.D, padding)
        elif variant.stack:
            outputs, final = _stack(forward, p, x64, nested, **variant.stack)
        else:
            outputs, final = stack_forward(forward, p, x64, nested)
        flat = flat_outputs(outputs, final, config.D)
        return variant.output(flat) if variant.output else flat
    return run


def fits(harness, outcome, variant: Variant) -> bool:
    """True if the target's output matches ``variant`` within its tolerance."""
    case, got = outcome.case, outcome.got
    config = variant.config or case.config
    values = variant.values(case.values) if variant.values else case.values
    params = harness.to_canonical(case.config, values)
    if variant.params:
        params = variant.params(params)
    run = _runner(config, variant, harness=harness, lengths=getattr(case, "lengths", None))
    try:
        with np.errstate(all="ignore"):
            expected = run(params, case.x, case.state0)
            if any(np.shape(expected[k]) != np.shape(got[k]) for k in expected):
                return False
            tol = backward_error_tolerance(config, run, params, case.x, case.state0, expected)
    except (ValueError, KeyError, IndexError):
        return False
    return not compare_flat(expected, got, tol.arrays)


# ------------------------------------------------------------------------------------------
# the catalogue


def _map_params(fn):
    return lambda params: [[fn(dict(p)) for p in layer] for layer in params]


def _permute_gates(cell: str, order: str):
    """The target reads its gate blocks in ``order`` instead of the conventional one:
    the block stored for conventional gate conv[k] is used as gate order[k]."""
    conv = GATE_ORDER[cell]

    def remap(p):
        out = dict(p)
        for stored, used in zip(conv, order):
            for kind in ("W_x", "W_h", "b_x", "b_h"):
                out[f"{kind}{used}"] = p[f"{kind}{stored}"]
        return out
    return _map_params(remap)


def _swapped(conv: str, order: str) -> str:
    pairs = [(a, b) for a, b in itertools.combinations(range(len(conv)), 2)
             if order[a] == conv[b] and order[b] == conv[a]]
    if len(pairs) == 1 and sum(x != y for x, y in zip(conv, order)) == 2:
        a, b = pairs[0]
        return f" (gates {conv[a]} and {conv[b]} swapped)"
    return ""


def _interleave(flat):
    out = dict(flat)
    T, B, D, d = flat["output"].shape
    out["output"] = flat["output"].transpose(0, 1, 3, 2).reshape(T, B, D, d)
    return out


def _swap_directions(flat):
    out = dict(flat)
    out["output"] = flat["output"][:, :, ::-1]
    return out


def _direction_major(arr):
    """(L, D, ...) as laid out layer-major, re-read as direction-major."""
    L, D = arr.shape[:2]
    return arr.transpose(1, 0, *range(2, arr.ndim)).reshape(arr.shape)


def _states_direction_major(flat):
    return {k: (_direction_major(v) if k in ("h_n", "c_n") else v) for k, v in flat.items()}


def _state0_direction_major(state0):
    L, D = state0["h"].shape[:2]
    return {k: v.reshape((D, L) + v.shape[2:]).transpose(1, 0, *range(2, v.ndim))
            for k, v in state0.items()}


def _swap_hc_state(state0):
    return {"h": state0["c"], "c": state0["h"]}


def _swap_hc_output(flat):
    out = dict(flat)
    out["h_n"], out["c_n"] = flat["c_n"], flat["h_n"]
    return out


def _zero_group(prefix: str):
    def zero(values):
        return {k: (np.zeros_like(v) if k.startswith(prefix) else v) for k, v in values.items()}
    return zero


def _bias_groups(values) -> list[str]:
    groups = []
    for name in values:
        if "bias" in name or name.startswith("b_"):
            group = name.split("_l")[0] if "_l" in name else name
            if group not in groups:
                groups.append(group)
    return groups


def catalogue(harness, outcome) -> list[Variant]:
    """All variants that apply to this failing case, most specific first."""
    case = outcome.case
    c, cell = case.config, case.config.cell
    expected_variant = {**VARIANT_DEFAULTS[cell], **c.options}
    out: list[Variant] = []

    if cell == "gru":
        other = "before" if expected_variant["reset"] == "after" else "after"
        out.append(Variant(f"matches rnnsym's GRU with {RESET_TEXT[other]}",
                           forward=oracle_forward("gru", reset=other)))
        if expected_variant["reset"] == "after":
            out.append(Variant(
                "matches with b_hn added outside the reset gate, n = tanh(W_xn x + r*(W_hn h) "
                "+ b_xn + b_hn) (bias placement, cf. CoreML GRU apple/coremltools#1124)",
                params=_map_params(lambda p: {**p, "b_xn": p["b_xn"] + p["b_hn"],
                                              "b_hn": 0 * p["b_hn"]})))
            out.append(Variant(
                "matches with the hidden bias b_hn missing, n = tanh(W_xn x + b_xn + "
                "r*(W_hn h)) (bias missing, cf. flax nnx.GRUCell google/flax#5594)",
                params=_map_params(lambda p: {**p, "b_hn": 0 * p["b_hn"]})))
        out.append(Variant(
            "matches with the update rule flipped, h = z*n + (1-z)*h_prev",
            params=_map_params(lambda p: {**p, **{k: -p[k] for k in
                                                  ("W_xz", "W_hz", "b_xz", "b_hz")}})))
    if cell in GATE_ORDER:
        conv = GATE_ORDER[cell]
        for order in ("".join(o) for o in itertools.permutations(conv)):
            if order == conv:
                continue
            out.append(Variant(
                f"matches with gates read in order {','.join(order)} instead of "
                f"{','.join(conv)}{_swapped(conv, order)} (gate-order permutation)",
                params=_permute_gates(cell, order)))
        if cell == "gru":
            other = "before" if expected_variant["reset"] == "after" else "after"
            for order in ("".join(o) for o in itertools.permutations(conv)):
                if order != conv:
                    out.append(Variant(
                        f"matches with gates read in order {','.join(order)} instead of "
                        f"{','.join(conv)} and reset applied {other} the matmul",
                        params=_permute_gates(cell, order),
                        forward=oracle_forward("gru", reset=other)))
    if cell in GATE_ORDER:
        # piecewise-linear gate activations some ports use (symbolic cells support them)
        for label, hard in (("ONNX HardSigmoid / Keras 2, clip(0.2 u + 0.5, 0, 1)",
                             ("hardsigmoid", 0.2, 0.5)),
                            ("Keras 3 hard_sigmoid, clip(u/6 + 1/2, 0, 1)",
                             ("hardsigmoid", 1 / 6, 0.5))):
            acts = (hard, "tanh", "tanh") if cell == "lstm" else (hard, "tanh")
            out.append(Variant(
                f"matches with a hard sigmoid ({label}) for the gates instead of the logistic "
                "sigmoid (numerics)",
                forward=oracle_forward(cell, **{**variant_for(c), "activations": acts})))
    wrong_acts = {
        "lstm": [(("sigmoid", "sigmoid", "tanh"), "the cell candidate g squashed with sigmoid "
                  "instead of tanh"),
                 (("sigmoid", "tanh", "identity"), "h = o * c: the tanh on the cell state is "
                  "missing"),
                 (("sigmoid", "identity", "tanh"), "the cell candidate g without its tanh")],
        "gru": [(("sigmoid", "sigmoid"), "the candidate n squashed with sigmoid instead of tanh"),
                (("sigmoid", "identity"), "the candidate n without its tanh")],
    }
    for acts, what in wrong_acts.get(cell, []):
        out.append(Variant(f"matches with {what} (wrong activation)",
                           forward=oracle_forward(cell, **{**variant_for(c), "activations": acts})))
    if cell == "elman":
        for act in ("tanh", "relu", "sigmoid", "identity"):
            if act != expected_variant["activation"]:
                out.append(Variant(f"matches rnnsym's Elman RNN with activation {act} instead "
                                   f"of {expected_variant['activation']} (nonlinearity ignored "
                                   "or wrong)", forward=oracle_forward("elman", activation=act)))
    if c.bias:
        for group in _bias_groups(case.values):
            out.append(Variant(f"matches with the {group}* parameters ignored (bias missing)",
                               values=_zero_group(group)))
    if c.initial_state:
        out.append(Variant("matches with the initial state ignored (zeros used instead)",
                           state=lambda s: {k: 0 * v for k, v in s.items()}))
    if c.T > 1:
        out.append(Variant("matches with the state not carried between time steps (every "
                           "step starts again from the initial state)", step_restart=True))
    if c.bidirectional:
        out.append(Variant("matches with the reverse direction's outputs not realigned with "
                           "input time (left in processing order, cf. Keras go_backwards vs "
                           "ONNX reverse)", stack={"realign": False}))
        out.append(Variant("matches with the reverse direction running forwards in time",
                           stack={"reverse_time": False}))
        out.append(Variant("matches with the reverse direction's final state taken after its "
                           "first step (output[-1]) instead of after seeing x[0] (output[0])",
                           stack={"reverse_final": "first_step"}))
        out.append(Variant("matches with the direction axis interleaved: output laid out "
                           "(..., d_out, D) instead of (..., D, d_out) (direction-axis layout, "
                           "cf. pytorch/pytorch#10838)", output=_interleave))
        out.append(Variant("matches with the forward and reverse halves of the output swapped",
                           output=_swap_directions))
        if c.num_layers > 1:
            out.append(Variant("matches with final states ordered direction-major "
                               "(direction*num_layers + layer instead of layer*D + direction): "
                               "layer states mixed up", output=_states_direction_major))
            if c.initial_state:
                out.append(Variant("matches with the initial state read direction-major "
                                   "(direction*num_layers + layer): layer states mixed up",
                                   state=_state0_direction_major))
                out.append(Variant("matches with initial and final states ordered "
                                   "direction-major: layer states mixed up",
                                   state=_state0_direction_major,
                                   output=_states_direction_major))
    out += _length_variants(harness, case)
    if cell == "lstm" and not c.d_proj:
        if c.initial_state:
            out.append(Variant("matches with the initial state read as (c, h) instead of "
                               "(h, c) (state ordering)", state=_swap_hc_state))
            out.append(Variant("matches with states read and returned as (c, h) instead of "
                               "(h, c) (state ordering)", state=_swap_hc_state,
                               output=_swap_hc_output))
        out.append(Variant("matches with the final state returned as (c, h) instead of (h, c) "
                           "(state ordering)",
                           output=_swap_hc_output))
    if c.dtype == "float64":
        out.append(Variant("matches within float32 tolerance: the target computes (at least "
                           "partly) in float32 although float64 was requested (e.g. Keras 3 "
                           "casts 64-bit matmul results to 32-bit outside TensorFlow)",
                           config=c.replace(dtype="float32")))
    return out


PADDING_TEXT = {
    "zero": "zeros",
    "repeat": "the last valid output repeated (Keras masking, zero_output_for_mask=False)",
    "raw": "the values computed on the padding (not masked)",
}


def _length_variants(harness, case) -> list[Variant]:
    """Variable-length bug classes (reference notes (d) 6 and 10), for cases with
    padding: lengths ignored, reverse direction starting at the padded end, final
    state taken at the padded end, outputs past the length in another convention."""
    lengths = getattr(case, "lengths", None)
    c = case.config
    if lengths is None:
        return []
    t_pad = padded_length(harness, lengths, c.T)
    if all(n >= t_pad for n in lengths):
        return []
    conv = length_padding(harness, c)
    out = [Variant("matches with the lengths ignored: padding steps processed as if valid "
                   "(every sample runs all steps, its final state taken at T-1 instead of "
                   "len-1, the reverse direction starting in the padding)",
                   lengths={"mode": "ignored"})]
    if conv != "raw":
        out.append(Variant("matches with the lengths/mask ignored: padding steps processed as "
                           "if valid and the outputs past each length not masked",
                           lengths={"mode": "ignored", "padding": "raw"}))
    if c.bidirectional:
        out.append(Variant("matches with the reverse direction starting at the padded end "
                           "(T-1) instead of at len-1 (cf. onnx/onnx-tensorflow#342)",
                           lengths={"mode": "reverse_padded"}))
    out.append(Variant("matches with the final state taken at the padded end (T-1) instead of "
                       "after the last valid step len-1: the state runs on through the padding "
                       "while the outputs are masked", lengths={"mode": "final_padded"}))
    for padding in ("zero", "repeat", "raw"):
        if padding != conv:
            out.append(Variant(f"matches with the outputs past each length being "
                               f"{PADDING_TEXT[padding]} instead of {PADDING_TEXT[conv]} "
                               "(masking / zero_output_for_mask semantics, cf. "
                               "microsoft/onnxruntime#12492, keras-team/keras#17596)",
                               lengths={"padding": padding}))
    return out


def _shape_diagnosis(outcome) -> list[str]:
    """Diagnoses read off a failure before any output could be compared."""
    err, c = outcome.error or "", outcome.case.config
    found = []
    if c.batch_first and "(B, T" in err.split("got")[0] and "= (T, B" in err:
        found.append("batch_first ignored: the target treats (B, T, ·) input as time-major")
    if c.batch_first and "h_n" in err and "got" in err and ", T, " in err.split("got")[1]:
        found.append("batch_first ignored: the target treats (B, T, ·) input as time-major "
                     "(its h_n has T where B belongs)")
    if "d_h" in err.split("got")[-1] and "d_out" in err.split("got")[0] and c.d_proj:
        found.append("projection ignored: the target returns d_h where proj_size belongs")
    missing = err.split("missing", 1)[1].split("unexpected")[0] if "missing" in err else ""
    unexpected = err.split("unexpected", 1)[1].split("expected exactly")[0] \
        if "unexpected" in err else ""
    if not c.bias and "bias" in unexpected:
        found.append("bias=False ignored: the target still creates bias parameters")
    if c.bidirectional and "_reverse" in missing:
        found.append("bidirectional ignored: the target has no _reverse parameters")
    if c.num_layers > 1 and "_l1" in missing:
        found.append("num_layers ignored: the target has no parameters for layer 1")
    if c.d_proj and ("weight_hr" in missing or ("weight_hh" in err and "d_out" in err)):
        found.append("proj_size ignored: the target has no (or the wrong) projection")
    return found


def _related_outcomes(harness, outcome, count: int = 2) -> list:
    """Failing outcomes on richer relatives of the counterexample (T + 2 steps, an
    initial state where supported, fresh values) to tell apart variants that the
    shrunk example cannot (at T=1 from a zero state, a GRU's reset placement and
    its b_hn placement coincide). A variable-length counterexample keeps its lengths
    (full-length samples grow with T) and also gets a bidirectional relative where
    the target has one (ignored lengths and a final state taken at the padded end
    only differ in the reverse direction)."""
    from rnnsym.check.cases import build_case
    from rnnsym.check.target import run_case

    case = outcome.case
    c = case.config
    richer = c.replace(T=c.T + 2, initial_state=c.initial_state or
                       True in harness.capabilities.initial_state)
    if richer.T in (richer.B, richer.d_in, richer.d_h, richer.d_proj):
        richer = richer.replace(T=max(richer.sizes().values()) + 1)
    configs = [richer] * count
    lengths = getattr(case, "lengths", None)
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


CORE_INPUT = ("a plain batched float sequence: one layer, one direction, time-major, no "
              "initial state")


def diagnose(harness, outcome, core=None) -> list[str]:
    """Texts of all variants that reproduce the target's output (best first). When
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
