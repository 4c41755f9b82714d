"""The registered sequence targets (transformers, mlstm-kernels, fla) through the checker end to
end: every registry entry resolves, and the findings of docs/targets-*.md are what
``rnnsym check`` reports, beside paths of the same models that must pass (the controls).

Each check is narrowed to one property and path with a fixed seed (the replay line of the
finding), so the test is a few seconds per target."""
import warnings

import pytest

from rnnsym.conformance.sequence import check_sequence
from rnnsym.frameworks.registry import TARGETS, sequence_target
from rnnsym.frameworks.sequence import FEATURES, SequenceTarget

REGISTERED = [t.name for t in TARGETS if t.sequence and t.prefix is None]


def run(name, prop, path, *, dtype="float32", examples=20, seed=0):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = check_sequence(sequence_target(name), paths=path, properties=prop,
                                dtype=dtype, examples=examples, seed=seed)
    return report, report.result(prop, path)


@pytest.mark.parametrize("name", REGISTERED)
def test_every_registered_sequence_target_resolves(name):
    target = sequence_target(name)
    assert isinstance(target, SequenceTarget) and target.name == name
    assert target.paths, name
    for p in target.paths:
        assert set(p.features) <= set(FEATURES) and p.source, (name, p.name)


# (target, property, path, what the report must say): the findings, each beside its control
FINDINGS = [
    ("transformers:qwen3-next-gdn", "oracle", "chunked",
     "-inf log-decay gives NaN"),                      # torch_chunk_gated_delta_rule, g = -inf
    ("fla:gated-delta-rule", "oracle", "chunked", "-inf log-decay gives NaN"),
    ("transformers:nemotron-h-mamba2", "decode", "chunked",
     "the decode path computes the step differently"),  # dt_limit on prefill only
    ("transformers:mamba", "oracle", "recurrent", "T=0"),  # mamba_selective_scan at T = 0
    ("mlstm-kernels:mlstm", "oracle", "recurrent", "T=0"),
]
CONTROLS = [
    ("transformers:qwen3-next-gdn", "oracle", "recurrent"),  # the same model's loop: exact
    ("fla:gated-delta-rule", "chunk_size", "chunked"),       # no reset drawn: chunking is right
    ("transformers:mamba2", "decode", "chunked"),            # no clamp: prefill and decode agree
    ("transformers:mamba", "decode", "recurrent"),
    ("mlstm-kernels:mlstm", "split_carry", "chunked"),
]


@pytest.mark.parametrize("name,prop,path,says", FINDINGS)
def test_a_finding_is_reported_with_its_counterexample(name, prop, path, says):
    report, row = run(name, prop, path)
    assert report.exit_code == 1 and row.verdict == "MISMATCH", report.format()
    text = row.message + " " + row.diagnosis
    assert says in text, report.format()
    assert f"--path {path} --property {prop}" in row.replay, row.replay


@pytest.mark.parametrize("name,prop,path", CONTROLS)
def test_the_same_models_other_paths_pass(name, prop, path):
    report, row = run(name, prop, path, examples=10)
    assert row.verdict == "PASS" and row.examples == 10, report.format()
