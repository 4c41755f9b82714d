"""``rnnsym check TARGET --cell NAME`` for every built-in cell and ``--define TEXT``: the check
derived from the symbolic cell alone.

Everything comes from the cell: its free dimensions and parameter shapes from
``rnnsym.shapes`` (the sizes are drawn pairwise distinct), the parameters, input and state
from those shapes, the expected values from ``rnnsym.compile(cell)`` (the generated forward and
backward, float64), the diagnosis from edits of its equations (``rnnsym.conformance.mutations``).
There is no per-cell code here. Targets: ``rnnsym.frameworks.cell_api`` (canonical functions,
torch modules following the cell API). One layer, one direction of time; a function's declared
``reverse``, ``lengths`` and ``no_bias`` are searched too.

Built-ins with the three framework cells' own options (elman/lstm/gru with ``activation``,
``reset``, ``projection``, ``hidden_bias``) keep the framework checker (``rnnsym.conformance.checker``):
stacks, directions, layouts. :func:`wants_cell_check` says which one a request goes to.
"""
from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Optional

import numpy as np
from hypothesis import strategies as st

from rnnsym.conformance import strategies as rst
from rnnsym.conformance.cases import LENGTHS_TENTHS, Case, _pad
from rnnsym.conformance.cell_oracle import (canonical_params, cell_tolerance, expected_for,  # noqa: F401
                                      flat_of, run_forward, runner)
from rnnsym.conformance.compare import compare_flat, error_ratio
from rnnsym.conformance.report import Report, counterexample_of
from rnnsym.conformance.search import quiet, run_checks
from rnnsym.conformance.target import Outcome, call_target
from rnnsym.check_options import CheckOptions
from rnnsym.frameworks import UsageError
from rnnsym.frameworks.cell_api import CellConfig, bias_params, cell_target

#: --variant keys the framework checker knows for elman/lstm/gru
FRAMEWORK_VARIANTS = {"activation", "nonlinearity", "reset", "reset_after", "linear_before_reset",
                      "projection", "hidden_bias"}
FRAMEWORK_CELLS = {"elman", "rnn", "simplernn", "lstm", "gru"}
#: the features of this check (``--without`` / ``--features``)
CELL_FEATURES = {"reverse": "reverse direction (fn.supports)",
                 "lengths": "per-sample lengths (fn.supports)",
                 "no_bias": "no bias vectors (fn.supports)",
                 "initial_state": "an initial state"}
TRUE, FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def wants_cell_check(cell, variant=None, define=None, param_map=None) -> bool:
    """Whether a request goes to this checker (else the framework checker)."""
    if define is not None or param_map:
        return True
    if not isinstance(cell, str) or cell.lower() not in FRAMEWORK_CELLS:
        return True
    return bool(set(variant_items(variant)) - FRAMEWORK_VARIANTS)


def variant_items(variant) -> dict:
    """'a=1,b=x' / a dict / a list of such strings -> {key: text}."""
    if not variant:
        return {}
    if isinstance(variant, dict):
        return {str(k).strip().lower().replace("-", "_"): v for k, v in variant.items()}
    words = variant.split(",") if isinstance(variant, str) else ",".join(variant).split(",")
    out = {}
    for word in filter(None, (w.strip() for w in words)):
        key, sep, value = word.partition("=")
        if not sep:
            raise UsageError(f"--variant {word}: expected NAME=VALUE, e.g. activation=relu")
        out[key.strip().lower().replace("-", "_")] = value.strip()
    return out


# --- the cell -----------------------------------------------------------------------------
def variant_keys(name: str) -> dict:
    """A built-in's settable options -> their default (what ``--variant`` takes)."""
    from rnnsym.cells.builtin import BUILTINS
    sig = inspect.signature(BUILTINS[name])
    return {k: p.default for k, p in sig.parameters.items()
            if isinstance(p.default, (bool, int, float, str)) or p.default is None}


def variant_help() -> str:
    """Every built-in's ``--variant`` keys, for ``check --help`` and the docs."""
    from rnnsym.cells.builtin import BUILTINS
    parts = []
    for name in dict.fromkeys(f for f in BUILTINS if f != "rnn"):
        keys = variant_keys(name)
        parts.append(f"{name}: " + (", ".join(f"{k}={_fmt_default(v)}" for k, v in keys.items())
                                    or "none"))
    return "; ".join(parts)


def _fmt_default(value) -> str:
    return "VALUE" if value is None else str(value).lower() if isinstance(value, bool) else \
        str(value)


def _parse_value(key, text, default):
    text = str(text)
    if isinstance(default, bool):
        if text.lower() in TRUE | FALSE:
            return text.lower() in TRUE
        raise UsageError(f"--variant {key}={text}: expected true or false")
    if default is None or isinstance(default, (int, float)):
        if default is None and text.lower() in ("none", "off"):
            return None
        try:
            return float(text)
        except ValueError:
            raise UsageError(f"--variant {key}={text}: expected a number") from None
    return text.lower()


