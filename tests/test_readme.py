"""The README works as written (documentation that cannot go stale): its Python example and its
quick start run, its test command is the one `.ci/run` runs, and every relative link in README.md
and docs/*.md points at a file (and heading) that exists."""
import re
import shlex
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def section(text: str, heading: str) -> str:
    """The body of the `## heading` section."""
    return text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


def code_block(text: str, lang: str = "sh") -> str:
    """The first fenced block of that language in text."""
    return text.split(f"```{lang}\n", 1)[1].split("```", 1)[0]


def commands(block: str) -> list[str]:
    """The command lines of a shell block, comments stripped."""
    lines = (re.sub(r"\s+#.*$", "", line).strip() for line in block.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def test_readme_python_example_runs(capsys):
    text = README.read_text()
    block = text.split("```python\nimport numpy as np, rnnsym\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile("import numpy as np, rnnsym\n" + block, "README.md", "exec"), namespace)  # noqa: S102
    assert namespace["same"].text() == namespace["mine"].text()
    assert "(5, 2)" in capsys.readouterr().out


def test_readme_test_command_is_the_one_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text()
    ci_commands = [c for c in commands(ci) if c.startswith(".venv/bin/")]
    readme_commands = commands(code_block(section(README.read_text(), "Tests")))
    assert ci_commands, ".ci/run has no .venv/bin/ commands"
    assert readme_commands == ci_commands, (
        f"README 'Tests' runs {readme_commands}, but .ci/run runs {ci_commands}")
    assert "python3 -m venv .venv" in ci and "CI=" in ci   # what the README says .ci/run adds


def test_readme_setup_is_two_commands_the_main_job_and_ci(capsys):
    """One command installs and runs the main job, the other is .ci/run (the tests, as CI runs
    them); the main job's rnnsym calls run here as written."""
    from rnnsym.cli import main
    main_job, tests = commands(code_block(section(README.read_text(), "Set up")))
    assert tests == "bash .ci/run"
    steps = [step.strip() for step in main_job.split("&&")]
    assert steps[:2] == ["python3 -m venv .venv", ".venv/bin/python -m pip install -e ."]
    assert len(steps) > 2
    for step in steps[2:]:
        argv = shlex.split(step)
        assert argv[0] == ".venv/bin/rnnsym", step
        assert main(argv[1:]) in (0, None), step
    out = capsys.readouterr().out
    assert "W_hi" in out and "\\tanh" in out     # the shapes table, then the LaTeX


def test_readme_quick_start_runs(tmp_path, monkeypatch, capsys):
    from rnnsym.cli import main
    monkeypatch.chdir(tmp_path)          # `generate --out mycode` writes here
    lines = commands(code_block(section(README.read_text(), "Quick start")))
    assert lines[0] == ". .venv/bin/activate"   # what puts `rnnsym` on PATH
    lines = lines[1:]
    assert len(lines) >= 8
    for line in lines:
        argv = shlex.split(line)
        assert argv[0] == "rnnsym", line
        try:
            rc = main(argv[1:])
        except SystemExit as exc:        # --version exits as argparse does
            rc = exc.code
        assert rc in (0, None), f"README quick start: `{line}` exited {rc}"
    import rnnsym
    assert f"rnnsym {rnnsym.__version__}" in capsys.readouterr().out
    assert (tmp_path / "mycode" / "mine.py").exists()


def test_version(capsys):
    import rnnsym
    from rnnsym.cli import main
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"rnnsym {rnnsym.__version__}"


# --- links -----------------------------------------------------------------------------------
def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation dropped, spaces -> '-'."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", heading).lower()
    text = "".join(ch for ch in text if ch in " -" or unicodedata.category(ch)[0] in "LN")
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    in_code = False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and (m := re.match(r"#{1,6}\s+(.*)", line)):
            s = slug(m.group(1).strip())
            out.add(s if s not in seen else f"{s}-{seen[s]}")
            seen[s] = seen.get(s, 0) + 1
    return out


def links(path: Path):
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)   # not inside code blocks
    text = re.sub(r"`[^`\n]*`", "", re.sub(r"\[`([^`\n]*)`\]", r"[\1]", text))   # inline code
    return re.findall(r"\]\(([^)\s]+)\)", text)


DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_relative_links_resolve(doc):
    bad = []
    for target in links(doc):
        if re.match(r"[a-z]+:", target):          # http:, https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        dest = (doc.parent / file).resolve() if file else doc
        if not dest.exists():
            shown = dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest
            bad.append(f"{target}: no file {shown}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            bad.append(f"{target}: no heading with anchor #{anchor} in {dest.name}")
    assert not bad, f"{doc.name}: broken links: {bad}"


def test_slug_follows_github():
    assert slug("rnnsym's canonical NumPy convention") == "rnnsyms-canonical-numpy-convention"
    assert slug("Cells, equations and shapes") == "cells-equations-and-shapes"
    assert slug("Readings: where the spec is open") == "readings-where-the-spec-is-open"
    assert slug("The `--gradients` check") == "the---gradients-check"
