"""The gradient part of the diagnosis table (``rnnsym check TARGET --gradients``): the
known gradient bugs, each a variant of the generated backward (:data:`GRADIENT_BUGS`),
and the ones a failure matches (:func:`diagnose_gradients`); the forward table is
``rnnsym.conformance.diagnose``. Re-exported from ``rnnsym.conformance.gradients``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from rnnsym.conformance.compare import compare_flat
from rnnsym.conformance.gradients import canonical_gradients, expected_gradients
from rnnsym.conformance.oracle import variant_for


@dataclass
class GradientBug:
    """One known gradient bug: when it can apply, its message, and the gradients a target
    with that bug computes: ``make(config, params, x, state0, upstream, **item)`` is one
    layer and direction's backward, returning canonical ``(d_params, d_x, d_state0)`` (the
    bug is in the step every layer runs); a bug of the stack itself has no ``make`` and
    ``stack`` instead, keyword arguments of :func:`stack_gradients`. ``over(config)``
    expands it per item."""

    message: str
    make: Optional[Callable] = None
    when: Callable = lambda config: True
    over: Callable = lambda config: [{}]
    stack: dict = field(default_factory=dict)
    lengths_only: bool = False      # a bug of variable-length batches only


def _detach_every(k, initial=True):
    """Zero what flows back past steps 0 (if ``initial``), k, 2k, ... (a detached state)."""
    def carry(t, d):
        cut = t % k == 0 and (initial or t > 0)
        return {s: np.zeros_like(v) for s, v in d.items()} if cut else d
    return carry


def _truncated(config, params, x, s0, up, k):
    return canonical_gradients(config, params, x, s0, up,
                               carry=_detach_every(k, initial=k == 1))[:3]


def _detached_state(config, params, x, s0, up, state):
    def carry(t, d):
        return {s: (np.zeros_like(v) if s == state else v) for s, v in d.items()}
    return canonical_gradients(config, params, x, s0, up, carry=carry)[:3]


def _bias_once(config, params, x, s0, up, step):
    total, d_x, d_s0, steps = canonical_gradients(config, params, x, s0, up, per_step=True)
    once = dict(total)
    for k in total:
        if k.startswith("b_"):
            once[k] = steps[min(step, len(steps) - 1)][k]      # (a shorter sample: its last)
    return once, d_x, d_s0


def _gru_constant_gate(config, params, x, s0, up, gate):
    """A GRU whose step detaches gate ``gate`` (r or z): the hand-written reference
    backward with that gate held constant."""
    from rnnsym.reference import gru_backward
    d_final = {"h": up["h_n"][0, 0]}
    # a GRU variant without some hidden biases (Flax: b_hr, b_hz; nnx: b_hn too) is the
    # reference GRU with those biases zero
    full = dict(params)
    for g in "rzn":
        full.setdefault(f"b_h{g}", np.zeros(np.shape(params[f"b_x{g}"])))
    d_params, d_x, d_s0 = gru_backward(full, x, s0, up["output"][:, :, 0], d_final,
                                       reset=variant_for(config)["reset"], constant=(gate,))
    return {k: v for k, v in d_params.items() if k in params}, d_x, d_s0


def _transposed(config, params, x, s0, up):
    total, d_x, d_s0, _ = canonical_gradients(config, params, x, s0, up)
    out = {k: (v.T if v.ndim == 2 and v.shape[0] == v.shape[1] else v) for k, v in total.items()}
    return out, d_x, d_s0


GRADIENT_BUGS = [
    GradientBug("state detached before every step (h.detach() / .data in the loop): the "
                "outputs are right, the gradient reaches one step back",
                lambda c, p, x, s, u: _truncated(c, p, x, s, u, 1), when=lambda c: c.T > 0),
    GradientBug("truncated BPTT: the gradient stops after {k} steps (the state is detached "
                "every {k} steps)", _truncated, when=lambda c: c.T > 2,
                over=lambda c: [{"k": k} for k in range(2, c.T)]),
    GradientBug("no gradient through the cell state c (detached before every step; h "
                "carries it)", lambda c, p, x, s, u: _detached_state(c, p, x, s, u, "c"),
                when=lambda c: c.cell == "lstm" and c.T > 0),
    GradientBug("no gradient through h (detached before every step; only c carries it)",
                lambda c, p, x, s, u: _detached_state(c, p, x, s, u, "h"),
                when=lambda c: c.cell == "lstm" and c.T > 0),
    GradientBug("no gradient through the reset gate r (r detached in the step: r.detach()); "
                "the update and candidate paths carry it",
                lambda c, p, x, s, u: _gru_constant_gate(c, p, x, s, u, "r"),
                when=lambda c: c.cell == "gru" and c.T > 0),
    GradientBug("no gradient through the update gate z (z detached in the step: z.detach()); "
                "the reset and candidate paths carry it",
                lambda c, p, x, s, u: _gru_constant_gate(c, p, x, s, u, "z"),
                when=lambda c: c.cell == "gru" and c.T > 0),
    GradientBug("bias gradient counted once (step {step}'s term) instead of summed over the "
                "steps", _bias_once, when=lambda c: c.T > 1 and c.bias,
                over=lambda c: [{"step": 0}, {"step": c.T - 1}]),
    GradientBug("transposed weight gradient (dW^T) of the square recurrent matrices",
                _transposed),
    GradientBug("no gradient between layers (the input of each layer above the first is "
                "detached): the lower layers get only their h_n/c_n gradient",
                when=lambda c: c.num_layers > 1, stack={"between_layers": False}),
    GradientBug("the reverse direction's input is detached (e.g. x.flip(0).detach()): the "
                "input gradient comes from the forward direction only",
                when=lambda c: c.bidirectional, stack={"reverse_to_input": False}),
    GradientBug("the state held through the padding steps is detached (torch.where(valid, "
                "new, state.detach())): a sample shorter than T gets no h_n/c_n gradient in "
                "the forward direction and no initial-state gradient in the reverse one",
                stack={"padding_detached": True}, lengths_only=True),
]


def diagnose_gradients(harness, outcome) -> list[str]:
    """What a gradient failure is: the parameters whose gradient differs, then every entry of
    :data:`GRADIENT_BUGS` that reproduces the target's gradients within the tolerance."""
    if outcome.kind != "wrong gradients":
        return []
    case, config = outcome.case, outcome.case.config
    differ = [m.name for m in outcome.mismatches]
    head = ("gradient of " + ", ".join(differ) + " differs"
            + ("" if outcome.forward_agrees else "; the forward is wrong too (run without "
               "--gradients for its diagnosis)"))
    found = []
    with np.errstate(all="ignore"):
        for bug in GRADIENT_BUGS:
            if not bug.when(config) or (bug.lengths_only and case.lengths is None):
                continue
            for item in bug.over(config):
                layer = None if bug.make is None else \
                    (lambda c, p, x, s, u, make=bug.make, item=item: make(c, p, x, s, u, **item))
                variant = expected_gradients(harness, case, outcome.upstream, layer=layer,
                                             **bug.stack)
                if not compare_flat(variant, outcome.got, outcome.tolerance.arrays):
                    found.append(bug.message.format(**item))
                    break
    return [f"{head}: {f}" for f in found] or [f"{head} (none of the known gradient bugs "
                                               "reproduces it)"]


__all__ = ["GradientBug", "GRADIENT_BUGS", "diagnose_gradients"]
