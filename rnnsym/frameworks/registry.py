"""The targets ``rnnsym check`` knows, by name: one :class:`Target` per line of :data:`TARGETS`.

A target name resolves to a harness through its factory, ``"module:function"`` imported when
the target is used (torch, Keras, Flax load only when asked for)::

    factory(spec: str, cell: str, options: TargetOptions) -> Harness

``spec`` is the target as typed ("flax-nnx", "my.py:MyGRU"), ``cell`` canonical ("gru"), and
``options`` carries the options some targets take (``--cell-api``, ``--backward``); a target
declares which in ``Target.options``, and any other is a usage error here. The harness
declares its default dtype (``Harness.default_dtype``).

A new framework is one new file, ``rnnsym/frameworks/NAME.py`` with a Harness and its
``make_harness`` factory, plus one line in :data:`TARGETS`. ``rnnsym check --help``, the
unknown-target error and the README's list of targets are made from :data:`TARGETS`
(tests/test_registry.py compares the README with :func:`markdown_list`).

ONNX targets (``onnx=True``) are checked by :mod:`rnnsym.conformance.onnx` on ONNX models rather than
through a Harness; they are listed here so that every name is in one place.

Sequence targets (``sequence=True``: a model's chunked / recurrent / decode paths of one
matrix-state recurrence, :mod:`rnnsym.frameworks.sequence`) are checked by
:mod:`rnnsym.conformance.sequence`. Their factory ``"module:NAME"`` names a
:class:`~rnnsym.frameworks.sequence.SequenceTarget`, a function of no arguments returning one,
or a function ``(spec, cell, options)`` returning one; a new one is one line::

    Target("transformers:qwen3-next-gdn", "summary", "rnnsym.frameworks.transformers_gdn:"
           "qwen3_next_gdn", sequence=True)

(:func:`sequence_target` resolves a spec; the factory is imported only when the target is used).

The top of :mod:`rnnsym.frameworks`: it may import every framework module; none imports it.
"""
from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Optional

from rnnsym.frameworks import Harness, UsageError
from rnnsym.frameworks.loading import load_target


@dataclass(frozen=True)
class TargetOptions:
    """Options only some targets take (``Target.options`` names those it accepts)."""

    cell_api: bool = False          # --cell-api: the one-step cell API
    backward: Optional[str] = None  # --backward NAME: a function target's backward

    def given(self) -> dict:
        """The options set (not at their defaults), by name."""
        return {k: v for k, v in (("cell_api", self.cell_api), ("backward", self.backward))
                if v}


#: how each option is spelled on the command line (for usage errors)
FLAGS = {"cell_api": "--cell-api", "backward": "--backward NAME"}


@dataclass(frozen=True)
class Target:
    """One entry of the registry.

    name     as typed ("torch"); for a pattern the form with placeholders ("onnx:MODULE:NAME")
    summary  one line: what is checked
    factory  ``"module:function"`` returning the Harness (empty for ONNX targets)
    aliases  other names for the same target
    prefix   for a pattern: how a spec of it starts ("onnx:"); "" for names
    options  the TargetOptions fields it accepts
    onnx     checked on ONNX models (rnnsym.conformance.onnx), not through a Harness
    sequence a sequence target (rnnsym.conformance.sequence): the factory gives a SequenceTarget
    """

    name: str
    summary: str
    factory: str = ""
    aliases: tuple = ()
    prefix: Optional[str] = None
    options: tuple = ()
    onnx: bool = False
    sequence: bool = False

    @property
    def names(self) -> tuple:
        return (self.name,) + self.aliases

    def matches(self, spec: str) -> bool:
        if self.prefix is None:
            return spec.lower() in self.names
        return spec.lower().startswith(self.prefix) if self.prefix else ":" in spec

    def make(self, spec, cell: str, options: TargetOptions) -> Harness:
        for option, value in options.given().items():
            if option not in self.options:
                takers = ", ".join(t.name for t in TARGETS if option in t.options)
                raise UsageError(f"{FLAGS[option]} is not defined for target {self.name} "
                                 f"(only for: {takers})")
        module, function = self.factory.split(":")
        return getattr(importlib.import_module(module), function)(spec, cell, options)


