"""The properties a sequence target's paths must satisfy, each a named check with the bug class
a failure means (:data:`PROPERTIES`), run on one drawn example (:class:`Draw`).

=================  ==========================================================================
``oracle``         the path's output (and final state) equal rnnsym's float64 oracle
``chunk_size``     chunked paths: two chunk sizes give the same result (T not a multiple of
                   either: the last partial chunk)
``split_carry``    running [0, t) then [t, T) from the carried final state equals [0, T)
``initial_state``  a nonzero initial state changes the output as the oracle says
``decode``         a prefill path on [0, T) then the target's decode path on step T equals the
                   prefill of T + 1
``varlen``         a packed batch (cu_seqlens) equals each sequence run alone
``groups``         query head h reads kv head h // G (``repeat_interleave``), not h % H_kv
=================  ==========================================================================

A property a path cannot take (no chunk size, no initial or final state, no varlen, no decode
path in the target) is *not applicable*: :func:`applicable` says why, and it is never a pass.
A path raising :class:`rnnsym.errors.Unsupported` or ``NotImplementedError`` makes the example
unsupported, never a mismatch.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Optional

import numpy as np

from rnnsym.conformance.sequence_oracle import expected as oracle
from rnnsym.conformance.sequence_strategies import Draw, build_case, draws, grouped_inputs
from rnnsym.conformance.sequence_tolerance import _from_log, log_decays, sequence_tolerance
from rnnsym.errors import RnnsymError
from rnnsym.frameworks.sequence import Path, SequenceCase, SequenceTarget


class PathUnsupported(RnnsymError):
    """The path declined the example (its Unsupported / NotImplementedError, as text)."""


class OracleUndefined(RnnsymError):
    """The oracle's own result is NaN on this example (e.g. inf - inf inside the cell): there
    is nothing to compare with, and the example is skipped rather than blamed on the target."""


def reference(case: SequenceCase, ctx: "Context") -> tuple:
    """The oracle's ``(output, final state)`` for a property's comparison; OracleUndefined
    where it is NaN."""
    out, final = oracle(case, ctx.cell_options)
    if np.isnan(out).any() or any(np.isnan(v).any() for v in final.values()):
        raise OracleUndefined()
    return out, final


@dataclass
class Context:
    """What every property needs: the target, the path under test, the dtype."""

    target: SequenceTarget
    path: Path
    dtype: str
    label: str = ""         # how the target is named in messages (its spec)

    @property
    def cell_options(self) -> dict:
        return self.target.cell_options


@dataclass
class Outcome:
    """One example of one property (the shape ``rnnsym.conformance.search`` expects)."""

    case: Draw
    failed: bool = False
    ratio: float = 0.0
    message: str = ""
    diagnosis: str = ""
    unsupported: str = ""
    kind: str = "mismatch"
    expected: dict = field(default_factory=dict)
    got: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Property:
    name: str
    meaning: str             # what the property says
    bug_class: str           # what a failure means
    strategy: Callable       # (target, path) -> Hypothesis strategy of Draws
    run: Callable            # (ctx, draw) -> Outcome
    applies: Callable        # (target, path) -> None, or why it does not apply


# ---------------------------------------------------------------- running and comparing

def run_path(path: Path, case: SequenceCase, chunk) -> tuple:
    """``(output, final_state or None)`` as float64 arrays; PathUnsupported where it declines."""
    try:
        out, final = path.run(case, chunk)
    except NotImplementedError as exc:       # rnnsym.errors.Unsupported is one too
        raise PathUnsupported(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    out = np.asarray(_numpy(out), np.float64)
    if final is not None:
        final = {k: np.asarray(_numpy(v), np.float64) for k, v in final.items()}
    return out, final


def _numpy(a):
    if hasattr(a, "detach"):                 # a torch tensor left unconverted (bf16 included)
        a = a.detach().float().cpu().numpy()
    return a


def where(ctx: Context, case: SequenceCase, chunk, **extra) -> str:
    """``name(path=chunked, chunk_size=3, T=5, B=1, heads=4, kv_heads=2)``."""
    kv = min((np.shape(case.inputs[k])[2] for k in grouped_inputs(ctx.target)
              if k in case.inputs), default=case.heads)
    parts = [f"path={ctx.path.name}"]
    if chunk is not None:
        parts.append(f"chunk_size={chunk}")
    parts += [f"T={case.T}", f"B={case.B}", f"heads={case.heads}"]
    if kv != case.heads:
        parts.append(f"kv_heads={kv}")
    if case.cu_seqlens is not None:
        parts.append(f"cu_seqlens={list(case.cu_seqlens)}")
    parts.append(f"state0={'given' if case.state0 is not None else 'zeros'}")
    parts += [f"{k}={v}" for k, v in extra.items()]
    return f"{ctx.label or ctx.target.name}({', '.join(parts)})"


def compare(name: str, got, exp, tol, at: str, *, versus: str = "", t0: int = 0) -> tuple:
    """``(ratio, message)``: the largest |got - exp| / tol and, where it exceeds 1 (or a value
    is nan where it should not be, or the shape differs), the message of the worst element."""
    got, exp, tol = np.asarray(got, np.float64), np.asarray(exp, np.float64), np.asarray(tol)
    if got.shape != exp.shape:
        return np.inf, (f"{name} has shape {got.shape}, but should have {exp.shape} [{at}]")
    if exp.size == 0:
        return 0.0, ""
    with np.errstate(all="ignore"):
        err = np.abs(got - exp)
        same = (got == exp) | (np.isnan(got) & np.isnan(exp))
        ratio = np.where(same, 0.0, np.nan_to_num(err / tol, nan=np.inf, posinf=np.inf))
    worst = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
    r = float(ratio[worst])
    if r <= 1.0:
        return r, ""
    shown = list(worst)
    if name == "out" and len(shown) > 1:
        shown[1] += t0                      # a slice of the steps: the index in the sequence
    idx = ", ".join(str(int(i)) for i in shown)
    msg = (f"{name}[{idx}]={got[worst]:.9g}, but should be {exp[worst]:.9g}"
           f"{versus} (|error| {err[worst]:.3g} > tolerance {tol[worst]:.3g}) [{at}]")
    return r, msg


def compare_all(got: tuple, exp: tuple, tol: dict, at: str, *, final: bool = True,
                versus: str = "", t0: int = 0) -> tuple:
    """Compare ``(out, final)`` pairs: ``(worst ratio, first message)``."""
    pairs = [("out", got[0], exp[0])]
    if final and got[1] is None and exp[1] is not None:
        return np.inf, f"the path declares final_state but returned None [{at}]"
    if final and got[1] is not None and exp[1] is not None:
        for k in exp[1]:
            if k not in got[1]:
                return np.inf, f"the final state has no {k!r} (has {sorted(got[1])}) [{at}]"
            pairs.append((k, got[1][k], exp[1][k]))
    worst, message = 0.0, ""
    for name, g, e in pairs:
        r, m = compare(name, g, e, tol[name], at, versus=versus, t0=t0)
        if r > worst:
            worst = r
        if m and not message:
            message = m
    return worst, message


def tolerance(ctx: Context, case: SequenceCase, exp: tuple, chunk, path: Path = None,
              carried: bool = False) -> dict:
    """``carried``: the case's initial state was computed by the target (and is rounded to
    the case's dtype by the path)."""
    path = path or ctx.path
    return sequence_tolerance(case, ctx.cell_options, exp, algorithm=path.algorithm,
                              chunk=chunk, accumulates=path.accumulates,
                              state0_rounded=carried)


