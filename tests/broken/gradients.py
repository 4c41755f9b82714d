"""Gradient bugs (``rnnsym check --gradients``) and gradient-preserving rewrites.

Torch drop-ins (``_base.DropIn``) whose forward is right but detaches a state, so autograd's
gradient is wrong (a forward bug that only shows in gradients), and canonical NumPy functions
with a hand-written ``backward`` (min-char-rnn style), broken in one place each. ``EXPECT`` is
a phrase of the diagnosis the checker must give."""
import functools

import numpy as np
import torch

from _base import DropIn


class _Counting(DropIn):
    """Counts the steps of a direction, so that a subclass can detach at some of them."""

    def run_direction(self, layer, d, x, state):
        self.t = 0
        return super().run_direction(layer, d, x, state)

    def detach_now(self):
        return False

    def step(self, layer, d, x_t, state):
        if self.detach_now():
            state = tuple(s.detach() for s in state)
        self.t += 1
        return super().step(layer, d, x_t, state)


class GRUDetachedState(_Counting):
    """h = h.detach() before every step."""
    CELL, EXPECT = "gru", "state detached before every step"

    def detach_now(self):
        return True


class LSTMTruncated3(_Counting):
    """Truncated BPTT: (h, c) detached every 3 steps (t = 3, 6, ...)."""
    CELL, EXPECT = "lstm", "truncated BPTT: the gradient stops after 3 steps"

    def detach_now(self):
        return self.t > 0 and self.t % 3 == 0


class LSTMDetachedCell(DropIn):
    """c = c.detach() before every step (h still carries the gradient)."""
    CELL, EXPECT = "lstm", "no gradient through the cell state c"

    def step(self, layer, d, x_t, state):
        return super().step(layer, d, x_t, (state[0], state[1].detach()))


class GRUDetachedReset(DropIn):
    """r.detach() in the step: no gradient flows through the reset gate."""
    CELL, EXPECT = "gru", "no gradient through the reset gate r"

    def candidate(self, layer, d, i_n, h_n, r, h):
        return super().candidate(layer, d, i_n, h_n, r.detach(), h)


class GRUDetachedUpdate(DropIn):
    """z.detach() in the step: no gradient flows through the update gate."""
    CELL, EXPECT = "gru", "no gradient through the update gate z"

    def update(self, z, n, h):
        return super().update(z.detach(), n, h)


class GRUInterpolated(DropIn):
    """Correct, rewritten: h = n + z * (h - n) (one product instead of two)."""
    CELL = "gru"

    def update(self, z, n, h):
        return n + z * (h - n)


class LSTMPlainAutograd(DropIn):
    """Correct: torch autograd through a hand-written forward."""
    CELL = "lstm"


class GRUPlainAutograd(DropIn):
    """Correct: torch autograd through a hand-written forward."""
    CELL = "gru"


# --- stacks and directions -----------------------------------------------------------------
class GRUStackDetached(DropIn):
    """Each layer above the first reads the output below detached (a .detach() or .data
    between layers): the forward is right, the lower layers learn only from h_n."""
    CELL, EXPECT = "gru", "no gradient between layers"

    def layer_input(self, layer, inp):
        return inp.detach()


class LSTMReverseInputDetached(DropIn):
    """The reverse direction reads a detached copy of its input."""
    CELL, EXPECT = "lstm", "the reverse direction's input is detached"

    def run_direction(self, layer, d, x, state):
        return super().run_direction(layer, d, x.detach() if d else x, state)


class GRUReverseByFlip(DropIn):
    """Correct, built another way: the reverse direction is a forward loop over
    ``x.flip(0)``, its outputs flipped back (autograd through two flips). It takes no packed
    sequences (NotImplementedError: an unsupported feature, not a failure)."""
    CELL = "gru"

    def run_direction(self, layer, d, x, state):
        if self.lengths is not None:
            raise NotImplementedError("packed sequences")
        if not d:
            return super().run_direction(layer, d, x, state)
        outputs = []
        for x_t in x.flip(0):
            state = self.step(layer, d, x_t, state)
            outputs.append(state[0])
        return torch.stack(outputs).flip(0), state


