"""``rnnsym.CheckOptions``: every option of ``rnnsym check`` / ``rnnsym.check()``, declared once.

Each field of :class:`CheckOptions` is one option: its name (the keyword of ``rnnsym.check``),
type, default, command-line flag and help text are written in one place, its field below.
From that one declaration come

- the validation (``CheckOptions(...)`` raises a one-line :class:`~rnnsym.errors.UsageError`
  naming the option and the value; :class:`OptionTypeError`, also a ``TypeError``, for a value
  of the wrong type), run once, whoever builds the options (the CLI or a Python caller);
- ``rnnsym check``'s argparse arguments (:func:`add_arguments`, :meth:`CheckOptions.from_cli`);
- ``rnnsym.check()``'s keyword arguments (:func:`keyword_signature`, ``help(rnnsym.check)``);
- the replay line of a report (:meth:`CheckOptions.to_argv`, :meth:`CheckOptions.replay`).

What an option *means* for a given target (which ``--variant`` keys a cell has, which
``--attributes`` an ONNX op has, which features a harness lacks) is checked where the target is
known (``rnnsym.conformance.space``, ``rnnsym.conformance.anycell``, ``rnnsym.conformance.onnx``).

This module sits outside the ``rnnsym.conformance`` package and imports nothing but
``rnnsym.errors``, so that ``import rnnsym`` (the symbolic core: no hypothesis) can export it.
"""
from __future__ import annotations

import argparse
import inspect
import math
import numbers
import random
import shlex
from dataclasses import dataclass, field, fields, replace
from typing import Any, Callable, Optional, Union

from rnnsym.errors import UsageError

__all__ = ["CheckOptions", "OptionTypeError", "add_arguments", "check_doc", "keyword_signature"]


class OptionTypeError(UsageError, TypeError):
    """An option of the wrong type (``examples="ten"``): a UsageError (CLI exit 2) that is also
    a TypeError for Python callers."""