def _add(a: dict, b: dict) -> dict:
    return {k: a[k] + b[k] for k in a}


def _flat(pair) -> dict:
    out, final = pair
    d = {"out": out}
    d.update(final or {})
    return d


def _outcome(draw, ratio, message, exp, got, diagnosis="") -> Outcome:
    return Outcome(case=draw, failed=bool(message), ratio=float(min(ratio, 1e300)),
                   message=message, diagnosis=diagnosis,
                   expected={k: v for k, v in _flat(exp).items() if k in _flat(got)},
                   got=_flat(got))


# ---------------------------------------------------------------- diagnoses

def _close(got: tuple, exp: tuple, tol: dict, final: bool = True) -> bool:
    return compare_all(got, exp, tol, "", final=final)[0] <= 1.0


def _matches(ctx: Context, alt: SequenceCase, got: tuple, chunk, *, final: bool = False,
             steps: slice = slice(None), path: Path = None) -> bool:
    """Does ``got`` equal the oracle of another reading ``alt`` of the case (a bug class),
    within that reading's own tolerance? ``steps``: the steps ``got`` holds."""
    exp = oracle(alt, ctx.cell_options)
    tol = tolerance(ctx, alt, exp, chunk, path=path)
    return _close((got[0], got[1] if final else None), (exp[0][:, steps], exp[1]),
                  dict(tol, out=tol["out"][:, steps]), final)


