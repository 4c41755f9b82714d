"""Targets for any symbolic cell (``rnnsym check TARGET --cell sru`` / ``--define TEXT``).

Two kinds, both driven with the cell's *canonical* parameter names (``rnnsym.shapes`` derives
their shapes from the equations), one layer, one direction of time:

function
    rnnsym's canonical convention, the one ``rnnsym.compile(cell).forward`` follows::

        fn(params: dict, x: (T, B, d_x), state0: dict | None) -> (outputs (T, B, d_out), final)

    ``final`` has one ``(B, d)`` array per state of the cell; ``state0=None`` means zeros.
    A function declares the optional features it supports in a ``supports`` attribute
    (:data:`FUNCTION_FEATURES`), e.g. ``fn.supports = ("reverse", "lengths", "no_bias")``:

    ``reverse``   ``fn(..., reverse=True)`` runs from ``x[T-1]`` to ``x[0]``; ``outputs[t]`` is
                  the one computed on ``x[t]`` (torch's reverse direction)
    ``lengths``   ``fn(..., lengths=(B,) ints)``: sample b uses ``x[:lengths[b], b]``; its outputs
                  past that are zero and its final state is the one after its last valid step
    ``no_bias``   ``params`` may lack the cell's bias vectors (the vectors added as a whole term)

    With ``--gradients``, ``fn(..., return_cache=True)`` and a ``backward(params, cache,
    d_outputs, d_final_state) -> (d_params, d_x, d_state0)`` beside it (``fn.backward`` or the
    module's ``backward``), as the generated modules have.
torch module (the cell API)
    ``cls(input_size, hidden_size[, output_size])`` (sizes: the input's rows, the state ``h``'s
    (else the first state's), the first readout's when the cell has one), then one call per
    step: ``forward(x_t (B, d_x), state) -> new_state`` or ``-> (output, new_state)``. ``state``
    is a tensor for a one-state cell, else a tuple in the order ``h`` first, then the other
    states as the equations assign them (``(h, c)`` as ``torch.nn.LSTMCell``). Weights are the
    module's parameters named as the cell's (``W_xh``) or mapped by ``param_map``
    (``{"W_x": "weight_ih"}``; ``"weight_ih.T"`` for a parameter stored transposed). Gradients:
    autograd.
"""
from __future__ import annotations

import contextlib
import inspect
import sys
from dataclasses import dataclass
from typing import Optional

import numpy as np

from rnnsym.frameworks import (ContractError, OutputError, UsageError, shape_in_symbols,
                               torch_single_thread)

#: the optional features a function target may declare in its ``supports`` attribute
FUNCTION_FEATURES = ("reverse", "lengths", "no_bias")


@dataclass(frozen=True)
class CellConfig:
    """One drawn configuration of a symbolic-cell check: sizes of every free dimension of the
    cell (``dims``, sorted pairs), time steps, batch, and the features it turns on."""

    cell: str
    T: int
    B: int
    dims: tuple
    reverse: bool = False
    bias: bool = True
    initial_state: bool = False
    dtype: str = "float64"
    num_layers: int = 1
    D: int = 1

    def sizes(self) -> dict:
        return {"T": self.T, "B": self.B, **dict(self.dims)}

    def describe(self) -> str:
        parts = [self.cell] + [f"{k}={v}" for k, v in self.sizes().items()]
        parts += ["reverse" if self.reverse else "forward", "bias" if self.bias else "no-bias",
                  "initial-state" if self.initial_state else "zero-state", self.dtype]
        return " ".join(parts)

    def coverage_key(self) -> tuple:
        return (self.reverse, self.bias, self.initial_state)


def bias_params(cell) -> tuple:
    """The cell's bias vectors: parameters that are a whole term of a sum (``+ b_h``)."""
    from sympy import MatAdd, MatrixSymbol, preorder_traversal
    names = []
    for eq in cell.equations:
        for node in preorder_traversal(eq.rhs):
            if isinstance(node, MatAdd):
                names += [a.name for a in node.args if isinstance(a, MatrixSymbol)
                          and a.name in cell.params]
    return tuple(p for p in cell.params if p in names)


def state_order(cell) -> tuple:
    """The states in the cell API's order: ``h`` first, then the others as assigned."""
    return tuple(sorted(cell.states, key=lambda s: s != "h"))


