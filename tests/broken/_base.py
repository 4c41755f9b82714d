"""A correct, deliberately plain drop-in for torch.nn.RNN/LSTM/GRU, with hooks.

Written from the equations (not from torch's code) so that each file in this folder
can break exactly one thing by overriding one hook. Contract: same constructor
arguments, parameter names and forward(input, hx) as the torch modules, including a
PackedSequence input (pack_padded_sequence), answered with a PackedSequence: while it
runs, ``self.lengths`` holds the per-sample lengths (original batch order) and every
direction masks the steps past them (state kept, output zero).
"""
import math

import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

GATES = {"elman": 1, "lstm": 4, "gru": 3}


class DropIn(torch.nn.Module):
    CELL = "gru"
    lengths = None

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 bidirectional=False, nonlinearity="tanh", proj_size=0, dropout=0.0):
        super().__init__()
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.bidirectional = bias, batch_first, bidirectional
        self.nonlinearity, self.proj_size = nonlinearity, proj_size
        self.D = 2 if bidirectional else 1
        G, H = GATES[self.CELL], hidden_size
        d_out = proj_size or H
        k = 1 / math.sqrt(H)
        for layer in range(num_layers):
            in_k = input_size if layer == 0 else self.D * d_out
            for d in range(self.D):
                s = self.suffix(layer, d)
                shapes = {f"weight_ih{s}": (G * H, in_k), f"weight_hh{s}": (G * H, d_out)}
                if bias:
                    shapes.update({f"bias_ih{s}": (G * H,), f"bias_hh{s}": (G * H,)})
                if proj_size:
                    shapes[f"weight_hr{s}"] = (proj_size, H)
                for name, shape in shapes.items():
                    self.register_parameter(
                        name, torch.nn.Parameter(torch.empty(shape).uniform_(-k, k)))

    # -- naming ---------------------------------------------------------------------------
    @staticmethod
    def suffix(layer, d):
        return f"_l{layer}" + ("_reverse" if d else "")

    def p(self, name, layer, d):
        s = self.suffix(layer, d)
        return getattr(self, f"{name}{s}", None)

    # -- math hooks -----------------------------------------------------------------------
    def sigmoid(self, a):
        return torch.sigmoid(a)

    def tanh(self, a):
        return torch.tanh(a)

    def act(self, a):
        return torch.relu(a) if self.nonlinearity == "relu" else self.tanh(a)

    def linear(self, v, weight, bias):
        out = v @ weight.T
        return out if bias is None else out + bias

    def chunks(self, gates, n):
        """Split the stacked pre-activations into gate blocks (conventional order)."""
        return gates.chunk(n, dim=-1)

    def step(self, layer, d, x_t, state):
        """One time step of one layer/direction: state tuple -> new state tuple."""
        W_ih, W_hh = self.p("weight_ih", layer, d), self.p("weight_hh", layer, d)
        b_ih, b_hh = self.p("bias_ih", layer, d), self.p("bias_hh", layer, d)
        gi, gh = self.linear(x_t, W_ih, b_ih), self.linear(state[0], W_hh, b_hh)
        if self.CELL == "elman":
            return (self.act(gi + gh),)
        if self.CELL == "lstm":
            h, c = state
            i, f, g, o = self.chunks(gi + gh, 4)
            c = self.sigmoid(f) * c + self.sigmoid(i) * self.tanh(g)
            h = self.sigmoid(o) * self.tanh(c)
            if self.proj_size:
                h = h @ self.p("weight_hr", layer, d).T
            return (h, c)
        h = state[0]
        i_r, i_z, i_n = self.chunks(gi, 3)
        h_r, h_z, h_n = self.chunks(gh, 3)
        r, z = self.sigmoid(i_r + h_r), self.sigmoid(i_z + h_z)
        n = self.candidate(layer, d, i_n, h_n, r, h)
        return (self.update(z, n, h),)

    def candidate(self, layer, d, i_n, h_n, r, h):
        return self.tanh(i_n + r * h_n)                      # reset after the matmul

    def update(self, z, n, h):
        return (1 - z) * n + z * h

    # -- structure hooks ------------------------------------------------------------------
    def run_direction(self, layer, d, x, state):
        """x (T, B, F) in input time -> outputs (T, B, d_out) in input time, final state.
        With ``self.lengths``, steps past a sample's length keep its state and output 0
        (so the reverse direction starts at len-1)."""
        steps = range(len(x) - 1, -1, -1) if d else range(len(x))
        outputs = [None] * len(x)
        for t in steps:
            new = self.step(layer, d, x[t], state)
            if self.lengths is not None:
                valid = (t < self.lengths).unsqueeze(-1)
                new = self.hold(valid, new, state)
                outputs[t] = torch.where(valid, new[0], torch.zeros_like(new[0]))
            else:
                outputs[t] = new[0]
            state = new
        return torch.stack(outputs), state

    def hold(self, valid, new, state):
        """Past a sample's length its state is held: the new state where ``valid``."""
        return tuple(torch.where(valid, n, s) for n, s in zip(new, state))

    def merge_directions(self, outs):
        return torch.cat(outs, dim=-1)

    def layer_input(self, layer, inp):
        """What layer ``layer`` > 0 reads: the output of the layer below."""
        return inp

    def initial_state(self, hx, B, dtype):
        H, d_out = self.hidden_size, self.proj_size or self.hidden_size
        LD = self.num_layers * self.D
        if hx is None:
            h0 = torch.zeros(LD, B, d_out, dtype=dtype)
            return (h0, torch.zeros(LD, B, H, dtype=dtype)) if self.CELL == "lstm" else (h0,)
        return tuple(hx) if self.CELL == "lstm" else (hx,)

    def state_index(self, layer, d):
        return layer * self.D + d

    def forward(self, input, hx=None):
        if isinstance(input, PackedSequence):
            padded, lengths = pad_packed_sequence(input, batch_first=self.batch_first)
            self.lengths = lengths
            try:
                out, states = self.forward(padded, hx)
            finally:
                self.lengths = None
            return pack_padded_sequence(out, lengths, batch_first=self.batch_first,
                                        enforce_sorted=False), states
        unbatched = input.dim() == 2
        x = input.unsqueeze(1) if unbatched else (input.transpose(0, 1) if self.batch_first
                                                  else input)
        if unbatched and hx is not None:
            hx = tuple(v.unsqueeze(1) for v in hx) if self.CELL == "lstm" else hx.unsqueeze(1)
        states0 = self.initial_state(hx, x.shape[1], x.dtype)
        finals = [[None] * self.D for _ in range(self.num_layers)]
        inp = x
        for layer in range(self.num_layers):
            outs = []
            if layer:
                inp = self.layer_input(layer, inp)
            for d in range(self.D):
                i = self.state_index(layer, d)
                out, state = self.run_direction(layer, d, inp, tuple(s[i] for s in states0))
                outs.append(out)
                finals[layer][d] = state
            inp = self.merge_directions(outs)
        order = sorted(((layer, d) for layer in range(self.num_layers) for d in range(self.D)),
                       key=lambda ld: self.state_index(*ld))
        h_n = torch.stack([finals[layer][d][0] for layer, d in order])
        out = inp
        if unbatched:
            out, h_n = out[:, 0], h_n[:, 0]
        elif self.batch_first:
            out = out.transpose(0, 1)
        if self.CELL != "lstm":
            return out, h_n
        c_n = torch.stack([finals[layer][d][1] for layer, d in order])
        return out, (h_n, c_n[:, 0] if unbatched else c_n)


class RNN(DropIn):
    CELL = "elman"


class LSTM(DropIn):
    CELL = "lstm"


class GRU(DropIn):
    CELL = "gru"
