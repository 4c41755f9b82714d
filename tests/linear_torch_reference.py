"""The matrix-state cells written again in torch (batched, float64), for autograd gradients: the
third opinion beside rnnsym.reference.linear (NumPy, per sample) and the generated modules."""
import torch


def attention(x, state0, rule, qk_l2norm=False):
    q, k, v = x["q"], x["k"], x["v"]
    T, d_k = q.shape[0], q.shape[2]
    S, outs = state0["S"], []
    for t in range(T):
        qt, kt = q[t], k[t]
        if qk_l2norm:
            qt = qt / torch.sqrt((qt * qt).sum(-1, keepdim=True) + 1e-6)
            kt = kt / torch.sqrt((kt * kt).sum(-1, keepdim=True) + 1e-6)
        if "gated" in rule:
            S = torch.exp(x["g"][t]).unsqueeze(-1) * S
        if "delta" in rule:
            err = v[t] - torch.einsum("bkv,bk->bv", S, kt)
            S = S + x["beta"][t].unsqueeze(-1) * kt.unsqueeze(-1) * err.unsqueeze(-2)
        else:
            S = S + kt.unsqueeze(-1) * v[t].unsqueeze(-2)
        outs.append(torch.einsum("bkv,bk->bv", S, qt) / d_k ** 0.5)
    return torch.stack(outs) if outs else q.new_zeros((0,) + v.shape[1:]), {"S": S}


def mamba(params, x, state0):
    u = x["u"] if "u" in x else x["x"]
    A, D, dt_bias = params["A"], params["D"], params["dt_bias"]
    h, outs = state0["h"], []
    for t in range(u.shape[0]):
        delta = torch.nn.functional.softplus(x["dt"][t] + dt_bias)
        decay = torch.exp(delta.unsqueeze(-1) * A)             # (B, d, N), or (B, 1, 1) for a scalar A
        h = decay * h + (delta * u[t]).unsqueeze(-1) * x["B"][t].unsqueeze(-2)
        outs.append(torch.einsum("bdn,bn->bd", h, x["C"][t]) + D * u[t])
    return torch.stack(outs) if outs else u.new_zeros((0,) + u.shape[1:]), {"h": h}


def mlstm(x, state0, eps=1e-6):
    q, k, v, i, f = x["q"], x["k"], x["v"], x["i"], x["f"]
    C, n, m, outs = state0["C"], state0["n"], state0["m"], []
    for t in range(q.shape[0]):
        lf = torch.nn.functional.logsigmoid(f[t])
        m_new = torch.where(lf + m >= i[t], lf + m, i[t])      # max, ties to the first (as rnnsym)
        fa, ia = torch.exp(lf + m - m_new), torch.exp(i[t] - m_new)
        C = fa.unsqueeze(-1) * C + ia.unsqueeze(-1) * k[t].unsqueeze(-1) * v[t].unsqueeze(-2)
        n = fa * n + ia * k[t]
        qs = q[t] / q.shape[2] ** 0.5
        dot = (n * qs).sum(-1, keepdim=True)
        e = torch.exp(-m_new)
        den = torch.where(dot.abs() >= e, dot.abs(), e) + eps
        outs.append(torch.einsum("bkv,bk->bv", C, qs) / den)
        m = m_new
    return torch.stack(outs) if outs else v.new_zeros((0,) + v.shape[1:]), {"C": C, "n": n, "m": m}
