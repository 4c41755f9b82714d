"""`rnnsym bench` says what it is timing before each row (a row can take minutes): on stderr, so
that stdout stays the table. No timing is asserted."""
from rnnsym.cli import main


def test_bench_prints_a_progress_line_per_row_on_stderr(capsys):
    rc = main(["bench", "elman", "--quick", "--no-torch", "--repeats", "1"])
    out, err = capsys.readouterr()
    assert rc == 0
    assert "[1/2] elman (T,B,d_in,d_h)=(20, 4, 8, 16) float32: timing generated" in err
    assert "[2/2] elman (T,B,d_in,d_h)=(20, 4, 8, 16) float64" in err
    assert "[1/2]" not in out and out.count("elman ") == 2     # the table: one row per dtype
