"""Keras on its other backends: KERAS_BACKEND is process-global (keras fixes it at import), so
each backend is checked in a subprocess, one small check each, and must be named in the report
and set in the replay command."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _check(backend, *args):
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(ROOT),
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-m", "rnnsym", "check", "keras", *args, "--seed", "1",
                           "--features", "none"],
                          env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    return done.returncode, done.stdout


@pytest.mark.parametrize("backend,args", [
    ("jax", ("--cell", "gru", "--examples", "2")),
    ("tensorflow", ("--cell", "lstm", "--examples", "3", "--dtype", "float64")),
])
def test_keras_backend_passes_and_is_reported(backend, args):
    code, out = _check(backend, *args)
    assert code == 0, out
    assert f"rnnsym check keras [KERAS_BACKEND={backend}] --cell" in out, out
    assert f"replay: KERAS_BACKEND={backend} rnnsym check keras" in out, out


def test_keras_numpy_backend_computes_float64_in_float32():
    code, out = _check("numpy", "--cell", "elman", "--examples", "5", "--dtype", "float64")
    assert code == 1, out
    assert "[KERAS_BACKEND=numpy]" in out and "computes (at least partly) in float32" in out, out


@pytest.mark.parametrize("backend", ["torch", "tensorflow", "jax"])
def test_keras_gradients_on_each_autodiff_backend(backend):
    """The fused kernel and the generic loop pass; a cell reading its state through
    stop_gradient fails with the detached-state diagnosis (tests/broken/keras_gradients.py)."""
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "broken" / "keras_gradients.py")],
                          env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines() if " | " in line)
    assert done.returncode == 0, done.stderr[-2000:]
    assert lines["KerasHarness"].startswith("None |"), done.stdout
    assert lines["GenericLoop"].startswith("None |"), done.stdout
    assert lines["StateDetached"].startswith("wrong gradients |"), done.stdout
    assert "state detached before every step" in lines["StateDetached"], done.stdout


def test_keras_numpy_backend_has_no_gradients():
    env = {**os.environ, "KERAS_BACKEND": "numpy", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "rnnsym", "check", "keras", "--cell", "gru",
                           "--gradients", "--examples", "2"],
                          env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "KERAS_BACKEND=numpy has none" in done.stderr
