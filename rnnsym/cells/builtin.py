"""The built-in cells: Elman (the seed), LSTM and GRU, with the variants real frameworks use, and
recent and parallel-friendly cells (minGRU, minLSTM, IndRNN, SRU, QRNN, layer-norm LSTM), each
with the published equations it follows.

Parameter names say direction, min-char-rnn style: ``W_xi`` maps the input x to gate i,
``W_hi`` maps the previous hidden state to gate i, ``b_xi``/``b_hi`` are the two bias vectors
(PyTorch's ``bias_ih``/``bias_hh``, ONNX's ``Wb``/``Rb``).
"""
from __future__ import annotations

import math
import numbers

import sympy as sp
from sympy import OneMatrix

from rnnsym.cells.cell import Cell, make_cell, now, param, prev
from rnnsym.cells.linear import LINEAR_BUILTINS
from rnnsym.cells.nodes import (ACTIVATIONS, LAYERNORM_EPS, Activation, chunk, divide, hadamard,
                                layernorm, madd, mmul, one_minus)


def _positive(name, value, zero=False):
    """``value`` as a finite number > 0 (``>= 0`` with ``zero``); a ValueError naming ``name``."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not zero):
        raise ValueError(f"{name}: expected a finite number {'>= 0' if zero else '> 0'}, "
                         f"got {value!r}")
    return value


def constant(value, like):
    """The constant vector ``value`` of ``like``'s shape (``1`` or ``value · 1``), as the text
    form writes ``u + 1``."""
    value = sp.nsimplify(value)
    ones = OneMatrix(*like.shape)
    return ones if value == 1 else mmul(value, ones)


def _activation(spec, u, clip=None):
    """Apply activation ``spec`` (a name, or ``(name, alpha, beta…)``) to ``u``, clipped first."""
    name, *args = (spec,) if isinstance(spec, str) else tuple(spec)
    name = name.lower()
    if name not in ACTIVATIONS or name == "clip":
        raise ValueError(f"unknown activation {name!r}; choose from "
                         f"{', '.join(a for a in ACTIVATIONS if a != 'clip')}")
    if clip is not None:
        u = Activation("clip", u, _positive("clip", clip))
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
         clip_before_h: bool = True, forget_bias: float = 0.0) -> Cell:
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
        forget_bias: a constant added to the forget gate's pre-activation (TensorFlow's
            ``LSTMCell(forget_bias=1)``, dm-haiku's ``LSTM`` adds 1 on every call); 0: none.
    """
    f_act, g_act, h_act = activations
    x, h_prev, c_prev = now("x"), prev("h"), prev("c")
    c_now = now("c")

    def pre(g, peep=None):
        terms = [mmul(param(f"W_x{g}"), x), mmul(param(f"W_h{g}"), h_prev)]
        if peepholes and peep is not None:
            terms.append(hadamard(param(f"p_{g}"), peep))
        u = madd(*terms, param(f"b_x{g}"), param(f"b_h{g}"))
        return madd(u, constant(forget_bias, u)) if g == "f" and forget_bias else u

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
                             ("projection", projection), (f"clip {clip}", clip is not None),
                             (f"forget bias {forget_bias:g}", bool(forget_bias))) if on]
    return make_cell(
        "lstm", "LSTM" + (f" ({', '.join(parts)})" if parts else ""), eqs, params=params,
        dim_names={"x": "d_in", "c": "d_h", "h": "d_proj" if projection else "d_h"},
        options={"peepholes": peepholes, "coupled": coupled, "projection": projection,
                 "clip": clip, "activations": tuple(activations), "clip_before_h": clip_before_h,
                 **({"forget_bias": forget_bias} if forget_bias else {})})


