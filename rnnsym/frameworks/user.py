"""User targets: ``MODULE:NAME`` / ``path/to/file.py:NAME`` (loaded by
:mod:`rnnsym.frameworks.loading`, resolved by :mod:`rnnsym.frameworks.registry`), the
``--variant`` options, and the harness of a function target. What the object is decides how
it is checked:

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

import inspect
import sys

import numpy as np

from rnnsym.frameworks import (Capabilities, Config, ContractError, Harness, OutputError,
                               UsageError, canonical_param_shapes, check_shape)
# moved to loading.py; importable from here as before
from rnnsym.frameworks.loading import load_object, load_target  # noqa: F401

ACTIVATIONS = ("tanh", "relu", "sigmoid", "identity")
TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off"}


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
    """A function in rnnsym's canonical convention (module docstring); ``--gradients`` runs
    its backward (:meth:`find_backward`): one layer, one direction, fixed lengths."""

    supports_gradients = True
    default_dtype = "float64"

    def __init__(self, fn, cell: str, name: str | None = None, *, namespace=None,
                 backward: str | None = None):
        self.fn = fn
        self.cell = cell
        self.name = name or getattr(fn, "__qualname__", repr(fn))
        #: the module the user pointed at (``FILE.py:NAME``), else the function's own
        self.namespace = namespace if namespace is not None else \
            sys.modules.get(getattr(fn, "__module__", None) or "")
        self.backward_name = backward
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

    def check_contract(self, config: Config) -> None:
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


    def find_backward(self):
        """``(backward, where it was found)``, looked up where the user pointed: the name
        given with ``--backward``, else ``backward`` in the target's file (module), else the
        function's attribute ``fn.backward``; never in a module ``fn`` was imported from.
        Raises UsageError when there is none."""
        where = getattr(self.namespace, "__file__", None) or \
            getattr(self.namespace, "__name__", "?")
        if self.backward_name:
            backward = getattr(self.namespace, self.backward_name, None)
            if not callable(backward):
                raise UsageError(f"--backward {self.backward_name}: {where} has no function "
                                 f"{self.backward_name!r}")
            return backward, f"{self.backward_name} in {where} (--backward)"
        backward = getattr(self.namespace, "backward", None)
        if callable(backward):
            return backward, f"backward in {where}"
        backward = getattr(self.fn, "backward", None)
        if callable(backward):
            return backward, f"{self.name.rsplit(':', 1)[-1]}.backward (the function's attribute)"
        raise UsageError(f"--gradients: {self.name} has no backward(params, cache, d_outputs, "
                         f"d_final_state): none named backward in {where} nor as the "
                         "function's attribute; name one with --backward NAME")

    def no_gradients_reason(self, variant: dict):
        try:
            self.find_backward()
        except UsageError as exc:
            return str(exc)
        return None

    def gradient_source(self) -> str:
        return self.find_backward()[1]

    def gradients(self, config: Config, values, x, state0, upstream, lengths=None,
                  length_mode=None):
        """The function's backward (:meth:`find_backward`) in the canonical convention:
        ``outputs, final, cache = fn(params, x, state0, return_cache=True)``,
        ``d_params, d_x, d_state0 = backward(params, cache, d_outputs, d_final_state)``."""
        backward, _ = self.find_backward()
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