class LSTMOutputBuffer(DropIn):
    """Correct, built another way: each direction's outputs are written into slices of one
    preallocated buffer (in-place writes that autograd must route back)."""
    CELL = "lstm"

    def merge_directions(self, outs):
        d = outs[0].shape[-1]
        buf = outs[0].new_zeros(outs[0].shape[:-1] + (len(outs) * d,))
        for i, o in enumerate(outs):
            buf[..., i * d:(i + 1) * d] = o
        return buf


# --- packed sequences ----------------------------------------------------------------------
class GRUPaddingDetached(DropIn):
    """The state held through the padding steps is detached: right outputs, but for a sample
    shorter than T, h_n's gradient never reaches its valid steps."""
    CELL, EXPECT = "gru", "the state held through the padding steps is detached"

    def hold(self, valid, new, state):
        return tuple(torch.where(valid, n, s.detach()) for n, s in zip(new, state))


class LSTMPaddingBlended(DropIn):
    """Correct, built another way: the held state is blended arithmetically,
    ``m * new + (1 - m) * state`` with a 0/1 mask, instead of torch.where."""
    CELL = "lstm"

    def hold(self, valid, new, state):
        m = valid.to(new[0].dtype)
        return tuple(m * n + (1 - m) * s for n, s in zip(new, state))


# --- torch cell API (--cell-api): one step per call ---------------------------------------
class GRUCellPlain(torch.nn.Module):
    """Correct: a hand-written torch.nn.GRUCell (same constructor, parameters, forward)."""

    def __init__(self, input_size, hidden_size, bias=True):
        super().__init__()
        k, H = hidden_size ** -0.5, hidden_size
        self.hidden_size = hidden_size
        shapes = {"weight_ih": (3 * H, input_size), "weight_hh": (3 * H, H)}
        shapes.update({"bias_ih": (3 * H,), "bias_hh": (3 * H,)} if bias else {})
        for name, shape in shapes.items():
            self.register_parameter(name, torch.nn.Parameter(torch.empty(shape).uniform_(-k, k)))
        if not bias:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)

    def reset(self, r):
        return r

    def forward(self, input, hx=None):
        h = input.new_zeros(input.shape[:-1] + (self.hidden_size,)) if hx is None else hx
        gi = torch.nn.functional.linear(input, self.weight_ih, self.bias_ih)
        gh = torch.nn.functional.linear(h, self.weight_hh, self.bias_hh)
        i_r, i_z, i_n = gi.chunk(3, -1)
        h_r, h_z, h_n = gh.chunk(3, -1)
        r, z = self.reset(torch.sigmoid(i_r + h_r)), torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        return (1 - z) * n + z * h


class GRUCellDetachedReset(GRUCellPlain):
    """r.detach() in the cell's step."""
    EXPECT = "no gradient through the reset gate r"

    def reset(self, r):
        return r.detach()


# --- canonical functions with a hand-written backward ------------------------------------
def elman(params, x, state0=None, return_cache=False):
    """h_t = tanh(W_xh x_t + W_hh h_{t-1} + b_h)."""
    W_xh, W_hh, b_h = params["W_xh"], params["W_hh"], params["b_h"]
    h = np.zeros((x.shape[1], W_hh.shape[0])) if state0 is None else state0["h"]
    hs = [h]
    for x_t in x:
        h = np.tanh(x_t @ W_xh.T + h @ W_hh.T + b_h)
        hs.append(h)
    outputs, final = np.stack(hs[1:]), {"h": h}
    return (outputs, final, {"x": x, "hs": hs}) if return_cache else (outputs, final)