def gru(reset: str = "after", activations=("sigmoid", "tanh"), clip: float | None = None,
        hidden_bias: str = "rzn", update_gate: str = "old") -> Cell:
    """GRU, gates r, z, n, two bias vectors per gate, ``h_t = (1 − z_t) ⊙ n_t + z_t ⊙ h_{t-1}``.

    ``reset="after"``: ``n_t = tanh(W_xn x_t + b_xn + r_t ⊙ (W_hn h_{t-1} + b_hn))``: PyTorch,
    Keras ``reset_after=True`` (default), ONNX ``linear_before_reset=1``.
    ``reset="before"``: ``n_t = tanh(W_xn x_t + W_hn (r_t ⊙ h_{t-1}) + b_xn + b_hn)``: the
    original paper, Keras ``reset_after=False``, ONNX ``linear_before_reset=0`` (its default).
    ``activations``: ONNX ``f, g`` (gates, candidate); ``clip``: ONNX clip of activation inputs.
    ``update_gate``: what z weights: ``"old"`` the previous state (PyTorch, Keras, ONNX, Flax) or
    ``"new"`` the candidate, ``h_t = z_t ⊙ n_t + (1 − z_t) ⊙ h_{t-1}`` (dm-haiku's ``GRU``).
    ``hidden_bias``: the gates whose recurrent term has its own bias ``b_h*``: ``"rzn"`` (PyTorch,
    ONNX, Keras), ``"n"`` (``flax.linen.GRUCell``: ``b_hr``, ``b_hz`` would only add to ``b_xr``,
    ``b_xz``) or ``"none"`` (``flax.nnx.GRUCell``: no ``b_hn`` inside ``r ⊙ (…)``, google/flax#5594).
    """
    if reset not in ("after", "before"):
        raise ValueError(f"gru reset must be 'after' or 'before', got {reset!r}")
    if hidden_bias not in ("rzn", "n", "none"):
        raise ValueError(f"gru hidden_bias must be 'rzn', 'n' or 'none', got {hidden_bias!r}")
    if update_gate not in ("old", "new"):
        raise ValueError(f"gru update_gate must be 'old' or 'new', got {update_gate!r}")
    hb = "" if hidden_bias == "none" else hidden_bias
    f_act, g_act = activations
    x, h_prev = now("x"), prev("h")

    def b_h(g):
        return [param(f"b_h{g}")] if g in hb else []

    def pre(g):
        return madd(mmul(param(f"W_x{g}"), x), mmul(param(f"W_h{g}"), h_prev),
                    param(f"b_x{g}"), *b_h(g))

    r, z = now("r"), now("z")
    if reset == "after":
        rec = madd(mmul(param("W_hn"), h_prev), *b_h("n")) if "n" in hb else \
            mmul(param("W_hn"), h_prev)
        n_pre = madd(mmul(param("W_xn"), x), param("b_xn"), hadamard(r, rec))
    else:
        n_pre = madd(mmul(param("W_xn"), x), mmul(param("W_hn"), hadamard(r, h_prev)),
                     param("b_xn"), *b_h("n"))
    eqs = [("r", "gate", _activation(f_act, pre("r"), clip)),
           ("z", "gate", _activation(f_act, pre("z"), clip)),
           ("n", "gate", _activation(g_act, n_pre, clip)),
           ("h", "state", madd(hadamard(one_minus(z), now("n")), hadamard(z, h_prev))
            if update_gate == "old" else madd(hadamard(z, now("n")), hadamard(one_minus(z), h_prev)))]
    params = [f"{w}{g}" for g in "rzn" for w in ("W_x", "W_h")] + \
             [f"{b}{g}" for g in "rzn" for b in ("b_x", "b_h") if b == "b_x" or g in hb]
    options = {"reset": reset, "activations": tuple(activations), "clip": clip}
    title = f"GRU (reset {reset} the recurrent matmul)"
    if hidden_bias != "rzn":
        options["hidden_bias"] = hidden_bias
        title = title[:-1] + f", hidden biases: {hidden_bias})"
    if update_gate != "old":
        options["update_gate"] = update_gate
        title = title[:-1] + ", z weights the candidate)"
    return make_cell("gru", title, eqs, params=params, dim_names={"x": "d_in", "h": "d_h"},
                     options=options)


