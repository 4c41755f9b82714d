"""The ``rnnsym`` command line. Every user error exits 2 with a one-line reason, no traceback."""
from __future__ import annotations

import argparse
import os
import sys

from rnnsym.cells import BUILTINS, builtin, parse_cell
from rnnsym.cells.builtin import NAMES
from rnnsym.errors import UsageError  # a command-line mistake: one line, exit status 2

CELL_OPTIONS = {
    # flag dest: (cells it applies to, builtin keyword)
    "activation": ({"elman", "indrnn"}, "activation"),
    "readout": ({"elman"}, "readout"),
    "peepholes": ({"lstm"}, "peepholes"),
    "coupled": ({"lstm"}, "coupled"),
    "projection": ({"lstm"}, "projection"),
    "clip": ({"lstm"}, "clip"),
    "reset": ({"gru"}, "reset"),
    "pooling": ({"qrnn"}, "pooling"),
    "eps": ({"lnlstm", "mlstm"}, "eps"),
    "decay": ({"gla", "gated_deltanet"}, "decay"),
    "qk_l2norm": ({"deltanet", "gated_deltanet"}, "qk_l2norm"),
    "scale": ({"linear_attention", "gla", "deltanet", "gated_deltanet"}, "scale"),
}


class OneLineParser(argparse.ArgumentParser):
    """argparse, whose usage errors are one line (``rnnsym show: error: ...``), exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def add_cell_arguments(p: argparse.ArgumentParser, *, many: bool = False):
    """CELL (a built-in name) or --define TEXT, and the options of the built-ins."""
    p.add_argument("cell", nargs="*" if many else "?", metavar="CELL",
                   help=f"built-in cell: {NAMES}")
    g = p.add_argument_group("user-defined cell")
    g.add_argument("--define", metavar="TEXT",
                   help='equations, e.g. "h = tanh(W_h @ h + W_x @ x + b)" (; or newlines between)')
    g.add_argument("--name", default="custom", help="name of the defined cell (default: custom)")
    g.add_argument("--input", default="x", help="comma-separated input names (default: x)")
    g.add_argument("--state", help="comma-separated state names (default: names read before "
                                   "they are assigned)")
    g.add_argument("--readout", dest="readouts", default="",
                   help="comma-separated readout names (e.g. y)")
    g.add_argument("--dims", default="", help="declare dimensions equal, e.g. d_in=d_h")
    g.add_argument("--scalars", default="", help="names that are one number per step, e.g. "
                   "beta,g (a per-head gate; docs/linear-recurrences.md)")
    g.add_argument("--matrices", default="", help="parameters that are matrices used elementwise, "
                   "e.g. A in exp(delta * A)")
    b = p.add_argument_group("built-in cell options")
    b.add_argument("--activation", choices=["tanh", "relu", "sigmoid", "identity"],
                   help="elman, indrnn: the nonlinearity (default tanh, indrnn relu)")
    b.add_argument("--with-readout", dest="readout", action="store_true", default=None,
                   help="elman: add y_t = W_hy h_t + b_y")
    b.add_argument("--peepholes", action="store_true", default=None, help="lstm: ONNX peepholes")
    b.add_argument("--coupled", action="store_true", default=None,
                   help="lstm: coupled input/forget gate, f = 1 - i")
    b.add_argument("--projection", action="store_true", default=None,
                   help="lstm: projection h = W_hr (o * tanh c) (PyTorch proj_size)")
    b.add_argument("--clip", type=float, help="lstm: clip activation inputs to [-CLIP, CLIP]")
    b.add_argument("--reset", choices=["after", "before"],
                   help="gru: reset gate after (PyTorch) or before (paper, ONNX default) the matmul")
    b.add_argument("--pooling", choices=["f", "fo"], help="qrnn: f- or fo-pooling (default fo)")
    b.add_argument("--eps", type=float, help="lnlstm: layer-norm eps (default 1e-5, torch's); "
                   "mlstm: the denominator's eps (default 1e-6)")
    b.add_argument("--decay", choices=["key", "head"],
                   help="gla, gated_deltanet: log-decay per key row or one per head")
    b.add_argument("--qk-l2norm", dest="qk_l2norm", action="store_true", default=None,
                   help="deltanet, gated_deltanet: l2-normalise q and k inside the cell")
    b.add_argument("--scale", type=float,
                   help="linear_attention, gla, deltanet, gated_deltanet: o = scale S^T q "
                        "(default 1/sqrt(d_k))")


def _split(s):
    return tuple(a.strip() for a in (s or "").split(",") if a.strip())


def cells_from_args(args, *, many=False):
    """The cell(s) the arguments name."""
    names = args.cell if many else ([args.cell] if args.cell else [])
    if args.define and names:
        raise UsageError("give either a built-in CELL or --define, not both")
    if args.define:
        dims = []
        for pair in _split(args.dims):
            a, sep, b = pair.partition("=")
            if not sep or not a.strip() or not b.strip():
                raise UsageError(f"--dims takes NAME=NAME pairs, got {pair!r}")
            dims.append((a.strip(), b.strip()))
        return [parse_cell(args.define, inputs=_split(args.input),
                           states=_split(args.state) if args.state else None,
                           readouts=_split(args.readouts), dims=dims, name=args.name,
                           scalars=_split(getattr(args, "scalars", "")),
                           matrices=_split(getattr(args, "matrices", "")))]
    if not names:
        if many:
            return []
        raise UsageError(f"name a CELL ({NAMES}) or give --define")
    cells = []
    for name in names:
        key = name.lower()
        if key not in BUILTINS:
            raise UsageError(f"unknown cell {name!r}; built-in cells: {NAMES} "
                             "(or --define TEXT)")
        kind = "elman" if key == "rnn" else key
        opts = {}
        for dest, (applies, kw) in CELL_OPTIONS.items():
            val = getattr(args, dest, None)
            if val is None:
                continue
            if kind not in applies:
                raise UsageError(f"--{dest.replace('_', '-')} does not apply to {name} "
                                 f"(it is an option of {', '.join(sorted(applies))})")
            opts[kw] = val
        cells.append(builtin(kind, **opts))
    return cells


# --- commands ---------------------------------------------------------------------------------
def cmd_cells(args):
    from rnnsym.cells import elman, gru, indrnn, lnlstm, lstm, mingru, minlstm, qrnn, sru
    print("Built-in cells (rnnsym show CELL, rnnsym shapes CELL):\n")
    for title, cell, opts in (
            ("elman (alias rnn)", elman(), "--activation tanh|relu|sigmoid|identity, --with-readout"),
            ("lstm", lstm(), "--peepholes, --coupled, --projection, --clip C"),
            ("gru", gru(), "--reset after|before"),
            ("mingru", mingru(), "none (Feng et al. 2024, sequential mode)"),
            ("minlstm", minlstm(), "none (Feng et al. 2024, sequential mode)"),
            ("indrnn", indrnn(), "--activation relu|tanh|sigmoid|identity (Li et al. 2018)"),
            ("sru", sru(), "none (Lei et al. 2018; d_in = d_h)"),
            ("qrnn", qrnn(), "--pooling f|fo (Bradbury et al. 2017, window 2)"),
            ("lnlstm", lnlstm(), "--eps E (PyTorch custom_lstms.py LayerNormLSTMCell)"),
            *((n, builtin(n), o) for n, o in (
                ("linear_attention", "--scale S (ONNX LinearAttention linear)"),
                ("gla", "--decay key|head, --scale S (ONNX gated; GLA, RWKV-6 / RetNet, Mamba-2)"),
                ("deltanet", "--qk-l2norm, --scale S (ONNX delta)"),
                ("gated_deltanet", "--decay head|key, --qk-l2norm, --scale S (ONNX gated_delta)"),
                ("mamba", "none (Mamba-1 selective scan, one block of channels)"),
                ("mamba2", "none (Mamba-2 SSD, one head)"),
                ("mlstm", "--eps E (xLSTM mLSTM, stabilised)")))):
        print(f"{title}: {cell.title}\n  options: {opts}")
        print("\n".join("  " + line for line in cell.text().splitlines()))
        print()
    return 0


def cmd_show(args):
    cell = cells_from_args(args)[0]
    if args.backward:
        from rnnsym.codegen.matrix import backward_step_source, has_matrix_state
        if has_matrix_state(cell):          # the generated reverse sweep, one line per operation
            if args.latex:
                raise UsageError(f"{cell.name} has a matrix state: its backward step is shown as "
                                 "the generated code (drop --latex)")
            print(backward_step_source(cell))
            return 0
        from rnnsym.gradients import backward_latex, backward_text
        print(backward_latex(cell) if args.latex else backward_text(cell))
        return 0
    print(cell.latex() if args.latex else cell.text())
    return 0


def cmd_shapes(args):
    from rnnsym.shapes import derive
    cell = cells_from_args(args)[0]
    table = derive(cell)
    print(f"{cell.title}\n")
    print(table.format())
    if table.undetermined:
        print("\nundetermined: " + "; ".join(f"{k}: {v}" for k, v in table.undetermined.items()),
              file=sys.stderr)
        return 1
    return 0


def _sizes(text):
    out = {}
    for pair in _split(text):
        k, sep, v = pair.partition("=")
        if not sep or not v.strip().isdigit():
            raise UsageError(f"--sizes takes NAME=INT pairs, e.g. d_h=2,d_in=1; got {pair!r}")
        if int(v) < 1:
            raise UsageError(f"--sizes: {k.strip()} must be at least 1, got {int(v)}")
        out[k.strip()] = int(v)
    return out


def cmd_unroll(args):
    from rnnsym.unroll import unroll
    cell = cells_from_args(args)[0]
    if args.steps < 1:
        raise UsageError(f"--steps must be at least 1, got {args.steps}")
    result = unroll(cell, args.steps, form=args.form, sizes=_sizes(args.sizes) or None)
    print(result.text() if args.text else result.latex())
    return 0


def cmd_jacobian(args):
    from rnnsym.jacobian import chain_jacobian
    cell = cells_from_args(args)[0]
    if args.steps < 1:
        raise UsageError(f"--steps must be at least 1, got {args.steps}")
    result = chain_jacobian(cell, args.steps)
    print(result.text() if args.text else result.latex())
    return 0


def _floats(text, flag):
    try:
        return tuple(float(a) for a in _split(text))
    except ValueError:
        raise UsageError(f"{flag} takes comma-separated numbers, e.g. 0.9,1.1; got {text!r}") from None


def _fills(text):
    out = {}
    for pair in _split(text):
        k, sep, v = pair.partition("=")
        try:
            out[k.strip()] = float(v)
        except ValueError:
            sep = ""
        if not sep or not k.strip():
            raise UsageError(f"--set takes NAME=NUMBER pairs, e.g. b_xf=1; got {pair!r}")
    return out


def _folder(path, what):
    """Raise a UsageError unless ``path`` is an existing folder."""
    if not os.path.isdir(path):
        raise UsageError(f"{what}: {path} is a file, not a folder" if os.path.exists(path)
                         else f"{what}: no such folder {path}")


def _writable_file(path, flag):
    """Raise a UsageError unless ``path`` can be written (tried by opening it for appending;
    a file that did not exist is removed again)."""
    parent = os.path.dirname(path) or "."
    _folder(parent, f"{flag} {path}")
    existed = os.path.exists(path)
    try:
        with open(path, "ab"):
            pass
    except OSError as e:
        raise UsageError(f"{flag} {path}: cannot write there ({e.strerror})") from None
    if not existed:
        os.remove(path)


def _module_name(name):
    """``--name``: the generated module's name, a Python identifier that is not a keyword."""
    import keyword
    if not name.isidentifier() or keyword.iskeyword(name):
        raise UsageError(f"--name must be a Python identifier that is not a keyword (the module "
                         f"name, NAME.py inside --out), got {name!r}")
    return name


