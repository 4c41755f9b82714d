"""Variable-length batches in the checker (reference notes (d) 6 and 10): the canonical
stack driver with ``lengths`` against torch's PackedSequence, Keras masks, the
drawn lengths in reports, and the broken drop-ins that mishandle the padding."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnsym.conformance import Case, check, run_case
from rnnsym.conformance.diagnose import diagnose, pad_outputs
from rnnsym.conformance.oracle import oracle_forward
from rnnsym.frameworks import Config, flat_outputs, nest_state
from rnnsym.frameworks.keras import KerasHarness
from rnnsym.frameworks.layers import stack_forward
from rnnsym.frameworks.torch import (MODULE_NAMES, canonical_to_torch, state_from_torch,
                                     state_to_torch, torch_to_canonical)

BROKEN_DIR = Path(__file__).parent / "broken"
sys.path.insert(0, str(BROKEN_DIR))

from impls import BROKEN_LENGTHS  # noqa: E402

# distinct sizes: T=7, B=4, d_in=3, d_h=5 (d_proj=2)
T, B, D_IN, D_H = 7, 4, 3, 5


def _torch_packed(cell, params, x, state0, lengths, *, bidirectional, num_layers,
                  batch_first, enforce_sorted, proj_size=0):
    module = getattr(torch.nn, MODULE_NAMES[cell])(
        D_IN, D_H, num_layers=num_layers, bidirectional=bidirectional,
        batch_first=batch_first, **({"proj_size": proj_size} if proj_size else {})).double()
    with torch.no_grad():
        for name, value in canonical_to_torch(cell, params).items():
            getattr(module, name).copy_(torch.from_numpy(value))
    inp = torch.from_numpy(x.transpose(1, 0, 2).copy() if batch_first else x)
    packed = pack_padded_sequence(inp, torch.tensor(lengths), batch_first=batch_first,
                                  enforce_sorted=enforce_sorted)
    hx = {k: torch.from_numpy(v) for k, v in state_to_torch(state0).items()}
    with torch.no_grad():
        out, states = module(packed, (hx["h"], hx["c"]) if cell == "lstm" else hx["h"])
    padded, got_lengths = pad_packed_sequence(out, batch_first=batch_first, total_length=T)
    assert got_lengths.tolist() == list(lengths)
    padded = padded.numpy()
    if batch_first:
        padded = padded.transpose(1, 0, 2)
    h_n, c_n = states if cell == "lstm" else (states, None)
    return padded, h_n.numpy(), None if c_n is None else c_n.numpy()


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
@pytest.mark.parametrize("bidirectional,num_layers", [(False, 1), (True, 1), (True, 2),
                                                      (False, 3)])
@pytest.mark.parametrize("batch_first,enforce_sorted", [(False, True), (True, False)])
def test_stack_driver_with_lengths_matches_torch_packed(cell, bidirectional, num_layers,
                                                        batch_first, enforce_sorted):
    """layers.stack_forward(lengths=) is torch's PackedSequence semantics: zeros past each
    length, h_n/c_n after the last valid step, reverse starting at len-1, only valid
    steps passed between layers (float64, 1e-12)."""
    rng = np.random.default_rng(7)
    lengths = [7, 5, 2, 1] if enforce_sorted else [2, 7, 1, 5]
    dirs = 2 if bidirectional else 1
    proj = 2 if cell == "lstm" and num_layers == 2 else 0
    config = Config(cell=cell, T=T, B=B, d_in=D_IN, d_h=D_H, d_proj=proj,
                    num_layers=num_layers, bidirectional=bidirectional, dtype="float64")
    from rnnsym.frameworks.torch import torch_param_shapes
    shapes = torch_param_shapes(cell, input_size=D_IN, hidden_size=D_H, num_layers=num_layers,
                                bidirectional=bidirectional, proj_size=proj)
    values = {n: rng.uniform(-1, 1, s) for n, s in shapes.items()}
    params = torch_to_canonical(cell, values, num_layers=num_layers,
                                bidirectional=bidirectional, proj_size=proj)
    x = rng.uniform(-1, 1, (T, B, D_IN))
    x[np.arange(T)[:, None] >= np.array(lengths)[None, :]] = 0
    state0 = {"h": rng.uniform(-1, 1, (num_layers, dirs, B, config.d_out))}
    if cell == "lstm":
        state0["c"] = rng.uniform(-1, 1, (num_layers, dirs, B, D_H))
    forward = oracle_forward(cell, **({"projection": bool(proj)} if cell == "lstm" else {}))
    outputs, final = stack_forward(forward, params, x, nest_state(state0, num_layers, dirs),
                                   lengths=lengths)
    flat = flat_outputs(outputs, final, dirs)
    out, h_n, c_n = _torch_packed(cell, params, x, state0, lengths, bidirectional=bidirectional,
                                  num_layers=num_layers, batch_first=batch_first,
                                  enforce_sorted=enforce_sorted, proj_size=proj)
    np.testing.assert_allclose(flat["output"].reshape(out.shape), out, rtol=0, atol=1e-12)
    np.testing.assert_allclose(flat["h_n"], state_from_torch(h_n, num_layers, dirs),
                               rtol=0, atol=1e-12)
    if cell == "lstm":
        np.testing.assert_allclose(flat["c_n"], state_from_torch(c_n, num_layers, dirs),
                                   rtol=0, atol=1e-12)
    for b, n in enumerate(lengths):
        assert np.all(out[n:, b] == 0)


def test_pad_outputs_conventions():
    out = np.arange(3 * 2 * 4, dtype=float).reshape(3, 2, 4) + 1   # T=3, B=2, D=2, d=2
    zero = pad_outputs(out, [3, 1], 2, "zero")
    assert np.all(zero[1:, 1] == 0) and np.all(zero[:, 0] == out[:, 0])
    rep = pad_outputs(out, [3, 1], 2, "repeat")
    assert np.all(rep[1:, 1, :2] == out[0, 1, :2]) and np.all(rep[1:, 1, 2:] == 0)
    assert pad_outputs(out, [3, 1], 2, "raw") is out


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_torch_checks_packed_input(cell):
    report = check("torch", cell, examples=40, seed=3)
    assert report.passed, report.format()
    modes = set(report.coverage["lengths"])
    assert "fixed" in modes and modes & {"packed, enforce_sorted", "packed, unsorted"}


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
def test_plain_drop_in_handles_packed_input(cell):
    name = {"elman": "RNN", "lstm": "LSTM", "gru": "GRU"}[cell]
    report = check(f"{BROKEN_DIR / '_base.py'}:{name}", cell, examples=30, seed=3)
    assert report.passed, report.format()
    assert len(report.coverage["lengths"]) > 1


@pytest.mark.parametrize("cell,cls", BROKEN_LENGTHS, ids=[c.__name__ for _, c in BROKEN_LENGTHS])
def test_broken_lengths_drop_in_is_rejected(cell, cls):
    # only a padded (and for the reverse-direction bug, bidirectional) batch shows these:
    # a few percent of the drawn cases, so more examples than test_check_broken's 100
    # (the reverse-direction bug is searched among bidirectional runs only: over the whole space
    # whether 400 examples hit it depended on the allocation/timing state of the process)
    extra = {"bidirectional": "yes"} if "Reverse" in cls.__name__ else {}
    report = check(f"{BROKEN_DIR / 'impls.py'}:{cls.__name__}", cell, examples=400, seed=0, **extra)
    assert not report.passed, f"{cls.__name__} ({cls.__doc__.strip()}) was accepted"
    ce = report.counterexample
    assert ce.lengths is not None and min(ce.lengths) < ce.config.T
    assert f"lengths: {list(ce.lengths)}" in report.format()
    assert report.diagnosis and cls.EXPECT in report.diagnosis, report.format()


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_keras_masks(cell):
    report = check("keras", cell, examples=40, seed=3)
    assert report.passed, report.format()
    modes = set(report.coverage["lengths"])
    assert "fixed" in modes and modes & {"mask argument", "Masking layer"}


@pytest.mark.parametrize("bidirectional", [False, True])
def test_keras_masking_layer_dropped_with_initial_state(bidirectional):
    """Keras 3.15.1: a Masking layer's mask is lost once initial_state is passed as well;
    the checker finds it and names it."""
    harness = KerasHarness("gru")
    harness.masking_layer_with_initial_state = True
    config = Config(cell="gru", T=4, B=2, d_in=3, d_h=5, bidirectional=bidirectional,
                    initial_state=True, variant=(("reset", "after"),))
    rng = np.random.default_rng(1)
    values = {n: rng.uniform(-1, 1, s).astype("float32")
              for n, s in harness.param_shapes(config).items()}
    x = rng.uniform(-1, 1, (4, 2, 3)).astype("float32")
    lengths = (4, 2)
    x[2:, 1] = 0
    state0 = {"h": rng.uniform(-1, 1, (1, config.D, 2, 5)).astype("float32")}
    with harness.session():
        passed = run_case(harness, Case(config, values, x, state0, lengths, "mask argument"))
        assert not passed.failed, passed.mismatches
        outcome = run_case(harness, Case(config, values, x, state0, lengths, "Masking layer"))
        assert outcome.failed
        found = diagnose(harness, outcome)
    assert found and "mask ignored" in found[0], found
