"""The space a check explores: its options, the optional features and their choices.

A *space* is a dict ``option -> tuple of values`` (first value = the simplest, the shrink
target) built from what the harness supports (``Capabilities``) and what the user asked for::

    num_layers, bidirectional, bias, batch_first, initial_state, unbatched, projection
    variants   {option: values}   math options the harness explores (e.g. activation)
    lengths    {mode: sorted?}    ways of feeding variable-length batches; {} = fixed only

*Core input* is the simplest point of it: a plain batched float sequence, time-major, one
layer, one direction, with bias, no initial state, fixed length, the first variant. Every
other value is an *optional feature* (:data:`FEATURES`, plus ``NAME=VALUE`` for a variant's
other values): a target may lack it (``NotImplementedError``), and the user may leave it out
(``--without`` / ``--features``). A point of the space is described by the features it turns
on, as ``(feature, value)`` pairs (:func:`pairs_of`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from rnnsym.check_options import CheckOptions
from rnnsym.frameworks import Config, Harness, UsageError


@dataclass(frozen=True)
class Feature:
    """An optional feature: the space ``key`` it lives in and which of its values turn it on."""

    name: str
    text: str
    key: str
    on: Callable[[object], bool]
    aliases: tuple = ()


#: The optional features, in the order reports list them. Variants add ``NAME=VALUE`` ones.
FEATURES = (
    Feature("lengths", "variable-length batches (PackedSequence, masks)", "lengths",
            lambda mode: True, ("packed", "mask", "masks", "variable_lengths")),
    Feature("unbatched", "unbatched input (T, d_in)", "unbatched", bool),
    Feature("batch_first", "batch-major input (B, T, d_in)", "batch_first", bool),
    Feature("bidirectional", "two directions", "bidirectional", bool),
    Feature("layers", "more than one layer", "num_layers", lambda n: n > 1,
            ("num_layers", "multilayer")),
    Feature("projection", "LSTM projection (proj_size)", "projection", bool, ("proj_size",)),
    Feature("initial_state", "an initial state (hx)", "initial_state", bool, ("hx", "state")),
    Feature("no_bias", "bias=False", "bias", lambda bias: not bias, ("bias=false",)),
)
BY_NAME = {f.name: f for f in FEATURES}
ALIASES = {a: f.name for f in FEATURES for a in (f.name,) + f.aliases}
def _choices(supported: tuple, wanted, label: str, harness: Harness) -> tuple:
    if wanted is None:
        return tuple(supported)
    wanted = tuple(wanted)
    unsupported = [w for w in wanted if w not in supported]
    if unsupported:
        raise UsageError(f"{label}={unsupported[0]!r} is not supported by {harness.name} "
                         f"(supported: {', '.join(map(str, supported))})")
    return wanted


def config_space(harness: Harness, options: CheckOptions, variant: dict) -> dict:
    """Validated choices for every option: name -> tuple of values (first = simplest), with
    the features the user left out (``options.features`` / ``options.without``) removed.
    ``variant``: ``options.variant`` parsed (``rnnsym.frameworks.user.parse_variant``)."""
    caps = harness.capabilities
    bidirectional = options.directions
    if set(bidirectional) == {False, True}:      # "both" means: whatever the target has
        bidirectional = None
    space = {
        "num_layers": _choices(caps.num_layers, options.layers, "--layers", harness),
        "bidirectional": _choices(caps.bidirectional, bidirectional, "--bidirectional", harness),
        "bias": tuple(caps.bias),
        "batch_first": tuple(caps.batch_first),
        "initial_state": tuple(caps.initial_state),
        "unbatched": tuple(caps.unbatched),
        "projection": tuple(caps.projection),
    }
    variants = {}
    for name, values in caps.variants.items():
        if name in variant:
            variants[name] = _choices(caps.allowed.get(name, values), (variant[name],),
                                      f"--variant {name}", harness)
        else:
            variants[name] = tuple(values)
    unknown = sorted(set(variant) - set(caps.variants))
    if unknown:
        raise UsageError(f"--variant {unknown[0]}: not an option of {harness.name} "
                         f"(options: {', '.join(caps.variants) or 'none'})")
    if "projection" in variants:       # LSTM functions: projection is a claimed variant
        space["projection"] = variants.pop("projection")
    space["variants"] = variants
    # variable-length input: harness.length_modes maps each way of feeding lengths to
    # whether it needs them sorted (longest first); none: fixed length only
    space["lengths"] = dict(harness.length_modes)
    return narrow(space, options.features, options.without)


# ------------------------------------------------------------------------------------------
# features


def variant_features(space: dict) -> dict:
    """'NAME=VALUE' -> (option, value) for every variant value but the first (the core one)."""
    return {f"{k}={v}": (k, v) for k, values in space["variants"].items() for v in values[1:]}


def parse_features(names, space: dict, flag: str) -> tuple:
    """'lengths,unbatched' (or a sequence) -> canonical feature names; UsageError naming the
    valid ones for an unknown name."""
    if names is None:
        return ()
    if isinstance(names, str):
        names = names.split(",")
    out = []
    variants = variant_features(space)
    for raw in (n.strip() for n in names):
        if not raw:
            continue
        key = raw.lower().replace("-", "_")
        if key == "none":        # --features none: core input only
            continue
        if key in ALIASES:
            out.append(ALIASES[key])
        elif key in variants:
            out.append(key)
        else:
            valid = [f.name for f in FEATURES] + sorted(variants)
            raise UsageError(f"{flag} {raw}: not a feature (valid: {', '.join(valid)}; aliases: "
                             f"{', '.join(a for a in ALIASES if a not in BY_NAME)})")
    return tuple(dict.fromkeys(out))


def narrow(space: dict, features=None, without=()) -> dict:
    """``space`` without the optional features left out: all but ``features`` (when given)
    and those in ``without``. UsageError if an option has no value left."""
    given = parse_features(features, space, "--features") if features is not None else None
    dropped = set(parse_features(without, space, "--without"))
    names = [f.name for f in FEATURES] + list(variant_features(space))
    if given is not None:
        dropped |= {n for n in names if n not in given}
    space = {**space, "variants": dict(space["variants"]), "lengths": dict(space["lengths"])}
    for name in dropped:
        for value in values_on(space, name):
            drop(space, name, value)
    empty = [k for k, v in space.items() if k not in ("variants", "lengths") and not v]
    empty += [k for k, v in space["variants"].items() if not v]
    if empty:
        raise UsageError(f"--without/--features leave no value of {empty[0]} to explore")
    return space


def values_on(space: dict, name: str) -> list:
    """The values of feature ``name`` in ``space`` that turn it on."""
    if name in BY_NAME:
        feature = BY_NAME[name]
        return [v for v in space[feature.key] if feature.on(v)]
    option, value = variant_features(space).get(name, (None, None))
    return [value] if option is not None else []


def drop(space: dict, name: str, value) -> None:
    """Remove one value of a feature from ``space`` (in place)."""
    if name == "lengths":
        space["lengths"].pop(value, None)
    elif name in BY_NAME:
        key = BY_NAME[name].key
        space[key] = tuple(v for v in space[key] if v != value)
    else:
        option = name.split("=", 1)[0]
        space["variants"][option] = tuple(v for v in space["variants"][option] if v != value)


def pairs_on(space: dict) -> list:
    """Every (feature, value) the space can turn on, in report order."""
    return [(f.name, v) for f in FEATURES for v in values_on(space, f.name)] + \
        [(name, v) for name, (_, v) in variant_features(space).items()]


def core_variant(space: dict) -> tuple:
    return tuple(sorted((k, v[0]) for k, v in space["variants"].items()))


def pairs_of(config: Config, length_mode: Optional[str], core: tuple) -> list:
    """The (feature, value) pairs a case turns on, relative to the ``core`` variant."""
    pairs = []
    if length_mode is not None:
        pairs.append(("lengths", length_mode))
    for name, value in (("unbatched", config.unbatched), ("batch_first", config.batch_first),
                        ("bidirectional", config.bidirectional),
                        ("layers", config.num_layers), ("projection", bool(config.d_proj)),
                        ("initial_state", config.initial_state), ("no_bias", config.bias)):
        if BY_NAME[name].on(value):
            pairs.append((name, value))
    core = dict(core)
    pairs += [(f"{k}={v}", v) for k, v in config.variant if core.get(k, v) != v]
    return pairs


def core_config(cell: str, sizes: dict, dtype: str, core: tuple, pairs=()) -> Config:
    """The core-input config at ``sizes`` with the features ``pairs`` turned on."""
    config = Config(cell=cell, T=sizes["T"], B=sizes["B"], d_in=sizes["d_in"], d_h=sizes["d_h"],
                    dtype=dtype, variant=core)
    variant = dict(core)
    for name, value in pairs:
        if name == "layers":
            config = config.replace(num_layers=value)
        elif name == "projection":
            config = config.replace(d_proj=sizes["d_proj"])
        elif name == "no_bias":
            config = config.replace(bias=False)
        elif name == "unbatched":
            config = config.replace(unbatched=True, B=1)
        elif name in BY_NAME and name != "lengths":
            config = config.replace(**{BY_NAME[name].key: value})
        elif name not in BY_NAME:
            variant[name.split("=", 1)[0]] = value
    return config.replace(variant=tuple(sorted(variant.items())))