OBJECT = "rnnsym.frameworks.registry:object_harness"
SEQUENCE_OBJECT = "rnnsym.frameworks.registry:sequence_object"

#: every target, in the order --help and the README list them
TARGETS = (
    Target("torch", "torch.nn.RNN/LSTM/GRU (--cell-api: RNNCell/LSTMCell/GRUCell)",
           "rnnsym.frameworks.torch_cell:make_harness", options=("cell_api",)),
    Target("keras", "keras.layers.SimpleRNN/LSTM/GRU on $KERAS_BACKEND (torch, tensorflow, jax, "
           "numpy)", "rnnsym.frameworks.keras:make_harness"),
    Target("flax", "flax.linen SimpleCell/LSTMCell/GRUCell in RNN/Bidirectional",
           "rnnsym.frameworks.flax:make_harness", aliases=("flax-linen",)),
    Target("flax-nnx", "flax.nnx SimpleCell/LSTMCell/GRUCell in RNN/Bidirectional",
           "rnnsym.frameworks.flax:make_harness"),
    Target("torch-onnx", "torch.nn.RNN/LSTM/GRU exported by torch.onnx.export, run in "
           "onnxruntime", "rnnsym.frameworks.torch_onnx:make_harness"),
    Target("MODULE:NAME", "a class (a drop-in for torch.nn.RNN/LSTM/GRU, a Flax cell) or a "
           "function in rnnsym's canonical convention, imported", OBJECT, prefix="",
           options=("cell_api", "backward"), aliases=("FILE.py:NAME",)),
    Target("onnxruntime", "random one-node (or --layers stacked) ONNX models in onnxruntime",
           onnx=True),
    Target("onnx-reference", "the same in onnx.reference.ReferenceEvaluator", onnx=True),
    Target("onnx:MODULE:NAME", "your ONNX backend: run(model_bytes, inputs) -> outputs",
           prefix="onnx:", onnx=True),
    Target("onnx2pytorch", "ONNX -> torch converter: random nodes converted, module run",
           onnx=True),
    Target("onnx2torch", "the same for onnx2torch", onnx=True),
    Target("onnx-converter:MODULE:NAME", "your converter: convert(onnx.ModelProto) -> module",
           prefix="onnx-converter:", onnx=True),
    Target("transformers:qwen3-next-gdn", "Qwen3-Next Gated DeltaNet, pure torch: chunked prefill, recurrent, decode step "
           "(same functions in qwen3_5, qwen3_5_moe, olmo_hybrid, qwen4_exp)",
           "rnnsym.frameworks.transformers_gdn:qwen3_next_gdn", sequence=True),
    Target("transformers:kimi-linear-kda", "Kimi Linear KDA (per-key decay Gated DeltaNet), pure torch: chunked, recurrent, "
           "decode step (same functions in bailing_hybrid, glm5_next)",
           "rnnsym.frameworks.transformers_gdn:kimi_linear_kda", sequence=True),
    Target("transformers:mamba2", "Mamba-2 SSD, pure torch: mamba2_chunk_scan prefill, "
           "mamba2_selective_state_update decode, dt_limit as Mamba2Mixer passes it (same "
           "functions in bamba, falcon_h1, granitemoehybrid)",
           "rnnsym.frameworks.transformers_mamba:mamba2", sequence=True),
    Target("transformers:nemotron-h-mamba2", "Nemotron-H / Zamba2's Mamba-2 mixer: the same functions with their default "
           "dt_limit (time_step_min=0.001, inf) on prefill only",
           "rnnsym.frameworks.transformers_mamba:nemotron_h_mamba2", sequence=True),
    Target("transformers:mamba", "Mamba-1 selective scan, pure torch: mamba_selective_scan (sequential loop), "
           "mamba_selective_state_update decode (same functions in falcon_mamba, jamba, "
           "zamba)",
           "rnnsym.frameworks.transformers_mamba:mamba", sequence=True),
    Target("mlstm-kernels:mlstm", "mlstm-kernels 2.0.6 native torch mLSTM: chunkwise, recurrent loop, decode step",
           "rnnsym.frameworks.mlstm_kernels:mlstm_kernels_target", sequence=True),
    Target("mlstm-kernels:parallel", "mlstm-kernels 2.0.6 native torch parallel mLSTM (and stablef); stabiliser with "
           "m_0 = -inf",
           "rnnsym.frameworks.mlstm_kernels:mlstm_kernels_parallel_target", sequence=True),
    Target("transformers:xlstm", "transformers 5.23.0 xLSTM's native mLSTM copies: chunkwise, recurrent, step, "
           "inference wrapper",
           "rnnsym.frameworks.mlstm_kernels:transformers_xlstm_target", sequence=True),
    Target("fla:gated-delta-rule", "fla-core 0.6.0 naive gated delta rule (recurrent, chunked)",
           "rnnsym.frameworks.fla:gated_delta_rule_target", sequence=True),
    Target("fla:kda", "fla-core 0.6.0 naive Kimi Delta Attention: gated delta rule, per-key decay, "
           "grouped q/k",
           "rnnsym.frameworks.fla:kda_target", sequence=True),
    Target("fla:delta-rule", "fla-core 0.6.0 naive delta rule (recurrent, chunkwise, parallel)",
           "rnnsym.frameworks.fla:delta_rule_target", sequence=True),
    Target("fla:gla", "fla-core 0.6.0 naive recurrent GLA (per-key decay)",
           "rnnsym.frameworks.fla:gla_target", sequence=True),
    Target("fla:simple-gla", "fla-core 0.6.0 naive simple GLA (per-head decay): recurrent, chunked, parallel",
           "rnnsym.frameworks.fla:simple_gla_target", sequence=True),
    Target("fla:linear-attn", "fla-core 0.6.0 naive linear attention (recurrent, chunked)",
           "rnnsym.frameworks.fla:linear_attn_target", sequence=True),
    Target("fla:retention", "fla-core 0.6.0 naive retention (per-head fixed decay)",
           "rnnsym.frameworks.fla:retention_target", sequence=True),
    Target("sequence:FILE.py:NAME", "your sequence target (a model's chunked/recurrent/decode "
           "paths of a linear recurrence): a SequenceTarget, or a function returning one "
           "(docs/sequence-targets.md)", SEQUENCE_OBJECT, prefix="sequence:",
           aliases=("sequence:MODULE:NAME",), sequence=True),
)


