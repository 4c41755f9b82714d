"""User targets: ``MODULE:NAME`` / ``path/to/file.py:NAME``, and target resolution.

A target is loaded with importlib only (``import_module`` or
``spec_from_file_location``); its text is never evaluated. ``NAME`` may be dotted
(``module:Outer.Inner``). What it is decides how it is checked:

class
    a drop-in replacement for ``torch.nn.RNN/LSTM/GRU`` (``RNNCell/...`` with
    ``cell_api``): same constructor arguments, parameter names and forward contract
    (``rnnsym.frameworks.torch.TorchHarness``).
function
    rnnsym's canonical NumPy convention, one layer, one direction::

        fn(params: dict, x: (T, B, d_in), state0: dict | None) -> (outputs (T, B, d), final_state)

    ``params`` has the canonical names (``W_xh, W_hh, b_h``; ``W_x{i,f,g,o}, W_h*,
    b_x*, b_h*`` [+ ``W_hr``]; ``W_x{r,z,n}, ...``), states are ``{"h"}`` or
    ``{"h", "c"}`` with shape ``(B, d)``, and ``state0=None`` means zeros.
    Which math it claims is given by the variant (``activation=``, ``reset=``,
    ``projection=``).
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from pathlib import Path

import numpy as np

from rnnsym.frameworks import (Capabilities, Config, ContractError, Harness, OutputError,
                               UsageError, canonical_param_shapes, check_shape)

ACTIVATIONS = ("tanh", "relu", "sigmoid", "identity")
TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off"}


# ------------------------------------------------------------------------------------------
# loading


def load_object(spec: str):
    """'pkg.mod:Name' or 'path/to/file.py:Name' -> the object. Raises UsageError."""
    if ":" not in spec:
        raise UsageError(f"target {spec!r}: expected torch, keras, onnxruntime, onnx-reference, "
                         "MODULE:NAME, FILE.py:NAME, onnx:MODULE:NAME, onnx2pytorch, onnx2torch or "
                         "onnx-converter:MODULE:NAME")
    where, name = spec.rsplit(":", 1)
    if not where or not name:
        raise UsageError(f"target {spec!r}: expected MODULE:NAME or FILE.py:NAME")
    if where.endswith(".py") or "/" in where or "\\" in where:
        module = _load_file(Path(where))
    else:
        try:
            module = importlib.import_module(where)
        except Exception as exc:  # noqa: BLE001 - any import failure is a usage error
            raise UsageError(f"cannot import {where}: {type(exc).__name__}: {exc}") from exc
    obj = module
    for part in name.split("."):
        if not hasattr(obj, part):
            raise UsageError(f"{where} has no attribute {name!r}")
        obj = getattr(obj, part)
    return obj


def _load_file(path: Path):
    if not path.is_file():
        raise UsageError(f"cannot import {path}: no such file")
    path = path.resolve()
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    mod_name = f"_rnnsym_user_{path.stem}_{digest}"
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    # the file's folder goes on sys.path so that it can import its siblings
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(mod_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001
        del sys.modules[mod_name]
        raise UsageError(f"cannot import {path}: {type(exc).__name__}: {exc}") from exc
    return module


# ------------------------------------------------------------------------------------------
# variants


def _bool(name, value) -> bool:
    text = str(value).lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise UsageError(f"--variant {name}={value}: expected true or false")


def _normalize(name: str, value) -> tuple[str, object]:
    name = name.strip().lower().replace("-", "_")
    if name in ("reset",):
        if str(value).lower() not in ("after", "before"):
            raise UsageError(f"--variant reset={value}: expected after or before")
        return "reset", str(value).lower()
    if name == "reset_after":
        return "reset", "after" if _bool(name, value) else "before"
    if name == "linear_before_reset":
        return "reset", "after" if _bool(name, value) else "before"
    if name in ("activation", "nonlinearity"):
        if str(value).lower() not in ACTIVATIONS:
            raise UsageError(f"--variant {name}={value}: expected one of {', '.join(ACTIVATIONS)}")
        return "activation", str(value).lower()
    if name == "projection":
        return "projection", _bool(name, value)
    if name == "hidden_bias":
        if str(value).lower() not in ("rzn", "n", "none"):
            raise UsageError(f"--variant hidden_bias={value}: expected rzn, n or none")
        return "hidden_bias", str(value).lower()
    raise UsageError(f"--variant {name}: unknown option (known: reset, reset_after, "
                     "linear_before_reset, activation, nonlinearity, projection, hidden_bias)")


def parse_variant(variant) -> dict:
    """None, a dict, or 'reset_after=false,activation=relu' / 'before' -> normalized dict
    with keys reset ('after'|'before'), activation, projection (bool)."""
    if variant is None or variant == "":
        return {}
    items = variant.items() if isinstance(variant, dict) else None
    if items is None:
        if not isinstance(variant, str):
            variant = ",".join(variant)
        items = []
        for word in filter(None, (w.strip() for w in variant.split(","))):
            if "=" in word:
                items.append(tuple(word.split("=", 1)))
            elif word.lower() in ("after", "before"):
                items.append(("reset", word))
            elif word.lower() in ACTIVATIONS:
                items.append(("activation", word))
            elif word.lower() == "projection":
                items.append(("projection", "true"))
            else:
                raise UsageError(f"--variant {word}: expected NAME=VALUE, e.g. reset_after=false")
    return dict(_normalize(k, v) for k, v in items)


# ------------------------------------------------------------------------------------------
# canonical functions


class FunctionHarness(Harness):
    """A function in rnnsym's canonical convention (module docstring)."""

    def __init__(self, fn, cell: str, name: str | None = None):
        self.fn = fn
        self.cell = cell
        self.name = name or getattr(fn, "__qualname__", repr(fn))
        variants, allowed = {}, {}
        if cell == "elman":
            variants["activation"], allowed["activation"] = ("tanh",), ACTIVATIONS
        if cell == "gru":
            variants["reset"], allowed["reset"] = ("after",), ("after", "before")
        if cell == "lstm":
            variants["projection"], allowed["projection"] = (False,), (False, True)
        self.capabilities = Capabilities(bias=(True,), variants=variants, allowed=allowed)

    def param_shapes(self, config: Config) -> dict:
        return canonical_param_shapes(self.cell, {"d_in": config.d_in, "d_h": config.d_h,
                                                  "d_proj": config.d_proj},
                                      projection=bool(config.d_proj))

    def to_canonical(self, config: Config, values) -> list:
        return [[{k: np.asarray(v, np.float64) for k, v in values.items()}]]

    def probe(self, config: Config) -> None:
        try:
            inspect.signature(self.fn).bind({}, None, None)
        except TypeError as exc:
            raise ContractError(f"{self.name}: expected a function (params, x, state0=None), "
                                f"{exc}") from exc
        except ValueError:
            pass  # builtins without a signature: find out when calling

    def run(self, config: Config, values, x, state0):
        s0 = None if state0 is None else {k: v[0, 0] for k, v in state0.items()}
        result = self.fn(dict(values), np.array(x), s0)
        if not (isinstance(result, (tuple, list)) and len(result) == 2):
            raise OutputError(f"returned {type(result).__name__}, expected (outputs, final_state)")
        outputs, final = result
        c = config
        out = check_shape("outputs", outputs, (c.T, c.B, c.d_out), "(T, B, d_out)", c)
        keys = {"h", "c"} if self.cell == "lstm" else {"h"}
        if not isinstance(final, dict) or set(final) != keys:
            got = sorted(final) if isinstance(final, dict) else type(final).__name__
            raise OutputError(f"final_state: expected a dict with keys {sorted(keys)}, got {got}")
        flat = {"output": out[:, :, None],
                "h_n": check_shape('final_state["h"]', final["h"], (c.B, c.d_out), "(B, d_out)",
                                   c)[None, None]}
        if self.cell == "lstm":
            flat["c_n"] = check_shape('final_state["c"]', final["c"], (c.B, c.d_h), "(B, d_h)",
                                      c)[None, None]
        return flat


    def gradients(self, config: Config, values, x, state0, upstream):
        """The function's ``backward`` (beside it in its module, or ``fn.backward``) in the
        canonical convention: ``outputs, final, cache = fn(params, x, state0,
        return_cache=True)``, ``d_params, d_x, d_state0 = backward(params, cache, d_outputs,
        d_final_state)``."""
        backward = getattr(self.fn, "backward", None) or getattr(
            sys.modules.get(getattr(self.fn, "__module__", ""), None), "backward", None)
        if not callable(backward):
            raise UsageError(f"--gradients: {self.name} has no backward(params, cache, "
                             "d_outputs, d_final_state) beside it")
        s0 = {k: v[0, 0] for k, v in state0.items()}
        result = self.fn(dict(values), np.array(x), s0, return_cache=True)
        if not (isinstance(result, (tuple, list)) and len(result) == 3):
            raise OutputError("forward(..., return_cache=True) returned "
                              f"{type(result).__name__}, expected (outputs, final_state, cache)")
        outputs, final, cache = result
        d_final = {"h": upstream["h_n"][0, 0]}
        if self.cell == "lstm":
            d_final["c"] = upstream["c_n"][0, 0]
        dp, dx, ds0 = backward(dict(values), cache, upstream["output"][:, :, 0], d_final)
        c = config
        flat = {"output": check_shape("outputs", outputs, (c.T, c.B, c.d_out), "(T, B, d_out)",
                                      c)[:, :, None],
                "h_n": np.asarray(final["h"])[None, None]}
        if self.cell == "lstm":
            flat["c_n"] = np.asarray(final["c"])[None, None]
        grads = {f"param:{k}": v for k, v in dict(dp).items()}
        grads["x"] = dx
        grads.update({f"{k}0": np.asarray(v)[None, None] for k, v in dict(ds0).items()})
        return flat, grads