# --- recent cells ------------------------------------------------------------------------------
def _linear(weight: str, bias: str | None, operand):
    """``W v + b`` (a ``Linear`` layer in math orientation)."""
    return madd(mmul(param(weight), operand), param(bias)) if bias else mmul(param(weight), operand)


def mingru() -> Cell:
    """minGRU, sequential mode (Feng et al. 2024, "Were RNNs All We Needed?", arXiv:2410.01201,
    §3.1, the minGRU of its sequential-mode pseudocode):

        z_t = σ(Linear_dh(x_t)),  h̃_t = Linear_dh(x_t),  h_t = (1 − z_t) ⊙ h_{t-1} + z_t ⊙ h̃_t

    Neither the gate nor the candidate reads h_{t-1} and the candidate has no tanh. ``n`` is h̃;
    each ``Linear`` has a weight and a bias (``W_xz, b_z``, ``W_xn, b_n``).
    """
    x, h = now("x"), prev("h")
    z = now("z")
    eqs = [("z", "gate", Activation("sigmoid", _linear("W_xz", "b_z", x))),
           ("n", "gate", _linear("W_xn", "b_n", x)),
           ("h", "state", madd(hadamard(one_minus(z), h), hadamard(z, now("n"))))]
    return make_cell("mingru", "minGRU (Feng et al. 2024, sequential mode)", eqs,
                     dim_names={"x": "d_in", "h": "d_h"}, options={})


def minlstm() -> Cell:
    """minLSTM, sequential mode (Feng et al. 2024, arXiv:2410.01201, §3.2, the minLSTM of its
    sequential-mode pseudocode):

        f_t = σ(Linear_dh(x_t)),  i_t = σ(Linear_dh(x_t)),
        f'_t, i'_t = f_t / (f_t + i_t), i_t / (f_t + i_t)      (normalised: f'_t + i'_t = 1)
        h̃_t = Linear_dh(x_t),  h_t = f'_t ⊙ h_{t-1} + i'_t ⊙ h̃_t

    ``f_n``, ``i_n`` are f', i' and ``n`` is h̃; the divisions are elementwise.
    """
    x, h = now("x"), prev("h")
    f, i = now("f"), now("i")
    eqs = [("f", "gate", Activation("sigmoid", _linear("W_xf", "b_f", x))),
           ("i", "gate", Activation("sigmoid", _linear("W_xi", "b_i", x))),
           ("f_n", "gate", divide(f, madd(f, i))),
           ("i_n", "gate", divide(i, madd(f, i))),
           ("n", "gate", _linear("W_xn", "b_n", x)),
           ("h", "state", madd(hadamard(now("f_n"), h), hadamard(now("i_n"), now("n"))))]
    return make_cell("minlstm", "minLSTM (Feng et al. 2024, sequential mode)", eqs,
                     dim_names={"x": "d_in", "h": "d_h"}, options={})


def indrnn(activation="relu") -> Cell:
    """IndRNN (Li et al. 2018, "Independently Recurrent Neural Network (IndRNN): Building a Longer
    and Deeper RNN", CVPR, arXiv:1803.04831):

        h_t = σ(W x_t + u ⊙ h_{t-1} + b)

    The recurrent weight ``u`` is a vector (``w_hh`` here): each unit sees only its own past.
    The paper's σ is ReLU; ``activation`` is any of Elman's.
    """
    x, h = now("x"), prev("h")
    pre = madd(mmul(param("W_xh"), x), hadamard(param("w_hh"), h), param("b_h"))
    act = activation if isinstance(activation, str) else activation[0]
    return make_cell("indrnn", f"IndRNN ({act})", [("h", "state", _activation(activation, pre))],
                     dim_names={"x": "d_in", "h": "d_h"}, options={"activation": activation})