def tiled(ctx: Context, case: SequenceCase) -> SequenceCase:
    """The case read with ``repeat`` (tile): every grouped input expanded to the output's heads
    by tiling, so that the oracle's ``repeat_interleave`` reading of it is the tile reading."""
    inputs = {}
    for k, a in case.inputs.items():
        n = np.shape(a)[2]
        inputs[k] = np.concatenate([a] * (case.heads // n), axis=2) if n < case.heads else a
    return replace(case, inputs=inputs)


def diagnose(ctx: Context, case: SequenceCase, got: tuple, tol: dict, chunk,
             exp: tuple) -> str:
    """Name the bug class a mismatch matches, where one does."""
    final = "final_state" in ctx.path.features
    found = log_decays(case)
    if found is not None and np.isneginf(found[1]).any():
        bad = np.isnan(got[0]) & ~np.isnan(exp[0])
        if bad.any():
            return ("-inf log-decay gives NaN (exp of (-inf) - (-inf)): a hard reset "
                    "(log-decay -inf) must zero the carried state, not poison the chunk")
    grouped = [k for k in grouped_inputs(ctx.target) if k in case.inputs
               and 1 < np.shape(case.inputs[k])[2] < case.heads]
    if grouped:
        if _matches(ctx, tiled(ctx, case), got, chunk, final=final):
            return ("matches repeat (tile), not repeat_interleave: output head h reads kv head "
                    "h % H_kv instead of h // G (the grouped-query bug class of "
                    "huggingface/transformers#37533)")
    if case.state0 is not None:
        if _matches(ctx, replace(case, state0=None), got, chunk):
            return "initial state ignored: the output is that of a zero initial state"
    if ctx.path.algorithm == "chunked" and chunk and case.T % chunk and case.cu_seqlens is None:
        start = (case.T // chunk) * chunk
        head_ok = _close((got[0][:, :start], None), (exp[0][:, :start], None),
                         {"out": tol["out"][:, :start]}, final=False)
        if head_ok:
            return (f"the last partial chunk is wrong (steps {start}..{case.T - 1} of T={case.T} "
                    f"with chunk_size={chunk}): dropped or mis-masked")
    if final and got[1] is not None:
        if _close((got[0], None), (exp[0], None), tol, final=False):
            zeros = all(not np.any(v) for v in got[1].values())
            return ("the final state is zeros (not returned)" if zeros else
                    "the output is right but the final state is not the state after the last "
                    "step")
    return ""


# ---------------------------------------------------------------- the properties

def _case(ctx, draw, **over) -> SequenceCase:
    case = build_case(ctx.target, draw, ctx.dtype)
    return replace(case, **over) if over else case


def _against_oracle(ctx: Context, draw: Draw, reading=None, *, versus: str = "",
                    matched_final: bool = False) -> Outcome:
    """One run of the path on the drawn case against the oracle (the oracle, initial_state,
    varlen and groups properties). On a mismatch, ``reading = (alt(case) -> case, diagnosis)``
    names the bug class when the output is the oracle's of that other reading of the case
    (``matched_final``: its final state too); otherwise the general diagnosis."""
    case = _case(ctx, draw)
    got = run_path(ctx.path, case, draw.chunk)
    exp = reference(case, ctx)
    tol = tolerance(ctx, case, exp, draw.chunk)
    final = "final_state" in ctx.path.features
    ratio, msg = compare_all(got, exp, tol, where(ctx, case, draw.chunk), final=final,
                             versus=versus)
    diag = ""
    if msg:
        if reading is not None and _matches(ctx, reading[0](case), got, draw.chunk,
                                            final=matched_final and final):
            diag = reading[1]
        else:
            diag = diagnose(ctx, case, got, tol, draw.chunk, exp)
    return _outcome(draw, ratio, msg, exp, got if final else (got[0], None), diag)


def _prop_oracle(ctx: Context, draw: Draw) -> Outcome:
    return _against_oracle(ctx, draw)


def _prop_chunk(ctx: Context, draw: Draw) -> Outcome:
    case = _case(ctx, draw)
    exp = reference(case, ctx)
    c1, c2 = draw.chunk, draw.chunk2
    got1 = run_path(ctx.path, case, c1)
    got2 = run_path(ctx.path, case, c2)
    tol = _add(tolerance(ctx, case, exp, c1), tolerance(ctx, case, exp, c2))
    final = "final_state" in ctx.path.features
    ratio, msg = compare_all(got2, got1, tol, where(ctx, case, c2), final=final,
                             versus=f" (as with chunk_size={c1})")
    diag = ""
    if msg:
        for c, got in ((c1, got1), (c2, got2)):
            t = tolerance(ctx, case, exp, c)
            if not _close(got, exp, t, final):
                diag = diagnose(ctx, case, got, t, c, exp)
                if diag:
                    diag = f"chunk_size={c}: {diag}"
                    break
    return _outcome(draw, ratio, msg, got1 if final else (got1[0], None),
                    got2 if final else (got2[0], None), diag)


def _prop_split(ctx: Context, draw: Draw) -> Outcome:
    case = _case(ctx, draw)
    t = draw.split
    whole = run_path(ctx.path, case, draw.chunk)
    first = _slice(case, 0, t)
    out1, s1 = run_path(ctx.path, first, draw.chunk)
    if s1 is None:
        raise PathUnsupported("the path returned no final state")
    second = replace(_slice(case, t, case.T), state0=s1)
    out2, s2 = run_path(ctx.path, second, draw.chunk)
    exp = reference(case, ctx)
    tol = tolerance(ctx, case, exp, draw.chunk)
    # the second run: the error of the carried state (the first run's) plus its own, from a
    # state the path rounds to its dtype
    tail = replace(second, state0=exp_state_at(ctx, first))
    tol_tail = tolerance(ctx, tail, oracle(tail, ctx.cell_options), draw.chunk, carried=True)
    tol2 = {k: tol[k] + tol_tail[k] for k in tol if k != "out"}
    tol2["out"] = tol["out"] + np.concatenate([tol["out"][:, :t], tol_tail["out"]], axis=1)
    pieces = (np.concatenate([out1, out2], axis=1), s2)
    ratio, msg = compare_all(pieces, whole, tol2, where(ctx, case, draw.chunk, split_at=t),
                             versus=" (as in one run over [0, T))")
    diag = ""
    if msg:
        diag = _already_wrong(ctx, case, whole, draw.chunk) or \
            _already_wrong(ctx, first, (out1, s1), draw.chunk)
    if msg and not diag:
        at_t = oracle(first, ctx.cell_options)
        if all(not np.any(v) for v in s1.values()) and any(np.any(v) for v in at_t[1].values()):
            diag = "the carried state is zeros (not returned)"
        elif not _close((out1, s1), at_t, tolerance(ctx, first, at_t, draw.chunk)):
            diag = "the returned final state is not the state after step t"
        else:
            diag = "the initial state given to the second run is not used as the oracle uses it"
    return _outcome(draw, ratio, msg, whole, pieces, diag)


def _already_wrong(ctx: Context, case: SequenceCase, got: tuple, chunk) -> str:
    """Where one plain run of the path already disagrees with the oracle, the diagnosis of
    that (the property's own failure follows from it)."""
    exp = reference(case, ctx)
    tol = tolerance(ctx, case, exp, chunk)
    final = "final_state" in ctx.path.features
    if _close(got, exp, tol, final):
        return ""
    why = diagnose(ctx, case, got, tol, chunk, exp)
    return (f"one run over steps of T={case.T} already disagrees with the oracle (property "
            "oracle)" + (f": {why}" if why else ""))


def exp_state_at(ctx: Context, first: SequenceCase) -> dict:
    """The oracle's state after ``first`` (the state a correct target carries)."""
    return oracle(first, ctx.cell_options)[1]


def _slice(case: SequenceCase, a: int, b: int) -> SequenceCase:
    return replace(case, inputs={k: v[:, a:b] for k, v in case.inputs.items()})


def _prop_initial(ctx: Context, draw: Draw) -> Outcome:
    return _against_oracle(ctx, draw, (
        lambda case: replace(case, state0=None),
        "initial state ignored: the output is that of a zero initial state"))


def decode_path(target: SequenceTarget) -> Optional[Path]:
    return next((p for p in target.paths if p.decode), None)


def _prop_decode(ctx: Context, draw: Draw) -> Outcome:
    dec = decode_path(ctx.target)
    full = _case(ctx, draw)                          # T + 1 steps (draw.T >= 1)
    T = full.T - 1
    prefix = _slice(full, 0, T)
    if "initial_state" not in ctx.path.features:
        prefix = replace(prefix, state0=None)
        full = replace(full, state0=None)
    prefill_out, s = run_path(ctx.path, prefix, draw.chunk)
    if s is None:
        raise PathUnsupported("the prefill path returned no final state")
    step = replace(_slice(full, T, T + 1), state0=s)
    if ctx.dtype not in dec.dtypes:
        raise PathUnsupported(f"decode path {dec.name} does not take {ctx.dtype}")
    out, s2 = run_path(dec, step, dec.chunk_size)
    exp_full = reference(full, ctx)
    # the prefill's error carried into step T, plus the step's own from a state the decode
    # path rounds to its dtype
    prefill = tolerance(ctx, full, exp_full, draw.chunk)
    exact_step = replace(step, state0=oracle(prefix, ctx.cell_options)[1])
    own = tolerance(ctx, exact_step, oracle(exact_step, ctx.cell_options), None, path=dec,
                    carried=True)
    tol = _add(dict(prefill, out=prefill["out"][:, T:]), own)
    exp = (exp_full[0][:, T:], exp_full[1])
    final = "final_state" in dec.features
    at = where(ctx, full, draw.chunk, decode=dec.name, prefill_T=T)
    ratio, msg = compare_all((out, s2), exp, tol, at, final=final,
                             versus=" (as in the prefill of T + 1)", t0=T)
    diag = ""
    if msg:
        diag = _already_wrong(ctx, prefix, (prefill_out, s), draw.chunk)
    if msg and not diag:
        found = log_decays(full)
        if found is not None:           # the decode step computed without its decay?
            name, a = found
            a = a.copy()
            a[:, T] = 0.0
            nodecay = replace(full, inputs=dict(full.inputs, **{name: _from_log(full, a)}))
            if _matches(ctx, nodecay, (out, None), draw.chunk, steps=slice(T, None)):
                diag = "the decode step drops the decay (exp(log-decay) taken as 1)"
        diag = diag or ("the decode path computes the step differently from the prefill path "
                        "(a decay, gate, scale or normalisation dropped or applied twice, or "
                        "the state read in another layout)")
    return _outcome(draw, ratio, msg, (exp[0], exp[1] if final else None),
                    (out, s2 if final else None), diag)


def _one_sequence(case: SequenceCase) -> SequenceCase:
    """The packed batch run as one sequence (cu_seqlens ignored) from the first segment's state."""
    s0 = None if case.state0 is None else {k: v[:1] for k, v in case.state0.items()}
    return replace(case, cu_seqlens=None, state0=s0)


def _prop_varlen(ctx: Context, draw: Draw) -> Outcome:
    return _against_oracle(ctx, draw, (
        _one_sequence,
        "the state is carried across sequence boundaries (cu_seqlens ignored: the packed batch "
        "runs as one sequence)"), versus=" (each sequence alone)")


def _prop_groups(ctx: Context, draw: Draw) -> Outcome:
    return _against_oracle(ctx, draw, (
        lambda case: tiled(ctx, case),
        "matches repeat (tile), not repeat_interleave: output head h reads kv head h % H_kv "
        "instead of h // G"), matched_final=True)


# ---------------------------------------------------------------- applicability

def _always(target, path):
    return None


def _needs(*features):
    def applies(target, path):
        if path.decode:
            return "a decode path (one step): checked by oracle and initial_state"
        missing = [f for f in features if f not in path.features]
        return f"the path does not declare {', '.join(missing)}" if missing else None
    return applies


def _chunk_applies(target, path):
    if path.algorithm != "chunked":
        return f"not a chunked path ({path.algorithm})"
    return _needs("chunk_size")(target, path)


def _decode_applies(target, path):
    if path.decode:
        return "the decode path itself (checked after the prefill paths)"
    dec = decode_path(target)
    if dec is None:
        return "the target has no decode path"
    if "initial_state" not in dec.features:
        return f"decode path {dec.name} takes no initial state"
    return _needs("final_state")(target, path)


def _groups_applies(target, path):
    if not grouped_inputs(target):
        return "the target declares no grouped input (input_heads)"
    return _needs("groups")(target, path)


def _initial_applies(target, path):
    if "initial_state" not in path.features:
        return "the path does not declare initial_state"
    return None


# The edges a target may well get wrong on its own (T = 0, -inf log-decays) are drawn by the
# oracle property only: a target failing there still gets every other property checked.
def _T(path, **kw):
    return dict(kw, T=1) if path.decode else kw


PROPERTIES = (
    Property("oracle", "the output and final state equal rnnsym's float64 oracle",
             "wrong numbers: a formula, a layout, a gate or an edge (-inf decay, beta at its "
             "edge, T = 0) computed wrong",
             lambda t, p: draws(t, p, **_T(p)), _prop_oracle, _always),
    Property("chunk_size", "two chunk sizes give the same result (incl. T not a multiple)",
             "chunk-size dependence: a chunk boundary or the last partial chunk mishandled",
             lambda t, p: draws(t, p, two_chunks=True, resets=False, min_T=1), _prop_chunk, _chunk_applies),
    Property("split_carry", "[0, t) then [t, T) from the carried state equals [0, T)",
             "the carried state: not returned, zero, or taken before the last update",
             lambda t, p: draws(t, p, resets=False, min_T=2, pieces=2), _prop_split, _needs("initial_state", "final_state")),
    Property("initial_state", "a nonzero initial state changes the output as the oracle says",
             "initial state ignored or misread (silently zero, transposed, wrong head)",
             lambda t, p: draws(t, p, state0=True, resets=False, **_T(p, min_T=1)), _prop_initial,
             _initial_applies),
    Property("decode", "prefill of [0, T) then one decode step equals the prefill of T + 1",
             "decode differs from prefill: a step computed differently (decay, gate, scale)",
             lambda t, p: draws(t, p, min_T=2, resets=False, plus_one=True), _prop_decode, _decode_applies),
    Property("varlen", "a packed batch (cu_seqlens) equals each sequence run alone",
             "sequence boundaries: state leaking across sequences, offsets misread",
             lambda t, p: draws(t, p, varlen=True, resets=False, min_T=1), _prop_varlen, _needs("varlen")),
    Property("groups", "output head h reads kv head h // G (repeat_interleave)",
             "grouped heads: repeat (tile) instead of repeat_interleave, wrong head",
             lambda t, p: draws(t, p, groups=True, resets=False, min_T=1), _prop_groups, _groups_applies),
)
PROPERTY_NAMES = tuple(p.name for p in PROPERTIES)


def prop(name: str) -> Property:
    return next(p for p in PROPERTIES if p.name == name)


def applicable(target: SequenceTarget, path: Path, name: str) -> Optional[str]:
    """None where property ``name`` applies to ``path``, else why not."""
    return prop(name).applies(target, path)
