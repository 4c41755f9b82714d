"""``rnnsym check TARGET --cell CELL [...]``: the command-line face of rnnsym.check.

Exit codes: 0 conforms on everything the target supports (unsupported features
listed); 1 counterexample found (report on stdout), or with --strict an unsupported
feature; 2 usage error (unknown target, import failure, a class that doesn't fit the
contract, bad option): one line on stderr, no traceback; 3 nothing could be checked
(e.g. the requested dtype is unsupported).

Wire into a top-level parser with ``add_parser(subparsers)``; ``run(args)`` returns
the exit code. ``python -m rnnsym.check.cli ...`` runs it stand-alone.
"""
from __future__ import annotations

import argparse
import sys

from rnnsym.frameworks import UsageError
from rnnsym.frameworks.registry import usage_names


def _layers(text: str) -> tuple:
    try:
        values = tuple(int(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _timeout(text: str):
    if text.lower() in ("none", "0", "off"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds or none, got {text!r}")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


class _OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line, exit status 2 (as rnnsym.cli.OneLineParser)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _variant_keys() -> str:
    from rnnsym.check.anycell import variant_help
    return variant_help() + " (torch/keras/flax/onnx targets: elman activation, gru reset and " \
        "hidden_bias, lstm projection)"


def configure(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``check`` arguments to ``parser``."""
    parser.add_argument("target", help=usage_names(" | ") + " (rnnsym.frameworks.registry)")
    parser.add_argument("--cell", default=None,
                        help="elman|rnn, lstm, gru (every target kind), or any built-in: mingru, "
                             "minlstm, indrnn, sru, qrnn, lnlstm (functions and torch modules "
                             "following the cell API; docs/checking-any-cell.md); "
                             "linear_attention, causal_conv: ONNX targets only (opset 27)")
    parser.add_argument("--define", default=None, metavar="TEXT",
                        help='check a cell of your own, e.g. "h = tanh(W @ x + U @ h + b)"')
    parser.add_argument("--define-file", default=None, metavar="FILE",
                        help="--define, read from FILE")
    parser.add_argument("--input", dest="inputs", default="x",
                        help="with --define: the input's name (as rnnsym shapes)")
    parser.add_argument("--readout", dest="readouts", default="",
                        help="with --define: readout names, e.g. y")
    parser.add_argument("--dims", default="", help="with --define: equal dimensions, d_in=d_h")
    parser.add_argument("--param-map", default=None, metavar="MAP",
                        help="torch modules following the cell API: CELL_PARAM=MODULE_PARAM "
                             "pairs, e.g. W_x=weight_ih,W_h=weight_hh (NAME.T: stored "
                             "transposed)")
    parser.add_argument("--examples", type=int, default=None,
                        help="number of Hypothesis examples (default 500; sequence targets: "
                             "50 per property and path)")
    parser.add_argument("--seed", type=int, default=None, help="replay a run")
    parser.add_argument("--dtype", choices=["float32", "float64", "float16", "bfloat16"],
                        default=None,
                        help="default float32 for classes/frameworks, float64 for functions "
                             "(float16: linear_attention and causal_conv, and sequence targets; "
                             "bfloat16: sequence targets only)")
    parser.add_argument("--path", default=None, metavar="NAMES",
                        help="sequence targets: the paths checked, e.g. chunked,recurrent "
                             "(default all; docs/sequence-targets.md)")
    parser.add_argument("--property", dest="properties", action="append", default=None,
                        metavar="NAMES",
                        help="sequence targets: the properties checked (oracle, chunk_size, "
                             "split_carry, initial_state, decode, varlen, groups; default all); "
                             "repeatable")
    parser.add_argument("--rtol", type=float, default=None,
                        help="replace the principled tolerance by atol + rtol*|expected|")
    parser.add_argument("--atol", type=float, default=None)
    parser.add_argument("--layers", type=_layers, default=None,
                        help="num_layers values to explore, e.g. 1,3 (default all supported; "
                             "ONNX targets: stacked nodes, default 1)")
    parser.add_argument("--bidirectional", choices=["yes", "no", "both"], default="both")
    parser.add_argument("--variant", action="append", default=None,
                        help="math variant, e.g. reset_after=false, reset=before, "
                             "activation=relu, projection=true; repeatable. Keys per cell: "
                             + _variant_keys())
    parser.add_argument("--cell-api", action="store_true",
                        help="check RNNCell/LSTMCell/GRUCell (torch or a drop-in class)")
    parser.add_argument("--attributes", action="append", default=None,
                        help="ONNX targets: restrict the attribute space, e.g. layout=0, "
                             "activations=Tanh|Sigmoid, clip=none; repeatable")
    parser.add_argument("--without", action="append", default=None, metavar="FEATURES",
                        help="never explore these optional features, e.g. "
                             "packed,unbatched,bidirectional (features: lengths, unbatched, "
                             "batch_first, bidirectional, layers, projection, initial_state, "
                             "no_bias, NAME=VALUE of a variant); repeatable")
    parser.add_argument("--features", action="append", default=None,
                        help="explore only these optional features (none: core input only)")
    parser.add_argument("--no-lengths", action="store_true",
                        help="no variable-length batches (same as --without lengths)")
    parser.add_argument("--strict", action="store_true",
                        help="an unsupported feature is a failure (exit 1)")
    parser.add_argument("--timeout", type=_timeout, default=30.0, metavar="SECONDS",
                        help="time limit of one call of the target (default 30; none: no "
                             "limit; a call hanging in C code kills the target's worker "
                             "process, except with --in-process)")
    parser.add_argument("--gradients", action="store_true",
                        help="check the gradients (parameters, input, initial state) against "
                             "the generated backward, under a random upstream gradient "
                             "(torch modules and drop-ins: stacks, both directions, packed "
                             "sequences; Keras on torch, tensorflow or jax: both directions "
                             "and masks; Flax: both directions and seq_lengths; "
                             "torch cells and functions with a backward: one layer, one "
                             "direction, fixed lengths)")
    parser.add_argument("--backward", default=None, metavar="NAME",
                        help="with --gradients on a function FILE.py:NAME: its backward, by "
                             "name in that file (default: backward there, else the "
                             "function's attribute NAME.backward)")
    parser.add_argument("--in-process", action="store_true",
                        help="run the target in rnnsym's own process (faster; by default it "
                             "runs in a worker process, so that sys.exit, a crash or a hang "
                             "in a C call inside it cannot end or stall the check)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress line on stderr (there is none unless stderr is a "
                             "terminal)")
    return parser


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``check`` on an ``argparse`` subparsers object; returns the parser."""
    parser = subparsers.add_parser(
        "check", help="property-test an RNN/LSTM/GRU implementation against rnnsym",
        description=__doc__.split("\n\n")[0])
    configure(parser)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run a check from parsed arguments and print the report; return the exit code."""
    from rnnsym.check import check

    without = ",".join(args.without or []) + (",lengths" if args.no_lengths else "")
    extra = {"without": without.strip(",") or None,
             "features": ",".join(args.features) if args.features is not None else None,
             "strict": args.strict, "timeout": args.timeout}
    if args.gradients:
        extra["gradients"] = True
    if args.backward is not None:
        extra["backward"] = args.backward
    if args.in_process:
        extra["in_process"] = True
    if args.path is not None:
        extra["path"] = args.path
    if args.properties is not None:
        extra["properties"] = ",".join(args.properties)
    for key in ("define", "define_file", "param_map"):
        if getattr(args, key, None) is not None:
            extra[key] = getattr(args, key)
    if args.define is not None or args.define_file is not None:
        extra.update(inputs=args.inputs, readouts=args.readouts, dims=args.dims)
    try:
        report = check(args.target, args.cell, examples=args.examples, seed=args.seed,
                       dtype=args.dtype, rtol=args.rtol, atol=args.atol, layers=args.layers,
                       bidirectional=args.bidirectional,
                       variant=",".join(args.variant) if args.variant else None,
                       cell_api=args.cell_api,
                       progress=not args.no_progress and sys.stderr.isatty(),
                       attributes=",".join(args.attributes) if args.attributes else None,
                       **extra)
    except UsageError as exc:
        print(f"rnnsym check: error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    print(report.format())
    return report.exit_code


def main(argv=None) -> int:
    parser = configure(_OneLineParser(prog="rnnsym check"))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:   # argparse already printed a one-line usage error (or --help)
        return int(exc.code or 0) and 2
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
