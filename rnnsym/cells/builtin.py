"""The built-in cells: Elman (the seed), LSTM and GRU, with the variants real frameworks use.

Parameter names say direction, min-char-rnn style: ``W_xi`` maps the input x to gate i,
``W_hi`` maps the previous hidden state to gate i, ``b_xi``/``b_hi`` are the two bias vectors
(PyTorch's ``bias_ih``/``bias_hh``, ONNX's ``Wb``/``Rb``).
"""
from __future__ import annotations

from rnnsym.cells.cell import Cell, make_cell, now, param, prev
from rnnsym.cells.nodes import ACTIVATIONS, Activation, hadamard, madd, mmul, one_minus


def _activation(spec, u, clip=None):
    """Apply activation ``spec`` (a name, or ``(name, alpha, beta…)``) to ``u``, clipped first."""
    name, *args = (spec,) if isinstance(spec, str) else tuple(spec)
    name = name.lower()
    if name not in ACTIVATIONS or name == "clip":
        raise ValueError(f"unknown activation {name!r}; choose from "
                         f"{', '.join(a for a in ACTIVATIONS if a != 'clip')}")
    if clip is not None:
        u = Activation("clip", u, clip)
    if name == "identity":
        return u
    return Activation(name, u, *args)


def elman(activation="tanh", readout: bool = False, clip: float | None = None) -> Cell:
    """Elman RNN: ``h_t = φ(W_xh x_t + W_hh h_{t-1} + b_h)``, optional readout
    ``y_t = W_hy h_t + b_y``.

    ``activation`` is one of tanh, relu, sigmoid, identity, or any ONNX activation as a name or
    ``(name, alpha, beta)``. PyTorch's ``nn.RNN`` is ``readout=False`` with its two biases summed
    into ``b_h``. ``clip``: ONNX's clip of the activation's input to ``[-clip, clip]``.
    """
    x, h = now("x"), prev("h")
    W_xh, W_hh, b_h = param("W_xh"), param("W_hh"), param("b_h")
    eqs = [("h", "state", _activation(activation, madd(mmul(W_xh, x), mmul(W_hh, h), b_h), clip))]
    if readout:
        eqs.append(("y", "output", madd(mmul(param("W_hy"), now("h")), param("b_y"))))
    act = activation if isinstance(activation, str) else activation[0]
    return make_cell("elman", f"Elman RNN ({act}{', with readout' if readout else ''})", eqs,
                     dim_names={"x": "d_in", "h": "d_h", "y": "d_out"},
                     options={"activation": activation, "readout": readout, "clip": clip})


def lstm(peepholes: bool = False, coupled: bool = False, projection: bool = False,
         clip: float | None = None, activations=("sigmoid", "tanh", "tanh"),
         clip_before_h: bool = True) -> Cell:
    """LSTM with PyTorch/ONNX semantics: gates i, f, g, o and two bias vectors per gate.

    Options:
        peepholes: ONNX ``P``: ``p_i ⊙ c_{t-1}``, ``p_f ⊙ c_{t-1}`` and ``p_o ⊙ c_t`` (the output
            gate peeks at the *new* cell state).
        coupled: ONNX ``input_forget=1``: ``f_t = 1 − i_t`` (no forget-gate parameters).
        projection: PyTorch ``proj_size``: ``h_t = W_hr (o_t ⊙ tanh c_t)``; h has size ``d_proj``.
        clip: ONNX ``clip``: the input of every activation is clipped to ``[-clip, clip]``.
        clip_before_h: whether that includes the input of ``h(c_t)``, as the ONNX text says
            (onnxruntime does not clip there: ``False``).
        activations: ONNX ``f, g, h`` (gate, candidate, output), names or ``(name, alpha, beta)``.
    """
    f_act, g_act, h_act = activations
    x, h_prev, c_prev = now("x"), prev("h"), prev("c")
    c_now = now("c")

    def pre(g, peep=None):
        terms = [mmul(param(f"W_x{g}"), x), mmul(param(f"W_h{g}"), h_prev)]
        if peepholes and peep is not None:
            terms.append(hadamard(param(f"p_{g}"), peep))
        return madd(*terms, param(f"b_x{g}"), param(f"b_h{g}"))

    eqs = [("i", "gate", _activation(f_act, pre("i", c_prev), clip))]
    if coupled:
        eqs.append(("f", "gate", one_minus(now("i"))))
    else:
        eqs.append(("f", "gate", _activation(f_act, pre("f", c_prev), clip)))
    eqs.append(("g", "gate", _activation(g_act, pre("g"), clip)))
    eqs.append(("c", "state", madd(hadamard(now("f"), c_prev), hadamard(now("i"), now("g")))))
    eqs.append(("o", "gate", _activation(f_act, pre("o", c_now), clip)))
    out = hadamard(now("o"), _activation(h_act, c_now, clip if clip_before_h else None))
    eqs.append(("h", "state", mmul(param("W_hr"), out) if projection else out))

    gates = "ifgo".replace("f", "") if coupled else "ifgo"
    params = [f"{w}{g}" for w in ("W_x", "W_h", "b_x", "b_h") for g in gates]
    if peepholes:
        params += [f"p_{g}" for g in gates if g != "g"]
    if projection:
        params.append("W_hr")
    parts = [n for n, on in (("peepholes", peepholes), ("coupled input/forget", coupled),
                             ("projection", projection), (f"clip {clip}", clip is not None)) if on]
    return make_cell(
        "lstm", "LSTM" + (f" ({', '.join(parts)})" if parts else ""), eqs, params=params,
        dim_names={"x": "d_in", "c": "d_h", "h": "d_proj" if projection else "d_h"},
        options={"peepholes": peepholes, "coupled": coupled, "projection": projection,
                 "clip": clip, "activations": tuple(activations), "clip_before_h": clip_before_h})


