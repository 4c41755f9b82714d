"""rnnsym.conformance.sequence: the checker of sequence targets (a model's chunked / recurrent / decode
paths of a matrix-state recurrence). Correct-but-unusual targets written apart from the oracle
(tests/sequence_targets/: a chunked NumPy GLA with its own chunk loop, a torch Gated DeltaNet in
Qwen3-Next's style) must pass, under strong decay and in bf16; each broken one must fail with the
property and the diagnosis of its bug class."""
import sys
from dataclasses import replace
from pathlib import Path as FilePath

import numpy as np
import pytest

from rnnsym.conformance import check
from rnnsym.conformance.cli import main
from rnnsym.conformance.sequence import check_sequence
from rnnsym.conformance.sequence_oracle import expected
from rnnsym.conformance.sequence_properties import PROPERTIES, Context, prop
from rnnsym.conformance.sequence_strategies import Draw, build_case, round_case
from rnnsym.conformance.sequence_tolerance import (chunk_cumsums, chunk_perturbed, chunk_starts,
                                             sequence_tolerance)
from rnnsym.errors import Unsupported
from rnnsym.frameworks import UsageError
from rnnsym.frameworks.registry import Target, sequence_target
from rnnsym.frameworks.sequence import Path, SequenceTarget

ROOT = FilePath(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "sequence_targets"))
import gdn_torch  # noqa: E402
import gla_numpy  # noqa: E402

GLA_FILE = "sequence:tests/sequence_targets/gla_numpy.py"


def draw(**over) -> Draw:
    base = dict(sizes=(("d_k", 3), ("d_v", 5)), B=2, T=13, kv_heads=2, group=2, chunk=5,
                chunk2=4, decay="strong", beta="uniform", keys="random", dt="ordinary",
                state0=True, split=6, segments=(), seed=0)
    return Draw(**dict(base, **over))


def run_property(target, name, d, path="chunked", dtype="float32"):
    ctx = Context(target, target.path(path), dtype)
    return prop(name).run(ctx, d)


# ------------------------------------------------------------- the tolerance fits the algorithm

@pytest.mark.parametrize("decay", ["strong", "moderate", "mixed", "reset", "mild"])
def test_a_correct_chunked_gla_passes_under_strong_decay_and_a_dropped_partial_chunk_fails(decay):
    """The same case (T = 13, chunks of 5: a last partial chunk of 3) passes on the correct
    chunked implementation and fails on the one dropping the last partial chunk."""
    for seed in range(3):
        d = draw(decay=decay, seed=seed)
        for name in ("oracle", "chunk_size", "split_carry", "decode"):
            ok = run_property(gla_numpy.correct, name, d)
            assert not ok.failed, (name, ok.message)
            assert ok.ratio < 1
        bad = run_property(gla_numpy.make("drop_last"), "oracle", d)
        assert bad.failed and "the last partial chunk is wrong (steps 10..12" in bad.diagnosis


