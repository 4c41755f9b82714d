"""A target file that re-exports ``forward`` from ``float32_kernel`` and has its own
``backward``, broken (dW_hn transposed): ``--gradients`` on this file's ``forward`` must
check this file's backward, not borrow ``float32_kernel.backward`` (issue 19)."""
import float32_kernel
from float32_kernel import forward  # noqa: F401 - the target: FILE.py:forward


def backward(params, cache, d_outputs, d_final_state):
    d_params, d_x, d_state0 = float32_kernel.backward(params, cache, d_outputs, d_final_state)
    d_params["W_hn"] = d_params["W_hn"].T
    return d_params, d_x, d_state0


def backward_right(params, cache, d_outputs, d_final_state):
    """The right one, for ``--backward backward_right``."""
    return float32_kernel.backward(params, cache, d_outputs, d_final_state)
