"""``rnnsym check TARGET --cell CELL [...]``: the command-line face of rnnsym.conformance.

Exit codes: 0 conforms on everything the target supports (unsupported features
listed); 1 counterexample found (report on stdout), or with --strict an unsupported
feature; 2 usage error (unknown target, import failure, a class that doesn't fit the
contract, bad option): one line on stderr, no traceback; 3 nothing could be checked
(e.g. the requested dtype is unsupported).

Wire into a top-level parser with ``add_parser(subparsers)``; ``run(args)`` returns
the exit code. ``python -m rnnsym.conformance.cli ...`` runs it stand-alone.
"""
from __future__ import annotations

import argparse
import sys

from rnnsym.check_options import CheckOptions, add_arguments
from rnnsym.frameworks import UsageError
from rnnsym.frameworks.registry import usage_names


class _OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line, exit status 2 (as rnnsym.cli.OneLineParser)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _variant_keys() -> str:
    from rnnsym.conformance.anycell import variant_help
    return variant_help() + " (torch/keras/flax/onnx targets: elman activation, gru reset and " \
        "hidden_bias, lstm projection)"


def configure(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``check`` arguments to ``parser``: the target, then one flag per option of
    :class:`rnnsym.CheckOptions` (where each is declared, with its help)."""
    parser.add_argument("target", help=usage_names(" | ") + " (rnnsym.frameworks.registry)")
    return add_arguments(parser, more_help={"variant": "Keys per cell: " + _variant_keys()})


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
    from rnnsym.conformance import check

    try:
        options = CheckOptions.from_cli(args, progress=sys.stderr.isatty())
        report = check(args.target, options=options)
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