def test_the_chunked_term_is_computed_from_the_cumulative_log_decays_within_each_chunk():
    """A chunked path's probes move each cumulative log-decay b_t (from its chunk's start) by at
    most eta * m_t, m_t = sum of |a_i| over the chunk so far (-inf steps: exact resets); no
    decay, no chunk term. docs/scripts/sequence_chunk_tolerance.py measures why it is needed."""
    a = np.array([[-1.0, -2.0, -np.inf, -3.0, -4.0]])
    first = chunk_starts(5, 2)
    assert first.tolist() == [True, False, True, False, True]
    assert chunk_cumsums(a, first).tolist() == [[1.0, 3.0, 0.0, 3.0, 4.0]]
    assert chunk_starts(7, 3, (0, 2)).tolist() == [True, False, True, False, False, True, False]
    case = build_case(gla_numpy.correct, draw(T=13, chunk=5, decay="moderate", group=1))
    eta = 1e-3
    moved = chunk_perturbed(case, 5, eta, np.random.default_rng(0))
    g, g2 = case.inputs["g"], moved.inputs["g"]
    for c0 in range(0, 13, 5):
        b = np.cumsum(g[:, c0:c0 + 5], axis=1)
        b2 = np.cumsum(g2[:, c0:c0 + 5], axis=1)
        m = np.cumsum(np.abs(g[:, c0:c0 + 5]), axis=1)
        assert np.all(np.abs(b2 - b) <= eta * m * (1 + 1e-9))
        assert np.abs(b2 - b).max() > eta * m.max() / 10          # it does move them
    still = build_case(gla_numpy.correct, draw(T=13, chunk=5, decay="none", group=1))
    assert np.array_equal(chunk_perturbed(still, 5, eta, np.random.default_rng(0))
                          .inputs["g"], still.inputs["g"])
    exp = expected(case)
    chunked = sequence_tolerance(case, {}, exp, algorithm="chunked", chunk=5, accumulates=None)
    sequential = sequence_tolerance(case, {}, exp, algorithm="sequential", chunk=None,
                                    accumulates=None)
    assert chunked["out"].sum() > 1.2 * sequential["out"].sum()


def test_low_precision_compares_with_the_oracle_on_the_rounded_inputs():
    d = draw(decay="mild", group=1)
    case = build_case(gdn_torch.correct, d, "bfloat16")
    for v in case.inputs.values():           # every input is a bf16 number
        assert np.array_equal(round_case(replace(case, inputs={"x": v}), "bfloat16")
                              .inputs["x"], v)
    assert not np.array_equal(case.inputs["q"], build_case(gdn_torch.correct, d).inputs["q"])
    for dtype in ("bfloat16", "float16"):
        r = check_sequence(gdn_torch.correct, dtype=dtype, examples=8, seed=1,
                           properties="oracle,split_carry,varlen")
        assert r.exit_code == 0, r.format()


# ------------------------------------------------------------- broken targets: the right property

BUGS = [  # bug, target, path, property that must fail, words of the diagnosis
    ("drop_last", gla_numpy, "chunked", "chunk_size", "the last partial chunk is wrong"),
    ("nan_reset", gla_numpy, "chunked", "oracle", "-inf log-decay gives NaN"),
    ("ignore_state0", gla_numpy, "chunked", "initial_state", "initial state ignored"),
    ("zero_final", gla_numpy, "chunked", "split_carry", "zeros (not returned)"),
    ("tile", gla_numpy, "chunked", "groups", "matches repeat (tile), not repeat_interleave"),
    ("decode_nodecay", gla_numpy, "chunked", "decode", "the decode step drops the decay"),
    ("varlen_leak", gdn_torch, "recurrent", "varlen", "carried across sequence boundaries"),
]


@pytest.mark.parametrize("bug, module, path, name, words", BUGS, ids=[b[0] for b in BUGS])
def test_each_broken_target_fails_with_its_property_and_diagnosis(bug, module, path, name, words):
    r = check_sequence(module.make(bug, name=bug), paths=path, properties=name, examples=15,
                       seed=0)
    row = r.result(name, path)
    assert r.exit_code == 1 and row.verdict == "MISMATCH", r.format()
    assert words in row.diagnosis, row.diagnosis
    assert f"[{bug}(path={path}" in row.message and ", but should be " in row.message
    text = r.format()
    assert f"property {name} FAILED on path {path}" in text and "bug class:" in text
    assert (f"replay: rnnsym check {bug} --cell {module.correct.cell} --path {path} "
            f"--property {name} --dtype float32 --examples 15 --seed 0") in text
    if bug == "drop_last":                                      # a replay ends on the same case
        again = check_sequence(module.make(bug, name=bug), paths=path, properties=name,
                               examples=15, seed=0)
        assert again.result(name, path).message == row.message