def sru(rescale: bool = False) -> Cell:
    """SRU (Lei et al. 2018, "Simple Recurrent Units for Highly Parallelizable Recurrence",
    EMNLP, arXiv:1709.02755, §2, the single layer of SRU):

        f_t = σ(W_f x_t + v_f ⊙ c_{t-1} + b_f)
        c_t = f_t ⊙ c_{t-1} + (1 − f_t) ⊙ (W x_t)
        r_t = σ(W_r x_t + v_r ⊙ c_{t-1} + b_r)
        h_t = r_t ⊙ c_t + (1 − r_t) ⊙ x_t

    The highway term adds x_t to a d_h vector, so d_in = d_h. ``W`` is ``W_xc``. Only c is
    carried to the next step; h is a readout. ``rescale=True``: the highway term is scaled by
    √3, ``(1 − r_t) ⊙ x_t · √3``, as the ``sru`` package's ``SRUCell(rescale=True)`` (its default).
    """
    x, c_prev = now("x"), prev("c")
    f, r = now("f"), now("r")
    eqs = [("f", "gate", Activation("sigmoid", madd(mmul(param("W_xf"), x),
                                                      hadamard(param("v_f"), c_prev), param("b_f")))),
           ("c", "state", madd(hadamard(f, c_prev), hadamard(one_minus(f), mmul(param("W_xc"), x)))),
           ("r", "gate", Activation("sigmoid", madd(mmul(param("W_xr"), x),
                                                      hadamard(param("v_r"), c_prev), param("b_r")))),
           ("h", "output", madd(hadamard(r, now("c")), mmul(sp.sqrt(3), hadamard(one_minus(r), x))
                                if rescale else hadamard(one_minus(r), x)))]
    return make_cell("sru", "SRU (Lei et al. 2018" + (", highway scaled by √3)" if rescale else ")"),
                     eqs, params=["W_xf", "v_f", "b_f", "W_xc", "W_xr", "v_r", "b_r"],
                     dim_names={"x": "d_h", "c": "d_h", "h": "d_h"},
                     options={"rescale": True} if rescale else {})


def qrnn(pooling: str = "fo") -> Cell:
    """QRNN with convolution window k = 2 (Bradbury et al. 2017, "Quasi-Recurrent Neural
    Networks", ICLR, arXiv:1611.01576, §2: the masked convolution written out for k = 2, and the
    f- and fo-pooling functions):

        z_t = tanh(W_z^1 x_{t-1} + W_z^2 x_t)
        f_t = σ(W_f^1 x_{t-1} + W_f^2 x_t)
        o_t = σ(W_o^1 x_{t-1} + W_o^2 x_t)                      (fo-pooling only)
        f-pooling:  h_t = f_t ⊙ h_{t-1} + (1 − f_t) ⊙ z_t
        fo-pooling: c_t = f_t ⊙ c_{t-1} + (1 − f_t) ⊙ z_t,  h_t = o_t ⊙ c_t

    The masked convolution's x_{t-1} is carried as a state ``xp`` (``xp_t = x_t``; zero before
    the first step, the convolution's left padding). ``W_z1`` is W_z^1 (applied to x_{t-1}),
    ``W_z2`` is W_z^2. In fo-pooling h is a readout (nothing carries it to the next step).
    """
    if pooling not in ("f", "fo"):
        raise ValueError(f"qrnn pooling must be 'f' or 'fo', got {pooling!r}")
    x, xp = now("x"), prev("xp")

    def conv(g):
        return madd(mmul(param(f"W_{g}1"), xp), mmul(param(f"W_{g}2"), x))

    f, z = now("f"), now("z")
    eqs = [("z", "gate", Activation("tanh", conv("z"))),
           ("f", "gate", Activation("sigmoid", conv("f")))]
    if pooling == "f":
        eqs.append(("h", "state", madd(hadamard(f, prev("h")), hadamard(one_minus(f), z))))
    else:
        eqs += [("o", "gate", Activation("sigmoid", conv("o"))),
                ("c", "state", madd(hadamard(f, prev("c")), hadamard(one_minus(f), z))),
                ("h", "output", hadamard(now("o"), now("c")))]
    eqs.append(("xp", "state", x))
    return make_cell("qrnn", f"QRNN ({pooling}-pooling, window 2)", eqs,
                     dim_names={"x": "d_in", "xp": "d_in", "h": "d_h", "c": "d_h"},
                     options={"pooling": pooling})