class CellTarget:
    """What the symbolic-cell checker drives; see the module docstring."""

    name = "?"
    supports: frozenset = frozenset()
    dtype = "float64"

    def __init__(self, cell, table):
        self.cell, self.table = cell, table
        self.input = cell.inputs[0]

    def session(self):
        """Context manager around a whole check run."""
        return contextlib.nullcontext()

    def unsupported(self, exc: BaseException) -> bool:
        """A NotImplementedError: reported as raised (every feature drawn was declared)."""
        return isinstance(exc, NotImplementedError)

    def shape(self, name: str, config: CellConfig) -> tuple:
        return self.table.concrete(**dict(config.dims))[name]

    def symbols(self, name: str) -> str:
        return "(" + ", ".join(map(str, self.table.shape(name))) + ")"

    def _array(self, label, value, shape, symbols, config) -> np.ndarray:
        arr = np.asarray(value)
        if arr.shape != tuple(shape):
            raise OutputError(f"{label}: expected shape {symbols} = {tuple(shape)}, got "
                              f"{tuple(arr.shape)} = {shape_in_symbols(arr.shape, config.sizes())}")
        if arr.dtype != np.dtype(config.dtype):
            raise OutputError(f"{label}: expected dtype {config.dtype} (the input's), got "
                              f"{arr.dtype}", kind="wrong dtype")
        return arr

    def flat(self, config, outputs, final) -> dict:
        """Validated ``(outputs, final)`` -> flat ``{"output": (T, B, 1, d), "<s>_n": (1, 1, B,
        d)}``."""
        c = config
        out_dims = self.symbols(self.cell.output)[1:-1]
        d_out = self.shape(self.cell.output, c)
        flat = {"output": self._array("outputs", outputs, (c.T, c.B) + d_out,
                                      f"(T, B, {out_dims})", c)[:, :, None]}
        if not isinstance(final, dict) or set(final) != set(self.cell.states):
            got = sorted(final) if isinstance(final, dict) else type(final).__name__
            raise OutputError(f"final_state: expected a dict with keys "
                              f"{sorted(self.cell.states)}, got {got}")
        for s in self.cell.states:
            flat[f"{s}_n"] = self._array(f'final_state["{s}"]', final[s],
                                         (c.B,) + self.shape(s, c),
                                         f"(B, {self.symbols(s)[1:-1]})", c)[None, None]
        return flat


class FunctionCellTarget(CellTarget):
    """A function in the canonical convention (module docstring)."""

    def __init__(self, fn, cell, table, name: Optional[str] = None):
        super().__init__(cell, table)
        self.fn = fn
        self.name = name or getattr(fn, "__qualname__", repr(fn))
        declared = getattr(fn, "supports", ()) or ()
        declared = (declared,) if isinstance(declared, str) else tuple(declared)
        unknown = [d for d in declared if d not in FUNCTION_FEATURES]
        if unknown:
            raise UsageError(f"{self.name}.supports: unknown feature {unknown[0]!r} (known: "
                             f"{', '.join(FUNCTION_FEATURES)})")
        self.supports = frozenset(declared)
        try:
            inspect.signature(fn).bind({}, None, None)
        except TypeError as exc:
            raise ContractError(f"{self.name}: expected a function (params, x, state0=None), "
                                f"{exc}") from exc
        except ValueError:
            pass

    def _kwargs(self, config, lengths) -> dict:
        kwargs = {}
        if config.reverse:
            kwargs["reverse"] = True
        if lengths is not None:
            kwargs["lengths"] = np.asarray(lengths, np.int64)
        return kwargs

    def run(self, config, values, x, state0, lengths=None, length_mode=None) -> dict:
        s0 = None if state0 is None else {k: np.array(v) for k, v in state0.items()}
        result = self.fn(dict(values), np.array(x), s0, **self._kwargs(config, lengths))
        if not (isinstance(result, (tuple, list)) and len(result) == 2):
            raise OutputError(f"returned {type(result).__name__}, expected (outputs, final_state)")
        return self.flat(config, *result)

    def gradients(self, config, values, x, state0, upstream):
        backward = getattr(self.fn, "backward", None) or getattr(
            sys.modules.get(getattr(self.fn, "__module__", ""), None), "backward", None) or \
            getattr(self.fn, "__globals__", {}).get("backward")     # rnnsym.compile's modules
        if not callable(backward):
            raise UsageError(f"--gradients: {self.name} has no backward(params, cache, "
                             "d_outputs, d_final_state) beside it")
        s0 = None if state0 is None else {k: np.array(v) for k, v in state0.items()}
        result = self.fn(dict(values), np.array(x), s0, return_cache=True)
        if not (isinstance(result, (tuple, list)) and len(result) == 3):
            raise OutputError("forward(..., return_cache=True) returned "
                              f"{type(result).__name__}, expected (outputs, final_state, cache)")
        outputs, final, cache = result
        d_final = {s: upstream[f"{s}_n"][0, 0] for s in self.cell.states}
        dp, dx, ds0 = backward(dict(values), cache, upstream["output"][:, :, 0], d_final)
        grads = {f"param:{k}": np.asarray(v) for k, v in dict(dp).items()}
        grads["x"] = np.asarray(dx)
        grads.update({f"{k}0": np.asarray(v)[None, None] for k, v in dict(ds0).items()})
        return self.flat(config, outputs, final), grads


