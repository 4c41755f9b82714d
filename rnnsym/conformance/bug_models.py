"""Bug models: wrong-but-plausible models of a target (``BugModel``) and running them like the
oracle. (Formerly ``rnnsym.conformance.variants.BugModel``: "variant" now means math options only.)

A bug model changes the oracle's *inputs* (parameters, state), its single-layer *forward*
(GRU reset placement, activation), the stack *driver* (reverse direction handling, lengths)
or the *output layout* (direction axis, state ordering). :func:`fits` says whether the
target's output lies within the bug model's own backward-error tolerance
(``rnnsym.conformance.tolerance``), exactly the test the correct oracle failed. The transforms at
the end are the building blocks of the bug classes in ``rnnsym.conformance.diagnose``.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from rnnsym.conformance.compare import compare_flat
from rnnsym.conformance.oracle import oracle_forward, variant_for
from rnnsym.conformance.tolerance import backward_error_tolerance
from rnnsym.frameworks import Config, flat_outputs, nest_state
from rnnsym.frameworks.layers import stack_forward

GATE_ORDER = {"lstm": "ifgo", "gru": "rzn"}


@dataclass
class BugModel:
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
    return int(harness.padded_length(lengths, T))


def length_padding(harness, config: Config) -> str:
    """The target's convention for outputs past a length (see pad_outputs)."""
    return harness.length_padding(config)


def lengths_oracle(harness, case):
    """``run(params, x, state0, wrap=None) -> flat`` for a variable-length case: the
    canonical stack driver ``layers.stack_forward(..., lengths=)`` with the oracle's
    forward, outputs past each length in the harness's convention."""
    return _runner(case.config, BugModel("correct"), harness=harness, lengths=case.lengths)


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


def _runner(config: Config, variant: BugModel, *, harness=None, lengths=None):
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


def prepared(harness, case, variant: BugModel):
    """``(config, run, params)``: how ``variant`` runs on ``case`` (``run(params, x, state0,
    wrap=None) -> flat outputs``, float64) and the parameters it runs with."""
    values = variant.values(case.values) if variant.values else case.values
    params = harness.to_canonical(case.config, values)
    if variant.params:
        params = variant.params(params)
    config = variant.config or case.config
    return config, _runner(config, variant, harness=harness,
                           lengths=getattr(case, "lengths", None)), params


def bug_model_outputs(harness, case, variant: BugModel) -> dict:
    """The flat outputs a target with the bug ``variant`` models gives on ``case``."""
    _, run, params = prepared(harness, case, variant)
    with np.errstate(all="ignore"):
        return run(params, case.x, case.state0)


def fits(harness, outcome, variant: BugModel) -> bool:
    """True if the target's output matches ``variant`` within its tolerance."""
    case, got = outcome.case, outcome.got
    try:
        # a variant of parameters the cell lacks (KeyError) does not fit
        config, run, params = prepared(harness, case, variant)
        with np.errstate(all="ignore"):
            expected = run(params, case.x, case.state0)
            if any(np.shape(expected[k]) != np.shape(got[k]) for k in expected):
                return False
            tol = backward_error_tolerance(config, run, params, case.x, case.state0, expected)
    except (ValueError, KeyError, IndexError):
        return False
    return not compare_flat(expected, got, tol.arrays)


# ------------------------------------------------------------------------------------------
# transforms: the building blocks of the bug classes


def map_params(fn):
    return lambda params: [[fn(dict(p)) for p in layer] for layer in params]


def permute_gates(cell: str, order: str):
    """The target reads its gate blocks in ``order`` instead of the conventional one:
    the block stored for conventional gate conv[k] is used as gate order[k]."""
    conv = GATE_ORDER[cell]

    def remap(p):
        out = dict(p)
        for stored, used in zip(conv, order):
            for kind in ("W_x", "W_h", "b_x", "b_h"):
                if f"{kind}{stored}" in p:   # GRU hidden_bias variants lack some b_h*
                    out[f"{kind}{used}"] = p[f"{kind}{stored}"]
        return out
    return map_params(remap)


def swapped(conv: str, order: str) -> str:
    pairs = [(a, b) for a, b in itertools.combinations(range(len(conv)), 2)
             if order[a] == conv[b] and order[b] == conv[a]]
    if len(pairs) == 1 and sum(x != y for x, y in zip(conv, order)) == 2:
        a, b = pairs[0]
        return f" (gates {conv[a]} and {conv[b]} swapped)"
    return ""


def interleave(flat):
    out = dict(flat)
    T, B, D, d = flat["output"].shape
    out["output"] = flat["output"].transpose(0, 1, 3, 2).reshape(T, B, D, d)
    return out


def swap_directions(flat):
    out = dict(flat)
    out["output"] = flat["output"][:, :, ::-1]
    return out


def direction_major(arr):
    """(L, D, ...) as laid out layer-major, re-read as direction-major."""
    L, D = arr.shape[:2]
    return arr.transpose(1, 0, *range(2, arr.ndim)).reshape(arr.shape)


def states_direction_major(flat):
    return {k: (direction_major(v) if k in ("h_n", "c_n") else v) for k, v in flat.items()}


def state0_direction_major(state0):
    L, D = state0["h"].shape[:2]
    return {k: v.reshape((D, L) + v.shape[2:]).transpose(1, 0, *range(2, v.ndim))
            for k, v in state0.items()}


def swap_hc_state(state0):
    return {"h": state0["c"], "c": state0["h"]}


def swap_hc_output(flat):
    out = dict(flat)
    out["h_n"], out["c_n"] = flat["c_n"], flat["h_n"]
    return out


def zero_group(prefix: str):
    def zero(values):
        return {k: (np.zeros_like(v) if k.startswith(prefix) else v) for k, v in values.items()}
    return zero


def bias_groups(values) -> list[str]:
    groups = []
    for name in values:
        if "bias" in name or name.startswith("b_"):
            group = name.split("_l")[0] if "_l" in name else name
            if group not in groups:
                groups.append(group)
    return groups
