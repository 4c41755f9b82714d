"""The symbolic core, the CLI's main job and the generated code need sympy and numpy only: the
checker's hypothesis and the framework peers are imported only when used."""
import subprocess
import sys

PROBE = """
import sys, inspect, rnnsym
assert "examples" in inspect.signature(rnnsym.check).parameters   # the function, not loaded yet
from rnnsym.cli import main
main(["shapes", "lstm", "--peepholes"]); main(["unroll", "gru", "--steps", "2", "--latex"])
rnnsym.compile(rnnsym.gru())
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"hypothesis", "torch", "keras", "onnx",
                                                         "onnxruntime", "pytest"})
print("HEAVY", heavy)
"""


def test_core_and_cli_import_only_sympy_and_numpy():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "HEAVY []", out.stdout[-500:]
