"""Mathematically equivalent rewrites of the torch contract: each must PASS the check.

They differ from torch only in floating-point details, which the checker's
backward-error tolerance must accept without any loosening.
"""
import torch

from _base import GRU, LSTM, RNN


class GRUSigmoidThroughTanh(GRU):
    """sigmoid(a) = (1 + tanh(a / 2)) / 2."""

    def sigmoid(self, a):
        return 0.5 * (1 + torch.tanh(0.5 * a))


class GRUInterpolatedUpdate(GRU):
    """h = n + z * (h_prev - n) instead of (1 - z) * n + z * h_prev."""

    def update(self, z, n, h):
        return n + z * (h - n)


class GRUFloat64Internals(GRU):
    """Computes every step in float64 and rounds the state back to float32."""

    def step(self, layer, d, x_t, state):
        saved = {n: p for n, p in self.named_parameters()}
        with torch.no_grad():
            for n, p in saved.items():
                setattr(self, "_f64_" + n, p.double())
        try:
            self.p = lambda name, layer_, d_: getattr(self, "_f64_" + name + self.suffix(layer_, d_),
                                                      None)
            out = super().step(layer, d, x_t.double(), tuple(s.double() for s in state))
        finally:
            del self.p
        return tuple(v.to(x_t.dtype) for v in out)


class LSTMSplitGateMatrices(LSTM):
    """One matmul per gate and per input, summed hidden part first."""

    def linear(self, v, weight, bias):
        blocks = [v @ w.T for w in weight.chunk(4, dim=0)]
        out = torch.cat(blocks, dim=-1)
        return out if bias is None else bias + out


class LSTMFusedConcat(LSTM):
    """[x, h] @ [W_ih, W_hh].T + (b_ih + b_hh): one fused matmul."""

    def step(self, layer, d, x_t, state):
        W = torch.cat([self.p("weight_ih", layer, d), self.p("weight_hh", layer, d)], dim=1)
        b_ih, b_hh = self.p("bias_ih", layer, d), self.p("bias_hh", layer, d)
        gates = torch.cat([x_t, state[0]], dim=-1) @ W.T
        if b_ih is not None:
            gates = gates + (b_ih + b_hh)
        i, f, g, o = gates.chunk(4, dim=-1)
        c = torch.sigmoid(f) * state[1] + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        if self.proj_size:
            h = h @ self.p("weight_hr", layer, d).T
        return (h, c)


class RNNReorderedSum(RNN):
    """(b_hh + h W_hh^T) + (b_ih + x W_ih^T), summed in the other order."""

    def step(self, layer, d, x_t, state):
        b_ih, b_hh = self.p("bias_ih", layer, d), self.p("bias_hh", layer, d)
        rec = state[0] @ self.p("weight_hh", layer, d).T
        inp = x_t @ self.p("weight_ih", layer, d).T
        if b_ih is not None:
            rec, inp = b_hh + rec, b_ih + inp
        return (self.act(rec + inp),)


EQUIVALENT = [("gru", GRUSigmoidThroughTanh), ("gru", GRUInterpolatedUpdate),
              ("gru", GRUFloat64Internals), ("lstm", LSTMSplitGateMatrices),
              ("lstm", LSTMFusedConcat), ("elman", RNNReorderedSum)]