def lnlstm(eps: float = 1e-5) -> Cell:
    """Layer-norm LSTM as PyTorch's ``LayerNormLSTMCell`` (pytorch/pytorch,
    benchmarks/fastrnns/custom_lstms.py), after Ba et al. 2016, "Layer Normalization":

        igates = layernorm_i(W_ih x_t),  hgates = layernorm_h(W_hh h_{t-1})   (4·d_h each)
        i, f, g, o = (igates + hgates).chunk(4, 1);  σ, σ, tanh, σ
        c_t = layernorm_c(f ⊙ c_{t-1} + i ⊙ g),  h_t = o ⊙ tanh(c_t)

    No bias vectors besides the layer norms' (its comment: "The layernorms provide learnable
    biases"); the first two normalise the four stacked gates together. Names: ``W_x`` =
    weight_ih, ``W_h`` = weight_hh, ``g_x``/``b_x`` = layernorm_i weight/bias, ``g_h``/``b_h``,
    ``g_c``/``b_c``. ``eps``: nn.LayerNorm's 1e-5; 0 is the file's decomposed ``LayerNorm``
    (``decompose_layernorm=True``: divides by the biased standard deviation, no eps).
    """
    e = sp.nsimplify(_positive("eps", eps, zero=True)) if eps != 1e-5 else LAYERNORM_EPS
    x, h_prev, c_prev = now("x"), prev("h"), prev("c")
    a = now("a")
    eqs = [("a", "gate", madd(layernorm(mmul(param("W_x"), x), param("g_x"), param("b_x"), e),
                              layernorm(mmul(param("W_h"), h_prev), param("g_h"), param("b_h"), e)))]
    for k, (g, act) in enumerate((("i", "sigmoid"), ("f", "sigmoid"), ("g", "tanh"), ("o", "sigmoid"))):
        eqs.append((g, "gate", Activation(act, chunk(a, k, 4))))
    eqs.append(("c", "state", layernorm(madd(hadamard(now("f"), c_prev), hadamard(now("i"), now("g"))),
                                         param("g_c"), param("b_c"), e)))
    eqs.append(("h", "state", hadamard(now("o"), Activation("tanh", now("c")))))
    return make_cell("lnlstm", "layer-norm LSTM (PyTorch custom_lstms.py LayerNormLSTMCell)", eqs,
                     dim_names={"x": "d_in", "h": "d_h", "c": "d_h"}, options={"eps": eps})


BUILTINS = {"elman": elman, "rnn": elman, "lstm": lstm, "gru": gru, "mingru": mingru,
            "minlstm": minlstm, "indrnn": indrnn, "sru": sru, "qrnn": qrnn, "lnlstm": lnlstm,
            **LINEAR_BUILTINS}


def builtin(name: str, **options) -> Cell:
    """A built-in cell by name (``elman``/``rnn``, ``lstm``, ``gru``, ``mingru``, ...) with its options."""
    try:
        factory = BUILTINS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown cell {name!r}; built-in cells: {NAMES}") from None
    return factory(**options)


#: the built-in cells, for messages
NAMES = ("elman (alias rnn), lstm, gru, mingru, minlstm, indrnn, sru, qrnn, lnlstm; matrix states: "
         "linear_attention, gla, deltanet, gated_deltanet, mamba, mamba2, mlstm")
