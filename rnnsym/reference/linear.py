"""Hand-written references for the cells with a matrix state: linear attention and its gated and
delta rules (ONNX LinearAttention's four update_rules), Mamba-1, Mamba-2 and mLSTM, forward and
backward, one head.

min-char-rnn style: a plain loop over time and, inside it, over the batch, with one sample's
vectors and its d_k × d_v state written as in the papers (``np.outer(k, v)``, ``S.T @ q``). The
backward keeps every step's state (this is a reference, not a kernel) and walks the loop back.

Conventions (see also rnnsym.reference):
x        dict of time-major inputs, each (T, B, d); one number per step is (T, B, 1)
state    dict of (B, d) and (B, d_k, d_v) arrays; state0=None means zeros
params   dict (Mamba's A, D, dt_bias); {} for the attention rules
returns  forward: (outputs (T, B, d), final_state);
         backward(params, x, state0, d_outputs, d_final_state=None): (d_params, d_x, d_state0)
"""
import numpy as np

RULES = ("linear", "gated", "delta", "gated_delta")


def _sigmoid(u):
    return np.exp(np.minimum(u, 0)) / (1 + np.exp(-np.abs(u)))


def _softplus(u):
    return np.logaddexp(0, u)


def _inputs(x, names, state0, states):
    """x as float arrays (one dtype), the sizes, and the initial state (zeros where omitted)."""
    if not isinstance(x, dict) or sorted(x) != sorted(names):
        raise ValueError(f"x: expected a dict of the inputs {', '.join(names)}, got "
                         f"{sorted(x) if isinstance(x, dict) else type(x).__name__}")
    dtype = np.result_type(*[np.asarray(x[n]) for n in names])
    dtype = dtype if np.issubdtype(dtype, np.floating) else np.dtype(np.float64)
    x = {n: np.asarray(x[n], dtype) for n in names}
    T, B = x[names[0]].shape[:2]
    state = {}
    for s, shape in states.items():
        if state0 is not None and s in state0:
            state[s] = np.array(state0[s], dtype)
            if state[s].shape != (B,) + shape:
                raise ValueError(f"state0[{s!r}]: expected shape {(B,) + shape}, got {state[s].shape}")
        else:
            state[s] = np.zeros((B,) + shape, dtype)
    return x, T, B, state


# --- linear attention, GLA, DeltaNet, Gated DeltaNet ------------------------------------------
def linear_attention_forward(params, x, state0=None, rule="linear", scale=None, qk_l2norm=False):
    """One head of ONNX LinearAttention (opset 27), update_rule ``rule``:

        linear       S = S + outer(k, v)
        gated        S = exp(g) * S + outer(k, v)                 g per key row (d_k,) or (1,)
        delta        S = S + beta * outer(k, v - S.T @ k)
        gated_delta  S = exp(g) * S + beta * outer(k, v - (exp(g) * S).T @ k)
        o = scale * S.T @ q                                        scale None: 1/sqrt(d_k)

    x: {"q", "k", "v" (T, B, d), "g" (gated rules), "beta" (delta rules, (T, B, 1))}.
    qk_l2norm: q and k divided by sqrt(sum(u²) + 1e-6) first (fla's use_qk_l2norm_in_kernel).
    """
    out, final, _ = _attention(x, state0, rule, scale, qk_l2norm)
    return out, final


def _attention(x, state0, rule, scale, qk_l2norm):
    if rule not in RULES:
        raise ValueError(f"rule: expected one of {RULES}, got {rule!r}")
    names = ["q", "k", "v"] + (["g"] if "gated" in rule else []) + (["beta"] if "delta" in rule else [])
    d_k, d_v = np.shape(x["q"])[2], np.shape(x["v"])[2]
    x, T, B, state = _inputs(x, names, state0, {"S": (d_k, d_v)})
    scale = 1 / np.sqrt(d_k) if not scale else scale
    out = np.zeros((T, B, d_v), x["q"].dtype)
    S_all = np.zeros((T + 1,) + state["S"].shape, x["q"].dtype)   # S before step t is S_all[t]
    S_all[0] = state["S"]
    for t in range(T):
        for b in range(B):
            S = S_all[t, b]
            q, k, v = x["q"][t, b], x["k"][t, b], x["v"][t, b]
            if qk_l2norm:
                q = q / np.sqrt(np.sum(q * q) + 1e-6)
                k = k / np.sqrt(np.sum(k * k) + 1e-6)
            if "gated" in rule:
                S = np.exp(x["g"][t, b])[:, None] * S          # decay: per key row, or all
            if "delta" in rule:
                S = S + x["beta"][t, b] * np.outer(k, v - S.T @ k)
            else:
                S = S + np.outer(k, v)
            S_all[t + 1, b] = S
            out[t, b] = scale * S.T @ q
    return out, {"S": S_all[T].copy()}, (x, S_all, scale)