def gru(reset: str = "after", activations=("sigmoid", "tanh"), clip: float | None = None) -> Cell:
    """GRU, gates r, z, n, two bias vectors per gate, ``h_t = (1 − z_t) ⊙ n_t + z_t ⊙ h_{t-1}``.

    ``reset="after"``: ``n_t = tanh(W_xn x_t + b_xn + r_t ⊙ (W_hn h_{t-1} + b_hn))``: PyTorch,
    Keras ``reset_after=True`` (default), ONNX ``linear_before_reset=1``.
    ``reset="before"``: ``n_t = tanh(W_xn x_t + W_hn (r_t ⊙ h_{t-1}) + b_xn + b_hn)``: the
    original paper, Keras ``reset_after=False``, ONNX ``linear_before_reset=0`` (its default).
    ``activations``: ONNX ``f, g`` (gates, candidate); ``clip``: ONNX clip of activation inputs.
    """
    if reset not in ("after", "before"):
        raise ValueError(f"gru reset must be 'after' or 'before', got {reset!r}")
    f_act, g_act = activations
    x, h_prev = now("x"), prev("h")

    def pre(g):
        return madd(mmul(param(f"W_x{g}"), x), mmul(param(f"W_h{g}"), h_prev),
                    param(f"b_x{g}"), param(f"b_h{g}"))

    r, z = now("r"), now("z")
    if reset == "after":
        n_pre = madd(mmul(param("W_xn"), x), param("b_xn"),
                     hadamard(r, madd(mmul(param("W_hn"), h_prev), param("b_hn"))))
    else:
        n_pre = madd(mmul(param("W_xn"), x), mmul(param("W_hn"), hadamard(r, h_prev)),
                     param("b_xn"), param("b_hn"))
    eqs = [("r", "gate", _activation(f_act, pre("r"), clip)),
           ("z", "gate", _activation(f_act, pre("z"), clip)),
           ("n", "gate", _activation(g_act, n_pre, clip)),
           ("h", "state", madd(hadamard(one_minus(z), now("n")), hadamard(z, h_prev)))]
    params = [f"{w}{g}" for g in "rzn" for w in ("W_x", "W_h")] + \
             [f"{b}{g}" for g in "rzn" for b in ("b_x", "b_h")]
    return make_cell("gru", f"GRU (reset {reset} the recurrent matmul)", eqs, params=params,
                     dim_names={"x": "d_in", "h": "d_h"},
                     options={"reset": reset, "activations": tuple(activations), "clip": clip})



BUILTINS = {"elman": elman, "rnn": elman, "lstm": lstm, "gru": gru}


def builtin(name: str, **options) -> Cell:
    """A built-in cell by name (``elman``/``rnn``, ``lstm``, ``gru``) with its options."""
    try:
        factory = BUILTINS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown cell {name!r}; built-in cells: elman (alias rnn), lstm, gru") from None
    return factory(**options)