def builtin_cell(name: str, variant=None):
    """The built-in ``name`` with ``--variant`` options (keys from its factory's signature)."""
    recipe = builtin_recipe(name, variant)
    try:
        return recipe()
    except ValueError as exc:
        raise UsageError(f"--variant: {exc}") from None


def builtin_recipe(name: str, variant=None):
    """What builds :func:`builtin_cell`'s cell: a picklable ``functools.partial`` (the target's
    worker, ``rnnsym.conformance.isolation``, rebuilds the cell with it)."""
    from rnnsym.cells.builtin import BUILTINS, NAMES, builtin
    key = name.lower()
    if key not in BUILTINS:
        raise UsageError(f"--cell: unknown {name!r} (built-in cells: {NAMES}; or --define TEXT)")
    key = "elman" if key == "rnn" else key
    known = variant_keys(key)
    options = {}
    for k, v in variant_items(variant).items():
        k = {"nonlinearity": "activation"}.get(k, k)
        if k == "reset_after" and key == "gru":
            k, v = "reset", "after" if v.lower() in TRUE else "before"
        if k not in known:
            raise UsageError(f"--variant {k}: not an option of {key} (options: "
                             f"{', '.join(known) or 'none'})")
        options[k] = _parse_value(k, v, known[k])
    return functools.partial(builtin, key, **options)


def defined_cell(text: str, *, inputs="x", readouts="", dims="", name="custom"):
    """A cell from its text form, with ``--input``, ``--readout``, ``--dims`` as ``rnnsym
    shapes`` takes them."""
    from rnnsym.cells import DefinitionError
    recipe = defined_recipe(text, inputs=inputs, readouts=readouts, dims=dims, name=name)
    try:
        return recipe()
    except (DefinitionError, ValueError) as exc:
        raise UsageError(f"--define: {exc}") from None


def defined_recipe(text: str, *, inputs="x", readouts="", dims="", name="custom"):
    """What builds :func:`defined_cell`'s cell: a picklable ``functools.partial``."""
    from rnnsym.cells import parse_cell

    def split(s):
        return tuple(a.strip() for a in (s or "").split(",") if a.strip())
    pairs = []
    for pair in split(dims):
        a, sep, b = pair.partition("=")
        if not sep or not a.strip() or not b.strip():
            raise UsageError(f"--dims takes NAME=NAME pairs, got {pair!r}")
        pairs.append((a.strip(), b.strip()))
    return functools.partial(parse_cell, text, inputs=split(inputs) or ("x",),
                             readouts=split(readouts), dims=pairs, name=name)


def checkable(cell):
    """The cell's derived shapes; UsageError when it cannot be checked (shapes left open,
    several inputs)."""
    from rnnsym.shapes import ShapeError
    if len(cell.inputs) != 1:
        raise UsageError(f"cell {cell.name}: {len(cell.inputs)} inputs "
                         f"({', '.join(cell.inputs)}); the check drives cells with one input")
    try:
        table = cell.shapes()
        table.check_determined()
    except ShapeError as exc:
        raise UsageError(f"cell {cell.name}: {exc}") from None
    return table


# --- cases --------------------------------------------------------------------------------
@st.composite
def cell_cases(draw, cell, table, space: dict, dtype: str, max_size: int = 6):
    """Cases of ``cell``: distinct sizes for T, B and every free dimension, the parameters at
    their derived shapes, input, initial state and lengths as ``space`` allows."""
    dims = [str(d) for d in table.dims]
    names = ["T", "B"] + dims
    sizes = draw(rst.distinct_sizes(names, max_value=max(max_size, len(names) + 1)),
                 label="sizes")
    config = CellConfig(cell=cell.name, T=sizes["T"], B=sizes["B"],
                        dims=tuple((d, sizes[d]) for d in dims),
                        reverse=draw(st.sampled_from(space["reverse"]), label="reverse"),
                        bias=draw(st.sampled_from(space["bias"]), label="bias"),
                        initial_state=draw(st.sampled_from(space["initial_state"]),
                                           label="initial_state"), dtype=dtype)
    shapes = table.concrete(**{d: sizes[d] for d in dims})
    biases = set(bias_params(cell))
    wanted = {p: shapes[p] for p in cell.params if config.bias or p not in biases}
    np_dtype = np.dtype(dtype)
    values = draw(rst.target_values(wanted, np_dtype), label="values")
    x = draw(rst.float_arrays({"x": (config.T, config.B) + shapes[cell.inputs[0]]}, np_dtype,
                              magnitudes=rst.INPUT_MAGNITUDES), label="x")["x"]
    state0 = None
    if config.initial_state:
        state0 = draw(rst.float_arrays({s: (config.B,) + shapes[s] for s in cell.states},
                                       np_dtype, magnitudes=(1.0, 0.1, 10.0)), label="state0")
    lengths = None
    if space["lengths"]:
        coin = draw(st.integers(0, 2**32 - 1), label="variable lengths?")
        if coin % 10 >= 10 - LENGTHS_TENTHS:
            short = draw(st.lists(st.integers(0, 2**32 - 1), min_size=config.B,
                                  max_size=config.B), label="steps short of T (mod T)")
            lengths = tuple(config.T - n % config.T for n in short)
            x = _pad(x, lengths)
    return Case(config, values, x, state0, lengths, "lengths=" if lengths else None)


