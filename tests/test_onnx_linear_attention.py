"""ONNX opset 27's LinearAttention and CausalConvWithState: rnnsym.onnx.run (the sequential
float64 evaluators) and ``rnnsym check ONNX_TARGET --cell linear_attention|causal_conv``."""
from pathlib import Path

import numpy as np
import pytest

import rnnsym
from rnnsym.conformance import cli
from rnnsym.frameworks import UsageError
from rnnsym.frameworks.onnx.state_ops import build_state_model
from rnnsym.onnx import OnnxError, run
from rnnsym.onnx import causal_conv, linear_attention as la

RUNNERS = Path(__file__).parent / "broken" / "onnx_linear.py"


def _la_model(inputs, **attributes):
    return build_state_model("LinearAttention", attributes, inputs, ("output", "present_state"))


def _inputs(B=2, T=5, Hq=4, Hkv=2, d_k=3, d_v=2, seed=0, decay="per_head", beta="per_head",
            past=True):
    rng = np.random.default_rng(seed)
    ins = {"query": rng.uniform(-1, 1, (B, T, Hq * d_k)),
           "key": rng.uniform(-1, 1, (B, T, Hkv * d_k)),
           "value": rng.uniform(-1, 1, (B, T, Hkv * d_v))}
    if past:
        ins["past_state"] = rng.uniform(-1, 1, (B, Hkv, d_k, d_v))
    if decay:
        ins["decay"] = -rng.uniform(0, 1, (B, T, Hkv * d_k if decay == "per_key" else Hkv))
    if beta:
        ins["beta"] = rng.uniform(0, 1, (B, T, Hkv if beta == "per_head" else 1))
    return {k: v.astype(np.float32) for k, v in ins.items()}


def _evaluate(ins, **attributes):
    attrs = la.parse_attributes({"q_num_heads": 4, "kv_num_heads": 2, **attributes})
    return la.evaluate(attrs, **ins)


# --- the evaluator ----------------------------------------------------------------------------

def test_gated_delta_by_hand():
    """d_k = 2, d_v = 1, one head, two tokens, every term of the recurrence visible."""
    q = np.array([[[1.0, 0.0], [0.0, 2.0]]])
    k = np.array([[[1.0, 0.0], [0.6, 0.8]]])
    v = np.array([[[3.0], [1.0]]])
    g = np.log(np.array([[[0.5], [0.25]]]))
    beta = np.array([[[0.5], [1.0]]])
    S0 = np.array([[[[2.0], [4.0]]]])
    attrs = la.parse_attributes({"q_num_heads": 1, "kv_num_heads": 1, "scale": 1.0})
    out = la.evaluate(attrs, q, k, v, past_state=S0, decay=g, beta=beta)
    S1 = 0.5 * S0[0, 0]                                  # [1, 2]
    S1 = S1 + np.outer(k[0, 0], 0.5 * (v[0, 0] - S1.T @ k[0, 0]))   # u = 0.5 (3 - 1) = 1
    assert np.allclose(S1, [[2.0], [2.0]])
    S2 = 0.25 * S1                                       # [0.5, 0.5]
    S2 = S2 + np.outer(k[0, 1], 1.0 * (v[0, 1] - S2.T @ k[0, 1]))   # u = 1 - 0.7 = 0.3
    assert np.allclose(S2, [[0.68], [0.74]])
    assert np.allclose(out["output"][0, :, 0], [S1[0, 0], 2 * S2[1, 0]])
    assert np.allclose(out["present_state"][0, 0], S2)


@pytest.mark.parametrize("rule", la.UPDATE_RULES)
def test_run_agrees_with_onnx_reference_and_onnxruntime(rule):
    import onnxruntime as ort
    from onnx import load_model_from_string
    from onnx.reference import ReferenceEvaluator

    ins = _inputs(decay="per_key" if "gated" in rule else None,
                  beta="shared" if "delta" in rule else None)
    if "delta" in rule:       # l2-normalised keys, as the spec asks
        k = ins["key"].reshape(2, 5, 2, 3)
        ins["key"] = (k / np.linalg.norm(k, axis=-1, keepdims=True)).reshape(2, 5, 6)
    model = _la_model(ins, q_num_heads=4, kv_num_heads=2, update_rule=rule, chunk_size=2)
    ours = run(model, list(ins.values()))
    assert [o.dtype for o in ours] == [np.float32, np.float32]
    reference = ReferenceEvaluator(load_model_from_string(model)).run(None, ins)
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    for theirs in (reference, session.run(None, ins)):
        for a, b in zip(ours, theirs):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_chunk_size_changes_nothing_and_scale_zero_is_one_over_sqrt_dk():
    ins = _inputs()
    base = _evaluate(ins)
    for chunk in (1, 2, 7):
        again = _evaluate(ins, chunk_size=chunk)
        assert all(np.array_equal(base[k], again[k]) for k in base)
    explicit = _evaluate(ins, scale=1 / np.sqrt(3))
    assert np.allclose(base["output"], explicit["output"], rtol=1e-15, atol=0)
    assert np.allclose(_evaluate(ins, scale=0.0)["output"], base["output"], rtol=0, atol=0)


