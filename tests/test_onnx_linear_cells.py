"""ONNX LinearAttention meets the built-in matrix-state cells: ``rnnsym.onnx.run`` (every
update_rule, per-key and per-head decay, grouped-query heads, scale, past_state) equals the
compiled one-head cells (linear_attention, gla, deltanet, gated_deltanet) run query head by
query head, and equals the hand-written loop (``linear_attention.evaluate_loop``), float64,
1e-12 normwise; and ``rnnsym check`` rejects RNN-only options for these cells."""
import numpy as np
import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

import rnnsym
from rnnsym.conformance import cli
from rnnsym.conformance.strategies import distinct_sizes
from rnnsym.frameworks.onnx.state_ops import build_state_model
from rnnsym.onnx import run
from rnnsym.onnx import linear_attention as la

TOL = 1e-12
#: scales drawn: 0 (the default 1/sqrt(d_k)) and given ones, exact binary fractions (the cell
#: option goes through sympy.nsimplify, which keeps these exact)
SCALES = (0.0, 0.5, 1.25)


# --- strategies ---------------------------------------------------------------------------------

@st.composite
def linear_attention_cases(draw):
    """(attributes, inputs): one LinearAttention node over the attribute space, float64."""
    rule = draw(st.sampled_from(la.UPDATE_RULES), label="update_rule")
    Hkv = draw(st.integers(1, 3), label="kv_num_heads")
    G = draw(st.integers(1, 3), label="G")
    size = draw(distinct_sizes(["T", "B", "d_k", "d_v"], max_value=5), label="sizes")
    B, T, d_k, d_v = size["B"], size["T"], size["d_k"], size["d_v"]
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label="seed"))
    inputs = {"query": rng.uniform(-1, 1, (B, T, G * Hkv * d_k)),
              "key": rng.uniform(-1, 1, (B, T, Hkv * d_k)),
              "value": rng.uniform(-1, 1, (B, T, Hkv * d_v))}
    if draw(st.booleans(), label="past_state"):
        inputs["past_state"] = rng.uniform(-1, 1, (B, Hkv, d_k, d_v))
    if rule in ("gated", "gated_delta"):
        per_key = draw(st.booleans(), label="decay per key")
        inputs["decay"] = rng.uniform(-2, 0, (B, T, Hkv * d_k if per_key else Hkv))
    if rule in ("delta", "gated_delta"):
        shared = draw(st.booleans(), label="beta shared")
        inputs["beta"] = rng.uniform(0, 1, (B, T, 1 if shared else Hkv))
    attributes = {"q_num_heads": G * Hkv, "kv_num_heads": Hkv, "update_rule": rule,
                  "scale": draw(st.sampled_from(SCALES), label="scale")}
    return attributes, inputs


# --- the cells run head by head (independent of rnnsym.onnx) ------------------------------------

def cells_head_by_head(attributes, inputs, kv_heads="grouped"):
    """output (B, T, H_q*d_v) and present_state (B, H_kv, d_k, d_v) from one compiled cell per
    query head, its options spelled out here (docs/onnx-linear-attention.md's table)."""
    rule, Hq, Hkv = attributes["update_rule"], attributes["q_num_heads"], attributes["kv_num_heads"]
    B, T = inputs["query"].shape[:2]
    q = inputs["query"].reshape(B, T, Hq, -1)
    k = inputs["key"].reshape(B, T, Hkv, -1)
    v = inputs["value"].reshape(B, T, Hkv, -1)
    d_k, d_v = q.shape[3], v.shape[3]
    g, beta = inputs.get("decay"), inputs.get("beta")
    options = {"scale": attributes["scale"] or None}
    if g is not None:
        options["decay"] = "key" if g.shape[2] == Hkv * d_k else "head"
        g = g.reshape(B, T, Hkv, -1)
    name = {"linear": "linear_attention", "gated": "gla", "delta": "deltanet",
            "gated_delta": "gated_deltanet"}[rule]
    cell = rnnsym.compile(rnnsym.builtin(name, **options))
    S0 = inputs.get("past_state", np.zeros((B, Hkv, d_k, d_v)))
    out = np.zeros((B, T, Hq, d_v))
    present = np.full((B, Hkv, d_k, d_v), np.nan)
    for i in range(Hq):
        j = i // (Hq // Hkv) if kv_heads == "grouped" else i % Hkv
        x = {"q": q[:, :, i], "k": k[:, :, j], "v": v[:, :, j]}       # (B, T, d), batch first
        if g is not None:
            x["g"] = g[:, :, j]
        if beta is not None:
            x["beta"] = beta[:, :, min(j, beta.shape[2] - 1), None]
        o, state = cell.forward({}, {n: a.transpose(1, 0, 2) for n, a in x.items()},
                                {"S": S0[:, j]})
        out[:, :, i] = o.transpose(1, 0, 2)
        present[:, j] = state["S"]
    return {"output": out.reshape(B, T, Hq * d_v), "present_state": present}, \
        f"{name}({', '.join(f'{k}={v!r}' for k, v in options.items())})"