def linear_attention_backward(params, x, state0, d_outputs, d_final_state=None, rule="linear",
                              scale=None, qk_l2norm=False):
    """The backward of linear_attention_forward: (d_params {}, d_x, d_state0)."""
    _, _, (x, S_all, scale) = _attention(x, state0, rule, scale, qk_l2norm)
    T, B = x["q"].shape[:2]
    d_x = {n: np.zeros_like(a) for n, a in x.items()}
    dS_all = np.zeros_like(S_all[0])
    if d_final_state is not None and "S" in d_final_state:
        dS_all += d_final_state["S"]
    for t in reversed(range(T)):
        for b in range(B):
            q_raw, k_raw, v = x["q"][t, b], x["k"][t, b], x["v"][t, b]
            q, k = q_raw, k_raw
            if qk_l2norm:
                rq, rk = 1 / np.sqrt(np.sum(q * q) + 1e-6), 1 / np.sqrt(np.sum(k * k) + 1e-6)
                q, k = q * rq, k * rk
            S_prev, S = S_all[t, b], S_all[t + 1, b]
            do = d_outputs[t, b]
            dS = dS_all[b] + scale * np.outer(q, do)           # o = scale S.T q
            dq = scale * S @ do
            a = np.exp(x["g"][t, b]) if "gated" in rule else np.ones(1, S.dtype)
            D = a[:, None] * S_prev                            # the decayed state
            dD = dS.copy()
            if "delta" in rule:                                 # S = D + beta outer(k, u)
                beta = x["beta"][t, b]
                u = v - D.T @ k
                d_x["beta"][t, b] = np.sum(dS * np.outer(k, u))
                dk = beta * dS @ u
                du = beta * dS.T @ k
                d_x["v"][t, b] = du                             # u = v - D.T k
                dD -= np.outer(k, du)
                dk -= D @ du
            else:                                               # S = D + outer(k, v)
                dk = dS @ v
                d_x["v"][t, b] = dS.T @ k
            if "gated" in rule:                                 # D = exp(g) S_prev
                da = np.sum(dD * S_prev, axis=1)
                d_x["g"][t, b] = (da if a.size > 1 else np.sum(da)) * a
            dS_all[b] = a[:, None] * dD
            if qk_l2norm:                                       # q = q_raw / |q_raw|
                dq = rq * (dq - q * np.dot(q, dq))
                dk = rk * (dk - k * np.dot(k, dk))
            d_x["q"][t, b], d_x["k"][t, b] = dq, dk
    return {}, d_x, {"S": dS_all}


# --- Mamba-1 and Mamba-2 ------------------------------------------------------------------------
def mamba_forward(params, x, state0=None):
    """Mamba-1 selective scan, one block of channels (mamba_ssm selective_scan_ref, with
    delta_softplus and delta_bias), or Mamba-2's one head when A, D, dt_bias and dt are one
    number each (``mamba2``: x's key "x" instead of "u"):

        delta = softplus(dt + dt_bias)                           (d_in,) or (1,)
        h = exp(delta[:, None] * A) * h + outer(delta * u, B)    (d_in, d_state)
        y = h @ C + D * u

    params A (d_in, d_state) or (1,), D and dt_bias (d_in,) or (1,).
    x {"u" (or "x"), "dt", "B", "C"}.
    """
    out, final, _ = _mamba(params, x, state0)
    return out, final