def cmd_gradients(args):
    from rnnsym import vanishing
    cells = cells_from_args(args, many=True)
    if not cells:
        raise UsageError("name a CELL (elman, lstm, gru; several for one picture) or give --define")
    if args.steps < 1:
        raise UsageError(f"--steps must be at least 1, got {args.steps}")
    if args.every is not None and args.every < 1:
        raise UsageError(f"--every must be at least 1, got {args.every}")
    radii = _floats(args.radius, "--radius") if args.radius is not None else None
    if args.weights is None and not radii:
        radii = (1.0,)
    if args.plot and not args.plot.lower().endswith((".png", ".svg")):
        raise UsageError(f"--plot: the file must end in .png or .svg, got {args.plot}")
    if args.plot:
        _writable_file(args.plot, "--plot")
    result = vanishing.curves(cells, args.steps, radii=radii or (), sizes=_sizes(args.sizes),
                              seed=args.seed, weights=args.weights, fill=_fills(args.set))
    print(vanishing.table(result, every=args.every))
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print(f"rnnsym gradients: --plot needs matplotlib (pip install 'rnnsym[plot]'); "
                  f"{args.plot} not written, the table above has the numbers", file=sys.stderr)
            return 1
        vanishing.plot(result, args.plot)
        print(f"wrote {args.plot}")
    return 0


