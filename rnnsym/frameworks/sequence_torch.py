"""Shared conversions of the sequence-target adapters that call torch functions
(:mod:`rnnsym.frameworks.mlstm_kernels`, :mod:`rnnsym.frameworks.fla`,
:mod:`rnnsym.frameworks.transformers_gdn`, :mod:`rnnsym.frameworks.transformers_mamba`): a
:class:`~rnnsym.frameworks.sequence.SequenceCase` (canonical ``(B, T, H, d)`` NumPy, float64
values) to torch tensors in a target's layout and dtype, and back to float64 NumPy.

torch is imported inside the functions, so importing this module costs nothing.
"""
from __future__ import annotations

import inspect

import numpy as np

from rnnsym.errors import Unsupported

DTYPES = ("float64", "float32", "bfloat16", "float16")
#: cell options that say which cell a target computes (its ``SequenceTarget.cell_options``,
#: copied into every case by the checker), not a value a path may or may not take
STRUCTURAL = ("decay", "qk_l2norm")


def torch_dtype(name: str):
    import torch
    if name not in DTYPES:
        raise Unsupported(f"dtype {name!r}: the torch sequence targets run {', '.join(DTYPES)}")
    return getattr(torch, name)


def require(case, path: str, *, dtypes=DTYPES, varlen=False, groups=False, state0=True,
            options=()):
    """Raise :class:`Unsupported` for what ``path`` does not take: a dtype outside ``dtypes``,
    a packed variable-length batch, inputs with fewer heads than the output, an initial state,
    a case option (``scale``, ``eps``, ...) not in ``options``."""
    if case.dtype not in dtypes:
        raise Unsupported(f"{path}: dtype {case.dtype} is not run (runs {', '.join(dtypes)})")
    if case.cu_seqlens is not None and not varlen:
        raise Unsupported(f"{path}: takes no cu_seqlens (packed variable-length batch)")
    if not groups:
        for name, a in case.inputs.items():
            if np.shape(a)[2] != case.heads:
                raise Unsupported(f"{path}: input {name} has {np.shape(a)[2]} heads, the output "
                                  f"{case.heads}: grouped heads are not taken")
    if case.state0 is not None and not state0:
        raise Unsupported(f"{path}: takes no initial state")
    for name, value in case.options.items():
        if name in STRUCTURAL:
            continue
        if value is not None and name not in options:
            raise Unsupported(f"{path}: option {name}={value!r} is not taken")


def tensor(a, dtype, heads_first=False):
    """``a`` (canonical ``(B, T, H, d)`` or ``(B, T, H)``) as a torch tensor of ``dtype``
    (rounded once from float64); ``heads_first``: ``(B, H, T, d)`` / ``(B, H, T)``.
    ``dtype``: a torch dtype or its name."""
    import torch
    dtype = torch_dtype(dtype) if isinstance(dtype, str) else dtype
    t = torch.from_numpy(np.ascontiguousarray(np.asarray(a, np.float64))).to(dtype)
    return t.transpose(1, 2).contiguous() if heads_first else t


def state_tensor(a, dtype):
    """A state ``(B, heads) + shape`` (the canonical and the targets' layout) in ``dtype``."""
    import torch
    return torch.from_numpy(np.ascontiguousarray(np.asarray(a, np.float64))).to(dtype)


def numpy(t, heads_first=False):
    """A torch output back to float64 NumPy ``(B, T, H, d)``."""
    import torch
    if heads_first:
        t = t.transpose(1, 2)
    return t.detach().to(torch.float64).cpu().numpy()


def pure_torch(fn):
    """The pure-torch function under transformers' ``use_kernel_func_from_hub_with_fallback``
    wrapper: the module-level name dispatches to the original package when it imports (with
    fla-core installed, Qwen3-Next's ``torch_chunk_gated_delta_rule`` name runs fla's
    ``chunk_gated_delta_rule``); ``functools.wraps`` keeps the torch function as ``__wrapped__``."""
    return inspect.unwrap(fn)


def refuse_dtype(case, dtypes, where: str) -> None:
    """Raise :class:`Unsupported` when ``case.dtype`` is not one of ``dtypes``."""
    if case.dtype not in dtypes:
        raise Unsupported(f"{where}: dtype {case.dtype} not taken (takes {', '.join(dtypes)})")
