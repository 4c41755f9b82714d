"""``rnnsym.CheckOptions`` (issue 16): every check option declared once, validated once; the CLI's
flags, ``rnnsym.check``'s keywords and the replay line all come from that declaration."""
import argparse
import dataclasses
import inspect

import pytest

import rnnsym
from rnnsym.check_options import CheckOptions, OptionTypeError, add_arguments


def parser():
    p = argparse.ArgumentParser(prog="rnnsym check", exit_on_error=False)
    p.add_argument("target")
    return add_arguments(p)


def test_each_option_is_one_field_with_its_flag_and_help():
    p = parser()
    flags = {a.dest: a.option_strings for a in p._actions}
    for f in dataclasses.fields(CheckOptions):
        assert f.metadata["help"], f.name
        if f.name == "progress":                 # the CLI's --no-progress (and a tty) sets it
            assert f.metadata["flag"] is None
            continue
        assert flags[f.name] == [f.metadata["flag"]], f.name
    # the CLI has nothing else but the target and the two conveniences
    assert set(flags) - {f.name for f in dataclasses.fields(CheckOptions)} == {
        "help", "target", "no_lengths", "no_progress"}


def test_check_takes_every_option_as_a_keyword():
    from rnnsym.conformance.checker import check
    sig = inspect.signature(check)
    names = [f.name for f in dataclasses.fields(CheckOptions)]
    assert list(sig.parameters) == ["target", "cell", "options"] + [n for n in names
                                                                   if n != "cell"]
    # None: the route's default (500; a sequence target's 50 per property and path)
    assert sig.parameters["examples"].default is None
    for name in names:
        assert f"    {name} " in check.__doc__, name


@pytest.mark.parametrize("options", [
    CheckOptions(cell="gru"),
    CheckOptions(cell="lstm", examples=7, seed=3, dtype="float64", rtol=0.0, atol=1e-9,
                 layers=(1, 3), bidirectional="no", variant="projection=true", cell_api=True,
                 without=("lengths", "unbatched"), strict=True, timeout=None, max_size=4,
                 in_process=True),
    CheckOptions(cell="gru", features=(), timeout=0.25, gradients=True, backward="bwd"),
    CheckOptions(cell="gru", attributes="activations=Tanh|Sigmoid,clip=none",
                 variant={"clip_before_h": False}),
    CheckOptions(define="h = tanh(W @ u + U @ h + b)", inputs="u", readouts="y",
                 dims="d_in=d_h", param_map={"W": "weight_ih"}),
])
def test_the_replay_line_parses_back_to_the_same_options(options):
    """``to_argv`` -> the CLI's parser -> ``from_cli``: the same options (a dict given in
    Python comes back as its text form, which every route parses alike)."""
    args = parser().parse_args(["torch"] + options.to_argv())
    back = CheckOptions.from_cli(args)
    for f in dataclasses.fields(CheckOptions):
        want = getattr(options, f.name)
        if isinstance(want, dict):
            want = ",".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}"
                            for k, v in want.items())
        assert getattr(back, f.name) == want, f.name
    # a shell reads the replay line back into the same words
    import shlex
    assert shlex.split(options.replay("torch")) == ["rnnsym", "check", "torch"] + \
        options.to_argv()


def test_defaults_are_left_out_of_the_replay_but_examples_seed_and_dtype_are_not():
    # (examples=None, the route default, is left out; check() resolves it to 500 first)
    o = CheckOptions(cell="gru", examples=500).replace(seed=5, dtype="float32")
    assert o.to_argv() == ["--cell", "gru", "--examples", "500", "--seed", "5",
                           "--dtype", "float32"]
    assert CheckOptions().with_seed().seed is not None
    assert CheckOptions(seed=9).with_seed().seed == 9


