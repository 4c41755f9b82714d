"""The README's Python example runs as written (documentation that cannot go stale)."""
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs(capsys):
    text = README.read_text()
    block = text.split("```python\nimport numpy as np, rnnsym\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile("import numpy as np, rnnsym\n" + block, "README.md", "exec"), namespace)  # noqa: S102
    assert namespace["same"].text() == namespace["mine"].text()
    assert "(5, 2)" in capsys.readouterr().out
