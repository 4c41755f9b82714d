"""The chunked form of the decay-type matrix recurrences: ``forward_chunked(params, x, state0,
chunk=64)`` for linear attention, GLA (per-key or per-head decay) and Mamba-2.

A cell qualifies when its one state is a matrix updated by a decay and one outer product, and
read by one contraction (:func:`scan_form` recognises it, or says why not):

    S_t = exp(G_t) ⊙ S_{t-1} + K_t V_tᵀ     (G per row of S, or one number; absent: no decay)
    o_t = c · S_tᵀ Q_t + E_t                 (or S_t Q_t with a scalar decay: Mamba-2's h C)

where G, K, V, Q and E are formulas of the inputs and parameters only (gates such as Mamba-2's
Δ = softplus(dt + b)), computed for all T steps at once with the shared NumPy printer. The
recurrence itself runs in ``_chunked_scan``, a helper copied into the module: within a chunk of
L steps the outputs are masked matrix products with the cumulative log-decays
``b_t = G_1 + … + G_t``, and the state is carried across chunks (its docstring says how every
exponent is kept ≤ 0, so that no ``exp`` overflows for decays ``G ≤ 0``). DeltaNet and Gated
DeltaNet (the WY/UT form) and Mamba-1 (a full ``d_in × d_state`` decay) are not chunked here.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp
from sympy import MatAdd, MatMul, MatrixSymbol, Transpose

from rnnsym.cells.cell import Cell, split_name
from rnnsym.cells.nodes import Activation, Outer, RowScale
from rnnsym.codegen.scalars import coef_source as _coef
from rnnsym.errors import RnnsymError
from rnnsym.printing.numpy import numpy_code


class NotChunkable(RnnsymError, ValueError):
    """A cell whose recurrence is not a decay plus one outer product; the message says why."""


@dataclass
class ScanForm:
    state: str
    decay: sp.Basic | None          # G (log-decay), or None
    key: sp.Basic
    value: sp.Basic
    query: sp.Basic
    coef: sp.Basic
    transposed: bool                # the readout is S Q (rows), so the scan runs on Sᵀ
    extra: sp.Basic | None          # E, the readout's other terms
    gates: list                     # (name, rhs) of the gates, in order


def _reads_state(expr, cell) -> bool:
    return any(split_name(s.name)[0] in cell.states or split_name(s.name)[1] == "t-1"
               for s in expr.atoms(MatrixSymbol))


def scan_form(cell: Cell, table) -> ScanForm:
    """The parts of a decay-type recurrence, or :class:`NotChunkable` saying what differs."""
    if len(cell.states) != 1 or table.shapes[cell.states[0]][1] == 1:
        raise NotChunkable(f"{cell.name}: one matrix state is needed, it has {', '.join(cell.states)}")
    name = cell.states[0]
    S_prev, S_now = MatrixSymbol(f"{name}[t-1]", *cell.equation(name).lhs.shape), cell.equation(name).lhs
    gates = [(e.name, e.rhs) for e in cell.equations if e.kind == "gate"]
    for g, rhs in gates:
        if _reads_state(rhs, cell):
            raise NotChunkable(f"{cell.name}: the gate {g} reads a state")
    terms = cell.equation(name).rhs.args if isinstance(cell.equation(name).rhs, MatAdd) else ()
    outer = [t for t in terms if isinstance(t, Outer)]
    decayed = [t for t in terms if not isinstance(t, Outer)]
    if len(terms) != 2 or len(outer) != 1 or any(_reads_state(a, cell) for a in outer[0].args):
        raise NotChunkable(f"{cell.name}: the state's update is not decay ⊙ {name} + outer(k, v) "
                           "(a delta rule's correction reads the state: the WY form is not generated)")
    d = decayed[0]
    if d == S_prev:
        decay = None
    elif isinstance(d, RowScale) and d.matrix == S_prev and isinstance(d.scale, Activation) \
            and d.scale.name == "exp" and not _reads_state(d.scale.arg, cell):
        decay = d.scale.arg
    else:
        raise NotChunkable(f"{cell.name}: the decay term {d} is not exp(G) * {name}")
    outs = [e for e in cell.equations if e.kind == "output"]
    if len(outs) != 1:
        raise NotChunkable(f"{cell.name}: one readout is needed")
    rhs = outs[0].rhs
    parts = list(rhs.args) if isinstance(rhs, MatAdd) else [rhs]
    reading = [p for p in parts if _reads_state(p, cell) or S_now in p.atoms(MatrixSymbol)]
    others = [p for p in parts if p not in reading]
    if len(reading) != 1 or not isinstance(reading[0], MatMul):
        raise NotChunkable(f"{cell.name}: the readout must read the state by one product")
    coef = sp.Mul(*[a for a in reading[0].args if not isinstance(a, sp.MatrixExpr)])
    mats = [a for a in reading[0].args if isinstance(a, sp.MatrixExpr)]
    if len(mats) == 2 and mats[0] == Transpose(S_now):
        transposed, query = False, mats[1]
    elif len(mats) == 2 and mats[0] == S_now:
        transposed, query = True, mats[1]
        if decay is not None and table.shapes[split_name(_leaf(decay).name)[0]][0] != 1:
            raise NotChunkable(f"{cell.name}: a per-row decay read as S q is not generated")
    else:
        raise NotChunkable(f"{cell.name}: the readout must be c Sᵀ q or S q")
    key, value = outer[0].args
    if transposed:
        key, value = value, key
    extra = None if not others else (others[0] if len(others) == 1 else MatAdd(*others, evaluate=False))
    return ScanForm(name, decay, key, value, query, coef, transposed, extra, gates)


def _leaf(expr):
    """A quantity the decay is made of (for its size): the first matrix symbol in it."""
    return next(iter(sorted(expr.atoms(MatrixSymbol), key=str)))


def chunked_source(cell: Cell, table) -> tuple[str, str] | None:
    """``(function source, helper source)`` of ``forward_chunked``, or None when the cell does
    not qualify (see :func:`scan_form`)."""
    try:
        form = scan_form(cell, table)
    except NotChunkable:
        return None
    names = {f"{i}[t]": i for i in cell.inputs}
    names.update({p: p for p in cell.params})
    names.update({f"{g}[t]": g for g, _ in form.gates})
    used = set()
    for e in (*(rhs for _, rhs in form.gates), form.decay, form.key, form.value, form.query, form.extra):
        if e is not None:
            used |= {s.name for s in e.atoms(MatrixSymbol)}
    body = []
    inputs = [i for i in cell.inputs if f"{i}[t]" in used or any(f"{i}[t]" in {s.name for s in r.atoms(MatrixSymbol)}
                                                                 for _, r in form.gates)]
    body.append(", ".join(inputs) + " = " + ", ".join(f'x["{i}"]' for i in inputs))
    params = [p for p in cell.params if p in used or any(p in {s.name for s in r.atoms(MatrixSymbol)}
                                                         for _, r in form.gates)]
    if params:
        body.append(", ".join(params) + " = " + ", ".join(f'params["{p}"]' for p in params))
    dims = sorted({str(s) for s in sp.sympify(form.coef).free_symbols})
    body += [f'{d} = size["{d}"]' for d in dims]
    if form.gates:
        body.append("# the gates of every step at once, (T, B, d)")
    for g, rhs in form.gates:
        body.append(f"{g} = {numpy_code(rhs, names)}")
    q = numpy_code(form.query, names)
    c = "" if form.coef == 1 else f"{_coef(form.coef)} * "
    G = numpy_code(form.decay, names) if form.decay is not None else f"np.zeros_like({q}[..., :1])"
    S0 = f'state["{form.state}"]' + (".transpose(0, 2, 1)" if form.transposed else "")
    body.append("# the scan: outputs and state, chunk by chunk")
    body.append(f"out, S = _chunked_scan({c}{q}, {numpy_code(form.key, names)}, "
                f"{numpy_code(form.value, names)}, {G}, {S0}, chunk)")
    if form.extra is not None:
        body.append(f"out += {numpy_code(form.extra, names)}")
    final = "S.transpose(0, 2, 1).copy()" if form.transposed else "S"
    body.append(f'return out, {{"{form.state}": {final}}}')
    what = "(transposed: keys and values swap)" if form.transposed else "S"
    function = f'''

def forward_chunked(params, x, state0=None, chunk=64):
    """``forward``'s outputs and final state, computed chunk by chunk (chunk steps at a time,
    the last chunk shorter when T is not a multiple): within a chunk masked matrix products with
    the cumulative log-decays, across chunks the state {what} carried. ``chunk``
    changes the rounding only. No cache, no backward: use ``forward`` for gradients."""
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise ValueError(f"chunk: expected an integer >= 1, got {{chunk!r}}")
    params, x, state, {"size" if dims else "_"} = _check(params, x, state0)
''' + "\n".join("    " + line for line in body) + "\n"
    return function, SCAN_HELPER


SCAN_HELPER = '''
def _chunked_scan(q, k, v, g, S, chunk, sub=16):
    """o_t = S_tᵀ q_t with S_t = exp(g_t) ⊙ S_{t-1} + k_t v_tᵀ, chunk steps at a time.

    q, k (T, B, d_k), v (T, B, d_v); g (T, B, d_k) per key row, or (T, B, 1) one log-decay per
    step; S (B, d_k, d_v). Within a chunk, with b_t = g_1 + ... + g_t (from the chunk start):

        o_t = (q_t ⊙ e^{b_t})ᵀ S_0 + Σ_{s≤t} A_ts v_s,   A_ts = Σ_i q_ti k_si e^{b_ti − b_si}
        S_L = e^{b_L} ⊙ S_0 + Σ_s (k_s ⊙ e^{b_L − b_s}) v_sᵀ

    Nothing overflows: one decay per step gives A = (q kᵀ) ⊙ e^{b_t − b_s} masked to s ≤ t
    (exponents ≤ 0 for g ≤ 0: b decreases). A per-key decay factors as
    (q ⊙ e^{b − m})(k ⊙ e^{m − b})ᵀ around the chunk's middle m when the chunk's b spans less
    than 40 (float32; 300 otherwise), so that both factors stay finite; past that (strong
    decays) the chunk splits into sub-chunks of ``sub`` rows, whose earlier columns factor
    through the cumulative decay r at the sub-chunk's start (e^{b_t − r} e^{r − b_s}, both ≤ 1)
    and whose own block is summed entry by entry. A log-decay of -inf (a hard reset) would make
    b_t − b_s NaN: a chunk holding one sums only the finite log-decays and zeroes every product
    that spans a reset, entry by entry.
    """
    T, B, d_v = q.shape[0], q.shape[1], v.shape[2]
    out = np.empty((T, B, d_v), dtype=q.dtype)
    for c0 in range(0, T, chunk):
        # the chunk, batch-major and contiguous: its products are plain GEMMs
        qc, kc, vc, gc = (np.ascontiguousarray(a[c0:c0 + chunk].transpose(1, 0, 2)) for a in (q, k, v, g))
        L = qc.shape[1]
        below = np.tril(np.ones((L, L), dtype=bool))
        reset = np.isneginf(gc)                  # a log-decay of -inf: a hard reset, exp(g) = 0
        if reset.any():
            # b_t - b_s past a reset is -inf - (-inf) = NaN: sum the finite log-decays only and
            # zero every product that spans a reset (seg counts the resets up to each step)
            seg = np.cumsum(reset, axis=1)
            b = np.cumsum(np.where(reset, 0, gc), axis=1)
            same = below[None, :, :, None] & (seg[:, :, None, :] == seg[:, None, :, :])
            E = np.exp(np.where(same, b[:, :, None, :] - b[:, None, :, :], -np.inf))
            A = (np.einsum("btd,bsd,btsd->bts", qc, kc, E) if gc.shape[2] > 1
                 else (qc @ kc.transpose(0, 2, 1)) * E[..., 0])
            out[c0:c0 + chunk] = ((qc * np.exp(np.where(seg == 0, b, -np.inf))) @ S
                                  + A @ vc).transpose(1, 0, 2)
            last, seg_last = b[:, -1:], seg[:, -1:]
            S = (np.exp(np.where(seg_last == 0, last, -np.inf)).transpose(0, 2, 1) * S
                 + (kc * np.exp(np.where(seg == seg_last, last - b, -np.inf))).transpose(0, 2, 1) @ vc)
            continue
        b = np.cumsum(gc, axis=1)
        if gc.shape[2] == 1:
            A = (qc @ kc.transpose(0, 2, 1)) * np.exp(np.where(below, b - b.transpose(0, 2, 1), -np.inf))
        elif b.max() - b.min() < (40 if q.dtype == np.float32 else 300):
            # e^{±(b − m)} stays finite around the chunk's middle m: two GEMM operands
            m = b[:, L // 2:L // 2 + 1]
            A = np.where(below, (qc * np.exp(b - m)) @ (kc * np.exp(m - b)).transpose(0, 2, 1), 0)
        else:
            A = np.zeros((B, L, L), dtype=q.dtype)
            for i0 in range(0, L, sub):
                i1 = min(i0 + sub, L)
                if i0:
                    r = b[:, i0 - 1:i0]                              # the decay before the sub-chunk
                    A[:, i0:i1, :i0] = (qc[:, i0:i1] * np.exp(b[:, i0:i1] - r)) @ \\
                        (kc[:, :i0] * np.exp(r - b[:, :i0])).transpose(0, 2, 1)
                diff = b[:, i0:i1, None, :] - b[:, None, i0:i1, :]  # (B, rows, cols, d_k)
                mask = below[i0:i1, i0:i1, None]
                A[:, i0:i1, i0:i1] = np.einsum("btd,bsd,btsd->bts", qc[:, i0:i1], kc[:, i0:i1],
                                               np.exp(np.where(mask, diff, -np.inf)))
        out[c0:c0 + chunk] = ((qc * np.exp(b)) @ S + A @ vc).transpose(1, 0, 2)
        last = b[:, -1:]
        S = np.exp(last).transpose(0, 2, 1) * S + (kc * np.exp(last - b)).transpose(0, 2, 1) @ vc
    return out, S
'''