def _backward(params, cache, d_outputs, d_final_state=None, *, bias_once=False,
              transposed=False):
    W_xh, W_hh = params["W_xh"], params["W_hh"]
    x, hs = cache["x"], cache["hs"]
    dW_xh, dW_hh, db_h = np.zeros_like(W_xh), np.zeros_like(W_hh), np.zeros(W_hh.shape[0])
    dx = np.zeros_like(x)
    dh_next = np.zeros_like(hs[0]) if d_final_state is None else d_final_state["h"]
    for t in reversed(range(len(x))):
        dh = d_outputs[t] + dh_next
        da = dh * (1 - hs[t + 1] * hs[t + 1])          # through tanh
        dW_xh += da.T @ x[t]
        dW_hh += hs[t].T @ da if transposed else da.T @ hs[t]
        db_h = da.sum(0) if bias_once else db_h + da.sum(0)
        dx[t] = da @ W_xh
        dh_next = da @ W_hh
    return {"W_xh": dW_xh, "W_hh": dW_hh, "b_h": db_h}, dx, {"h": dh_next}


def _backward_reordered(params, cache, d_outputs, d_final_state=None):
    """Correct, differently ordered: every step's delta first, then each weight gradient in
    one sum over (t, b) in forward time order."""
    x, hs = cache["x"], np.stack(cache["hs"])
    das, dh_next = [None] * len(x), d_final_state["h"]
    for t in reversed(range(len(x))):
        das[t] = (d_outputs[t] + dh_next) * (1 - hs[t + 1] ** 2)
        dh_next = das[t] @ params["W_hh"]
    das = np.stack(das) if das else np.zeros((0,) + hs.shape[1:])
    grads = {"W_xh": np.einsum("tbi,tbj->ij", das, x),
             "W_hh": np.einsum("tbi,tbj->ij", das, hs[:-1]),
             "b_h": das.sum(axis=(0, 1))}
    return grads, das @ params["W_xh"], {"h": dh_next}


def elman_bias_once(params, x, state0=None, return_cache=False):
    """db_h = da instead of db_h += da in the loop: the bias gradient of step 0 only."""
    return elman(params, x, state0, return_cache)


def elman_transposed(params, x, state0=None, return_cache=False):
    """dW_hh accumulated as h_{t-1}^T da: the transpose of the right gradient."""
    return elman(params, x, state0, return_cache)


def elman_reordered(params, x, state0=None, return_cache=False):
    return elman(params, x, state0, return_cache)


def elman_without_backward(params, x, state0=None):
    return elman(params, x, state0)


elman.backward = _backward
elman_bias_once.backward = functools.partial(_backward, bias_once=True)
elman_bias_once.EXPECT = "bias gradient counted once (step 0's term)"
elman_transposed.backward = functools.partial(_backward, transposed=True)
elman_transposed.EXPECT = "transposed weight gradient"
elman_reordered.backward = _backward_reordered

BROKEN_GRADIENTS = [("gru", "GRUDetachedState", GRUDetachedState.EXPECT),
                    ("lstm", "LSTMTruncated3", LSTMTruncated3.EXPECT),
                    ("lstm", "LSTMDetachedCell", LSTMDetachedCell.EXPECT),
                    ("gru", "GRUDetachedReset", GRUDetachedReset.EXPECT),
                    ("gru", "GRUDetachedUpdate", GRUDetachedUpdate.EXPECT),
                    ("elman", "elman_bias_once", elman_bias_once.EXPECT),
                    ("elman", "elman_transposed", elman_transposed.EXPECT),
                    ("gru", "GRUStackDetached", GRUStackDetached.EXPECT),
                    ("lstm", "LSTMReverseInputDetached", LSTMReverseInputDetached.EXPECT),
                    ("gru", "GRUPaddingDetached", GRUPaddingDetached.EXPECT)]
EQUIVALENT_GRADIENTS = [("lstm", "LSTMPlainAutograd"), ("gru", "GRUPlainAutograd"),
                        ("gru", "GRUInterpolated"), ("gru", "GRUReverseByFlip"),
                        ("lstm", "LSTMOutputBuffer"), ("lstm", "LSTMPaddingBlended"),
                        ("elman", "elman"), ("elman", "elman_reordered")]