def cell_space(target, without=(), features=None) -> dict:
    supports = target.supports
    space = {"reverse": (False, True) if "reverse" in supports else (False,),
             "bias": (True, False) if "no_bias" in supports else (True,),
             "initial_state": (False, True), "lengths": "lengths" in supports}
    dropped = set(without or ())
    if features is not None:
        dropped |= set(CELL_FEATURES) - set(features)
    for name in dropped:
        if name not in CELL_FEATURES:
            raise UsageError(f"--without/--features {name}: not a feature of this check "
                             f"(features: {', '.join(CELL_FEATURES)})")
        if name == "lengths":
            space["lengths"] = False
        elif name == "no_bias":
            space["bias"] = (True,)
        else:
            space[name] = (False,)
    return space


# --- one case -----------------------------------------------------------------------------
class CellSubject:
    """The search's subject (``rnnsym.conformance.search.Subject``) for a symbolic cell."""

    nothing_left = False

    def __init__(self, cell, table, module, target, space, dtype, options):
        self.cell, self.table, self.module, self.target = cell, table, module, target
        self.space, self.dtype, self.options = space, dtype, options

    def cases(self):
        return cell_cases(self.cell, self.table, self.space, self.dtype,
                          self.options.max_size)

    def excluded(self, case) -> bool:
        return False

    def run(self, case):
        oracle = expected_for(self.module, self.cell, case, self.options.rtol,
                              self.options.atol)
        if oracle is None:
            return None
        outcome = Outcome(case, *oracle)
        got, failure = call_target(self.target, case, self.options.timeout)
        if failure is not None:       # unsupported on a declared feature is a failure too
            outcome.kind, outcome.error, _ = failure
            return outcome
        outcome.got = got
        outcome.mismatches = compare_flat(outcome.expected, got, outcome.tolerance.arrays)
        outcome.ratio = error_ratio(outcome.expected, got, outcome.tolerance.arrays)
        if outcome.mismatches:
            outcome.kind = "wrong numbers"
        return outcome

    def unsupported(self, outcome) -> bool:
        return False

    def cover(self, stats, case, outcome) -> None:
        stats.configs.add(case.config.coverage_key())
        c = case.config
        for key, value in (("reverse", c.reverse), ("bias", c.bias),
                           ("initial_state", c.initial_state),
                           ("lengths", "per-sample" if case.lengths else "fixed")):
            stats.coverage.setdefault(key, set()).add(value)


# --- the check ----------------------------------------------------------------------------
@dataclass
class CellRequest:
    """What the command line named: the cell, how to replay it."""

    cell: object
    replay: str            # "--cell sru --variant rescale=true" / "--define '...'"
    recipe: object = None  # a picklable callable that builds ``cell`` again (in the worker)
    define: Optional[str] = None   # the cell's text (read from --define-file: the replay's)


def request(cell=None, variant=None, define=None, define_file=None, inputs="x", readouts="",
            dims="") -> CellRequest:
    """The cell a check names: a built-in with ``--variant`` options, or a definition."""
    if define_file is not None:
        if define is not None:
            raise UsageError("give --define or --define-file, not both")
        try:
            with open(define_file) as fh:
                define = fh.read()
        except OSError as exc:
            raise UsageError(f"--define-file {define_file}: {exc.strerror}") from None
    if define is not None:
        if cell is not None:
            raise UsageError("give either --cell or --define, not both")
        if variant:
            raise UsageError("--variant applies to built-in cells (write the variant into "
                             "--define)")
        extra = "".join(f" --{flag} {v}" for flag, v in (("input", inputs), ("readout", readouts),
                                                        ("dims", dims)) if v and v != "x")
        return CellRequest(defined_cell(define, inputs=inputs, readouts=readouts, dims=dims),
                           f"--define {_quote(define)}{extra}",
                           defined_recipe(define, inputs=inputs, readouts=readouts, dims=dims),
                           define)
    if cell is None:
        raise UsageError("name a --cell or give --define TEXT")
    built = builtin_cell(cell, variant)
    items = variant_items(variant)
    return CellRequest(built, f"--cell {cell}" + (
        " --variant " + ",".join(f"{k}={v}" for k, v in items.items()) if items else ""),
        builtin_recipe(cell, variant))