def lookup(spec) -> Target:
    """The registry entry of a target spec (a Python object: the MODULE:NAME entry).
    Raises UsageError naming every target for an unknown one."""
    if not isinstance(spec, str):
        return next(t for t in TARGETS if t.factory == OBJECT)
    named = [t for t in TARGETS if t.prefix is None or t.prefix]   # names, then prefixes
    for target in named + [t for t in TARGETS if t.prefix == ""]:
        if target.matches(spec):
            if target.prefix == "" and spec.split(":")[0].lower() in _sequence_families():
                # "transformers:qwen3-gdn" is a mistyped sequence target, not MODULE:NAME
                family = spec.split(":")[0].lower()
                known = ", ".join(t.name for t in TARGETS
                                  if t.sequence and t.name.startswith(family + ":"))
                raise UsageError(f"target {spec!r}: unknown; the {family} targets are {known}")
            return target
    raise UsageError(f"target {spec!r}: unknown; expected {usage_names()}")


def _sequence_families() -> set:
    """"transformers", "fla", "mlstm-kernels": what registered sequence target names start with."""
    return {t.name.split(":")[0] for t in TARGETS if t.sequence and t.prefix is None}


def is_sequence_target(spec) -> bool:
    """A SequenceTarget, or a spec naming a registered sequence target or ``sequence:...``."""
    from rnnsym.frameworks.sequence import SequenceTarget
    if isinstance(spec, SequenceTarget):
        return True
    if not isinstance(spec, str):
        return False
    if ":" in spec and spec.split(":")[0].lower() in _sequence_families():
        return True             # registered, or a mistyped name: lookup() says which
    try:
        return lookup(spec).sequence
    except UsageError:
        return False


