"""A target whose module calls sys.exit when imported gives exit 2 and one line naming it, never
the module's own exit code (exit 0 means an OK report was printed)."""
from pathlib import Path

from rnnsym.conformance.cli import main

BROKEN = Path(__file__).resolve().parent / "broken"


def test_sys_exit_on_import_is_a_usage_error_not_a_pass(capsys):
    code = main([f"{BROKEN / 'exits_on_import.py'}:forward", "--cell", "gru", "--examples", "5"])
    captured = capsys.readouterr()
    assert code == 2, (code, captured)
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "exits_on_import.py" in lines[0]
    assert "it called sys.exit(0) when imported" in lines[0]