def parse_param_map(text) -> dict:
    """``"W_x=weight_ih,W_h=weight_hh.T"`` (or a dict) -> ``{"W_x": ("weight_ih", False),
    "W_h": ("weight_hh", True)}`` (True: stored transposed)."""
    if not text:
        return {}
    items = text.items() if isinstance(text, dict) else \
        [w.split("=", 1) if "=" in w else (w, None) for w in
         (w.strip() for w in ",".join([text] if isinstance(text, str) else text).split(","))
         if w]
    out = {}
    for key, value in items:
        if not value or not key.strip():
            raise UsageError(f"--param-map {key}: expected CELL_PARAM=MODULE_PARAM, e.g. "
                             "W_x=weight_ih (or weight_ih.T when stored transposed)")
        value = value.strip()
        out[key.strip()] = (value[:-2], True) if value.endswith(".T") else (value, False)
    return out


class TorchCellTarget(CellTarget):
    """A ``torch.nn.Module`` class following the cell API (module docstring)."""

    dtype = "float32"

    def __init__(self, cls, cell, table, name: Optional[str] = None, param_map=None):
        super().__init__(cell, table)
        self.cls = cls
        self.name = name or getattr(cls, "__qualname__", repr(cls))
        self.param_map = parse_param_map(param_map)
        unknown = [k for k in self.param_map if k not in cell.params]
        if unknown:
            raise UsageError(f"--param-map {unknown[0]}: not a parameter of the cell (its "
                             f"parameters: {', '.join(cell.params)})")
        self.states = state_order(cell)

    def session(self):
        """torch on one thread (``rnnsym.frameworks.torch_single_thread``: tiny examples)."""
        return torch_single_thread()

    def _sizes(self, config) -> tuple:
        concrete = self.table.concrete(**dict(config.dims))
        main = "h" if "h" in self.cell.states else self.cell.states[0]
        sizes = [concrete[self.input][0], concrete[main][0]]
        if self.cell.readouts:
            sizes.append(concrete[self.cell.readouts[0]][0])
        return tuple(sizes)

    def build(self, config, values=None):
        import torch
        try:
            module = self.cls(*self._sizes(config))
        except TypeError as exc:
            raise ContractError(f"{self.name}({', '.join(map(str, self._sizes(config)))}): "
                                f"{exc} (the cell API: cls(input_size, hidden_size"
                                f"{', output_size' if self.cell.readouts else ''}))") from exc
        own = dict(module.named_parameters())
        concrete = self.table.concrete(**dict(config.dims))
        where = {}
        for p in self.cell.params:
            target, transposed = self.param_map.get(p, (p, False))
            if target not in own:
                raise ContractError(f"{self.name} has no parameter {target!r} for the cell's "
                                    f"{p} {self.symbols(p)} (name it so, or --param-map "
                                    f"{p}=NAME; its parameters: {', '.join(own) or 'none'})")
            want = concrete[p][::-1] if transposed else concrete[p]
            if tuple(own[target].shape) != tuple(want):
                sym = self.symbols(p)
                raise ContractError(
                    f"{self.name}.{target} (the cell's {p}{' transposed' if transposed else ''})"
                    f": expected shape {sym if not transposed else sym + '.T'} = {tuple(want)},"
                    f" got {tuple(own[target].shape)}")
            where[p] = (target, transposed)
        extra = sorted(set(own) - {t for t, _ in where.values()})
        if extra:
            raise ContractError(f"{self.name}: parameter(s) {', '.join(extra)} are not the cell's "
                                f"(map them with --param-map CELL_PARAM=NAME; the cell's: "
                                f"{', '.join(self.cell.params)})")
        dtype = getattr(torch, config.dtype)
        module = module.to(dtype)
        if values is not None:
            own = dict(module.named_parameters())
            with torch.no_grad():
                for p, (target, transposed) in where.items():
                    v = torch.as_tensor(np.asarray(values[p]), dtype=dtype)
                    own[target].copy_(v.T if transposed else v)
        return module, where

    def _steps(self, module, config, x, state0):
        """Run the module step by step on tensors; returns (outputs (T, B, d), final dict)."""
        import torch
        one = len(self.states) == 1
        state = state0[self.states[0]] if one else tuple(state0[s] for s in self.states)
        outs = []
        for t in range(config.T):
            result = module(x[t], state)
            if isinstance(result, (tuple, list)) and len(result) == 2 and \
                    (one or isinstance(result[1], (tuple, list))):
                out, state = result
            else:
                state, out = result, None
            if not one and not (isinstance(state, (tuple, list)) and len(state) == len(self.states)):
                raise OutputError(f"step {t}: expected the new state as a tuple "
                                  f"({', '.join(self.states)}), got {type(state).__name__}")
            named = {self.states[0]: state} if one else dict(zip(self.states, state))
            if out is None:
                if self.cell.output not in named:
                    raise OutputError(f"step {t}: the cell's output {self.cell.output} is a "
                                      "readout: return (output, new_state)")
                out = named[self.cell.output]
            outs.append(out)
        final = {s: named[s] for s in self.states} if config.T else dict(state0)
        return (torch.stack(outs) if outs else None), final

    def _inputs(self, config, x, state0, grad=False):
        import torch
        dtype = getattr(torch, config.dtype)
        xt = torch.tensor(np.asarray(x), dtype=dtype, requires_grad=grad)
        concrete = self.table.concrete(**dict(config.dims))
        s0 = {s: torch.tensor(np.asarray(state0[s]) if state0 is not None else
                              np.zeros((config.B,) + concrete[s]), dtype=dtype,
                              requires_grad=grad) for s in self.states}
        return xt, s0

    def run(self, config, values, x, state0, lengths=None, length_mode=None) -> dict:
        import torch
        module, _ = self.build(config, values)
        xt, s0 = self._inputs(config, x, state0)
        with torch.no_grad():
            outs, final = self._steps(module, config, xt, s0)
        return self.flat(config, _numpy(outs), {k: _numpy(v) for k, v in final.items()})

    def gradients(self, config, values, x, state0, upstream):
        import torch
        module, where = self.build(config, values)
        xt, s0 = self._inputs(config, x, state0, grad=True)
        outs, final = self._steps(module, config, xt, s0)
        dtype = getattr(torch, config.dtype)
        loss = (outs * torch.as_tensor(upstream["output"][:, :, 0], dtype=dtype)).sum()
        for s in self.states:
            loss = loss + (final[s] * torch.as_tensor(upstream[f"{s}_n"][0, 0], dtype=dtype)).sum()
        own = dict(module.named_parameters())
        params = [own[t] for t, _ in where.values()]
        got = torch.autograd.grad(loss, params + [xt] + [s0[s] for s in self.states],
                                  allow_unused=True)
        grads = {}
        for (p, (_, transposed)), g in zip(where.items(), got):
            g = np.zeros(tuple(own[where[p][0]].shape)) if g is None else _numpy(g)
            grads[f"param:{p}"] = g.T if transposed else g
        rest = got[len(params):]
        grads["x"] = _grad_or_zero(rest[0], xt)
        for s, g in zip(self.states, rest[1:]):
            grads[f"{s}0"] = _grad_or_zero(g, s0[s])[None, None]
        flat = self.flat(config, _numpy(outs), {k: _numpy(v) for k, v in final.items()})
        return flat, grads


def _numpy(t):
    return t.detach().cpu().numpy()


def _grad_or_zero(g, like):
    return np.zeros(tuple(like.shape), _numpy(like).dtype) if g is None else _numpy(g)


def cell_target(obj, cell, table, name=None, param_map=None) -> CellTarget:
    """A loaded target object -> its CellTarget (function or torch module class)."""
    if inspect.isclass(obj):
        return TorchCellTarget(obj, cell, table, name, param_map)
    if param_map:
        raise UsageError("--param-map names a torch module's parameters; the target is a "
                         "function (it gets the cell's own names)")
    if callable(obj):
        return FunctionCellTarget(obj, cell, table, name)
    raise UsageError(f"target {name}: expected a class or a function, got {type(obj).__name__}")