# --- assertion helpers ------------------------------------------------------------------------

def assert_normwise(got, expected, name, where):
    """``||got - expected|| <= TOL ||expected||``, the message naming the worst element."""
    assert got.shape == expected.shape, \
        f"{name}.shape={got.shape}, but should be {expected.shape} [{where}]"
    err = np.linalg.norm(got - expected)
    if err > TOL * max(np.linalg.norm(expected), 1e-300):
        idx = np.unravel_index(np.argmax(np.abs(got - expected)), got.shape)
        pytest.fail(f"{name}[{', '.join(map(str, idx))}]={float(got[idx])!r}, but should be "
                    f"{float(expected[idx])!r} (normwise error {err:.3g}) [{where}]")


def _model(attributes, inputs):
    return build_state_model("LinearAttention", attributes, inputs, ("output", "present_state"))


# --- the properties ---------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(linear_attention_cases())
def test_run_equals_the_cells_head_by_head(case):
    attributes, inputs = case
    output, present = run(_model(attributes, inputs), list(inputs.values()))
    expected, where = cells_head_by_head(attributes, inputs)
    note(where)
    assert output.dtype == np.float64
    assert_normwise(output, expected["output"], "output", where)
    assert_normwise(present, expected["present_state"], "present_state", where)


@settings(max_examples=60, deadline=None)
@given(linear_attention_cases(), st.sampled_from(la.KV_HEADS))
def test_evaluate_equals_the_hand_written_loop(case, kv_heads):
    """The evaluator (compiled cells) against the independent loop, both head readings."""
    attributes, inputs = case
    attrs = la.parse_attributes(attributes)
    got = la.evaluate(attrs, kv_heads=kv_heads, **inputs)
    loop = la.evaluate_loop(attrs, kv_heads=kv_heads, **inputs)
    where = f"LinearAttention({attributes}, kv_heads={kv_heads!r})"
    for name in la.OUTPUTS:
        assert_normwise(got[name], loop[name], name, where)
    if kv_heads == "tiled":
        expected, cell = cells_head_by_head(attributes, inputs, kv_heads)
        assert_normwise(got["output"], expected["output"], "output", cell)


def test_tiled_heads_differ_from_grouped():
    """The test's head mapping can fail: H_q = 4, H_kv = 2 read tiled is not the grouped run."""
    rng = np.random.default_rng(1)
    B, T, d_k, d_v = 2, 3, 4, 5
    inputs = {"query": rng.uniform(-1, 1, (B, T, 4 * d_k)),
              "key": rng.uniform(-1, 1, (B, T, 2 * d_k)),
              "value": rng.uniform(-1, 1, (B, T, 2 * d_v))}
    attributes = {"q_num_heads": 4, "kv_num_heads": 2, "update_rule": "linear", "scale": 0.0}
    output, _ = run(_model(attributes, inputs), list(inputs.values()))
    tiled, _ = cells_head_by_head(attributes, inputs, "tiled")
    assert np.linalg.norm(output - tiled["output"]) > 0.1 * np.linalg.norm(output)


def test_default_scale_is_the_cells_default():
    """scale 0 (and absent) gives 1/sqrt(d_k), the cells' default; scale 1 differs from it."""
    rng = np.random.default_rng(2)
    inputs = {"query": rng.uniform(-1, 1, (1, 2, 4)), "key": rng.uniform(-1, 1, (1, 2, 4)),
              "value": rng.uniform(-1, 1, (1, 2, 3))}
    one = {"q_num_heads": 1, "kv_num_heads": 1, "update_rule": "linear"}
    absent = la.evaluate(la.parse_attributes(one), **inputs)["output"]
    unit = la.evaluate(la.parse_attributes({**one, "scale": 1.0}), **inputs)["output"]
    assert np.allclose(absent, unit / 2, rtol=1e-15, atol=0)        # d_k = 4


# --- RNN-only options with the opset-27 cells -----------------------------------------------

@pytest.mark.parametrize("cell", ["linear_attention", "causal_conv"])
@pytest.mark.parametrize("option", [["--bidirectional", "yes"], ["--bidirectional", "no"],
                                    ["--cell-api"]])
def test_rnn_only_options_are_usage_errors(cell, option, capsys):
    code = cli.main(["onnxruntime", "--cell", cell, "--examples", "1", *option])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and option[0] in err[0], err