# ------------------------------------------------------------------------------------------
# resolution


def resolve_harness(target, cell: str, *, cell_api: bool = False) -> tuple[Harness, str]:
    """Target spec or object -> (harness, default dtype). Raises UsageError."""
    if isinstance(target, str) and target.lower() == "torch":
        from rnnsym.frameworks.torch import torch_harness
        return torch_harness(cell, cell_api=cell_api), "float32"
    if isinstance(target, str) and target.lower() == "keras":
        if cell_api:
            raise UsageError("--cell-api is only defined for torch targets and drop-in classes")
        from rnnsym.frameworks.keras import keras_harness
        return keras_harness(cell), "float32"
    if isinstance(target, str) and target.lower() == "torch-onnx":
        if cell_api:
            raise UsageError("--cell-api is only defined for torch targets and drop-in classes")
        from rnnsym.frameworks.torch_onnx import torch_onnx_harness
        return torch_onnx_harness(cell), "float32"
    if isinstance(target, str) and target.lower() in ("flax", "flax-linen", "flax-nnx"):
        from rnnsym.frameworks.flax import flax_harness
        return flax_harness(target, cell), "float32"
    obj = load_object(target) if isinstance(target, str) else target
    name = target if isinstance(target, str) else getattr(obj, "__qualname__", repr(obj))
    from rnnsym.frameworks.flax import is_flax_class
    if is_flax_class(obj):
        from rnnsym.frameworks.flax import flax_harness
        return flax_harness(obj, cell), "float32"
    if inspect.isclass(obj):
        from rnnsym.frameworks.torch import TorchHarness
        from rnnsym.frameworks.torch_cell import TorchCellHarness
        cls = TorchCellHarness if cell_api else TorchHarness
        return cls(obj, cell, name), "float32"
    if callable(obj):
        if cell_api:
            raise UsageError("--cell-api needs a class, got a function")
        return FunctionHarness(obj, cell, name), "float64"
    raise UsageError(f"target {name}: expected a class or a function, got {type(obj).__name__}")