def test_the_correct_targets_pass_every_applicable_property():
    r = check_sequence(gla_numpy.correct, examples=8, seed=3)
    assert r.exit_code == 0, r.format()
    verdicts = {(x.property, x.path): x.verdict for x in r.results}
    assert verdicts[("chunk_size", "chunked")] == "PASS"
    assert verdicts[("chunk_size", "recurrent")] == "N/A"
    assert verdicts[("varlen", "chunked")] == "N/A"             # not declared: never a pass
    assert verdicts[("decode", "recurrent")] == "PASS"
    assert verdicts[("split_carry", "decode")] == "N/A"
    r = check_sequence(gdn_torch.correct, examples=5, seed=3, dtype="float64",
                       properties="oracle,decode,groups")
    assert r.exit_code == 0, r.format()
    assert r.result("decode").verdict == "N/A" and "no decode path" in r.result("decode").note
    assert [p.name for p in PROPERTIES] == ["oracle", "chunk_size", "split_carry",
                                            "initial_state", "decode", "varlen", "groups"]


# ------------------------------------------------------------- unsupported, never a mismatch

def _declining(case, chunk):
    raise Unsupported("this path takes no initial state")


def _half(case, chunk):
    if case.state0 is not None:
        raise NotImplementedError("no initial state")
    return gla_numpy.recurrent(case, chunk, ())


def test_a_path_raising_unsupported_is_unsupported_not_a_mismatch():
    t = SequenceTarget("declines", "gla", (
        Path("p", "sequential", _declining, features=("initial_state", "final_state")),))
    r = check_sequence(t, examples=5, seed=0)
    assert r.exit_code == 3 and not r.failures, r.format()
    assert r.result("oracle").verdict == "UNSUPPORTED"
    assert "this path takes no initial state" in r.result("oracle").note
    t = SequenceTarget("half", "gla", (
        Path("p", "sequential", _half, features=("initial_state", "final_state")),))
    r = check_sequence(t, examples=10, seed=0, properties="oracle,initial_state")
    assert r.result("initial_state").verdict == "UNSUPPORTED"
    assert r.result("oracle").verdict == "PASS"
    r = check_sequence(gla_numpy.correct, dtype="bfloat16", examples=3, seed=0)
    assert r.exit_code == 3 and {x.verdict for x in r.results} == {"UNSUPPORTED", "N/A"}


# ------------------------------------------------------------- command line and registry

def test_the_command_line_routes_sequence_targets(capsys):
    args = ["--cell", "gla", "--examples", "5", "--seed", "0", "--path", "chunked"]
    assert main([f"{GLA_FILE}:correct", "--property", "oracle"] + args) == 0
    out = capsys.readouterr().out
    assert "gla_numpy.py:correct --cell gla (float32): OK" in out and "oracle" in out
    assert main([f"{GLA_FILE}:make", "--property", "initial_state"] + args) == 0
    assert main(["sequence:tests/sequence_targets/gdn_torch.py:make", "--cell", "gla"]) == 2
    assert "computes gated_deltanet; use --cell gated_deltanet" in capsys.readouterr().err
    assert main([f"{GLA_FILE}:correct", "--property", "nope"] + args) == 2
    assert main([f"{GLA_FILE}:DTYPES"] + args) == 2
    assert "expected a SequenceTarget" in capsys.readouterr().err


def test_a_registered_sequence_target_is_one_line(monkeypatch):
    import types

    from rnnsym.frameworks import registry
    module = types.ModuleType("fake_sequence_adapter")
    module.no_args = lambda: gla_numpy.correct
    module.with_args = lambda spec, cell, options: gla_numpy.make(name=spec)
    monkeypatch.setitem(sys.modules, "fake_sequence_adapter", module)
    entries = (Target("fake:gla", "a test", "fake_sequence_adapter:no_args", sequence=True),
               Target("fake:gla2", "a test", "fake_sequence_adapter:with_args", sequence=True))
    monkeypatch.setattr(registry, "TARGETS", entries + registry.TARGETS)
    assert sequence_target("fake:gla") is gla_numpy.correct
    assert sequence_target("fake:gla2").name == "fake:gla2"
    r = check("fake:gla", "gla", examples=3, seed=0, properties="oracle", path="recurrent")
    assert r.exit_code == 0 and r.target == "fake:gla"
    with pytest.raises(UsageError, match="sequence target"):
        registry.resolve_harness("fake:gla", "gla")
    with pytest.raises(UsageError, match="only for sequence targets"):
        check("torch", "gru", examples=1, path="chunked")