def sequence_target(spec, cell: Optional[str] = None):
    """A sequence target spec (a registered name, ``sequence:FILE.py:NAME``,
    ``sequence:MODULE:NAME``) or a SequenceTarget -> the SequenceTarget. Raises UsageError."""
    from rnnsym.frameworks.sequence import SequenceTarget
    if isinstance(spec, SequenceTarget):
        return spec
    entry = lookup(spec)
    if not entry.sequence:
        raise UsageError(f"target {spec}: not a sequence target")
    module, function = entry.factory.split(":")
    factory = getattr(importlib.import_module(module), function)
    return _sequence_from(factory, spec, cell, spec)


def _sequence_from(obj, spec, cell, name):
    from rnnsym.frameworks.sequence import SequenceTarget
    if callable(obj) and not isinstance(obj, SequenceTarget):
        try:
            params = inspect.signature(obj).parameters.values()
            required = [p for p in params if p.default is p.empty
                        and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        except (TypeError, ValueError):
            required = []
        obj = obj(spec, cell, TargetOptions()) if required else obj()
    if not isinstance(obj, SequenceTarget):
        raise UsageError(f"target {name}: expected a SequenceTarget (or a function returning "
                         f"one), got {type(obj).__name__}")
    return obj


def sequence_object(spec, cell, options):
    """``sequence:FILE.py:NAME`` / ``sequence:MODULE:NAME``: NAME is a SequenceTarget or a
    function returning one (no arguments, or ``(spec, cell, options)``)."""
    obj, _ = load_target(spec[len("sequence:"):])
    return _sequence_from(obj, spec, cell, spec)


def usage_names(sep: str = ", ") -> str:
    """'torch, keras, flax, flax-linen, ...': every name and pattern, in registry order."""
    return sep.join(n for t in TARGETS for n in t.names)


def markdown_list() -> str:
    """The README's list of targets (between its ``targets`` markers)."""
    return "\n".join(f"- `{'` / `'.join(t.names)}`: {t.summary}" for t in TARGETS)


def resolve_harness(target, cell: str, *, cell_api: bool = False,
                    backward: Optional[str] = None) -> tuple[Harness, str]:
    """Target spec or object -> (harness, its default dtype). Raises UsageError.

    backward  a function target's backward, by name in its file (``--backward``)"""
    entry = lookup(target)
    if entry.onnx:
        raise UsageError(f"target {target}: an ONNX target, checked by rnnsym.conformance.onnx")
    if entry.sequence:
        raise UsageError(f"target {target}: a sequence target, checked by rnnsym.conformance.sequence")
    harness = entry.make(target, cell, TargetOptions(cell_api=cell_api, backward=backward))
    return harness, harness.default_dtype


def object_harness(spec, cell: str, options: TargetOptions) -> Harness:
    """``MODULE:NAME`` / ``FILE.py:NAME`` or the object itself: a Flax cell class, a class (a
    drop-in for torch.nn.RNN/LSTM/GRU, or with ``cell_api`` for their cells) or a function in
    rnnsym's canonical convention."""
    from rnnsym.frameworks.flax import flax_harness, is_flax_class

    obj, namespace = load_target(spec) if isinstance(spec, str) else (spec, None)
    name = spec if isinstance(spec, str) else getattr(obj, "__qualname__", repr(obj))
    if options.backward and (inspect.isclass(obj) or not callable(obj)):
        raise UsageError("--backward NAME names a function target's backward; "
                         f"{name} is not a function")
    if is_flax_class(obj):
        return flax_harness(obj, cell)
    if inspect.isclass(obj):
        from rnnsym.frameworks.torch import TorchHarness
        from rnnsym.frameworks.torch_cell import TorchCellHarness
        return (TorchCellHarness if options.cell_api else TorchHarness)(obj, cell, name)
    if callable(obj):
        from rnnsym.frameworks.user import FunctionHarness
        if options.cell_api:
            raise UsageError("--cell-api needs a class, got a function")
        return FunctionHarness(obj, cell, name, namespace=namespace, backward=options.backward)
    raise UsageError(f"target {name}: expected a class or a function, got {type(obj).__name__}")
