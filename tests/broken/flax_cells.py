"""Flax cells for ``--gradients``: right outputs, a carry read through
``jax.lax.stop_gradient`` (a forward bug that only shows in gradients). ``EXPECT`` is a phrase
of the diagnosis the checker must give."""
import jax
from flax import linen, nnx


class GRUStateDetached(linen.GRUCell):
    """flax.linen GRUCell whose step reads its carry detached."""
    EXPECT = "state detached before every step"

    def __call__(self, carry, inputs):
        return super().__call__(jax.lax.stop_gradient(carry), inputs)


class LSTMStateDetached(nnx.LSTMCell):
    """flax.nnx LSTMCell whose step reads its carry (c, h) detached."""
    EXPECT = "state detached before every step"

    def __call__(self, carry, inputs):
        return super().__call__(jax.tree_util.tree_map(jax.lax.stop_gradient, carry), inputs)
