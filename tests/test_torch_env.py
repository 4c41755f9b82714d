"""rnnsym.frameworks.torch_env (transformers with a torchvision that fails to import) beside the
onnx converters' torchvision stand-in: both import orders, each in a fresh process."""
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")


def test_torchvision_workaround_coexists_with_the_converters_stand_in():
    """Both import orders in one process: transformers' model modules import, and the onnx
    converter imports (with its stand-in where torchvision is broken)."""
    from rnnsym.frameworks import torch_env
    from rnnsym.frameworks.onnx import converters
    assert torch_env.STAND_IN == converters.STAND_IN
    script = textwrap.dedent("""
        import sys
        from rnnsym.frameworks import torch_env
        from rnnsym.frameworks.onnx import converters
        def tf():
            torch_env.import_transformers_module("transformers.image_utils")
        def cv():
            converters.import_converter("onnx2torch")
        for f in ((tf, cv) if sys.argv[1] == "tf" else (cv, tf)):
            f()
        print("ok", type(sys.modules.get("torchvision")).__name__)
    """)
    import importlib.util
    if importlib.util.find_spec("onnx2torch") is None:      # not importorskip: it imports torchvision
        pytest.skip("onnx2torch not installed")
    runs = {order: subprocess.Popen([sys.executable, "-c", script, order], text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for order in ("tf", "cv")}                     # the two orders side by side
    for order, run in runs.items():
        out, err = run.communicate(timeout=300)
        assert run.returncode == 0 and "ok" in out, (order, err[-2000:])
