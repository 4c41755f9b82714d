"""Deliberately broken drop-ins: each breaks one thing of _base.DropIn.

``EXPECT`` is a phrase the checker's diagnosis must contain (None: any rejection
will do, no known variant describes the bug). ``CELL`` is the --cell to check with.
The bug classes follow section (d) of the reference notes, then numerics and
structure.
"""
import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from _base import GRU, LSTM, RNN

# ---- (d1) gate-order permutation -----------------------------------------------------------


class LSTMGatesIFOG(LSTM):
    """Reads torch's i|f|g|o blocks as i|f|o|g."""
    EXPECT = "gates read in order i,f,o,g"

    def chunks(self, gates, n):
        i, f, o, g = gates.chunk(n, dim=-1)
        return i, f, g, o


class GRUGatesZRN(GRU):
    """Keras' z|r|h order applied to torch weights (keras-team/keras#15915)."""
    EXPECT = "gates read in order z,r,n"

    def chunks(self, gates, n):
        z, r, h = gates.chunk(n, dim=-1)
        return r, z, h


# ---- (d2) GRU reset variant ----------------------------------------------------------------


class GRUResetBefore(GRU):
    """Cho et al. / ONNX linear_before_reset=0 instead of torch's reset-after."""
    EXPECT = "reset applied before the matmul"

    def candidate(self, layer, d, i_n, h_n, r, h):
        H = self.hidden_size
        W_hn = self.p("weight_hh", layer, d)[2 * H:]
        b_hh = self.p("bias_hh", layer, d)
        b_hn = 0 if b_hh is None else b_hh[2 * H:]
        return self.tanh(i_n + (r * h) @ W_hn.T + b_hn)


# ---- (d3) bias placement / missing ---------------------------------------------------------


class GRUBhnOutsideReset(GRU):
    """CoreML-style n = tanh(W_in x + r*(W_hn h) + b_in + b_hn)."""
    EXPECT = "b_hn added outside the reset gate"

    def candidate(self, layer, d, i_n, h_n, r, h):
        H = self.hidden_size
        b_hh = self.p("bias_hh", layer, d)
        b_hn = 0 if b_hh is None else b_hh[2 * H:]
        return self.tanh(i_n + r * (h_n - b_hn) + b_hn)


class GRUNoBhn(GRU):
    """flax nnx.GRUCell-style: the hidden candidate bias b_hn is dropped."""
    EXPECT = "b_hn missing"

    def candidate(self, layer, d, i_n, h_n, r, h):
        H = self.hidden_size
        b_hh = self.p("bias_hh", layer, d)
        b_hn = 0 if b_hh is None else b_hh[2 * H:]
        return self.tanh(i_n + r * (h_n - b_hn))


class LSTMIgnoresBiasHH(LSTM):
    """Only bias_ih is used (the 'second bias for CuDNN compatibility' forgotten)."""
    EXPECT = "bias_hh* parameters ignored"

    def linear(self, v, weight, bias):
        if bias is not None and any(bias is b for b in self._hh_biases()):
            bias = None
        return super().linear(v, weight, bias)

    def _hh_biases(self):
        return [p for n, p in self.named_parameters() if n.startswith("bias_hh")]


# ---- (d4) reverse-direction time alignment -------------------------------------------------


class GRUReverseNotRealigned(GRU):
    """Reverse outputs returned in processing order (Keras go_backwards style)."""
    EXPECT = "not realigned"

    def run_direction(self, layer, d, x, state):
        out, state = super().run_direction(layer, d, x, state)
        return (out.flip(0) if d else out), state


class LSTMReverseRunsForward(LSTM):
    """The reverse direction is computed left to right like the forward one."""
    EXPECT = "reverse direction running forwards"

    def run_direction(self, layer, d, x, state):
        out, state = super().run_direction(layer, d, x.flip(0), state) if d else \
            super().run_direction(layer, d, x, state)
        return (out.flip(0) if d else out), state


class GRUReverseFinalAtLastOutput(GRU):
    """h_n of the reverse direction taken from output[-1] (pytorch forum classic)."""
    EXPECT = "first step"

    def run_direction(self, layer, d, x, state):
        out, final = super().run_direction(layer, d, x, state)
        if d:
            first = self.step(layer, d, x[-1], state)
            return out, first
        return out, final


# ---- (d5) direction-axis layout ------------------------------------------------------------


class LSTMDirectionInterleaved(LSTM):
    """Output laid out (..., H, D) instead of (..., D, H) (pytorch/pytorch#10838)."""
    EXPECT = "direction axis interleaved"

    def merge_directions(self, outs):
        return torch.stack(outs, dim=-1).flatten(-2)