def _define_command(args) -> str:
    """The `rnnsym generate --define ...` line that writes this module again (one line: the
    equations joined by '; ')."""
    import shlex
    text = "; ".join(line.strip() for line in args.define.splitlines() if line.strip())
    parts = ["rnnsym generate --define", shlex.quote(text), "--name", shlex.quote(args.name)]
    for flag, value, default in (("--input", args.input, "x"), ("--state", args.state, None),
                                 ("--readout", args.readouts, ""), ("--dims", args.dims, "")):
        if value and value != default:
            parts += [flag, shlex.quote(value)]
    return " ".join(parts + ["--out", shlex.quote(args.out)])


def cmd_generate(args):
    from rnnsym.codegen.files import diff, expected_files, write
    from rnnsym.codegen.generator import render
    if not args.out:
        raise UsageError("--out: expected a folder, got ''")
    cells = cells_from_args(args, many=True)
    if cells:
        from rnnsym.codegen.generator import module_name
        name = _module_name(args.name) if args.define else None
        regen = _define_command(args) if args.define else f"rnnsym generate --out {args.out}"
        files = {f"{name or module_name(c)}.py": render(c, regen=regen) for c in cells}
    else:
        files = expected_files()
    if args.check:
        if cells:
            raise UsageError("--check compares the whole generated/ folder: give no CELL")
        d = diff(args.out, files)
        if d:
            sys.stdout.write(d)
            return 1
        print(f"{args.out}: {len(files)} files in sync with the generator")
        return 0
    _folder(os.path.dirname(os.path.normpath(args.out)) or ".", f"--out {args.out}")
    try:
        changed = write(args.out, files)
    except OSError as e:
        raise UsageError(f"--out {args.out}: cannot write {e.filename or 'there'} "
                         f"({e.strerror or e})") from None
    print(f"{args.out}: {len(files)} files, {len(changed)} written"
          + (f" ({', '.join(changed)})" if changed else ""))
    return 0


