"""``rnnsym check`` on every built-in cell and on text-defined cells (rnnsym.conformance.anycell):
correct implementations written another way pass, broken ones are caught and the diagnosis
names the edit of the equations (rnnsym.conformance.mutations)."""
import numpy as np
import pytest

import rnnsym
from rnnsym.conformance.cli import main
from rnnsym.frameworks import UsageError
from tests.broken import cells

EXAMPLES = 25


@pytest.mark.parametrize("cell,variant,good,bad,edit", cells.CASES,
                         ids=[f"{c}-{v}" for c, v, *_ in cells.CASES])
def test_builtin_function_passes_and_broken_one_is_named(cell, variant, good, bad, edit):
    ok = rnnsym.check(good, cell, variant=variant, examples=EXAMPLES, seed=1)
    assert ok.passed, ok.format()
    ko = rnnsym.check(bad, cell, variant=variant, examples=EXAMPLES, seed=1)
    assert ko.verdict == "MISMATCH"
    assert any(edit in d for d in ko.diagnoses), ko.format()


def test_lnlstm_as_pytorch_custom_lstms_with_param_map():
    kw = dict(examples=15, seed=2, param_map=cells.LNLSTM_MAP)
    ok = rnnsym.check(cells.LayerNormLSTMCell, "lnlstm", **kw)
    assert ok.passed, ok.format()
    ko = rnnsym.check(cells.LayerNormLSTMCellBug, "lnlstm", **kw)
    assert any("the blocks of g and o exchanged" in d for d in ko.diagnoses), ko.format()


def test_lnlstm_gradients_of_torch_layernorm_pass_and_a_detached_state_fails():
    # float32 torch LayerNorm's backward cancels (1 or 2 features: the exact c0 gradient is 0 or
    # eps/(var+eps) of its terms) and a saturated tanh(c) makes 1 - tanh(c)**2 inexact: the
    # tolerance models their rounding (rnnsym.conformance.tolerance.noisy_normalization)
    kw = dict(examples=30, seed=2, gradients=True, param_map=cells.LNLSTM_MAP, in_process=True)
    ok = rnnsym.check(cells.LayerNormLSTMCell, "lnlstm", **kw)
    assert ok.passed, ok.format()
    assert ok.max_error_ratio > 0           # gradients were compared, with a finite tolerance

    class Detached(cells.LayerNormLSTMCell):
        def forward(self, input, state):
            return super().forward(input, tuple(s.detach() for s in state))
    ko = rnnsym.check(Detached, "lnlstm", **kw)
    assert ko.failure_kind == "wrong gradients", ko.format()
    assert "state detached before every step" in ko.diagnosis, ko.format()


def test_elman_readout_module_returning_output_and_state():
    kw = dict(variant="readout=true", examples=20, seed=3, param_map=cells.SIMPLE_RNN_MAP)
    assert rnnsym.check(cells.SimpleRNN, "elman", **kw).passed
    ko = rnnsym.check(cells.SimpleRNNBug, "elman", **kw)
    assert ko.verdict == "MISMATCH"
    # on the shrunk case (one step from a zero state) dropping W_hy @ h fits too; the bigger
    # relative tells them apart
    assert ko.diagnoses == ["matches the cell with one edit: h[t-1] instead of h[t] in y: "
                            "y[t] = W_hy @ h[t-1] + b_y  (instead of y[t] = W_hy @ h[t] + b_y)"]


def test_torch_module_gradients_transposed_weight_and_detached_state():
    kw = dict(examples=20, seed=1, gradients=True, param_map="W_xh=weight.T,w_hh=u,b_h=b")
    ok = rnnsym.check(cells.IndRNNCell, "indrnn", **kw)
    assert ok.passed, ok.format()
    ko = rnnsym.check(cells.IndRNNCellDetached, "indrnn", **kw)
    assert ko.failure_kind == "wrong gradients"
    assert "state detached before every step" in ko.diagnosis


def test_generated_module_gradients_pass_and_clipped_gradients_are_named():
    module = rnnsym.compile(rnnsym.cells.builtin("mingru"))

    def clipped(params, x, state0=None, return_cache=False):
        return module.forward(params, x, state0, return_cache=return_cache)

    def backward(params, cache, d_out, d_final):
        dp, dx, ds = module.backward(params, cache, d_out, d_final)
        return {k: np.clip(v, -0.05, 0.05) for k, v in dp.items()}, dx, ds
    clipped.backward = backward
    assert rnnsym.check(module.forward, "mingru", examples=15, seed=1, gradients=True).passed
    ko = rnnsym.check(clipped, "mingru", examples=15, seed=1, gradients=True)
    assert ko.failure_kind == "wrong gradients"
    assert "clipped to ±0.05" in ko.diagnosis, ko.format()