class GRULayerStatesMixed(GRU):
    """h_0 / h_n indexed direction*num_layers + layer instead of layer*D + direction."""
    EXPECT = "layer states mixed up"

    def state_index(self, layer, d):
        return d * self.num_layers + layer


# ---- (d6) variable lengths (PackedSequence) ------------------------------------------------


class GRUIgnoresPacking(GRU):
    """Unpacks a PackedSequence and runs the whole padded batch as if every step were
    valid; only the repacking hides the outputs past each length."""
    EXPECT = "lengths ignored"

    def forward(self, input, hx=None):
        if not isinstance(input, PackedSequence):
            return super().forward(input, hx)
        padded, lengths = pad_packed_sequence(input, batch_first=self.batch_first)
        out, states = super().forward(padded, hx)
        return pack_padded_sequence(out, lengths, batch_first=self.batch_first,
                                    enforce_sorted=False), states


class LSTMReverseFromPaddedEnd(LSTM):
    """The reverse direction reverses the padded sequence (tf.reverse instead of
    reverse_sequence), so it starts in the padding at T-1 (onnx/onnx-tensorflow#342);
    outputs past each length are still masked."""
    EXPECT = "reverse direction starting at the padded end"

    def run_direction(self, layer, d, x, state):
        if not (d and self.lengths is not None):
            return super().run_direction(layer, d, x, state)
        lengths, self.lengths = self.lengths, None
        try:
            out, state = super().run_direction(layer, d, x, state)
        finally:
            self.lengths = lengths
        valid = (torch.arange(len(x))[:, None] < lengths[None, :]).unsqueeze(-1)
        return torch.where(valid, out, torch.zeros_like(out)), state


class GRUFinalStateAtPaddedEnd(GRU):
    """Masks the outputs past each length but returns the state after the last padded
    step: h_n keeps running on through the padding."""
    EXPECT = "final state taken at the padded end"

    def run_direction(self, layer, d, x, state):
        out, final = super().run_direction(layer, d, x, state)
        if d == 0 and self.lengths is not None:
            lengths, self.lengths = self.lengths, None
            try:
                _, final = super().run_direction(layer, d, x, state)
            finally:
                self.lengths = lengths
        return out, final


# ---- (d7) attributes silently ignored ------------------------------------------------------


class RNNIgnoresNonlinearity(RNN):
    """nonlinearity='relu' accepted but tanh always used."""
    EXPECT = "activation tanh instead of relu"

    def act(self, a):
        return self.tanh(a)


class GRUIgnoresBatchFirst(GRU):
    """batch_first accepted but the input always treated as time-major."""
    EXPECT = "batch_first ignored"

    def forward(self, input, hx=None):
        batch_first, self.batch_first = self.batch_first, False
        try:
            return super().forward(input, hx)
        finally:
            self.batch_first = batch_first


# ---- (d9) kernel bug on an optional-input combination --------------------------------------


class GRUNoBiasBatch3(GRU):
    """Without bias and with batch >= 3, sample 0's state leaks into the others
    (cf. onnxruntime#3797: GRU with no B gave garbage for batch >= 3)."""
    EXPECT = None

    def update(self, z, n, h):
        out = super().update(z, n, h)
        if not self.bias and out.shape[0] >= 3:
            out = out + 0.5 * out[:1]
        return out


# ---- numerics ------------------------------------------------------------------------------


class GRUNaiveSigmoid(GRU):
    """sigmoid(a) = exp(a) / (1 + exp(a)): inf/inf = nan once a > 88 (float32)."""
    EXPECT = "non-finite output"

    def sigmoid(self, a):
        return torch.exp(a) / (1 + torch.exp(a))


class LSTMHardSigmoid(LSTM):
    """Keras-1-style hard sigmoid clip(0.2 a + 0.5, 0, 1) instead of the logistic."""
    EXPECT = "hard sigmoid (ONNX HardSigmoid / Keras 2"

    def sigmoid(self, a):
        return torch.clamp(0.2 * a + 0.5, 0, 1)


