"""NumPy helper functions a generated module may need, emitted only where used.

Each is plain NumPy source, copied into the module so that generated files import numpy only.
"""

HELPERS = {
    "_sigmoid": '''
def _sigmoid(u):
    """Logistic function without overflow for any finite u (1/(1+exp(-u)) overflows past
    |u| ~ 88 in float32). float32: (1 + tanh(u/2)) / 2, the fastest form there, absolute error
    of a rounding unit; otherwise e^min(u,0) / (1 + e^-|u|), which also keeps full relative
    accuracy for tiny values."""
    if u.dtype == np.float32:
        return 0.5 * np.tanh(0.5 * u) + 0.5
    return np.exp(np.minimum(u, 0)) / (1 + np.exp(-np.abs(u)))
''',
    "_sigmoid_": '''
def _sigmoid_(u):
    """Logistic function, in place on the array u (a view of a reused buffer), without overflow
    for any finite u: float32 (1 + tanh(u/2)) / 2, otherwise e^min(u,0) / (1 + e^-|u|)."""
    if u.dtype == np.float32:
        u *= 0.5
        np.tanh(u, out=u)
        u *= 0.5
        u += 0.5
        return
    e = np.abs(u)
    np.negative(e, out=e)
    np.exp(e, out=e)
    e += 1
    np.minimum(u, 0, out=u)
    np.exp(u, out=u)
    u /= e
''',
    "_layernorm": '''
def _layernorm(u, eps):
    """(u - mean) / sqrt(var + eps) over the last (feature) axis, the biased variance as in
    torch.nn.LayerNorm."""
    d = u - u.mean(axis=-1, keepdims=True)
    return d / np.sqrt((d * d).mean(axis=-1, keepdims=True) + eps)
''',
    "_feature_mean": '''
def _feature_mean(u):
    """Mean over the last (feature) axis, kept for broadcasting."""
    return u.mean(axis=-1, keepdims=True)
''',
    "_chunk": '''
def _chunk(u, k, n):
    """Block k of n equal blocks of the last (feature) axis, as torch.chunk(u, n, -1)[k]."""
    d = u.shape[-1] // n
    return u[..., k * d:(k + 1) * d]
''',
}