def cmd_bench(args):
    from rnnsym import bench
    return bench.main(args)


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="rnnsym",
        description="Symbolic RNN/LSTM/GRU cells: shapes, unrolled LaTeX, generated NumPy "
                    "reference code, and a conformance checker.")
    from rnnsym import __version__
    p.add_argument("--version", action="version", version=f"rnnsym {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    s = sub.add_parser("cells", help="list the built-in cells and their options")
    s.set_defaults(func=cmd_cells)

    s = sub.add_parser("show", help="print a cell's equations (text or --latex)")
    add_cell_arguments(s)
    s.add_argument("--latex", action="store_true", help="LaTeX instead of text")
    s.add_argument("--backward", action="store_true",
                   help="the backward step (BPTT): the gradients flowing into the previous states, "
                        "the input and every parameter")
    s.set_defaults(func=cmd_show)

    s = sub.add_parser("shapes", help="derive the shape of every parameter")
    add_cell_arguments(s)
    s.set_defaults(func=cmd_shapes)

    s = sub.add_parser("unroll", help="unrolled expressions for N steps")
    add_cell_arguments(s)
    s.add_argument("--steps", type=int, required=True, metavar="N")
    s.add_argument("--form", choices=["nested", "chain", "elementwise"], default="chain")
    fmt = s.add_mutually_exclusive_group()
    fmt.add_argument("--latex", action="store_true", help="LaTeX (the default)")
    fmt.add_argument("--text", action="store_true", help="plain text")
    s.add_argument("--sizes", default="", help="elementwise form: sizes, e.g. d_h=2,d_in=1")
    s.set_defaults(func=cmd_unroll)

    s = sub.add_parser("jacobian", help="∂h_t/∂h_{t-1} and the chain ∂h_N/∂h_0")
    add_cell_arguments(s)
    s.add_argument("--steps", type=int, required=True, metavar="N")
    fmt = s.add_mutually_exclusive_group()
    fmt.add_argument("--latex", action="store_true", help="LaTeX (the default)")
    fmt.add_argument("--text", action="store_true", help="plain text")
    s.set_defaults(func=cmd_jacobian)

    s = sub.add_parser("gradients", aliases=["vanishing"], help="‖∂h_t/∂h_0‖ for t = 1..N: vanishing and exploding "
                                         "gradients, as a table and a plot")
    add_cell_arguments(s, many=True)
    s.add_argument("--steps", type=int, required=True, metavar="N")
    s.add_argument("--radius", metavar="R1,R2,...",
                   help="spectral radii of the recurrent matrices (default: 1; with --weights: "
                        "the loaded weights as they are)")
    s.add_argument("--weights", metavar="FILE.npz",
                   help="parameters in rnnsym's canonical names instead of random ones")
    s.add_argument("--sizes", default="", help="sizes, e.g. d_h=32,d_in=16 (default: d_h=32, "
                                               "16 for the others)")
    s.add_argument("--set", default="", metavar="NAME=V,...",
                   help="set every entry of a parameter, e.g. b_xf=1 (LSTM forget bias)")
    s.add_argument("--seed", type=int, default=0, help="seed of the random weights and input")
    s.add_argument("--every", type=int, default=None, metavar="K",
                   help="table: every K-th step (default: about 20 rows)")
    s.add_argument("--plot", metavar="FILE", help="draw the curves into FILE.png or FILE.svg "
                                                  "(needs matplotlib: pip install 'rnnsym[plot]')")
    s.set_defaults(func=cmd_gradients)

    s = sub.add_parser("generate", help="write NumPy forward modules (default: every built-in "
                                        "variant into generated/)")
    add_cell_arguments(s, many=True)
    s.add_argument("--out", default="generated", help="output folder (default: generated)")
    s.add_argument("--check", action="store_true",
                   help="exit 1 with a unified diff if the folder is out of date")
    s.set_defaults(func=cmd_generate)

    s = sub.add_parser("bench", help="time generated code against hand-written NumPy and torch")
    from rnnsym import bench
    bench.add_arguments(s)
    s.set_defaults(func=cmd_bench)

    # the checker (and hypothesis, which it needs) is imported only when `check` runs; its own
    # parser (rnnsym.conformance.cli) reads the rest of the command line, --help included
    s = sub.add_parser("check", add_help=False,
                       help="property-test an RNN/LSTM/GRU implementation against rnnsym "
                            "(torch, keras, onnxruntime, onnx-reference, your code); see "
                            "rnnsym check --help")
    s.add_argument("rest", nargs=argparse.REMAINDER)
    return p


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    if argv[:1] == ["check"]:        # its own parser reads everything after `check`
        args = argparse.Namespace(command="check", rest=argv[1:])
    else:
        args = parser.parse_args(argv)
    try:
        if args.command == "check":
            try:
                from rnnsym.conformance.cli import main as check_main
            except ImportError as exc:      # hypothesis is missing: the `check` extra
                raise UsageError(f"rnnsym check needs hypothesis ({exc}): "
                                 "pip install 'rnnsym[check]'") from None
            return check_main(args.rest)
        return args.func(args)
    except (UsageError, ValueError, KeyError) as e:
        msg = e.args[0] if e.args else str(e)
        print(f"rnnsym {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except BrokenPipeError:          # `rnnsym ... | head`: the reader left; say nothing more
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except RecursionError:
        hint = "; use --form chain" if getattr(args, "form", "chain") != "chain" else \
            ": split the equations into shorter ones"
        print(f"rnnsym {args.command}: error: expression too deep for Python's recursion "
              f"limit{hint}", file=sys.stderr)
        return 2
    except OSError as e:             # a file or folder that cannot be read or written
        where = f" {e.filename}" if e.filename else ""
        print(f"rnnsym {args.command}: error: cannot use{where}: {e.strerror or e}",
              file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