# --- what the declarations are made of ---------------------------------------------------
def _integer(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _real(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _bad(flag: str, expected: str, value, wrong_type: bool = False):
    kind = OptionTypeError if wrong_type else UsageError
    shown = f"{value!r} ({type(value).__name__})" if wrong_type else repr(value)
    return kind(f"{flag}: expected {expected}, got {shown}")


def _cli_layers(text: str) -> tuple:
    try:
        values = tuple(int(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _cli_timeout(text: str):
    if text.lower() in ("none", "0", "off"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds or none, got {text!r}")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _v_bool(flag, v):
    if isinstance(v, bool) or type(v).__name__ == "bool_" or (_integer(v) and v in (0, 1)):
        return bool(v)
    raise _bad(flag, "True or False", v, wrong_type=True)


def _v_text(flag, v):
    if v is None or isinstance(v, str):
        return v
    raise _bad(flag, "a string", v, wrong_type=True)


def _v_str(flag, v):
    if isinstance(v, str):
        return v
    raise _bad(flag, "a string", v, wrong_type=True)


def _at_least(low: int, optional: bool = False) -> Callable:
    """The check of an integer option >= ``low`` (``optional``: or None)."""
    def check(flag, v):
        if optional and v is None:
            return None
        if not _integer(v):
            raise _bad(flag, f"an integer >= {low}", v, wrong_type=True)
        if v < low:
            raise _bad(flag, f"an integer >= {low}", v)
        return int(v)
    return check


def _v_seed(flag, v):
    if v is None:
        return None
    if not _integer(v):
        raise _bad(flag, "an integer or None", v, wrong_type=True)
    return int(v)


DTYPES = ("float32", "float64", "float16", "bfloat16")
#: examples when none are asked for (sequence targets: rnnsym.conformance.sequence.DEFAULT_EXAMPLES
#: per property and path)
DEFAULT_EXAMPLES = 500


def _v_dtype(flag, v):
    if v is None:
        return None
    if not isinstance(v, str):
        raise _bad(flag, "float32, float64, float16 or bfloat16 (a string)", v, wrong_type=True)
    if v not in DTYPES:
        raise _bad(flag, "float32, float64, float16 or bfloat16", v)
    return v


def _real_or_none(expected: str, ok: Callable[[float], bool]) -> Callable:
    """The check of a real-number option (or None) whose value must satisfy ``ok``."""
    def check(flag, v):
        if v is None:
            return None
        if not _real(v):
            raise _bad(flag, expected, v, wrong_type=True)
        if not ok(v):
            raise _bad(flag, expected, v)
        return float(v)
    return check


_v_tolerance = _real_or_none("a finite number >= 0", lambda v: math.isfinite(v) and v >= 0)
_v_timeout = _real_or_none("a positive number of seconds or None", lambda v: v > 0)


def _v_layers(flag, v):
    if v is None:
        return None
    values = (v,) if _integer(v) else v
    try:
        values = tuple(values)
    except TypeError:
        raise _bad(flag, "a positive integer or a sequence of them", v, wrong_type=True) from None
    if not all(_integer(n) for n in values):
        raise _bad(flag, "positive integers", v, wrong_type=True)
    if not values or min(values) < 1:
        raise _bad(flag, "positive integers", v)
    return tuple(dict.fromkeys(int(n) for n in values))


BIDIRECTIONAL = {"yes": (True,), "no": (False,), "both": (False, True)}


def _v_bidirectional(flag, v):
    key = {True: "yes", False: "no", None: "both"}.get(v, v) if not isinstance(v, str) else \
        v.lower()
    if isinstance(v, tuple):        # the values themselves: (True,), (False,), (False, True)
        key = {values: name for name, values in BIDIRECTIONAL.items()}.get(tuple(sorted(v)), v)
    if key not in BIDIRECTIONAL:
        raise _bad(flag, "yes, no or both", v)
    return key


def _v_pairs(flag, v):
    """NAME=VALUE pairs: None, a string "a=1,b=2", a sequence of such strings (joined), or a
    dict (kept: its values may be other than strings)."""
    if v is None or isinstance(v, dict):
        return v or None
    if isinstance(v, str):
        return v.strip() or None
    if isinstance(v, (list, tuple)) and all(isinstance(w, str) for w in v):
        return ",".join(w.strip() for w in v if w.strip()) or None
    raise _bad(flag, "NAME=VALUE pairs (a string, a list of strings or a dict)", v,
               wrong_type=True)


def _v_names(flag, v, *, none=None):
    """Feature names: "a,b", a sequence of such strings -> a tuple of names."""
    if v is None:
        return none
    words = [v] if isinstance(v, str) else v
    try:
        words = list(words)
    except TypeError:
        raise _bad(flag, "feature names (a string or a list of strings)", v,
                   wrong_type=True) from None
    if not all(isinstance(w, str) for w in words):
        raise _bad(flag, "feature names (a string or a list of strings)", v, wrong_type=True)
    # "none": no feature (``--features none``: core input only)
    return tuple(n.strip() for w in words for n in w.split(",")
                 if n.strip() and n.strip().lower() != "none")


def _pairs_text(v) -> str:
    if isinstance(v, dict):
        return ",".join(f"{k}={str(x).lower() if isinstance(x, bool) else x}"
                        for k, x in v.items())
    return v


def _one_line(text: str) -> str:
    """A cell's text on one line (the parser reads ``;`` as a line break)."""
    return "; ".join(line.strip() for line in text.strip().splitlines() if line.strip())


def option(default, flag: Optional[str], help: str, *, check: Callable, cli: str = "value",
           type: Optional[Callable] = None, choices=None, metavar=None,
           argv: Optional[Callable] = None, replay: bool = True):
    """One option's declaration, as a dataclass field.

    flag     its command-line flag (``--examples``)
    check    ``check(flag, value) -> value``: validates and normalizes any caller's value
    cli      how argparse reads it: "value" (``type``/``choices``), "switch" (store_true),
             "append" (repeatable, joined with commas)
    argv     ``argv(value) -> [tokens]`` for the replay line (default: ``[flag, str(value)]``,
             ``[flag]`` for a switch); an option equal to its default is left out
    replay   False: never in the replay line (it does not change what is checked)
    """
    meta = dict(flag=flag, help=help, check=check, cli=cli, type=type, choices=choices,
                metavar=metavar, argv=argv, replay=replay)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class CheckOptions:
    """The options of one check (``rnnsym.check(target, **options)``, ``rnnsym check TARGET
    [flags]``), validated when built. Build one with keywords (``CheckOptions(cell="gru",
    examples=100)``), change one with :meth:`replace`; ``to_argv()`` gives the flags that replay
    it. Each field below is the one declaration of its option."""

    cell: Optional[str] = option(
        None, "--cell", check=_v_text,
        help="elman|rnn, lstm, gru (every target kind), or any built-in: mingru, minlstm, "
             "indrnn, sru, qrnn, lnlstm (functions and torch modules following the cell API; "
             "docs/checking-any-cell.md); linear_attention, causal_conv: ONNX targets only "
             "(opset 27)")
    define: Optional[str] = option(
        None, "--define", check=_v_text, metavar="TEXT",
        argv=lambda v: ["--define", _one_line(v)],
        help='check a cell of your own, e.g. "h = tanh(W @ x + U @ h + b)"')
    define_file: Optional[str] = option(
        None, "--define-file", check=_v_text, metavar="FILE", help="--define, read from FILE")
    inputs: str = option("x", "--input", check=_v_str,
                         help="with --define: the input's name (as rnnsym shapes)")
    readouts: str = option("", "--readout", check=_v_str,
                           help="with --define: readout names, e.g. y")
    dims: str = option("", "--dims", check=_v_str,
                       help="with --define: equal dimensions, d_in=d_h")
    param_map: Union[str, dict, None] = option(
        None, "--param-map", check=_v_pairs, metavar="MAP",
        argv=lambda v: ["--param-map", _pairs_text(v)],
        help="torch modules following the cell API: CELL_PARAM=MODULE_PARAM pairs, e.g. "
             "W_x=weight_ih,W_h=weight_hh (NAME.T: stored transposed)")
    examples: Optional[int] = option(
        None, "--examples", check=_at_least(1, optional=True), type=int,
        help="number of Hypothesis examples (default 500; sequence targets: 50 per property "
             "and path)")
    seed: Optional[int] = option(None, "--seed", check=_v_seed, type=int,
                                 help="replay a run (default: a random seed, in the report)")
    dtype: Optional[str] = option(
        None, "--dtype", check=_v_dtype, choices=DTYPES,
        help="default float32 for classes/frameworks, float64 for functions (float16: "
             "linear_attention, causal_conv and sequence targets; bfloat16: sequence targets)")
    rtol: Optional[float] = option(
        None, "--rtol", check=_v_tolerance, type=float, argv=lambda v: ["--rtol", repr(v)],
        help="replace the principled tolerance (rnnsym.conformance.tolerance) by atol + "
             "rtol*|expected|")
    atol: Optional[float] = option(None, "--atol", check=_v_tolerance, type=float,
                                   argv=lambda v: ["--atol", repr(v)], help="see --rtol")
    layers: Optional[tuple] = option(
        None, "--layers", check=_v_layers, type=_cli_layers,
        argv=lambda v: ["--layers", ",".join(map(str, v))],
        help="num_layers values to explore, e.g. 1,3 (default all supported; ONNX targets: "
             "stacked nodes, default 1)")
    bidirectional: str = option("both", "--bidirectional", check=_v_bidirectional,
                                choices=tuple(BIDIRECTIONAL),
                                help="directions to explore (default both)")
    variant: Union[str, dict, None] = option(
        None, "--variant", check=_v_pairs, cli="append",
        argv=lambda v: ["--variant", _pairs_text(v)],
        help="math variant, e.g. reset_after=false, reset=before, activation=relu, "
             "projection=true; ONNX targets: a reading of an open point of the spec "
             "(clip_before_h=false); repeatable")
    cell_api: bool = option(False, "--cell-api", check=_v_bool, cli="switch",
                            help="check RNNCell/LSTMCell/GRUCell (torch or a drop-in class)")
    attributes: Union[str, dict, None] = option(
        None, "--attributes", check=_v_pairs, cli="append",
        argv=lambda v: ["--attributes", _pairs_text(v)],
        help="ONNX targets: restrict the attribute space, e.g. layout=0, "
             "activations=Tanh|Sigmoid, clip=none; repeatable")
    without: tuple = option(
        (), "--without", check=lambda f, v: _v_names(f, v, none=()), cli="append",
        metavar="FEATURES", argv=lambda v: ["--without", ",".join(v)],
        help="never explore these optional features, e.g. packed,unbatched,bidirectional "
             "(features: lengths, unbatched, batch_first, bidirectional, layers, projection, "
             "initial_state, no_bias, NAME=VALUE of a variant); repeatable")
    features: Optional[tuple] = option(
        None, "--features", check=_v_names, cli="append",
        argv=lambda v: ["--features", ",".join(v) or "none"],
        help="explore only these optional features (none: core input only); repeatable")
    strict: bool = option(False, "--strict", check=_v_bool, cli="switch",
                          help="an unsupported feature is a failure (exit 1)")
    timeout: Optional[float] = option(
        30.0, "--timeout", check=_v_timeout, type=_cli_timeout, metavar="SECONDS",
        argv=lambda v: ["--timeout", "none" if v is None else f"{v:g}"],
        help="time limit of one call of the target (default 30; none: no limit; a call "
             "hanging in C code kills the target's worker process, except with --in-process)")
    gradients: bool = option(
        False, "--gradients", check=_v_bool, cli="switch",
        help="check the gradients (parameters, input, initial state) against the generated "
             "backward, under a random upstream gradient (torch modules and drop-ins: stacks, "
             "both directions, packed sequences; Keras on torch, tensorflow or jax: both "
             "directions and masks; Flax: both directions and seq_lengths; torch cells and "
             "functions with a backward: one layer, one direction, fixed lengths)")
    backward: Optional[str] = option(
        None, "--backward", check=_v_text, metavar="NAME",
        help="with --gradients on a function FILE.py:NAME: its backward, by name in that file "
             "(default: backward there, else the function's attribute NAME.backward)")
    max_size: int = option(6, "--max-size", check=_at_least(2), type=int,
                           help="largest size drawn for T, B and each dimension (default 6)")
    in_process: bool = option(
        False, "--in-process", check=_v_bool, cli="switch",
        help="run the target in rnnsym's own process (faster; by default it runs in a worker "
             "process, so that sys.exit, a crash or a hang in a C call inside it cannot end or "
             "stall the check)")
    path: Optional[tuple] = option(
        None, "--path", check=_v_names, metavar="NAMES",
        argv=lambda v: ["--path", ",".join(v)],
        help="sequence targets: the paths checked, e.g. chunked,recurrent (default all; "
             "docs/sequence-targets.md)")
    properties: Optional[tuple] = option(
        None, "--property", check=_v_names, cli="append", metavar="NAMES",
        argv=lambda v: ["--property", ",".join(v)],
        help="sequence targets: the properties checked (oracle, chunk_size, split_carry, "
             "initial_state, decode, varlen, groups; default all); repeatable")
    progress: bool = option(False, None, check=_v_bool, replay=False,
                            help="write a progress line to stderr (the CLI: when stderr is a "
                                 "terminal, unless --no-progress)")

    def __post_init__(self):
        for f in fields(self):
            flag = f.metadata["flag"] or f.name
            object.__setattr__(self, f.name, f.metadata["check"](flag, getattr(self, f.name)))

    # --- building --------------------------------------------------------------------------
    @classmethod
    def of(cls, options: Optional["CheckOptions"] = None, **kwargs) -> "CheckOptions":
        """``options`` (or the defaults) with ``kwargs`` changed; an unknown keyword is an
        :class:`OptionTypeError` naming it and the known ones."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - names)
        if unknown:
            raise OptionTypeError(f"{unknown[0]}: not an option of rnnsym.check (options: "
                                  f"{', '.join(f.name for f in fields(cls))})")
        if options is None:
            return cls(**kwargs)
        if not isinstance(options, cls):
            raise _bad("options", "a CheckOptions", options, wrong_type=True)
        return replace(options, **kwargs) if kwargs else options

    def replace(self, **changes) -> "CheckOptions":
        """A copy with ``changes`` (validated again)."""
        return CheckOptions.of(self, **changes)

    def with_seed(self) -> "CheckOptions":
        """These options with a seed: the given one, else a random one (shown in the report)."""
        return self if self.seed is not None else replace(self, seed=random.randrange(2**32))

    @classmethod
    def from_cli(cls, args: argparse.Namespace, *, progress: bool = False) -> "CheckOptions":
        """The options of parsed ``rnnsym check`` arguments (:func:`add_arguments`);
        ``--no-lengths`` joins ``--without``, ``--no-progress`` turns off ``progress``."""
        values = {}
        for f in fields(cls):
            if f.metadata["flag"] is None:
                continue
            value = getattr(args, f.name)
            if f.metadata["cli"] == "append" and value is not None:
                value = ",".join(value)
            values[f.name] = value
        if getattr(args, "no_lengths", False):
            values["without"] = ",".join(filter(None, [values["without"] or "", "lengths"]))
        return cls(progress=progress and not getattr(args, "no_progress", False), **values)

    # --- reading ---------------------------------------------------------------------------
    @property
    def directions(self) -> tuple:
        """``bidirectional`` as the values to explore: (True,), (False,) or (False, True)."""
        return BIDIRECTIONAL[self.bidirectional]

    @property
    def explicit_tolerance(self) -> bool:
        return self.rtol is not None or self.atol is not None

    @property
    def tolerance_text(self) -> str:
        """How the report names the tolerance in use."""
        return ("explicit rtol/atol" if self.explicit_tolerance
                else "backward-error estimate, see rnnsym.conformance.tolerance")

    def to_argv(self) -> list:
        """The flags that replay this check (after ``rnnsym check TARGET``), in declaration
        order: every option that differs from its default, and always ``--examples`` and
        ``--seed`` (and ``--dtype`` once known)."""
        argv = []
        always = {"examples", "seed", "dtype"}
        for f in fields(self):
            meta, value = f.metadata, getattr(self, f.name)
            if not meta["replay"] or meta["flag"] is None:
                continue
            if value == f.default and not (f.name in always and value is not None):
                continue
            if meta["argv"] is not None:
                argv += meta["argv"](value)
            elif meta["cli"] == "switch":
                argv.append(meta["flag"])
            else:
                argv += [meta["flag"], str(value)]
        return argv

    def replay(self, target: str, environment: str = "") -> str:
        """The command line that replays this check on ``target`` (a shell line: arguments
        quoted where needed), after an ``environment`` prefix ("KERAS_BACKEND=jax ")."""
        return environment + " ".join(["rnnsym", "check", target]
                                      + [shlex.quote(a) for a in self.to_argv()])


OPTION_NAMES = tuple(f.name for f in fields(CheckOptions))


def add_arguments(parser: argparse.ArgumentParser,
                  more_help: Optional[dict] = None) -> argparse.ArgumentParser:
    """``rnnsym check``'s flags, one per declared option (in declaration order), plus the two
    command-line conveniences ``--no-lengths`` and ``--no-progress``; ``more_help``: option
    name -> a sentence added to its help (what only a higher layer knows)."""
    for f in fields(CheckOptions):
        meta = f.metadata
        if meta["flag"] is None:
            continue
        extra = (more_help or {}).get(f.name)
        kwargs: dict[str, Any] = {"dest": f.name,
                                  "help": meta["help"] + (f". {extra}" if extra else "")}
        if meta["cli"] == "switch":
            kwargs["action"] = "store_true"
        else:
            kwargs["default"] = None if meta["cli"] == "append" else f.default
            if meta["cli"] == "append":
                kwargs["action"] = "append"
            for key in ("type", "choices", "metavar"):
                if meta[key] is not None:
                    kwargs[key] = meta[key]
        parser.add_argument(meta["flag"], **kwargs)
    parser.add_argument("--no-lengths", action="store_true",
                        help="no variable-length batches (same as --without lengths)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress line on stderr (there is none unless stderr is a "
                             "terminal)")
    return parser


def keyword_signature(fn: Callable) -> inspect.Signature:
    """``fn(target, cell=None, *, options=None, <every option but cell>)``: the signature
    ``rnnsym.check`` shows (``help()``, ``inspect``), from the declarations."""
    params = [inspect.Parameter("target", inspect.Parameter.POSITIONAL_OR_KEYWORD),
              inspect.Parameter("cell", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None),
              inspect.Parameter("options", inspect.Parameter.KEYWORD_ONLY, default=None)]
    params += [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default)
               for f in fields(CheckOptions) if f.name != "cell"]
    return inspect.signature(fn).replace(parameters=params)


#: The docstring of ``rnnsym.check`` (and of ``rnnsym.conformance.checker.check``, which it
#: calls); kept here, beside the options, so that ``import rnnsym`` needs no hypothesis.
CHECK_DOC = """Property-test ``target`` against rnnsym's ``cell`` and return a Report.

target         "torch", "keras", "flax", "flax-linen", "flax-nnx", "torch-onnx",
               "MODULE:NAME", "path/to/file.py:NAME", or the class/function itself;
               ONNX runtimes: "onnxruntime", "onnx-reference", "onnx:MODULE:NAME";
               ONNX -> torch converters: "onnx2pytorch", "onnx2torch",
               "onnx-converter:MODULE:NAME" (``rnnsym.conformance.onnx``, where ``attributes``
               restricts the attribute space and ``variant`` fixes readings)
cell           "elman" (alias "rnn"), "lstm" or "gru"; any built-in or ``define`` for
               functions and torch modules following the cell API
               (``rnnsym.conformance.anycell``); ONNX targets also "linear_attention" and
               "causal_conv" (opset 27, ``rnnsym.conformance.onnx.state_ops``)
options        a :class:`rnnsym.CheckOptions`; keywords change single options of it

The keyword options (each declared once, in :class:`rnnsym.CheckOptions`, with its
``rnnsym check`` flag) are listed below. A target lacking an optional feature raises
``NotImplementedError``: the feature is listed as unsupported, not failed. Raises
UsageError (CLI exit 2) when the target or options cannot be checked.
"""


def check_doc() -> str:
    """``rnnsym.check``'s docstring: :data:`CHECK_DOC` and one line per option."""
    return CHECK_DOC + "\n" + keyword_help() + "\n"


def keyword_help() -> str:
    """One line per option (``name  --flag: help``), for ``rnnsym.check``'s docstring."""
    lines = []
    for f in fields(CheckOptions):
        flag = f.metadata["flag"]
        lines.append(f"    {f.name:<14}{'(' + flag + ') ' if flag else ''}"
                     f"default {f.default!r}: {f.metadata['help']}")
    return "\n".join(lines)