def test_grouped_query_heads_read_head_i_div_group():
    """q_num_heads=4, kv_num_heads=2: query heads 0, 1 read key/value head 0 and heads 2, 3
    head 1 ("grouped", onnx.reference's np.repeat); "tiled" reads head i % 2."""
    ins = _inputs(decay=None, beta=None, past=False)
    ins["value"][:, :, 2:] = 0          # key/value head 1 (d_v = 2) writes nothing
    attrs = la.parse_attributes({"q_num_heads": 4, "kv_num_heads": 2, "update_rule": "linear"})
    for kv_heads, zero in (("grouped", [2, 3]), ("tiled", [1, 3])):
        out = la.evaluate(attrs, kv_heads=kv_heads, **ins)["output"].reshape(2, 5, 4, 2)
        assert [i for i in range(4) if not np.any(out[:, :, i])] == zero
    model = _la_model(ins, q_num_heads=4, kv_num_heads=2, update_rule="linear")
    tiled = run(model, list(ins.values()), kv_heads="tiled")[0].reshape(2, 5, 4, 2)
    assert [i for i in range(4) if not np.any(tiled[:, :, i])] == [1, 3]
    with pytest.raises(OnnxError, match="reading clip_before_h: not an open point of "
                                        "LinearAttention"):
        run(model, list(ins.values()), clip_before_h=False)
    assert [la.kv_head(i, 6, 2) for i in range(6)] == [0, 0, 0, 1, 1, 1]
    assert [la.kv_head(i, 6, 2, "tiled") for i in range(6)] == [0, 1, 0, 1, 0, 1]


def test_shared_beta_and_per_head_decay_broadcast():
    ins = _inputs(beta="shared")
    wide = dict(ins, beta=np.repeat(ins["beta"], 2, axis=2))
    assert np.array_equal(_evaluate(ins)["output"], _evaluate(wide)["output"])
    per_key = dict(ins, decay=np.repeat(ins["decay"], 3, axis=2))   # (B, T, H_kv * d_k)
    assert np.allclose(_evaluate(ins)["output"], _evaluate(per_key)["output"], rtol=1e-14)


@pytest.mark.parametrize("change, message", [
    (dict(key=np.zeros((2, 5, 7))), r"input key: expected shape \(B, T, H\*d_k\) = "
                                    r"\(2, 5, 6\), got \(2, 5, 7\)"),
    (dict(past_state=np.zeros((2, 2, 2, 3))), r"input past_state: expected shape "
     r"\(B, H_kv, d_k, d_v\) = \(2, 2, 3, 2\), got \(2, 2, 2, 3\)"),
    (dict(decay=np.zeros((2, 5, 4))), r"input decay: expected shape \(B, T, H_kv\) = "
     r"\(2, 5, 2\) or \(B, T, H_kv\*d_k\) = \(2, 5, 6\), got \(2, 5, 4\)"),
    (dict(beta=np.zeros((2, 4, 2))), r"input beta: expected shape \(B, T, H_kv\) = "
     r"\(2, 5, 2\) or \(B, T, 1\) = \(2, 5, 1\), got \(2, 4, 2\)"),
    (dict(decay=None), r"input decay: required by update_rule 'gated_delta', shape "
                       r"\(B, T, H_kv\) = \(2, 5, 2\)"),
    (dict(query=np.zeros((2, 5))), r"input query: expected shape \(B, T, H_q\*d_k\) with "
                                   r"H_q=4, got \(2, 5\)"),
])
def test_bad_inputs_are_named_with_their_expected_shape(change, message):
    ins = {k: v for k, v in {**_inputs(), **change}.items() if v is not None}
    with pytest.raises(OnnxError, match=message):
        _evaluate(ins)