def test_the_oracle_reads_grouped_heads_by_repeat_interleave_and_tile_on_request():
    case = build_case(gla_numpy.correct, draw(T=4, group=3, kv_heads=2))
    tiled = {k: np.concatenate([v] * 3, axis=2) if v.shape[2] == 2 else v
             for k, v in case.inputs.items()}
    out_tile, _ = expected(case, groups="tile")
    out_tiled, _ = expected(replace(case, inputs=tiled))
    assert np.allclose(out_tile, out_tiled, rtol=0, atol=0)
    out, _ = expected(case)
    assert not np.allclose(out, out_tile)
    spread = {k: np.repeat(v, 3, axis=2) if v.shape[2] == 2 else v
              for k, v in case.inputs.items()}
    assert np.array_equal(out, expected(replace(case, inputs=spread))[0])


def test_the_documented_example_target_runs_from_the_command_line(capsys):
    assert main(["sequence:docs/scripts/my_sequence_target.py:target", "--cell",
                 "gated_deltanet", "--examples", "5", "--seed", "0", "--property",
                 "oracle,initial_state"]) == 0
    assert "(float32): OK" in capsys.readouterr().out


@pytest.mark.parametrize("cell", ["mamba2", "mlstm", "gated_deltanet"])
def test_the_chunk_term_maps_log_decays_back_to_each_cells_input(cell):
    """a' = a (eta = 0) gives the inputs back: Mamba-2's dt through softplus and A, mLSTM's
    forget logit through logsigmoid; eta > 0 moves only the decay input."""
    t = SequenceTarget("t", cell, (Path("p", "chunked", None, features=("chunk_size",)),))
    sizes = {"mamba2": (("d_head", 2), ("d_state", 3))}.get(cell, draw().sizes)
    case = build_case(t, draw(sizes=sizes, decay="mild", dt="ordinary", group=1), "float64")
    name = {"mamba2": "dt", "mlstm": "f", "gated_deltanet": "g"}[cell]
    back = chunk_perturbed(case, 5, 0.0, np.random.default_rng(0))
    assert np.allclose(back.inputs[name], case.inputs[name], rtol=1e-9, atol=1e-12)
    moved = chunk_perturbed(case, 5, 1e-3, np.random.default_rng(0))
    assert not np.allclose(moved.inputs[name], case.inputs[name], rtol=1e-9, atol=1e-12)
    assert all(np.array_equal(moved.inputs[k], v) for k, v in case.inputs.items() if k != name)


def test_a_correct_chunked_delta_rule_in_wy_and_ut_form_passes_at_its_hard_edges():
    """Gated DeltaNet chunked by the WY form (forward substitution) and by the UT transform in
    float32 for a float64 case (as Qwen3-Next's torch functions compute): nearly parallel keys,
    beta at 1, strong and no decay, T = 13 in chunks of 5."""
    import gdn_wy_numpy
    t = gdn_wy_numpy.target
    for decay in ("strong", "none", "moderate"):
        for keys in ("parallel", "random"):
            d = draw(group=1, kv_heads=2, decay=decay, beta="max", keys=keys)
            for path, dtype in (("chunked", "float32"), ("chunked_ut", "float64")):
                for name in ("oracle", "chunk_size", "split_carry"):
                    ok = run_property(t, name, d, path=path, dtype=dtype)
                    assert not ok.failed, (decay, keys, path, name, ok.message)
    r = check_sequence(t, examples=10, seed=0, dtype="float64")
    assert r.exit_code == 0, r.format()
