"""Hand-written reference forward passes for Elman RNN, LSTM and GRU layers, and for minGRU,
minLSTM, IndRNN, SRU, QRNN and the layer-norm LSTM.

These are the independent "second opinion" that rnnsym's generated code is tested
against, so this module imports nothing but NumPy and shares no code with the rest
of rnnsym. Style follows Karpathy's min-char-rnn: one plain loop over time, one
line per quantity, written to be read and copied.

Conventions (every function here)
---------------------------------
x        (T, B, d_in)  time-major input; T = 0 is allowed
state    dict of row-batched (B, d) arrays: {"h": ...} or {"h": ..., "c": ...};
         state0=None means zeros
weights  math orientation: W_xh is (d_h, d_in) and is applied as x_t @ W_xh.T
biases   1-D, (d_h,)
returns  (outputs, final_state), outputs is (T, B, d)
dtype    a floating x keeps its dtype (float32 in -> float32 out, computed in
         float32); parameters and state are cast to it. Other x is used as float64.
Bad names or shapes raise ValueError, e.g.
    W_hh: expected shape (d_h, d_h) = (5, 5), got (5, 3)

Layout: ``_common`` (sigmoid, activations, name and shape checks), ``layers`` (Elman, LSTM,
GRU forward), ``bptt`` (their backward passes), ``recent`` (minGRU, minLSTM, IndRNN, SRU, QRNN,
layer-norm LSTM), ``linear`` (the matrix-state cells: linear attention and its gated and delta
rules, Mamba-1/2, mLSTM, forward and backward). May import NumPy only (the import-linter contract in pyproject.toml).
"""
from rnnsym.reference._common import ACTIVATIONS, sigmoid
from rnnsym.reference.bptt import elman_backward, gru_backward, lstm_backward
from rnnsym.reference.layers import (elman_forward, gru_forward, lstm_forward,
                                     seed_elman_forward_per_sample)
from rnnsym.reference.linear import (linear_attention_backward, linear_attention_forward,
                                     mamba_backward, mamba_forward, mlstm_backward, mlstm_forward)
from rnnsym.reference.recent import (indrnn_forward, layer_norm, lnlstm_forward, mingru_forward,
                                     minlstm_forward, qrnn_forward, sru_forward)

__all__ = ["sigmoid", "ACTIVATIONS", "elman_forward", "lstm_forward", "gru_forward",
           "seed_elman_forward_per_sample", "elman_backward", "lstm_backward", "gru_backward",
           "mingru_forward", "minlstm_forward", "indrnn_forward", "sru_forward", "qrnn_forward",
           "layer_norm", "lnlstm_forward", "linear_attention_forward", "linear_attention_backward",
           "mamba_forward", "mamba_backward", "mlstm_forward", "mlstm_backward"]