def test_bad_attributes_are_named():
    with pytest.raises(OnnxError, match="q_num_heads=3, kv_num_heads=2: q_num_heads must be "
                                        "a positive multiple"):
        la.parse_attributes({"q_num_heads": 3, "kv_num_heads": 2})
    with pytest.raises(OnnxError, match="update_rule: expected one of linear, gated, delta, "
                                        "gated_delta, got 'mamba'"):
        la.parse_attributes({"q_num_heads": 1, "kv_num_heads": 1, "update_rule": b"mamba"})
    with pytest.raises(OnnxError, match="input beta: update_rule 'linear' takes no beta"):
        _evaluate(_inputs(decay=None), update_rule="linear")
    with pytest.raises(OnnxError, match="chunk_size: expected a positive number, got 0"):
        la.parse_attributes({"q_num_heads": 1, "kv_num_heads": 1, "chunk_size": 0})


def test_causal_conv_by_hand_and_its_carried_state():
    x = np.array([[[1.0, 2.0]]])                         # B=1, C=1, L=2
    w = np.array([[[10.0, 100.0, 1000.0]]])              # k=3: w[-1] multiplies x[t]
    past = np.array([[[3.0, 4.0]]])
    out = causal_conv.evaluate("none", x, w, np.array([0.5]), past)
    assert np.allclose(out["output"], [[[10 * 3 + 100 * 4 + 1000 * 1 + 0.5,
                                         10 * 4 + 100 * 1 + 1000 * 2 + 0.5]]])
    assert np.array_equal(out["present_state"], [[[1.0, 2.0]]])
    short = causal_conv.evaluate("none", x[:, :, :1], np.zeros((1, 1, 4)), None,
                                 np.array([[[5.0, 6.0, 7.0]]]))
    assert np.array_equal(short["present_state"], [[[6.0, 7.0, 1.0]]])   # L < k-1: past kept
    silu = causal_conv.evaluate("silu", x, w)["output"]
    assert np.array_equal(silu, causal_conv.evaluate("swish", x, w)["output"])
    y = causal_conv.evaluate("none", x, w)["output"]
    assert np.allclose(silu, y / (1 + np.exp(-y)))
    assert causal_conv.evaluate("none", x, np.ones((1, 1, 1)))["present_state"].shape == (1, 1, 0)
    with pytest.raises(OnnxError, match=r"input past_state: expected shape \(B, C, k-1\) = "
                                        r"\(1, 1, 2\), got \(1, 1, 3\)"):
        causal_conv.evaluate("none", x, w, None, np.zeros((1, 1, 3)))
    with pytest.raises(OnnxError, match=r"input weight: expected shape \(C, 1, k\) = "
                                        r"\(1, 1, k\) with k >= 1, got \(2, 1, 3\)"):
        causal_conv.evaluate("none", x, np.zeros((2, 1, 3)))


def test_run_causal_conv_model():
    rng = np.random.default_rng(1)
    ins = {"input": rng.uniform(-1, 1, (2, 3, 4)).astype(np.float32),
           "weight": rng.uniform(-1, 1, (3, 1, 5)).astype(np.float32)}
    model = build_state_model("CausalConvWithState", {"activation": "silu"}, ins,
                              ("present_state",))
    output, state = run(model, list(ins.values()))     # the node has both (the schema's)
    assert output.shape == (2, 3, 4) and state.shape == (2, 3, 4)
    assert state.dtype == np.float32
    assert np.array_equal(state, ins["input"])             # L = k - 1: the input itself


# --- the check --------------------------------------------------------------------------------

@pytest.mark.parametrize("target", ["onnxruntime", "onnx-reference"])
@pytest.mark.parametrize("cell", ["linear_attention", "causal_conv"])
def test_runtimes_pass_in_float32(target, cell):
    report = rnnsym.check(target, cell, examples=40, seed=7)
    assert report.passed, report.format()
    assert report.examples == 40 and report.max_error_ratio < 1


@pytest.mark.parametrize("cell", ["linear_attention", "causal_conv"])
def test_onnxruntime_passes_in_float16_and_a_bug_still_shows(cell):
    report = rnnsym.check("onnxruntime", cell, examples=30, seed=7, dtype="float16")
    assert report.passed, report.format()
    broken = {"linear_attention": "run_decay_after", "causal_conv": "conv_flipped"}[cell]
    report = rnnsym.check(f"onnx:{RUNNERS}:{broken}", cell, examples=60, seed=3,
                          dtype="float16")
    assert not report.passed and report.diagnosis.startswith(
        {"linear_attention": "the decay applied after", "causal_conv": "the kernel flipped"}[
            cell]), report.format()


def test_onnx_reference_computes_float64_in_float32():
    report = rnnsym.check("onnx-reference", "linear_attention", examples=20, seed=1,
                          dtype="float64")
    assert not report.passed
    assert report.diagnosis.startswith("state (and the whole recurrence) computed in float32"), \
        report.format()


