"""The import layers of pyproject.toml's [tool.importlinter] contract hold (README, "Layout"):
``lint-imports`` passes on the tree, and fails with a readable message on a back-arrow."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def lint_imports(project: Path) -> subprocess.CompletedProcess:
    """Run the venv's ``lint-imports`` on ``project`` (its pyproject.toml and rnnsym/)."""
    exe = Path(sys.executable).parent / ("lint-imports.exe" if os.name == "nt" else "lint-imports")
    assert exe.exists(), f"{exe} not found: install the test extra (pip install -e '.[test]')"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(project)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
    return subprocess.run([str(exe), "--no-cache", "--no-logo"], cwd=project, env=env,
                          capture_output=True, text=True, timeout=120)


def test_layers_contract_is_kept():
    result = lint_imports(ROOT)
    assert result.returncode == 0, "lint-imports found a back-arrow:\n" + result.stdout + \
        result.stderr
    assert "BROKEN" not in result.stdout and " KEPT" in result.stdout


def test_a_back_arrow_fails_with_a_readable_message(tmp_path):
    shutil.copytree(ROOT / "rnnsym", tmp_path / "rnnsym",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shapes = tmp_path / "rnnsym" / "shapes.py"
    shapes.write_text(shapes.read_text() + "\nfrom rnnsym.codegen import compile  # noqa\n")
    result = lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "rnnsym.shapes is not allowed to import rnnsym.codegen" in result.stdout
    assert "rnnsym.shapes -> rnnsym.codegen" in result.stdout


def test_every_module_of_rnnsym_is_in_a_layer():
    """A new top-level module or package must be placed in the layers contract: one that is
    not would be checked by nothing."""
    from importlinter.api import read_configuration

    layers = next(c for c in read_configuration(str(ROOT / "pyproject.toml"))["contracts_options"]
                  if c["type"] == "layers")["layers"]
    listed = set(re.findall(r"rnnsym\.(\w+)", " ".join(layers)))
    present = {p.stem if p.suffix == ".py" else p.name for p in (ROOT / "rnnsym").iterdir()
               if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").exists()}
    missing = sorted(present - listed)
    assert not missing, (f"rnnsym.{', rnnsym.'.join(missing)}: not in any layer of "
                         "[tool.importlinter] in pyproject.toml; place it (README, 'Layout')")


def test_a_cycle_between_sibling_modules_fails(tmp_path):
    """rnnsym.conformance.target imports rnnsym.conformance.oracle; the reverse import closes a cycle."""
    shutil.copytree(ROOT / "rnnsym", tmp_path / "rnnsym",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    oracle = tmp_path / "rnnsym" / "conformance" / "oracle.py"
    oracle.write_text(oracle.read_text() + "\nfrom rnnsym.conformance import target  # noqa\n")
    result = lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "No cycles are allowed in rnnsym.conformance" in result.stdout