def test_values_are_normalized_once():
    o = CheckOptions(layers=3, bidirectional=True, variant=["a=1", " b=2 "],
                     without="lengths, unbatched", features=["x,y", "z"], timeout=2)
    assert o.layers == (3,) and o.bidirectional == "yes" and o.directions == (True,)
    assert o.variant == "a=1,b=2" and o.without == ("lengths", "unbatched")
    assert o.features == ("x", "y", "z") and o.timeout == 2.0
    assert CheckOptions(layers=[2, 1, 2]).layers == (2, 1)
    assert CheckOptions(bidirectional=None).bidirectional == "both"
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.examples = 3


@pytest.mark.parametrize("kwargs,error,text", [
    ({"examples": "ten"}, OptionTypeError, "--examples: expected an integer >= 1, got 'ten' (str)"),
    ({"examples": 0}, rnnsym.UsageError, "--examples: expected an integer >= 1, got 0"),
    ({"examples": True}, OptionTypeError, "--examples"),
    ({"rtol": -1e-3}, rnnsym.UsageError, "--rtol: expected a finite number >= 0, got -0.001"),
    ({"atol": float("inf")}, rnnsym.UsageError, "--atol"),
    ({"seed": 1.5}, OptionTypeError, "--seed: expected an integer or None, got 1.5 (float)"),
    ({"dtype": "float8"}, rnnsym.UsageError, "--dtype: expected float32, float64, float16 or bfloat16"),
    ({"layers": (1, 0)}, rnnsym.UsageError, "--layers: expected positive integers, got (1, 0)"),
    ({"layers": "2"}, OptionTypeError, "--layers"),
    ({"bidirectional": "maybe"}, rnnsym.UsageError, "--bidirectional: expected yes, no or both"),
    ({"timeout": 0}, rnnsym.UsageError, "--timeout: expected a positive number of seconds"),
    ({"variant": 3}, OptionTypeError, "--variant"),
    ({"without": [1]}, OptionTypeError, "--without"),
    ({"strict": "yes"}, OptionTypeError, "--strict: expected True or False, got 'yes' (str)"),
    ({"max_size": 1}, rnnsym.UsageError, "--max-size: expected an integer >= 2, got 1"),
    ({"exmaples": 3}, OptionTypeError, "exmaples: not an option of rnnsym.check (options: cell,"),
])
def test_a_bad_option_is_one_line_naming_it_and_its_value(kwargs, error, text):
    with pytest.raises(error) as info:
        CheckOptions.of(**kwargs)
    assert str(info.value).startswith(text) and "\n" not in str(info.value)
    with pytest.raises(error):          # the same from rnnsym.check, before any target loads
        rnnsym.check("no_such_module_xyz:f", "gru", **kwargs)


def test_options_object_and_keywords_combine():
    """``check(target, options=o, examples=...)``: the keywords change single options; a
    report's replay line is the options it ran with."""
    base = rnnsym.CheckOptions(cell="gru", examples=3, seed=2, in_process=True,
                               without="lengths")
    report = rnnsym.check("torch", options=base, bidirectional="no")
    assert report.passed, report.format()
    assert report.command == ("rnnsym check torch --cell gru --examples 3 --seed 2 --dtype "
                              "float32 --bidirectional no --without lengths --in-process")
    assert report.coverage["bidirectional"] == [False]
    with pytest.raises(OptionTypeError, match="options: expected a CheckOptions"):
        rnnsym.check("torch", options={"cell": "gru"})


def test_rnnsym_check_is_a_function_showing_the_keywords():
    """``rnnsym.check`` is a plain function, also after the checker package (rnnsym.conformance)
    is imported, with the checker's signature and docstring."""
    import rnnsym.conformance.report  # noqa: F401 - binds rnnsym.conformance, not rnnsym.check
    from rnnsym.conformance.checker import check
    assert inspect.isfunction(rnnsym.check) and rnnsym.check is not check
    assert inspect.signature(rnnsym.check) == inspect.signature(check)
    assert "examples" in inspect.signature(rnnsym.check).parameters
    assert rnnsym.check.__doc__ == check.__doc__ and "--examples" in rnnsym.check.__doc__
