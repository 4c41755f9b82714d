"""The progress line: on a terminal only (examples tried, elapsed), for framework and ONNX
checks alike; nothing on stderr when it is piped."""
import sys

import rnnsym
from rnnsym.conformance import cli


def test_progress_line_has_examples_and_elapsed_for_onnx_checks(capsys):
    rnnsym.check("onnxruntime", cell="elman", examples=2, seed=1, progress=True,
                  attributes="activations=Tanh,layout=0")
    err = capsys.readouterr().err
    assert "rnnsym check onnxruntime --cell elman: " in err and "/2 examples" in err, err
    assert " s\x1b[K" in err, f"no elapsed seconds in the progress line: {err!r}"


def test_cli_is_quiet_when_stderr_is_not_a_terminal(capsys, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    parser = cli.configure(__import__("argparse").ArgumentParser())
    code = cli.run(parser.parse_args(["onnxruntime", "--cell", "elman", "--examples", "2",
                                      "--seed", "1", "--attributes",
                                      "activations=Tanh,layout=0"]))
    out, err = capsys.readouterr()
    assert code == 0, out
    assert err == "", f"progress written to a pipe: {err!r}"