def _mamba(params, x, state0):
    u_name = "u" if "u" in x else "x"
    names = [u_name, "dt", "B", "C"]
    d_in, N = np.shape(x[u_name])[2], np.shape(x["B"])[2]
    x, T, B, state = _inputs(x, names, state0, {"h": (d_in, N)})
    A, D, dt_bias = (np.asarray(params[p], x[u_name].dtype) for p in ("A", "D", "dt_bias"))
    out = np.zeros((T, B, d_in), x[u_name].dtype)
    h_all = np.zeros((T + 1,) + state["h"].shape, x[u_name].dtype)
    h_all[0] = state["h"]
    for t in range(T):
        for b in range(B):
            u, Bt, Ct = x[u_name][t, b], x["B"][t, b], x["C"][t, b]
            delta = _softplus(x["dt"][t, b] + dt_bias)               # step size
            decay = np.exp(delta[:, None] * A) if A.ndim == 2 else np.exp(delta * A)
            h = decay * h_all[t, b] + np.outer(delta * u, Bt)        # selective state update
            h_all[t + 1, b] = h
            out[t, b] = h @ Ct + D * u                               # read out, plus skip
    return out, {"h": h_all[T].copy()}, (x, h_all, u_name, (A, D, dt_bias))


def mamba_backward(params, x, state0, d_outputs, d_final_state=None):
    """The backward of mamba_forward: (d_params {A, D, dt_bias}, d_x, d_state0)."""
    _, _, (x, h_all, u_name, (A, D, dt_bias)) = _mamba(params, x, state0)
    T, B = x[u_name].shape[:2]
    d_x = {n: np.zeros_like(a) for n, a in x.items()}
    dA, dD, ddt_bias = np.zeros_like(A), np.zeros_like(D), np.zeros_like(dt_bias)
    dh_all = np.zeros_like(h_all[0])
    if d_final_state is not None and "h" in d_final_state:
        dh_all += d_final_state["h"]
    for t in reversed(range(T)):
        for b in range(B):
            u, Bt, Ct = x[u_name][t, b], x["B"][t, b], x["C"][t, b]
            z = x["dt"][t, b] + dt_bias
            delta = _softplus(z)
            decay = np.exp(delta[:, None] * A) if A.ndim == 2 else np.exp(delta * A)
            h_prev, h = h_all[t, b], h_all[t + 1, b]
            dy = d_outputs[t, b]
            dh = dh_all[b] + np.outer(dy, Ct)                        # y = h C + D u
            d_x["C"][t, b] = h.T @ dy
            dD += np.sum(dy * u) if D.size == 1 else dy * u
            du = dy * D
            dh_all[b] = decay * dh                                   # h = decay h_prev + ...
            d_arg = dh * h_prev * decay                              # through exp(delta A)
            if A.ndim == 2:
                ddelta = np.sum(d_arg * A, axis=1)
                dA += d_arg * delta[:, None]
            else:
                ddelta = np.sum(d_arg) * A
                dA += np.sum(d_arg) * delta
            dw = dh @ Bt                                             # outer(delta u, B)
            d_x["B"][t, b] = dh.T @ (delta * u)
            ddelta = ddelta + (np.sum(dw * u) if delta.size == 1 else dw * u)
            du = du + dw * delta
            d_x[u_name][t, b] = du
            dz = ddelta * _sigmoid(z)                                # delta = softplus(z)
            d_x["dt"][t, b] = dz
            ddt_bias += dz
    return {"A": dA, "D": dD, "dt_bias": ddt_bias}, d_x, {"h": dh_all}


# --- mLSTM ----------------------------------------------------------------------------------------
def mlstm_forward(params, x, state0=None, eps=1e-6):
    """xLSTM's mLSTM, stabilised recurrent step (mlstm_kernels mlstm_recurrent_step__native_fw):

        lf = logsigmoid(f);  m = max(lf + m_prev, i)
        fa = exp(lf + m_prev - m);  ia = exp(i - m)
        C = fa * C + ia * outer(k, v);  n = fa * n + ia * k
        qs = q / sqrt(d_k);  h = C.T @ qs / (max(|n . qs|, exp(-m)) + eps)

    x {"q", "k" (T, B, d_k), "v" (T, B, d_v), "i", "f" (T, B, 1)}; state {"C", "n", "m"}.
    """
    out, final, _ = _mlstm(x, state0, eps)
    return out, final


