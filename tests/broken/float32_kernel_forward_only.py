"""A target file that re-exports ``forward`` from ``float32_kernel`` and has no backward:
``--gradients`` is a usage error, not a check of ``float32_kernel.backward`` (issue 19)."""
from float32_kernel import forward  # noqa: F401 - the target: FILE.py:forward
