"""Small helpers shared by the adapters of torch sequence targets
(:mod:`rnnsym.frameworks.transformers_gdn`, :mod:`rnnsym.frameworks.transformers_mamba`):
dtype names, NumPy <-> torch conversion, and the pure-torch function behind a transformers
kernel-hub wrapper. torch is imported inside the functions."""
from __future__ import annotations

import inspect

import numpy as np

from rnnsym.errors import Unsupported

DTYPES = ("float64", "float32", "bfloat16", "float16")


def torch_dtype(name: str):
    import torch
    return getattr(torch, name)


def tensor(a, dtype: str):
    """float64 NumPy -> a torch tensor of ``dtype`` (rounded once, from float64)."""
    import torch
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64)).to(torch_dtype(dtype))


def numpy(t):
    """A torch tensor (any float dtype) -> float64 NumPy."""
    import torch
    return t.detach().to(torch.float64).cpu().numpy()


def pure_torch(fn):
    """The pure-torch function under transformers' ``use_kernel_func_from_hub_with_fallback``
    wrapper: the module-level name dispatches to the original package when it imports (with
    fla-core installed, Qwen3-Next's ``torch_chunk_gated_delta_rule`` name runs fla's
    ``chunk_gated_delta_rule``); ``functools.wraps`` keeps the torch function as ``__wrapped__``."""
    return inspect.unwrap(fn)


def refuse_dtype(case, dtypes, where: str) -> None:
    if case.dtype not in dtypes:
        raise Unsupported(f"{where}: dtype {case.dtype} not taken (takes {', '.join(dtypes)})")