# --- text-defined cells, and what a function declares --------------------------------------------
DEFINE = "h = tanh(W @ x + U @ h + b)"


def elman_full(params, x, state0=None, reverse=False, lengths=None, realign=True):
    """The defined cell, with reverse direction, per-sample lengths and no bias."""
    T, B = x.shape[:2]
    lengths = [T] * B if lengths is None else list(lengths)
    b = params.get("b", 0)
    h = np.zeros((B, params["U"].shape[0])) if state0 is None else state0["h"].copy()
    out = np.zeros((T, B, h.shape[1]))
    for k in range(B):
        steps = range(lengths[k])
        for t in (reversed(steps) if reverse else steps):
            h[k] = np.tanh(params["W"] @ x[t, k] + params["U"] @ h[k] + b)
            out[t if realign else (lengths[k] - 1 - t if reverse else t), k] = h[k]
    return out, {"h": h}


elman_full.supports = ("reverse", "lengths", "no_bias")


def elman_unaligned(params, x, state0=None, reverse=False, lengths=None):
    return elman_full(params, x, state0, reverse, lengths, realign=False)


elman_unaligned.supports = ("reverse", "lengths", "no_bias")


def test_declared_features_are_searched():
    ok = rnnsym.check(elman_full, None, define=DEFINE, examples=60, seed=1)
    assert ok.passed, ok.format()
    assert ok.coverage["reverse"] == [False, True] and ok.coverage["bias"] == [False, True]
    assert ok.coverage["lengths"] == ["fixed", "per-sample"]
    ko = rnnsym.check(elman_unaligned, None, define=DEFINE, examples=60, seed=1)
    assert ko.verdict == "MISMATCH" and ko.counterexample.config.reverse


def test_cli_define_end_to_end(tmp_path, capsys):
    impl = tmp_path / "mycell.py"
    impl.write_text("import numpy as np\n"
                    "def step(params, x, state0=None):\n"
                    "    h = np.zeros((x.shape[1], params['U'].shape[0])) if state0 is None "
                    "else state0['h']\n"
                    "    out = []\n"
                    "    for x_t in x:\n"
                    "        h = np.tanh(x_t @ params['W'].T + h @ params['U'].T + params['b'])\n"
                    "        out.append(h)\n"
                    "    return np.stack(out), {'h': h}\n")
    assert main([f"{impl}:step", "--define", DEFINE, "--examples", "20", "--seed", "1"]) == 0
    assert "OK" in capsys.readouterr().out
    assert main([f"{impl}:step", "--define", DEFINE.replace("tanh", "sigmoid"),
                 "--examples", "20", "--seed", "1"]) == 1
    assert "tanh instead of sigmoid in h" in capsys.readouterr().out


def test_random_defined_cells_pass_and_a_mutation_is_named():
    from random_cells_sweep import sweep
    results = [r for r in sweep(3, seed=7, examples=10) if "skipped" not in r]
    assert len(results) >= 2
    assert all(r["passed"] for r in results), results
    # an edit of a quantity no output reads cannot be caught: most are
    assert sum(r["caught"] and r["named"] for r in results) >= 2, results


@pytest.mark.parametrize("args,message", [
    (dict(cell="sru", variant="rescale=maybe"), "expected true or false"),
    (dict(cell="mingru", variant="activation=relu"), "not an option of mingru"),
    (dict(cell="lnlstm", param_map="W_q=weight_ih"), "not a parameter of the cell"),
    (dict(cell="nosuch"), "unknown 'nosuch'"),
    (dict(cell="elman", define=DEFINE), "not both"),
])
def test_usage_errors_name_the_option(args, message):
    with pytest.raises(UsageError, match=message):
        rnnsym.check(cells.LayerNormLSTMCell, args.pop("cell"), examples=1, **args)


def test_module_parameter_of_the_wrong_shape_is_a_contract_error():
    with pytest.raises(UsageError, match=r"weight \(the cell's W_xh\): expected shape"):
        rnnsym.check(cells.IndRNNCell, "indrnn", examples=1, param_map="W_xh=weight,w_hh=u,b_h=b")


def test_define_file_with_another_input_name(tmp_path):
    text = tmp_path / "cell.txt"
    text.write_text("h = tanh(W @ u + U @ h + b)\n")
    module = rnnsym.compile(rnnsym.cells.parse_cell(text.read_text(), inputs=("u",)))

    def forward(params, x, state0=None):
        return module.forward(params, x, state0)
    ok = rnnsym.check(forward, None, define_file=str(text), inputs="u", examples=10, seed=1)
    assert ok.passed, ok.format()
    assert "--define 'h = tanh(W @ u + U @ h + b)' --input u" in ok.command