def _quote(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return "'" + "; ".join(lines).replace("'", "'\\''") + "'"


def check_cell(target, req: Optional[CellRequest] = None, *,
               options: Optional[CheckOptions] = None, **kwargs) -> Report:
    """Property-test ``target`` against the symbolic cell the options name (``cell`` and
    ``variant``, or ``define``; module docstring). The target runs in a worker process
    (``rnnsym.conformance.isolation``) unless ``in_process``. ``req``: the cell, already built."""
    from rnnsym.codegen.compile import compile_cell
    from rnnsym.frameworks.user import load_object

    o = CheckOptions.of(options, **kwargs)
    if req is None:
        req = request(o.cell, o.variant, o.define, o.define_file, o.inputs, o.readouts, o.dims)
    cell = req.cell
    table = checkable(cell)
    if o.dtype not in (None, "float32", "float64"):
        raise UsageError(f"--dtype: expected float32 or float64, got {o.dtype!r}")
    if isinstance(target, str) and ":" not in target:
        raise UsageError(f"target {target}: the framework targets check elman|rnn, lstm and gru "
                         "with their own options; this cell is checked on a function or a torch "
                         "module following the cell API (MODULE:NAME or FILE.py:NAME)")
    obj = load_object(target) if isinstance(target, str) else target
    label = target if isinstance(target, str) else \
        f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', obj)}"
    tgt = cell_target(obj, cell, table, label, o.param_map)
    try:
        module = compile_cell(cell)
    except Exception as exc:  # noqa: BLE001 - a cell the generator cannot write
        raise UsageError(f"cell {cell.name}: the code generator cannot write it: {exc}") from None
    dtype = o.dtype or tgt.dtype
    sizes = dict(zip((str(d) for d in table.dims), range(2, 2 + len(table.dims))))
    simplest = CellConfig(cell=cell.name, T=1, B=1, dims=tuple(sizes.items()), dtype=dtype)
    shapes = table.concrete(**sizes)
    try:
        module.forward({p: np.zeros(shapes[p]) for p in cell.params},
                       np.zeros((1, 1) + shapes[cell.inputs[0]]), None)
    except Exception as exc:  # noqa: BLE001 - e.g. a size no parameter determines
        raise UsageError(f"cell {cell.name}: the generated forward cannot run it from a zero "
                         f"state: {type(exc).__name__}: {exc}") from None
    if hasattr(tgt, "build"):     # a module that cannot be built or mapped: a usage error
        tgt.build(simplest)
    o = o.replace(dtype=dtype).with_seed()
    if o.define_file is not None:         # the replay line carries the text itself
        o = o.replace(define=req.define, define_file=None)
    space = cell_space(tgt, o.without, o.features)
    if o.gradients:
        if not hasattr(module, "backward") or "not generated" in (module.__doc__ or ""):
            raise UsageError(f"--gradients: no backward is generated for {cell.name} (several "
                             "inputs or readouts)")
        space = {**space, "reverse": (False,), "lengths": False}
    isolated_note = None
    if not o.in_process:
        from rnnsym.conformance.isolation import isolate_cell
        tgt, isolated_note = isolate_cell(tgt, target, req.recipe or cell, label, o.param_map)
    subject = CellSubject(cell, table, module, tgt, space, dtype, o)
    if o.gradients:
        from rnnsym.conformance.cell_gradients import CellGradientSubject
        subject = CellGradientSubject(subject)
    try:
        stats = run_checks(o, f"rnnsym check {label} {req.replay}", lambda stats: subject,
                           session=tgt.session())
        outcome = stats.failure
        report = Report(target=label, cell=req.replay.split(" ", 1)[1] if
                        req.replay.startswith("--cell") else cell.name, dtype=dtype,
                        command=o.replay(label), **stats.report_fields(o))
        if outcome is not None:
            report.counterexample = counterexample_of(outcome)
            report.failure_kind = outcome.kind
            report.shrink_note = stats.shrink_note()
            if outcome.kind in ("wrong numbers", "wrong gradients"):
                from rnnsym.conformance.mutations import diagnose_cell
                with quiet():
                    report.diagnoses = diagnose_cell(cell, module, outcome, tgt,
                                                      timeout=o.timeout)
            report.diagnosis = report.diagnoses[0] if report.diagnoses else None
        if isolated_note:
            report.target += f" ({isolated_note})"
        return report
    finally:
        getattr(tgt, "close", lambda: None)()