def test_onnxruntime_refuses_float64_unsupported_exit_3(capsys):
    assert cli.main(["onnxruntime", "--cell", "causal_conv", "--dtype", "float64",
                     "--examples", "3", "--seed", "1", "--no-progress"]) == 3
    out = capsys.readouterr().out
    assert "UNSUPPORTED" in out and "Type 'tensor(double)' of input parameter (input)" in out


def test_a_runtime_without_the_op_is_unsupported(tmp_path, capsys):
    backend = tmp_path / "no_op.py"
    backend.write_text("def run(model_bytes, inputs):\n"
                       "    raise NotImplementedError('no kernel for LinearAttention')\n")
    assert cli.main([f"onnx:{backend}:run", "--cell", "linear_attention", "--examples", "3",
                     "--no-progress"]) == 3
    assert "NotImplementedError: no kernel for LinearAttention" in capsys.readouterr().out


@pytest.mark.parametrize("runner, cell, dtype", [
    ("run_chunked", "linear_attention", "float64"),
    ("run_chunked", "linear_attention", "float32"),
    ("run_heads_outer", "linear_attention", "float64"),
    ("conv_np_convolve", "causal_conv", "float64"),
])
def test_correct_but_unusual_runners_pass(runner, cell, dtype):
    report = rnnsym.check(f"onnx:{RUNNERS}:{runner}", cell, examples=60, seed=3, dtype=dtype)
    assert report.passed, report.format()


@pytest.mark.parametrize("runner, cell, diagnosis", [
    ("run_decay_after", "linear_attention", "the decay applied after the update"),
    ("run_tiled", "linear_attention", "grouped heads shared tiled (query head i reads "
                                      "key/value head i % H_kv"),
    ("run_scale_one", "linear_attention", "scale 0 (default) read as 1 (no scaling)"),
    ("run_past_ignored", "linear_attention", "past_state ignored"),
    ("run_float32", "linear_attention", "state (and the whole recurrence) computed in float32"),
    ("run_drop_partial", "linear_attention", "the last partial chunk dropped"),
    ("conv_flipped", "causal_conv", "the kernel flipped"),
    ("conv_past_ignored", "causal_conv", "past_state ignored"),
])
def test_broken_runners_fail_with_their_diagnosis(runner, cell, diagnosis):
    report = rnnsym.check(f"onnx:{RUNNERS}:{runner}", cell, examples=100, seed=3,
                          dtype="float64")
    assert not report.passed and report.failure_kind == "wrong numbers"
    assert report.diagnosis.startswith(diagnosis), report.format()


def test_variant_kv_heads_tiled_swaps_pass_and_fail():
    space = "heads=grouped"
    tiled = rnnsym.check(f"onnx:{RUNNERS}:run_tiled", "linear_attention", examples=30, seed=3,
                         dtype="float64", attributes=space, variant="kv_heads=tiled")
    assert tiled.passed, tiled.format()
    assert "--variant kv_heads=tiled" in tiled.command
    ort = rnnsym.check("onnxruntime", "linear_attention", examples=30, seed=3,
                       attributes=space, variant="kv_heads=tiled")
    assert not ort.passed
    assert ort.diagnosis.startswith("grouped heads shared interleaved"), ort.format()
    assert "output[b=" in ort.format() and ", head=" in ort.format()


def test_usage_errors(capsys):
    with pytest.raises(UsageError, match="--variant clip_before_h=false: not an open point of "
                                         "LinearAttention \\(known: kv_heads=grouped\\|tiled\\)"):
        rnnsym.check("onnxruntime", "linear_attention", examples=2, variant="clip_before_h=false")
    with pytest.raises(UsageError, match="--attributes update_rule=mamba: expected one of"):
        rnnsym.check("onnxruntime", "linear_attention", examples=2,
                     attributes="update_rule=mamba")
    with pytest.raises(UsageError, match="--layers: CausalConvWithState models have one node"):
        rnnsym.check("onnxruntime", "causal_conv", examples=2, layers=(2,))
    with pytest.raises(UsageError, match="--cell linear_attention: checked on ONNX targets "
                                         "only"):
        rnnsym.check("torch", "linear_attention", examples=2)
    with pytest.raises(UsageError, match="--dtype: expected float32 or float64, got 'float16'"):
        rnnsym.check("onnxruntime", "gru", examples=2, dtype="float16")
    assert cli.main(["onnxruntime", "--cell", "causal_conv", "--variant", "kv_heads=tiled",
                     "--examples", "2"]) == 2
    assert "not an open point of CausalConvWithState (known: none)" in capsys.readouterr().err