class LSTMNoTanhOnCell(LSTM):
    """h = o * c: the output forgets the tanh of the cell state."""
    EXPECT = "the tanh on the cell state is missing"

    def step(self, layer, d, x_t, state):
        h, c = state
        gi = self.linear(x_t, self.p("weight_ih", layer, d), self.p("bias_ih", layer, d))
        gh = self.linear(h, self.p("weight_hh", layer, d), self.p("bias_hh", layer, d))
        i, f, g, o = self.chunks(gi + gh, 4)
        c = self.sigmoid(f) * c + self.sigmoid(i) * self.tanh(g)
        h = self.sigmoid(o) * c
        if self.proj_size:
            h = h @ self.p("weight_hr", layer, d).T
        return (h, c)


class GRUHardSigmoidKeras3(GRU):
    """Keras 3's hard_sigmoid relu6(a + 3) / 6 for the gates."""
    EXPECT = "hard sigmoid (Keras 3 hard_sigmoid"

    def sigmoid(self, a):
        return torch.clamp(a + 3, 0, 6) / 6


class GRUHalfPrecision(GRU):
    """Computes the recurrence in bfloat16 and casts back."""
    EXPECT = None

    def step(self, layer, d, x_t, state):
        out = super().step(layer, d, x_t, state)
        return tuple(v.to(torch.bfloat16).to(x_t.dtype) for v in out)


# ---- structure -----------------------------------------------------------------------------


class GRUStateNotCarried(GRU):
    """Every step restarts from the initial state instead of the previous one."""
    EXPECT = "state not carried"

    def run_direction(self, layer, d, x, state):
        steps = range(len(x) - 1, -1, -1) if d else range(len(x))
        outputs, last = [None] * len(x), state
        for t in steps:
            last = self.step(layer, d, x[t], state)
            outputs[t] = last[0]
        return torch.stack(outputs), last


class LSTMInitialStateIgnored(LSTM):
    """hx is accepted and ignored: always starts from zeros."""
    EXPECT = "initial state ignored"

    def initial_state(self, hx, B, dtype):
        return super().initial_state(None, B, dtype)


class LSTMStateOrderSwapped(LSTM):
    """hx read as (c_0, h_0) instead of (h_0, c_0)."""
    EXPECT = "(c, h) instead of (h, c)"

    def initial_state(self, hx, B, dtype):
        states = super().initial_state(hx, B, dtype)
        if hx is not None and not self.proj_size:
            return states[1], states[0]
        return states


class GRUUpdateFlipped(GRU):
    """h = z*n + (1-z)*h_prev (the z convention of some papers, with torch weights)."""
    EXPECT = "update rule flipped"

    def update(self, z, n, h):
        return z * n + (1 - z) * h


BROKEN = [
    ("lstm", LSTMGatesIFOG), ("gru", GRUGatesZRN), ("gru", GRUResetBefore),
    ("gru", GRUBhnOutsideReset), ("gru", GRUNoBhn), ("lstm", LSTMIgnoresBiasHH),
    ("gru", GRUReverseNotRealigned), ("lstm", LSTMReverseRunsForward),
    ("gru", GRUReverseFinalAtLastOutput), ("lstm", LSTMDirectionInterleaved),
    ("gru", GRULayerStatesMixed), ("elman", RNNIgnoresNonlinearity),
    ("gru", GRUIgnoresBatchFirst), ("gru", GRUNoBiasBatch3), ("gru", GRUNaiveSigmoid),
    ("lstm", LSTMHardSigmoid), ("lstm", LSTMNoTanhOnCell), ("gru", GRUHardSigmoidKeras3), ("gru", GRUHalfPrecision), ("gru", GRUStateNotCarried),
    ("lstm", LSTMInitialStateIgnored), ("lstm", LSTMStateOrderSwapped),
    ("gru", GRUUpdateFlipped),
]

#: variable-length bugs: only visible on packed input (tests/test_check_lengths.py)
BROKEN_LENGTHS = [("gru", GRUIgnoresPacking), ("lstm", LSTMReverseFromPaddedEnd),
                  ("gru", GRUFinalStateAtPaddedEnd)]


# ---- (d7/d11) options accepted but ignored: caught by the parameter contract -----------------


class GRUIgnoresBidirectional(GRU):
    """bidirectional=True accepted, a single direction built and run."""
    EXPECT = "bidirectional ignored"

    def __init__(self, *args, bidirectional=False, **kwargs):
        super().__init__(*args, bidirectional=False, **kwargs)


class LSTMIgnoresProjSize(LSTM):
    """proj_size accepted and ignored."""
    EXPECT = "proj_size ignored"

    def __init__(self, *args, proj_size=0, **kwargs):
        super().__init__(*args, proj_size=0, **kwargs)


BROKEN += [("gru", GRUIgnoresBidirectional), ("lstm", LSTMIgnoresProjSize)]