def _mlstm(x, state0, eps):
    d_k, d_v = np.shape(x["q"])[2], np.shape(x["v"])[2]
    x, T, B, state = _inputs(x, ["q", "k", "v", "i", "f"], state0,
                             {"C": (d_k, d_v), "n": (d_k,), "m": (1,)})
    dt = x["q"].dtype
    C_all = np.zeros((T + 1, B, d_k, d_v), dt)
    n_all = np.zeros((T + 1, B, d_k), dt)
    m_all = np.zeros((T + 1, B, 1), dt)
    C_all[0], n_all[0], m_all[0] = state["C"], state["n"], state["m"]
    out = np.zeros((T, B, d_v), dt)
    for t in range(T):
        for b in range(B):
            q, k, v = x["q"][t, b], x["k"][t, b], x["v"][t, b]
            i, f = x["i"][t, b], x["f"][t, b]
            m_prev = m_all[t, b]
            lf = -np.logaddexp(0, -f)                                # log sigmoid(f)
            m = np.maximum(lf + m_prev, i)                           # stabiliser
            fa, ia = np.exp(lf + m_prev - m), np.exp(i - m)          # stabilised gates
            C = fa * C_all[t, b] + ia * np.outer(k, v)
            n = fa * n_all[t, b] + ia * k
            qs = q / np.sqrt(d_k)
            den = np.maximum(np.abs(n @ qs), np.exp(-m)) + eps
            C_all[t + 1, b], n_all[t + 1, b], m_all[t + 1, b] = C, n, m
            out[t, b] = C.T @ qs / den
    final = {"C": C_all[T].copy(), "n": n_all[T].copy(), "m": m_all[T].copy()}
    return out, final, (x, C_all, n_all, m_all)


def mlstm_backward(params, x, state0, d_outputs, d_final_state=None, eps=1e-6):
    """The backward of mlstm_forward: (d_params {}, d_x, d_state0 {C, n, m})."""
    _, _, (x, C_all, n_all, m_all) = _mlstm(x, state0, eps)
    T, B, d_k = x["q"].shape
    d_x = {n: np.zeros_like(a) for n, a in x.items()}
    dC_all, dn_all, dm_all = np.zeros_like(C_all[0]), np.zeros_like(n_all[0]), np.zeros_like(m_all[0])
    for s, arr in (("C", dC_all), ("n", dn_all), ("m", dm_all)):
        if d_final_state is not None and s in d_final_state:
            arr += d_final_state[s]
    for t in reversed(range(T)):
        for b in range(B):
            q, k, v = x["q"][t, b], x["k"][t, b], x["v"][t, b]
            i, f = x["i"][t, b], x["f"][t, b]
            C_prev, n_prev, m_prev = C_all[t, b], n_all[t, b], m_all[t, b]
            C, n, m = C_all[t + 1, b], n_all[t + 1, b], m_all[t + 1, b]
            lf = -np.logaddexp(0, -f)
            fa, ia = np.exp(lf + m_prev - m), np.exp(i - m)
            qs = q / np.sqrt(d_k)
            dot, e = n @ qs, np.exp(-m)
            den = np.maximum(np.abs(dot), e) + eps
            h = C.T @ qs / den
            dh = d_outputs[t, b]
            dC = dC_all[b] + np.outer(qs, dh / den)                  # h = C.T qs / den
            dqs = C @ (dh / den)
            dden = -np.sum(dh * h) / den
            dn, dm = dn_all[b].copy(), dm_all[b].copy()
            if np.abs(dot) >= e:                                     # den = max(|dot|, e) + eps
                ddot = dden * np.sign(dot)
                dn += ddot * qs
                dqs += ddot * n
            else:
                dm -= dden * e
            d_x["q"][t, b] = dqs / np.sqrt(d_k)
            dfa = np.sum(dC * C_prev) + dn @ n_prev                  # C, n = fa (.) + ia (.)
            dia = np.sum(dC * np.outer(k, v)) + dn @ k
            dC_all[b], dn_all[b] = fa * dC, fa * dn
            d_x["k"][t, b] = ia * (dC @ v) + ia * dn
            d_x["v"][t, b] = ia * (dC.T @ k)
            dz = dfa * fa                                            # fa = exp(lf + m_prev - m)
            dlf, dm_prev, dm = dz, dz, dm - dz
            di = dia * ia                                            # ia = exp(i - m)
            dm = dm - di
            if lf + m_prev >= i:                                     # m = max(lf + m_prev, i)
                dlf, dm_prev = dlf + dm, dm_prev + dm
            else:
                di = di + dm
            d_x["i"][t, b] = di
            d_x["f"][t, b] = dlf * _sigmoid(-f)                      # lf = log sigmoid(f)
            dm_all[b] = dm_prev
    return {}, d_x, {"C": dC_all, "n": dn_all, "m": dm_all}
